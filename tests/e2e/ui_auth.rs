//! The web view when the server asks for API tokens: it asks for one on a 401, sends it as a
//! bearer header (never a cookie) on every call and on the live stream, and turns its
//! operator buttons off once a write is refused with 403 (a viewer's token).
//!
//! The tokens are checked by a gate in front of the server, a real HTTP proxy that answers
//! as `/api/v1` does with tokens on: 401 without a valid bearer token, 403 for a viewer's
//! write.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::support::{stories_dir, Server};
use crate::ui::{artifacts, ORDERS, WAIT};
use crate::webdriver::{require_browser, Browser};

/// One request the gate saw: path, Authorization header, whether it carried a cookie.
type Seen = (String, Option<String>, bool);

#[derive(Clone)]
struct Gate {
    upstream: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn gate(State(g): State<Gate>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    g.seen.lock().unwrap().push((
        path.clone(),
        auth.clone(),
        parts.headers.contains_key(header::COOKIE),
    ));
    if path.starts_with("/api/v1") {
        match auth.as_deref() {
            Some("Bearer operator-token") => {}
            Some("Bearer viewer-token") if parts.method == Method::GET => {}
            Some("Bearer viewer-token") => {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this token is a viewer's",
                );
            }
            _ => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a valid API token is required",
                )
            }
        }
    }
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut forward = g
        .http
        .request(parts.method, format!("{}{path}", g.upstream))
        .body(bytes);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            forward = forward.header(name, value);
        }
    }
    let Ok(answer) = forward.send().await else {
        return refuse(StatusCode::BAD_GATEWAY, "bad_gateway", "upstream down");
    };
    let mut out = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            out = out.header(name, value);
        }
    }
    out.body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| refuse(StatusCode::BAD_GATEWAY, "bad_gateway", "bad answer"))
}

async fn start_gate(upstream: &str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let g = Gate {
        upstream: upstream.to_string(),
        http: reqwest::Client::new(),
        seen: Arc::default(),
    };
    let seen = Arc::clone(&g.seen);
    let app = axum::Router::new().fallback(gate).with_state(g);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test]
async fn web_view_asks_for_a_token_sends_it_as_a_header_and_respects_a_viewer() {
    let Some((chromium, chromedriver)) = require_browser() else {
        return;
    };
    let stories = stories_dir(&[("orders.yaml", ORDERS)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    let (status, ids) = server
        .post(
            "orders",
            "inbound",
            &serde_json::json!({"id": "C-1", "qty": 1}),
        )
        .await;
    assert_eq!(status, 202, "{ids}");
    let run_id = ids["run_id"].as_str().unwrap().to_string();
    server.wait_run(&run_id, WAIT).await;
    let (front, seen) = start_gate(&server.url).await;

    let browser = Browser::start(
        &chromium,
        &chromedriver,
        &data.path().join("chromedriver.log"),
    )
    .await;
    browser.goto(&format!("{front}/#/runs/{run_id}")).await;
    // The API answers 401: the page asks for a token.
    browser
        .wait_for(
            "the token dialog",
            "return document.getElementById('token-dialog').open",
            serde_json::json!([]),
            WAIT,
        )
        .await;
    browser
        .screenshot(&artifacts().join("7-token-dialog.png"))
        .await;
    browser.type_into("#token-input", "not-a-token").await;
    browser.click("#token-form button[type='submit']").await;
    browser
        .wait_for(
            "the refusal",
            "const e = document.getElementById('token-error'); return !e.hidden && e.textContent",
            serde_json::json!([]),
            WAIT,
        )
        .await;
    browser.type_into("#token-input", "viewer-token").await;
    browser.click("#token-form button[type='submit']").await;
    browser
        .wait_css(".tree-job[data-agent='deliver']", WAIT)
        .await;
    browser
        .wait_for(
            "the live stream",
            "return document.getElementById('live').dataset.state === 'live'",
            serde_json::json!([]),
            WAIT,
        )
        .await;

    // Kept for this tab only, never as a cookie.
    let stored = browser
        .js("return [sessionStorage.getItem('switchyard.token'), document.cookie, localStorage.length]", serde_json::json!([]))
        .await;
    assert_eq!(stored, serde_json::json!(["viewer-token", "", 0]));

    // A viewer may look, not replay: the 403 turns the operator buttons off.
    browser
        .click(".tree-root > .tree-event > .event-card button.replay")
        .await;
    browser
        .wait_for(
            "replay buttons disabled",
            "const b = [...document.querySelectorAll('button.replay')]; return b.length > 0 && b.every(x => x.disabled)",
            serde_json::json!([]),
            WAIT,
        )
        .await;
    let role = browser
        .js(
            "return document.getElementById('role').textContent",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(role, "read-only");
    browser
        .screenshot(&artifacts().join("8-viewer-read-only.png"))
        .await;
    let detail = server.api(&format!("/runs/{run_id}")).await;
    assert_eq!(
        detail["jobs"].as_array().unwrap().len(),
        4,
        "nothing was replayed"
    );
    browser.quit().await;

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, _, cookie)| !cookie),
        "no request carries a cookie"
    );
    let api: Vec<&Seen> = seen
        .iter()
        .filter(|(p, _, _)| p.starts_with("/api/v1"))
        .collect();
    assert!(
        api.iter()
            .any(|(p, a, _)| p.starts_with("/api/v1/events/stream")
                && a.as_deref() == Some("Bearer viewer-token")),
        "the live stream sends the token as a header: {api:#?}"
    );
    assert!(
        api.iter().all(|(p, _, _)| !p.contains("token")),
        "the token never travels in a URL: {api:#?}"
    );
}
