//! Bad requests get clear answers and never take the process down.

use serde_json::{json, Value};

use crate::support::{stories_dir, Server};

const STORY: &str = r#"
name: intake
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: small
    type: webhook
    path: small/one
    auth: none
    max_body: 1KiB
    methods: [POST, PUT]
"#;

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_server_stays_up() {
    let stories = stories_dir(&[("intake.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    // No pooled connections: the server drops a connection whose oversized body it refused,
    // and a client that reuses it sees `IncompleteMessage` (a race, not the behaviour tested).
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = |p: &str| format!("{}/webhook/{p}", server.url);

    let r = http
        .post(url("intake/inbound"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON"),
        "{body}"
    );

    let r = http
        .post(url("nope/inbound"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(url("intake/nope"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no webhook at `nope`"),
        "{body}"
    );

    let two_mib = format!("{{\"x\": \"{}\"}}", "a".repeat(2 << 20));
    let r = http
        .post(url("intake/inbound"))
        .header("content-type", "application/json")
        .body(two_mib)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = http
        .post(url("intake/small/one"))
        .body("b".repeat(2000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "a webhook's own max_body applies");

    let r = http.get(url("intake/inbound")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let r = http
        .put(url("intake/small/one"))
        .body("plain text")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "a listed method is accepted");

    // Bodies are parsed by declared content type only.
    let ids: Value = http
        .post(url("intake/inbound?a=1&a=2&b=x"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Ada&role=admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = server.cli_json(&["events", "show", ids["event_id"].as_str().unwrap()]);
    assert_eq!(
        event["payload"]["body"],
        json!({"name": "Ada", "role": "admin"})
    );
    assert_eq!(
        event["payload"]["query"],
        json!({"a": ["1", "2"], "b": "x"})
    );
    assert_eq!(event["payload"]["method"], "POST");
    assert_eq!(
        event["payload"]["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    let ids: Value = http
        .post(url("intake/inbound"))
        .header("content-type", "text/plain")
        .body("{\"not\": \"parsed\"}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = server.cli_json(&["events", "show", ids["event_id"].as_str().unwrap()]);
    assert_eq!(
        event["payload"]["body"], "{\"not\": \"parsed\"}",
        "text stays text"
    );

    let r = http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "still alive:\n{}", server.logs());
    let r = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
