//! The operator commands' HTTP client for `/api/v1`.

use anyhow::{anyhow, Context as _};
use reqwest::Method;
use serde_json::Value;

/// A client of one server.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `url` (e.g. `http://127.0.0.1:8700`).
    pub fn new(url: &str, token: Option<&str>) -> anyhow::Result<Self> {
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            http: reqwest::Client::builder()
                .build()
                .context("cannot build the HTTP client")?,
        })
    }

    /// Sends a request to `/api/v1{path}` and returns the JSON answer; an error answer
    /// becomes an error with the server's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the Switchyard server at {} (is `switchyard serve` running? set --url or SWITCHYARD_URL)", self.base))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .context("the server's answer could not be read")?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(value);
        }
        let message = value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        Err(anyhow!("{message} (HTTP {})", status.as_u16()))
    }

    /// GET.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }
}

/// Percent-encodes one URL path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
