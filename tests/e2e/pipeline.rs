//! Webhook → transform → http_request to a real HTTP server; retries; error events.

use std::time::Duration;

use serde_json::json;

use crate::support::{stories_dir, Server, Sink};

const RELAY: &str = r#"
name: relay
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload:
      greeting: "Hello {{ inbound.body.name }}"
      n: "{{ inbound.body.count + 1 }}"
      tags: "{{ inbound.body.tags }}"
      big: "{{ inbound.body.count > 1 }}"
      nested: {again: "{{ inbound.body.name | upper }}"}
  - name: deliver
    type: http_request
    from: shape
    url: "{{ resource.sink_url }}/greetings"
    method: POST
    headers:
      X-Run: "{{ run.id }}"
    body: "{{ shape }}"
"#;

#[tokio::test]
async fn webhook_transform_http_request_delivers_typed_body_and_records_the_run() {
    let stories = stories_dir(&[("relay.yaml", RELAY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    let out = server.cli(&["resource", "set", "sink_url", &sink.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, ids) = server
        .post(
            "relay",
            "inbound",
            &json!({"name": "Ada", "count": 2, "tags": ["a", "b"]}),
        )
        .await;
    assert_eq!(status, 202, "{ids}");
    let run_id = ids["run_id"].as_str().unwrap().to_string();

    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/greetings");
    assert_eq!(
        got[0].json(),
        json!({"greeting": "Hello Ada", "n": 3, "tags": ["a", "b"], "big": true, "nested": {"again": "ADA"}}),
        "types are preserved"
    );
    assert_eq!(got[0].headers["x-run"], run_id.as_str());
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert!(got[0].headers.contains_key("idempotency-key"));

    let detail = server.wait_run(&run_id, Duration::from_secs(10)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let agents: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["inbound", "shape", "deliver"]);
    let deliver = &detail["events"][2]["payload"];
    assert_eq!(deliver["status"], 200);
    assert_eq!(
        deliver["body"],
        json!({"ok": true}),
        "a JSON response body is parsed"
    );
    for job in detail["jobs"].as_array().unwrap() {
        assert_eq!(job["state"], "succeeded");
        assert_eq!(job["attempts"], 1);
        assert!(
            job["started_at"].is_string() && job["finished_at"].is_string(),
            "timing recorded: {job}"
        );
    }

    // The human view shows the tree with each agent's status and timing.
    let out = server.cli(&["runs", "show", &run_id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("SUCCEEDED"), "{text}");
    assert!(text.contains("shape [succeeded] 1 try"), "{text}");
    assert!(text.contains("deliver [succeeded] 1 try"), "{text}");
    assert!(text.contains(" ms"), "{text}");
}

const FLAKY: &str = r#"
name: flaky
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: call
    type: http_request
    from: inbound
    url: "{{ resource.sink_url }}/fail"
    method: POST
    body: {id: "{{ inbound.body.id }}"}
    retry: {attempts: 3, backoff: 100ms, max_backoff: 200ms}
  - name: on_failure
    type: transform
    from: call.error
    mode: message
    payload:
      kind: "{{ call.error.kind }}"
      attempts: "{{ call.error.attempts }}"
      id: "{{ call.input.body.id }}"
"#;

const FRAGILE: &str = r#"
name: fragile
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: call
    type: http_request
    from: inbound
    url: "{{ resource.sink_url }}/fail"
"#;

#[tokio::test]
async fn a_failing_target_is_retried_then_its_error_event_reaches_the_error_handler() {
    let stories = stories_dir(&[("flaky.yaml", FLAKY), ("fragile.yaml", FRAGILE)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    for _ in 0..3 {
        sink.answer(500, r#"{"error":"boom"}"#);
    }
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    assert!(server
        .cli(&["resource", "set", "sink_url", &sink.url])
        .status
        .success());

    let (status, ids) = server.post("flaky", "inbound", &json!({"id": 7})).await;
    assert_eq!(status, 202);
    let run_id = ids["run_id"].as_str().unwrap();
    let detail = server.wait_run(run_id, Duration::from_secs(15)).await;

    let got = sink.received();
    assert_eq!(got.len(), 3, "three tries in all");
    let keys: Vec<_> = got
        .iter()
        .map(|r| r.headers["idempotency-key"].clone())
        .collect();
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "the same Idempotency-Key on every retry: {keys:?}"
    );

    let call_job = detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["agent"] == "call")
        .unwrap();
    assert_eq!(call_job["state"], "failed");
    assert_eq!(call_job["attempts"], 3);
    assert!(
        call_job["error"].as_str().unwrap().contains("500"),
        "{call_job}"
    );
    let handled = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["agent"] == "on_failure")
        .expect("error handler ran");
    assert_eq!(
        handled["payload"],
        json!({"kind": "http_status", "attempts": 3, "id": 7})
    );
    assert_eq!(
        detail["run"]["status"], "succeeded",
        "a handled failure does not fail the run: {detail}"
    );

    // Without a handler the run fails, and `runs list --status failed` shows it.
    sink.answer(503, "{}");
    let (_, ids) = server.post("fragile", "inbound", &json!({})).await;
    let run_id = ids["run_id"].as_str().unwrap();
    let detail = server.wait_run(run_id, Duration::from_secs(10)).await;
    assert_eq!(detail["run"]["status"], "failed");
    assert!(
        detail["run"]["error"].as_str().unwrap().contains("call: "),
        "{detail}"
    );
    let error_event = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "error")
        .expect("error event stored");
    assert_eq!(error_event["payload"]["error"]["kind"], "http_status");
    let failed = server.cli_json(&["runs", "list", "--status", "failed"]);
    let ids: Vec<&str> = failed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [run_id]);
}
