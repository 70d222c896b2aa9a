//! Operating Switchyard: Prometheus metrics, enable/disable, retention.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{stories_dir, Server, Sink};

const STORY: &str = r#"
name: ops
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: call
    type: http_request
    from: inbound
    url: "{{ resource.sink_url }}/x"
"#;

/// Parses Prometheus text with the reference Python parser (prometheus_client); returns
/// `{"name{label=value,…}": value}` for every sample.
fn parse_metrics(text: &str) -> Value {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let have = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "prometheus-client"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "cannot install the Python prometheus-client package needed to check /metrics"
        );
    }
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn scrape(server: &Server) -> Value {
    let r = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    parse_metrics(&r.text().await.unwrap())
}

fn sample(m: &Value, key: &str) -> f64 {
    m[key].as_f64().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_as_webhooks_arrive_and_agents_fail() {
    let stories = stories_dir(&[("ops.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    assert!(server
        .cli(&["resource", "set", "sink_url", &sink.url])
        .status
        .success());
    let before = scrape(&server).await;

    for _ in 0..3 {
        let (_, ids) = server.post("ops", "inbound", &json!({})).await;
        server
            .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(10))
            .await;
    }
    sink.answer(500, "{}");
    let (_, ids) = server.post("ops", "inbound", &json!({})).await;
    server
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(10))
        .await;
    server.post("nope", "inbound", &json!({})).await;

    let after = scrape(&server).await;
    let delta = |k: &str| sample(&after, k) - sample(&before, k);
    assert_eq!(
        delta("switchyard_webhooks_total{status=202,story=ops}"),
        4.0,
        "{after}"
    );
    assert_eq!(
        delta("switchyard_webhooks_total{status=404,story=unknown}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta("switchyard_agent_executions_total{outcome=succeeded,type=http_request}"),
        3.0,
        "{after}"
    );
    assert_eq!(
        delta("switchyard_agent_executions_total{outcome=failed,type=http_request}"),
        1.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            "switchyard_agent_execution_seconds_count{type=http_request}"
        ) >= 4.0,
        "{after}"
    );
    assert!(
        sample(&after, "switchyard_store_batch_size_count{}") >= 1.0,
        "{after}"
    );
    assert!(after.get("switchyard_queued_jobs{}").is_some(), "{after}");
}

#[tokio::test]
async fn a_disabled_story_refuses_events_across_restarts_and_reloads() {
    let stories = stories_dir(&[("ops.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(stories.path(), &data.path().join("d")).await;
    let out = server.cli_json(&["story", "disable", "ops"]);
    assert_eq!(out["enabled"], false);
    let (status, body) = server.post("ops", "inbound", &json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{body}"
    );
    let out = server.cli(&["trigger", "ops", "inbound"]);
    assert!(!out.status.success(), "trigger is refused too");
    let listed = server.cli_json(&["story", "list"]);
    assert_eq!(listed["stories"][0]["enabled"], false);

    server.restart().await;
    assert_eq!(
        server.post("ops", "inbound", &json!({})).await.0,
        409,
        "persisted across restarts"
    );
    std::fs::write(
        stories.path().join("ops.yaml"),
        format!("{STORY}\n# touched\n"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.post("ops", "inbound", &json!({})).await.0,
        409,
        "and across reloads"
    );
    assert_eq!(
        server.cli_json(&["runs", "list"])["runs"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing was stored"
    );

    server.cli_json(&["story", "enable", "ops"]);
    assert_eq!(server.post("ops", "inbound", &json!({})).await.0, 202);
}

const RETAIN: &str = r#"
name: keep
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: wait
    type: delay
    from: inbound
    if: "inbound.body.wait"
    for: 14s
"#;

#[tokio::test]
async fn retention_prunes_old_runs_but_a_pending_delay_still_fires() {
    let stories = stories_dir(&[("keep.yaml", RETAIN)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        stories.path(),
        &data.path().join("d"),
        &["--retention", "2s"],
    )
    .await;
    let (_, quick) = server
        .post("keep", "inbound", &json!({"wait": false}))
        .await;
    let (_, slow) = server.post("keep", "inbound", &json!({"wait": true})).await;
    let quick = quick["run_id"].as_str().unwrap().to_string();
    let slow = slow["run_id"].as_str().unwrap().to_string();
    server.wait_run(&quick, Duration::from_secs(5)).await;

    // Pruning runs in the background about four times per retention period.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = reqwest::get(format!("{}/api/v1/runs/{quick}", server.url))
            .await
            .unwrap();
        if r.status() == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a finished run older than the retention is pruned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pending = server.api(&format!("/runs/{slow}")).await;
    assert_eq!(
        pending["run"]["status"], "running",
        "an unfinished run is never pruned"
    );

    let done = server.wait_run(&slow, Duration::from_secs(20)).await;
    assert_eq!(done["run"]["status"], "succeeded");
    assert!(
        done["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["agent"] == "wait"),
        "the delay fired: {done}"
    );
}
