//! `http_request`: calls an HTTP API and emits `{status, headers, body}` (with `pages` when
//! it paginates).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_template::{Template, TemplateValue};

use crate::outbound::{check_destination, ssrf_error};
use crate::registry::AgentType;
use crate::{Agent, AgentError, BuildContext, ExecContext, Invalid, Outcome};

mod paginate;

/// Options of an `http_request` agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestOptions {
    /// The URL (a template): `{{ resource.api_url }}/items/{{ shape.id }}`.
    pub url: String,
    /// HTTP method (default GET); may be a template (`"{{ params.method }}"`).
    #[serde(default = "get")]
    pub method: String,
    /// Request headers (values are templates).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters added to the URL (values are templates).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Request body: a JSON value (sent as `application/json`), or a string sent raw.
    /// A string that is exactly one `{{ expr }}` sends the expression's JSON value; a null
    /// sends no body.
    #[serde(default)]
    pub body: Option<Value>,
    /// A form body (`application/x-www-form-urlencoded`); values are templates.
    #[serde(default)]
    pub form: Option<BTreeMap<String, String>>,
    /// Authentication: `{bearer: TOKEN}` or `{basic: {username, password}}`.
    #[serde(default)]
    pub auth: Option<HttpAuthOptions>,
    /// Status codes that count as success (default: any 2xx).
    #[serde(default)]
    pub expect: Option<Vec<u16>>,
    /// Follow redirects (default true, at most 10).
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Fetch further pages: the event gets `pages` (every page's body, in order).
    #[serde(default)]
    pub paginate: Option<paginate::PaginateOptions>,
}

/// Authentication of an outgoing request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuthOptions {
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// `Authorization: Basic …`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

fn get() -> String {
    "GET".into()
}
fn yes() -> bool {
    true
}

/// A built `http_request` agent.
#[derive(Debug)]
pub struct HttpRequest {
    url: Template,
    method: Method,
    /// `method` when it is a template.
    method_template: Option<Template>,
    headers: Vec<(HeaderName, Template)>,
    query: Vec<(String, Template)>,
    body: Body,
    auth: Option<Auth>,
    expect: Option<Vec<u16>>,
    follow_redirects: bool,
    paginate: Option<paginate::Paginate>,
}

#[derive(Debug)]
enum Body {
    None,
    Json(TemplateValue),
    Form(Vec<(String, Template)>),
}

#[derive(Debug)]
enum Auth {
    Bearer(Template),
    Basic(Template, Template),
}

const MAX_REDIRECTS: usize = 10;

impl AgentType for HttpRequest {
    type Options = HttpRequestOptions;

    fn build(o: HttpRequestOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        let url = cx.template("/url", &o.url);
        let method_template = if o.method.contains("{{") || o.method.contains("{%") {
            cx.template("/method", &o.method)
        } else {
            None
        };
        let method = match Method::from_bytes(o.method.to_ascii_uppercase().as_bytes()) {
            Ok(m) => m,
            Err(_) if method_template.is_some() => Method::GET,
            Err(_) => {
                cx.error("/method", format!("`{}` is not an HTTP method", o.method));
                Method::GET
            }
        };
        let mut headers = Vec::new();
        for (name, value) in &o.headers {
            let path = format!("/headers/{name}");
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) => {
                    if let Some(t) = cx.template(&path, value) {
                        headers.push((h, t));
                    }
                }
                Err(_) => cx.error(&path, format!("`{name}` is not a valid header name")),
            }
        }
        let query = o
            .query
            .iter()
            .filter_map(|(k, v)| {
                cx.template(&format!("/query/{k}"), v)
                    .map(|t| (k.clone(), t))
            })
            .collect();
        let body = match (&o.body, &o.form) {
            (Some(_), Some(_)) => {
                cx.error("/form", "give either `body` or `form`, not both");
                Body::None
            }
            (Some(b), None) => cx.value("/body", b).map_or(Body::None, Body::Json),
            (None, Some(f)) => Body::Form(
                f.iter()
                    .filter_map(|(k, v)| {
                        cx.template(&format!("/form/{k}"), v)
                            .map(|t| (k.clone(), t))
                    })
                    .collect(),
            ),
            (None, None) => Body::None,
        };
        let auth = match &o.auth {
            None => None,
            Some(HttpAuthOptions::Bearer(t)) => cx.template("/auth/bearer", t).map(Auth::Bearer),
            Some(HttpAuthOptions::Basic { username, password }) => {
                match (
                    cx.template("/auth/basic/username", username),
                    cx.template("/auth/basic/password", password),
                ) {
                    (Some(u), Some(p)) => Some(Auth::Basic(u, p)),
                    _ => None,
                }
            }
        };
        if let Some(expect) = &o.expect {
            for (i, s) in expect.iter().enumerate() {
                if !(100..=599).contains(s) {
                    cx.error(
                        &format!("/expect/{i}"),
                        format!("{s} is not an HTTP status"),
                    );
                }
            }
        }
        let paginate = o.paginate.and_then(|p| paginate::Paginate::build(p, cx));
        let Some(url) = url else { return Err(Invalid) };
        cx.finish_with(HttpRequest {
            url,
            method,
            method_template,
            headers,
            query,
            body,
            auth,
            expect: o.expect,
            follow_redirects: o.follow_redirects,
            paginate,
        })
    }
}

