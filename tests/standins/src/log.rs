//! The request log: every request any stand-in receives, with the answer's status and, for
//! a refused request, why it was refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::Vendor;

/// Largest request body a stand-in reads (SendGrid's own limit is 30 MB; ours is smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request as a stand-in received it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    /// Which stand-in received it.
    pub vendor: Vendor,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    /// The query string without `?` (empty when none).
    pub query: String,
    /// Every request header, names in lower case (repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The body: parsed JSON when it is JSON, else the text, `null` when empty.
    pub body: Value,
    /// The status the stand-in answered.
    pub status: u16,
    /// Why the stand-in refused the request: every answer outside 2xx carries a reason, and
    /// so does a refusal the vendor answers with 200 (Slack's `{"ok": false}`).
    pub rejected: Option<String>,
}

impl RecordedRequest {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// `METHOD /path?query -> status (reason)`, for messages.
    pub fn summary(&self) -> String {
        let q = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        match &self.rejected {
            Some(r) => format!(
                "{} {} {}{q} -> {} ({r})",
                self.vendor, self.method, self.path, self.status
            ),
            None => format!(
                "{} {} {}{q} -> {}",
                self.vendor, self.method, self.path, self.status
            ),
        }
    }
}

/// The shared, append-only log of every stand-in's requests.
#[derive(Clone)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<RecordedRequest>>>,
    live: broadcast::Sender<RecordedRequest>,
}

impl Default for RequestLog {
    fn default() -> Self {
        RequestLog {
            entries: Arc::default(),
            live: broadcast::channel(1024).0,
        }
    }
}

impl RequestLog {
    /// Every request so far, oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        lock(&self.entries).clone()
    }

    /// Follows requests as they arrive (the binary prints them).
    pub fn subscribe(&self) -> broadcast::Receiver<RecordedRequest> {
        self.live.subscribe()
    }

    fn push(&self, r: RecordedRequest) {
        lock(&self.entries).push(r.clone());
        let _ = self.live.send(r);
    }

    /// Forgets every request recorded so far.
    pub fn clear(&self) {
        lock(&self.entries).clear();
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (a stand-in's
/// state stays usable for the assertions that explain the panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a stand-in refused a request: set as a response extension by [`crate::reply::Reject`]
/// and read back by the logging middleware.
#[derive(Clone, Debug)]
pub(crate) struct Rejected(pub String);

/// What the logging middleware needs.
#[derive(Clone)]
pub(crate) struct LogLayer {
    pub vendor: Vendor,
    pub log: RequestLog,
}

/// Middleware: buffers the body, runs the route, records request and answer.
pub(crate) async fn record(State(cx): State<LogLayer>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_standin/") {
        // The stand-in's own inspection routes are not vendor traffic.
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let mut headers = BTreeMap::new();
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|e: &mut String| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let mut entry = RecordedRequest {
        vendor: cx.vendor,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers,
        body: Value::Null,
        status: 0,
        rejected: None,
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            entry.status = 413;
            entry.rejected = Some(format!(
                "request body unreadable or over {MAX_BODY} bytes: {e}"
            ));
            cx.log.push(entry);
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
    };
    entry.body = body_value(&bytes);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    entry.status = response.status().as_u16();
    entry.rejected = response
        .extensions()
        .get::<Rejected>()
        .map(|r| r.0.clone())
        .or_else(|| {
            (!response.status().is_success())
                .then(|| format!("answered {} without a reason", response.status()))
        });
    cx.log.push(entry);
    response
}

fn body_value(bytes: &Bytes) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
