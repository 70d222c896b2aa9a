//! The web view when the server requires API tokens: it asks for one on a 401, sends it as a
//! bearer header (never a cookie, never in a URL) on every call and on the live stream, asks
//! `/whoami` for the token's role, shows a viewer everything without the operator buttons,
//! and lets an operator replay.
//!
//! The tokens are real (`switchyard token create`) and checked by the server itself; a
//! recording proxy in front of it notes what each request carried.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::support::{stories_dir, Server};
use crate::ui::{artifacts, ORDERS, WAIT};
use crate::webdriver::{require_browser, Browser};

/// One request the proxy saw: path, Authorization header, whether it carried a cookie.
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

/// Records the request and passes it on unchanged.
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

/// Creates a token through the CLI; returns it.
fn token(server: &Server, role: &str, name: &str) -> String {
    let v = server.cli_json(&["token", "create", "--role", role, "--name", name]);
    v["token"].as_str().expect("token").to_string()
}

const REPLAY_BUTTONS_DISABLED: &str = "const b = [...document.querySelectorAll('button.replay')]; return b.length > 0 && b.every(x => x.disabled)";
const REPLAY_BUTTONS_ENABLED: &str = "const b = [...document.querySelectorAll('button.replay')]; return b.length > 0 && b.every(x => !x.disabled)";

#[tokio::test]
async fn web_view_asks_for_a_token_sends_it_as_a_header_and_gives_each_role_its_buttons() {
    let Some((chromium, chromedriver)) = require_browser() else {
        return;
    };
    let stories = stories_dir(&[("orders.yaml", ORDERS)]);
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(stories.path(), &data.path().join("d")).await;
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
    // The first token closes the open (loopback, tokenless) server.
    let admin = token(&server, "admin", "ops");
    server.token = Some(admin);
    let viewer = token(&server, "viewer", "dashboard");
    let operator = token(&server, "operator", "oncall");
    let (front, seen) = start_gate(&server.url).await;
    let anonymous = reqwest::get(format!("{front}/api/v1/runs")).await.unwrap();
    assert_eq!(anonymous.status(), 401, "the server now requires tokens");

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
    browser.type_into("#token-input", "sy_not-a-token").await;
    browser.click("#token-form button[type='submit']").await;
    browser
        .wait_for(
            "the refusal",
            "const e = document.getElementById('token-error'); return document.getElementById('token-dialog').open && !e.hidden && e.textContent",
            serde_json::json!([]),
            WAIT,
        )
        .await;

    // A viewer sees the run and follows it live, without the operator buttons.
    browser.type_into("#token-input", &viewer).await;
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
    browser
        .wait_for(
            "replay buttons disabled for a viewer",
            REPLAY_BUTTONS_DISABLED,
            serde_json::json!([]),
            WAIT,
        )
        .await;
    let role = browser
        .js(
            "return [document.getElementById('role').textContent, document.getElementById('role').hidden]",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(role, serde_json::json!(["read-only", false]));
    // Kept for this tab only, never as a cookie.
    let stored = browser
        .js("return [sessionStorage.getItem('switchyard.token'), document.cookie, localStorage.length]", serde_json::json!([]))
        .await;
    assert_eq!(stored, serde_json::json!([viewer.clone(), "", 0]));
    browser
        .screenshot(&artifacts().join("8-viewer-read-only.png"))
        .await;
    // Even a forged click is refused by the server (403), and nothing is replayed.
    let refused = browser
        .js(
            "const id = arguments[0]; return (async () => { \
               const auth = {Authorization: 'Bearer ' + sessionStorage.getItem('switchyard.token')}; \
               const r = await fetch('/api/v1/runs', {headers: auth}); \
               const w = await fetch('/api/v1/events/' + id + '/replay', {method: 'POST', headers: auth}); \
               return [r.status, w.status]; })()",
            serde_json::json!([ids["event_id"]]),
        )
        .await;
    assert_eq!(refused, serde_json::json!([200, 403]));
    let detail = server.api(&format!("/runs/{run_id}")).await;
    assert_eq!(
        detail["jobs"].as_array().unwrap().len(),
        4,
        "nothing was replayed"
    );

    // Forget the viewer's token; an operator's brings the replay buttons and replays.
    browser.click("#signout").await;
    browser
        .wait_for(
            "the token dialog again",
            "return document.getElementById('token-dialog').open",
            serde_json::json!([]),
            WAIT,
        )
        .await;
    browser.type_into("#token-input", &operator).await;
    browser.click("#token-form button[type='submit']").await;
    browser
        .wait_for(
            "replay buttons enabled for an operator",
            REPLAY_BUTTONS_ENABLED,
            serde_json::json!([]),
            WAIT,
        )
        .await;
    let role = browser
        .js(
            "return document.getElementById('role').hidden",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(role, true, "no read-only badge for an operator");
    browser
        .click(".tree-root > .tree-event > .event-card button.replay")
        .await;
    browser
        .wait_for(
            "the replayed jobs",
            "return document.querySelectorAll('.tree-job').length > 4",
            serde_json::json!([]),
            WAIT,
        )
        .await;
    browser
        .screenshot(&artifacts().join("9-operator-replayed.png"))
        .await;
    let problems: Vec<String> = browser
        .console()
        .await
        .iter()
        .filter(|m| m["level"] == "SEVERE")
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        // The refusals this test provokes on purpose are logged by the browser.
        .filter(|m| !m.contains(" 401 ") && !m.contains(" 403 "))
        .collect();
    assert!(problems.is_empty(), "browser console errors: {problems:#?}");
    browser.quit().await;

    let detail = server.api(&format!("/runs/{run_id}")).await;
    assert!(
        detail["jobs"].as_array().unwrap().len() > 4,
        "the operator's replay ran: {detail}"
    );
    let audit = server.cli_json(&["audit", "list"]);
    let entries = audit["entries"].as_array().unwrap();
    let by = |name: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["action"] == "event.replay"
                && e["token_name"] == name
                && e["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(outcome)
        })
    };
    assert!(
        by("oncall", "ok"),
        "the operator's replay is audited: {audit}"
    );
    assert!(
        by("dashboard", "denied (403)"),
        "the viewer's attempt is audited: {audit}"
    );

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, _, cookie)| !cookie),
        "no request carries a cookie"
    );
    let api: Vec<&Seen> = seen
        .iter()
        .filter(|(p, _, _)| p.starts_with("/api/v1"))
        .collect();
    for (who, t) in [("viewer", &viewer), ("operator", &operator)] {
        let bearer = format!("Bearer {t}");
        assert!(
            api.iter()
                .any(|(p, a, _)| p.starts_with("/api/v1/events/stream")
                    && a.as_deref() == Some(bearer.as_str())),
            "the live stream sends the {who}'s token as a header: {api:#?}"
        );
        assert!(
            api.iter()
                .any(|(p, a, _)| p == "/api/v1/whoami" && a.as_deref() == Some(bearer.as_str())),
            "the page asks who the {who} is: {api:#?}"
        );
    }
    assert!(
        seen.iter().all(|(p, _, _)| !p.contains(viewer.as_str())
            && !p.contains(operator.as_str())
            && !p.contains("token=")),
        "the token never travels in a URL: {api:#?}"
    );
}