#[async_trait]
impl Agent for HttpRequest {
    fn accepts_status(&self, status: u16) -> Option<bool> {
        Some(match &self.expect {
            Some(codes) => codes.contains(&status),
            None => (200..300).contains(&status),
        })
    }

    async fn execute(&self, cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        let t = cx.templates;
        let url_text = self.url.render_string(t)?;
        let mut url = reqwest::Url::parse(&url_text).map_err(|e| {
            AgentError::permanent(
                "invalid_url",
                format!("`{url_text}` is not a valid URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AgentError::permanent(
                "invalid_url",
                format!("`{url_text}`: only http and https URLs can be called"),
            ));
        }
        if !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &self.query {
                pairs.append_pair(k, &v.render_string(t)?);
            }
        }
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 2);
        for (name, value) in &self.headers {
            let v = value.render_string(t)?;
            let hv = HeaderValue::from_str(&v).map_err(|_| {
                AgentError::permanent(
                    "template",
                    format!("header `{name}` rendered to a value that is not allowed in a header"),
                )
            })?;
            headers.insert(name.clone(), hv);
        }
        match &self.auth {
            None => {}
            Some(Auth::Bearer(token)) => {
                let v = format!("Bearer {}", token.render_string(t)?);
                headers.insert(reqwest::header::AUTHORIZATION, header_value(&v)?);
            }
            Some(Auth::Basic(u, p)) => {
                let raw = format!("{}:{}", u.render_string(t)?, p.render_string(t)?);
                let v = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                );
                headers.insert(reqwest::header::AUTHORIZATION, header_value(&v)?);
            }
        }
        // The same key for every retry of this execution, so the API can deduplicate.
        let idem = HeaderName::from_static("idempotency-key");
        if !headers.contains_key(&idem) {
            headers.insert(idem, header_value(&cx.job_id.to_string())?);
        }
        let body: Option<(Vec<u8>, &'static str)> = match &self.body {
            Body::None => None,
            // Serialized from the rendered value in place: `{{ shape }}` borrows the
            // upstream payload rather than copying it first.
            Body::Json(v) => v.render_with(t, json_body)??,
            Body::Form(fields) => {
                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in fields {
                    ser.append_pair(k, &v.render_string(t)?);
                }
                Some((
                    ser.finish().into_bytes(),
                    "application/x-www-form-urlencoded",
                ))
            }
        };
        if let Some((_, content_type)) = &body {
            if !headers.contains_key(reqwest::header::CONTENT_TYPE) {
                headers.insert(
                    reqwest::header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type),
                );
            }
        }

        let method = match &self.method_template {
            None => self.method.clone(),
            Some(m) => {
                let text = m.render_string(t)?.to_ascii_uppercase();
                Method::from_bytes(text.as_bytes()).map_err(|_| {
                    AgentError::permanent(
                        "template",
                        format!("`method` rendered `{text}`, which is not an HTTP method"),
                    )
                })?
            }
        };
        // The headers are needed again only to fetch further pages.
        let (first_headers, more_headers) = match &self.paginate {
            None => (headers, None),
            Some(p) => (headers.clone(), Some((p, headers))),
        };
        let first = self
            .send(
                cx,
                method,
                url,
                first_headers,
                body.map(|(b, _)| bytes::Bytes::from(b)),
            )
            .await?;
        let out = match more_headers {
            None => first.into_event(),
            Some((p, headers)) => p.follow(self, cx, first, headers).await?,
        };
        Ok(Outcome::Emit(vec![out]))
    }
}

/// The bytes and content type of a JSON `body`: none for null, a string raw, anything
/// else as compact JSON.
fn json_body(value: &Value) -> Result<Option<(Vec<u8>, &'static str)>, AgentError> {
    Ok(match value {
        Value::Null => None,
        Value::String(s) => Some((s.as_bytes().to_vec(), "text/plain; charset=utf-8")),
        other => Some((
            serde_json::to_vec(other)
                .map_err(|e| AgentError::permanent("template", e.to_string()))?,
            "application/json",
        )),
    })
}

