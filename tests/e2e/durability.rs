//! kill -9 in the middle of a burst: every event that got a 202 is processed after restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::{assert_all_delivered, stories_dir, Server, Sink};

const STORY: &str = r#"
name: burst
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload: {n: "{{ inbound.body.n }}", run: "{{ run.id }}"}
  - name: deliver
    type: http_request
    from: shape
    url: "{{ resource.sink_url }}/in"
    method: POST
    headers: {X-Run: "{{ run.id }}"}
    body: "{{ shape }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_burst_loses_no_acknowledged_event() {
    let stories = stories_dir(&[("burst.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let mut server = Server::start(stories.path(), &data.path().join("d")).await;
    assert!(server
        .cli(&["resource", "set", "sink_url", &sink.url])
        .status
        .success());

    let url = format!("{}/webhook/burst/inbound", server.url);
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for worker in 0..16 {
        let url = url.clone();
        let stop = Arc::clone(&stop);
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match http
                    .post(&url)
                    .json(&json!({"n": worker * 100_000 + n}))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 202 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        if let Some(id) = v["run_id"].as_str() {
                            acknowledged.push(id.to_string());
                        }
                    }
                    Ok(r) => assert!(
                        r.status().is_server_error(),
                        "unexpected status {}",
                        r.status()
                    ),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill9();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for s in senders {
        acknowledged.extend(s.await.unwrap());
    }
    assert!(
        acknowledged.len() > 50,
        "the burst was too small to mean anything: {}",
        acknowledged.len()
    );

    server.restart().await;
    assert_all_delivered(&server, &sink, &acknowledged, Duration::from_secs(60)).await;
    eprintln!(
        "{} acknowledged events, all delivered after kill -9 and restart",
        acknowledged.len()
    );
}

const QUICK: &str = r#"
name: quick
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload: {ok: true}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_hang_up_mid_request_leave_no_run_stranded() {
    let stories = stories_dir(&[("quick.yaml", QUICK)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    let url = format!("{}/webhook/quick/inbound", server.url);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // A timeout so short that many requests are abandoned while being handled.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_micros(300 + (i % 7) * 200))
                .build()
                .unwrap();
            let _ = client.post(&url).json(&json!({"i": i})).send().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running = server.cli_json(&["runs", "list", "--status", "running", "--limit", "1000"]);
    assert_eq!(
        running["runs"].as_array().unwrap().len(),
        0,
        "runs left running after their clients hung up: {running}"
    );
    let all = server.cli_json(&["runs", "list", "--limit", "1000"]);
    eprintln!(
        "{} runs stored from abandoned requests, all finished",
        all["runs"].as_array().unwrap().len()
    );
}
