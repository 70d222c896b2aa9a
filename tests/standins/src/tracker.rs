//! A generic ticket tracker stand-in, for the release pipeline's "ticket is ready" gate:
//! `GET /issues/{key}` answers `{"key", "state", "summary"}` (404 `{"error":"not_found"}`
//! for an unknown key); `PUT /issues/{key}` with `{"state", "summary"}` creates or updates a
//! ticket. Both need `Authorization: Bearer TOKEN` (else 401 `{"error":"unauthorized"}`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};

use crate::log::lock;
use crate::reply::{authorization, describe_auth, json, Auth, Reject, Reply};

/// A ticket.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Ticket {
    /// Its key, e.g. `REL-42`.
    pub key: String,
    /// Its workflow state, e.g. `ready for release`.
    pub state: String,
    /// Its title.
    pub summary: String,
}

/// The tracker stand-in.
pub struct Tracker {
    base_url: String,
    token: String,
    tickets: Mutex<BTreeMap<String, Ticket>>,
}

impl Tracker {
    pub(crate) fn new(base_url: String, token: String) -> Tracker {
        Tracker {
            base_url,
            token,
            tickets: Mutex::default(),
        }
    }

    /// Base URL (the `tracker_api_url` resource).
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The token requests must carry as `Authorization: Bearer TOKEN`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Creates or updates a ticket.
    pub fn set_ticket(&self, key: &str, state: &str) {
        let mut t = lock(&self.tickets);
        let summary = t
            .get(key)
            .map(|x| x.summary.clone())
            .unwrap_or_else(|| format!("Ticket {key}"));
        t.insert(
            key.to_string(),
            Ticket {
                key: key.to_string(),
                state: state.to_string(),
                summary,
            },
        );
    }

    /// One ticket.
    pub fn ticket(&self, key: &str) -> Option<Ticket> {
        lock(&self.tickets).get(key).cloned()
    }

    /// The state as JSON (for the binary's `/_standin/state`).
    pub fn snapshot(&self) -> Value {
        json!({ "tickets": lock(&self.tickets).values().collect::<Vec<_>>() })
    }
}

async fn auth(State(t): State<Arc<Tracker>>, req: Request, next: Next) -> Response {
    let a = authorization(req.headers());
    if a == Auth::Bearer(&t.token) {
        return next.run(req).await;
    }
    Reject::json(
        401,
        json!({"error": "unauthorized", "message": "a valid bearer token is required"}),
        describe_auth(&a),
    )
    .into_response()
}

async fn get_issue(State(t): State<Arc<Tracker>>, Path(key): Path<String>) -> Reply {
    match t.ticket(&key) {
        Some(x) => Ok(json(200, json!(x))),
        None => Err(Reject::json(
            404,
            json!({"error": "not_found", "message": format!("no issue {key}")}),
            format!("no ticket `{key}` (seed it with Tracker::set_ticket)"),
        )),
    }
}

async fn put_issue(State(t): State<Arc<Tracker>>, Path(key): Path<String>, body: Bytes) -> Reply {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(state) = body.get("state").and_then(Value::as_str) else {
        return Err(Reject::json(
            422,
            json!({"error": "invalid", "message": "`state` (a string) is required"}),
            "PUT /issues/{key} needs {\"state\": …}",
        ));
    };
    t.set_ticket(&key, state);
    if let Some(s) = body.get("summary").and_then(Value::as_str) {
        if let Some(x) = lock(&t.tickets).get_mut(&key) {
            x.summary = s.to_string();
        }
    }
    Ok(json(200, json!(t.ticket(&key))))
}

async fn fallback(req: Request) -> Reject {
    Reject::json(
        404,
        json!({"error": "not_found", "message": "no such route"}),
        format!("no tracker route {} {}", req.method(), req.uri().path()),
    )
}

/// The stand-in's routes.
pub(crate) fn router(t: Arc<Tracker>) -> Router {
    Router::new()
        .route("/issues/{key}", get(get_issue).put(put_issue))
        .route_layer(from_fn_with_state(t.clone(), auth))
        .method_not_allowed_fallback(fallback)
        .fallback(fallback)
        .with_state(t)
}
