//! The API behind the web view: the live event stream (SSE, resumable), run counts, an
//! agent's latest events, credential redaction, the cross-origin write guard, and the page's
//! security headers.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{stories_dir, Server};

const STORY: &str = r#"
name: shop
description: Orders in, a check, a shaped event out
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: check
    type: transform
    from: inbound
    mode: message
    payload: {n: "{{ inbound.body.n + 1 }}"}
  - name: notify
    type: http_request
    from: check
    url: "https://hooks.invalid/x"
    headers: {Authorization: "Bearer {{ credential.hook_token }}"}
    if: "inbound.body.n > 2"
"#;

/// One parsed Server-Sent Events message.
#[derive(Debug, Clone)]
struct Message {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads SSE messages from a streaming response until `done` says so or time runs out.
async fn read_until(
    response: &mut reqwest::Response,
    buffer: &mut String,
    timeout: Duration,
    mut done: impl FnMut(&[Message]) -> bool,
) -> Vec<Message> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "stream: timed out; got {got:#?}");
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("stream: timed out; got {got:#?}"))
            .expect("stream chunk")
            .expect("the stream ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut m = Message {
                event: "message".into(),
                id: None,
                data: Value::Null,
            };
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    m.event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    m.id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !data.is_empty() {
                m.data = serde_json::from_str(&data).expect("data is JSON");
                got.push(m);
            }
        }
    }
    got
}

async fn open_stream(server: &Server, query: &str, last_id: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}/api/v1/events/stream{query}", server.url));
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    let r = req.send().await.expect("stream");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    r
}

#[tokio::test]
async fn the_event_stream_is_live_resumable_and_reports_runs() {
    let stories = stories_dir(&[("shop.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(stories.path(), &data.path().join("d")).await;

    let mut live = open_stream(&server, "?story=shop", None).await;
    let (status, ids) = server.post("shop", "inbound", &json!({"n": 1})).await;
    assert_eq!(status, 202, "{ids}");
    let run_id = ids["run_id"].as_str().unwrap().to_string();
    let mut buffer = String::new();
    let got = read_until(&mut live, &mut buffer, Duration::from_secs(10), |m| {
        m.iter().any(|m| {
            m.event == "run" && m.data["id"] == run_id.as_str() && m.data["status"] == "succeeded"
        })
    })
    .await;
    let events: Vec<&Message> = got.iter().filter(|m| m.event == "event").collect();
    let agents: Vec<&str> = events
        .iter()
        .map(|m| m.data["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["inbound", "check"]);
    for m in &events {
        assert_eq!(
            m.id.as_deref(),
            Some(m.data["seq"].to_string().as_str()),
            "the SSE id is the seq"
        );
        assert_eq!(m.data["run_id"], run_id.as_str());
    }
    assert_eq!(events[1].data["payload"], json!({"n": 2}));

    // Resuming after the first event replays exactly what followed it, without payloads
    // when asked.
    let first = events[0].id.clone().unwrap();
    let mut resumed = open_stream(&server, "?payloads=false", Some(&first)).await;
    let mut buffer = String::new();
    let again = read_until(&mut resumed, &mut buffer, Duration::from_secs(10), |m| {
        m.iter().any(|m| m.event == "event")
    })
    .await;
    let next = again.iter().find(|m| m.event == "event").unwrap();
    assert_eq!(next.data["agent"], "check");
    assert!(next.data.get("payload").is_none(), "{:?}", next.data);

    // A stream filtered to another story sees nothing of this one.
    let mut other = open_stream(&server, "?story=elsewhere&after=0", None).await;
    let quiet = tokio::time::timeout(Duration::from_millis(800), other.chunk()).await;
    assert!(quiet.is_err(), "no message for another story: {quiet:?}");

    // Open streams do not hold up a graceful shutdown.
    let started = Instant::now();
    let exit = server.terminate(Duration::from_secs(15));
    assert!(
        exit.is_some_and(|s| s.success()),
        "{exit:?}\n{}",
        server.logs()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn run_counts_agent_events_and_redacted_options() {
    let stories = stories_dir(&[("shop.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    let mut runs = Vec::new();
    for body in [json!({"n": 1}), json!({"n": 2}), json!({"n": 3})] {
        let (status, ids) = server.post("shop", "inbound", &body).await;
        assert_eq!(status, 202, "{ids}");
        runs.push(ids["run_id"].as_str().unwrap().to_string());
    }
    for r in &runs {
        server.wait_run(r, Duration::from_secs(10)).await;
    }

    let stats = server.api("/runs/stats").await;
    let shop = &stats["stories"]["shop"];
    assert_eq!(
        shop["hour"],
        json!({"running": 0, "succeeded": 2, "failed": 1}),
        "{stats}"
    );
    assert_eq!(shop["day"], shop["hour"]);

    let page = server
        .api("/stories/shop/agents/check/events?limit=2")
        .await;
    let ns: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["payload"]["n"])
        .collect();
    assert_eq!(ns, [&json!(4), &json!(3)], "newest first");
    let before = page["next_before"].as_i64().expect("a next page");
    let older = server
        .api(&format!(
            "/stories/shop/agents/check/events?limit=2&before={before}"
        ))
        .await;
    assert_eq!(older["events"].as_array().unwrap().len(), 1);
    assert_eq!(older["events"][0]["payload"]["n"], 2);
    assert!(older["next_before"].is_null());

    let story = server.api("/stories/shop").await;
    let notify = story["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "notify")
        .unwrap();
    assert_eq!(
        notify["options"]["headers"]["Authorization"],
        "Bearer [redacted:hook_token]"
    );
}

#[tokio::test]
async fn writes_from_other_origins_are_refused_and_the_page_is_locked_down() {
    let stories = stories_dir(&[("shop.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    let (_, ids) = server.post("shop", "inbound", &json!({"n": 1})).await;
    let event = ids["event_id"].as_str().unwrap();
    let http = reqwest::Client::new();
    let replay = format!("{}/api/v1/events/{event}/replay", server.url);

    let r = http
        .post(&replay)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "cross_origin");
    let r = http
        .post(&replay)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A browser's same-origin call (even behind a proxy that rewrites Host), the page's own
    // origin, and clients that send no Origin (the CLI) may write.
    let r = http
        .post(&replay)
        .header("Sec-Fetch-Site", "same-origin")
        .header("Origin", "https://switchyard.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = http
        .post(&replay)
        .header("Origin", &server.url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = http.post(&replay).send().await.unwrap();
    assert_eq!(r.status(), 202);
    // Webhooks are for other origins: not guarded.
    let r = http
        .post(format!("{}/webhook/shop/inbound", server.url))
        .header("Origin", "https://shop.example")
        .json(&json!({"n": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let page = http.get(format!("{}/", server.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/ui/js/main.js"></script>"#));
    assert!(
        !html.contains("style=") && !html.contains("onclick"),
        "no inline code"
    );

    let js = http
        .get(format!("{}/ui/js/main.js", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = js.headers()["etag"].clone();
    let again = http
        .get(format!("{}/ui/js/main.js", server.url))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let missing = http
        .get(format!("{}/ui/nope.js", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
