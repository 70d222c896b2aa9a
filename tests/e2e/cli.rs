//! Operator commands through the binary: trigger, story, runs, events (show, tail, replay).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::{bin, stories_dir, Server, Sink};

const STORY: &str = r#"
name: ops
description: For the CLI tests
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload: {who: "{{ inbound.body.who }}"}
  - name: deliver
    type: http_request
    from: shape
    url: "{{ resource.sink_url }}/x"
    method: POST
    body: "{{ shape }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_story_runs_events_and_replay_through_the_cli() {
    let stories = stories_dir(&[("ops.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    assert!(server
        .cli(&["resource", "set", "sink_url", &sink.url])
        .status
        .success());
    assert_eq!(
        server.cli_json(&["resource", "get", "sink_url"])["value"],
        sink.url.as_str()
    );

    let stories_list = server.cli_json(&["story", "list"]);
    assert_eq!(stories_list["stories"][0]["name"], "ops");
    assert_eq!(
        stories_list["stories"][0]["webhooks"][0]["path"],
        "/webhook/ops/inbound"
    );
    let shown = server.cli_json(&["story", "show", "ops"]);
    assert_eq!(shown["agents"][2]["from"], json!(["shape"]));
    let out = server.cli(&["story", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("For the CLI tests"));

    // `events tail` follows new events live.
    let mut tail = Command::new(bin())
        .args(["events", "tail", "--story", "ops", "--json"])
        .env("SWITCHYARD_URL", &server.url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let detail = server.cli_json(&[
        "trigger",
        "ops",
        "inbound",
        "--data",
        r#"{"who": "ops-team"}"#,
        "--wait",
    ]);
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    assert_eq!(detail["run"]["started_by"], "cli");
    let trigger_event = &detail["events"][0];
    assert_eq!(trigger_event["payload"]["body"], json!({"who": "ops-team"}));
    assert_eq!(trigger_event["payload"]["method"], "POST");
    assert_eq!(
        sink.wait_for(1, Duration::from_secs(5)).await[0].json(),
        json!({"who": "ops-team"})
    );

    let stdout = tail.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(3)
            .map(|l| l.unwrap())
            .collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(10), lines)
        .await
        .expect("tail printed events")
        .unwrap();
    tail.kill().unwrap();
    let _ = tail.wait();
    let agents: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["agent"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(agents, ["inbound", "shape", "deliver"]);

    // Replaying the transform's event re-delivers it to `deliver`.
    let shape_event = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["agent"] == "shape")
        .unwrap();
    let event_id = shape_event["id"].as_str().unwrap();
    let shown = server.cli_json(&["events", "show", event_id]);
    assert_eq!(shown["payload"], json!({"who": "ops-team"}));
    let replayed = server.cli_json(&["events", "replay", event_id]);
    assert_eq!(replayed["jobs"].as_array().unwrap().len(), 1);
    let got = sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].json(), json!({"who": "ops-team"}));
    let run_id = detail["run"]["id"].as_str().unwrap();
    let after = server.wait_run(run_id, Duration::from_secs(5)).await;
    let deliveries = after["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["agent"] == "deliver")
        .count();
    assert_eq!(deliveries, 2);
    assert_eq!(after["run"]["status"], "succeeded");

    // Errors from the CLI are clear.
    let out = server.cli(&["runs", "show", "not-a-run"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a valid run id"));
    let out = server.cli(&["trigger", "ops", "shape"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a webhook or schedule agent"));
    let out = Command::new(bin())
        .args(["story", "list"])
        .env("SWITCHYARD_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the Switchyard server"));
}