/// One answered request: what the event is made of.
#[derive(Debug)]
pub(crate) struct Response {
    /// The URL finally answered (after redirects).
    pub url: reqwest::Url,
    pub status: StatusCode,
    /// The raw headers (for `Link`).
    pub raw_headers: HeaderMap,
    /// Headers as the event shows them: lower-case names, repeated ones joined with `, `.
    pub headers: Map<String, Value>,
    /// Parsed when JSON, else a string.
    pub body: Value,
}

impl Response {
    fn into_event(self) -> Value {
        let mut out = Map::with_capacity(4);
        out.insert("status".into(), Value::from(self.status.as_u16()));
        out.insert("headers".into(), Value::Object(self.headers));
        out.insert("body".into(), self.body);
        Value::Object(out)
    }
}

impl HttpRequest {
    /// Sends one request (following redirects when configured), reads the body within the
    /// size limit and checks the status against `expect`. Every request the agent makes,
    /// each page of a paginated call included, goes through here.
    pub(crate) async fn send(
        &self,
        cx: &ExecContext<'_>,
        mut method: Method,
        mut url: reqwest::Url,
        mut headers: HeaderMap,
        mut body: Option<bytes::Bytes>,
    ) -> Result<Response, AgentError> {
        let mut redirects = 0;
        let response = loop {
            // Every hop: the SSRF guard for IP literals, and credentials' allowed hosts.
            check_destination(cx, &url)?;
            let mut req = cx
                .services
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let response = req
                .send()
                .await
                .map_err(|e| request_error(&method, &url, e))?;
            let status = response.status();
            if self.follow_redirects
                && status.is_redirection()
                && status != StatusCode::NOT_MODIFIED
            {
                if let Some(location) = response.headers().get(reqwest::header::LOCATION) {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(AgentError::permanent(
                            "http",
                            format!("{method} {url}: more than {MAX_REDIRECTS} redirects"),
                        ));
                    }
                    let location = location.to_str().unwrap_or_default();
                    url = url.join(location).map_err(|e| {
                        AgentError::permanent(
                            "http",
                            format!("{method} {url}: bad redirect Location `{location}`: {e}"),
                        )
                    })?;
                    if matches!(
                        status,
                        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER
                    ) && method != Method::HEAD
                    {
                        method = Method::GET;
                        body = None;
                        headers.remove(reqwest::header::CONTENT_TYPE);
                    }
                    continue;
                }
            }
            break response;
        };

        let status = response.status();
        let mut out_headers = Map::new();
        for (name, value) in response.headers() {
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match out_headers.get_mut(name.as_str()) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&v);
                }
                _ => {
                    out_headers.insert(name.as_str().to_string(), Value::String(v));
                }
            }
        }
        let raw_headers = response.headers().clone();
        let retry_after = raw_headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(parse_retry_after);
        let is_json = raw_headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct.split(';').next().unwrap_or("").trim();
                ct == "application/json" || ct.ends_with("+json")
            });
        let bytes = read_limited(
            response,
            cx.services.config.max_response_bytes,
            &method,
            &url,
        )
        .await?;
        let body = if is_json && !bytes.is_empty() {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };

        let ok = match &self.expect {
            Some(codes) => codes.contains(&status.as_u16()),
            None => status.is_success(),
        };
        if !ok {
            let snippet: String = match &body {
                Value::String(s) => s.chars().take(300).collect(),
                other => other.to_string().chars().take(300).collect(),
            };
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            return Err(AgentError {
                kind: "http_status",
                message: format!("{method} {} answered {status}: {snippet}", redact_url(&url)),
                retryable,
                retry_after,
            });
        }
        Ok(Response {
            url,
            status,
            raw_headers,
            headers: out_headers,
            body,
        })
    }
}

fn header_value(v: &str) -> Result<HeaderValue, AgentError> {
    HeaderValue::from_str(v).map_err(|_| {
        AgentError::permanent(
            "template",
            "a header rendered to a value that is not allowed in a header",
        )
    })
}

/// The URL without user info, for messages.
pub(crate) fn redact_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn request_error(method: &Method, url: &reqwest::Url, e: reqwest::Error) -> AgentError {
    if let Some(refused) = crate::ssrf::refusal(&e) {
        return ssrf_error(refused);
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut message = format!("{method} {}: {what}", redact_url(url));
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    AgentError::transient(if e.is_timeout() { "timeout" } else { "http" }, message)
}

async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    method: &Method,
    url: &reqwest::Url,
) -> Result<Vec<u8>, AgentError> {
    let mut out = Vec::with_capacity(
        response
            .content_length()
            .map_or(1024, |l| (l as usize).min(limit)),
    );
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| request_error(method, url, e))?
    {
        if out.len() + chunk.len() > limit {
            return Err(AgentError::permanent(
                "response_too_large",
                format!(
                    "{method} {}: the response body is larger than {limit} bytes",
                    redact_url(url)
                ),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(v: &HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests;
