//! Helpers: an HTTP client, JSON calls, assertions on the request log.

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use switchyard_standins::StandIns;

/// A client that sends a User-Agent, as Switchyard's `http_request` does.
pub fn client() -> Client {
    Client::builder()
        .user_agent("switchyard/test")
        .build()
        .expect("client")
}

/// A request to `base` + `path`.
pub fn req(method: Method, base: &str, path: &str) -> RequestBuilder {
    client().request(method, format!("{base}{path}"))
}

/// Sends, returns status, headers and the body (JSON when it parses, else a string).
pub async fn send(r: RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp: Response = r.send().await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

/// The reason the last refused request was logged with.
pub fn last_reason(s: &StandIns) -> String {
    s.rejected()
        .last()
        .and_then(|r| r.rejected.clone())
        .unwrap_or_default()
}
