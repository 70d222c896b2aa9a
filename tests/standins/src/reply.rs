//! Helpers shared by the stand-ins: refusals that carry their reason into the request log,
//! JSON answers, bearer tokens, query strings, page arithmetic, timestamps.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::log::Rejected;

/// A refusal: the vendor's own error answer plus the reason logged for the test.
#[derive(Debug)]
pub(crate) struct Reject {
    status: StatusCode,
    content_type: &'static str,
    body: String,
    reason: String,
}

impl Reject {
    /// A JSON error body.
    pub(crate) fn json(status: u16, body: Value, reason: impl Into<String>) -> Reject {
        Reject {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            content_type: "application/json; charset=utf-8",
            body: body.to_string(),
            reason: reason.into(),
        }
    }

    /// A plain-text error body.
    pub(crate) fn text(status: u16, body: &str, reason: impl Into<String>) -> Reject {
        Reject {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            reason: reason.into(),
        }
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response();
        r.extensions_mut().insert(Rejected(self.reason));
        r
    }
}

/// What a handler answers.
pub(crate) type Reply = Result<Response, Reject>;

/// A JSON answer.
pub(crate) fn json(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// An empty answer (204 and the like).
pub(crate) fn empty(status: u16) -> Response {
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::NO_CONTENT)
        .into_response()
}

/// Adds a header to an answer.
pub(crate) fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
    r
}

/// What the `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Auth<'a> {
    /// No `Authorization` header.
    Missing,
    /// `Bearer TOKEN` (scheme matched case-insensitively).
    Bearer(&'a str),
    /// Something else (another scheme, or not text).
    Other(&'a str),
}

/// Reads the `Authorization` header.
pub(crate) fn authorization(headers: &HeaderMap) -> Auth<'_> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Auth::Missing;
    };
    let Ok(v) = v.to_str() else {
        return Auth::Other("");
    };
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Auth::Bearer(token.trim())
        }
        _ => Auth::Other(v),
    }
}

/// Describes a wrong `Authorization` header for the log, without echoing a secret in full.
pub(crate) fn describe_auth(a: &Auth<'_>) -> String {
    match a {
        Auth::Missing => "no Authorization header".to_string(),
        Auth::Bearer(t) => format!(
            "Authorization: Bearer {} is not the expected token",
            preview(t)
        ),
        Auth::Other(v) => format!(
            "Authorization header `{}` is not `Bearer TOKEN`",
            preview(v)
        ),
    }
}

/// The first characters of a value, for messages.
pub(crate) fn preview(s: &str) -> String {
    let head: String = s.chars().take(12).collect();
    if head.len() < s.len() {
        format!("{head}…")
    } else {
        head
    }
}

/// The `Content-Type` header's media type, lower case, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decoded query pairs.
pub(crate) fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of a query parameter.
pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `page` and `per_page` from a query: defaults, an upper bound that clamps (as GitHub and
/// DigitalOcean do), and an error for a value that is not a positive integer.
pub(crate) fn page_params(
    pairs: &[(String, String)],
    default_per_page: usize,
    max_per_page: usize,
) -> Result<(usize, usize), String> {
    let num = |name: &str, default: usize| -> Result<usize, String> {
        match query_get(pairs, name) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("`{name}` must be a positive integer, got `{v}`")),
        }
    };
    Ok((
        num("page", 1)?,
        num("per_page", default_per_page)?.min(max_per_page),
    ))
}

/// One page of `items` (1-based) and the number of the last page (at least 1).
pub(crate) fn page_of<T: Clone>(items: &[T], page: usize, per_page: usize) -> (Vec<T>, usize) {
    let last = items.len().div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page);
    let slice = items.iter().skip(start).take(per_page).cloned().collect();
    (slice, last)
}

/// The URL of another page: `base` + `path` with the query's `page` set to `page` (other
/// parameters kept in their order).
pub(crate) fn page_url(base: &str, path: &str, pairs: &[(String, String)], page: usize) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    let mut set = false;
    for (k, v) in pairs {
        if k == "page" {
            if !set {
                out.append_pair("page", &page.to_string());
                set = true;
            }
        } else {
            out.append_pair(k, v);
        }
    }
    if !set {
        out.append_pair("page", &page.to_string());
    }
    format!("{base}{path}?{}", out.finish())
}

/// Now, as the vendors write it: `2024-05-01T12:00:00Z`.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether `s` looks like an email address (`local@domain.tld`, no spaces).
pub(crate) fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !s.chars().any(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

/// The JSON type name of a value, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_url_replaces_page_and_keeps_other_parameters() {
        let pairs = query_pairs(Some("tag_name=a%20b&page=1&per_page=2"));
        assert_eq!(
            page_url("http://h", "/v2/droplets", &pairs, 3),
            "http://h/v2/droplets?tag_name=a+b&page=3&per_page=2"
        );
        assert_eq!(page_url("http://h", "/x", &[], 2), "http://h/x?page=2");
    }

    #[test]
    fn pages_are_counted_and_sliced() {
        let items = [1, 2, 3, 4, 5];
        assert_eq!(page_of(&items, 1, 2), (vec![1, 2], 3));
        assert_eq!(page_of(&items, 3, 2), (vec![5], 3));
        assert_eq!(page_of(&items, 4, 2), (vec![], 3));
        assert_eq!(page_of::<i32>(&[], 1, 2), (vec![], 1));
    }

    #[test]
    fn page_params_clamp_and_refuse() {
        let q = query_pairs(Some("per_page=500"));
        assert_eq!(page_params(&q, 30, 100), Ok((1, 100)));
        let q = query_pairs(Some("page=0"));
        assert!(page_params(&q, 30, 100).is_err());
    }

    #[test]
    fn emails() {
        assert!(is_email("ada@example.com"));
        assert!(!is_email("ada@example"));
        assert!(!is_email("ada example.com"));
        assert!(!is_email("@example.com"));
    }
}
