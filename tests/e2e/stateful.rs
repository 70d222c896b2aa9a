//! Agents whose work spans time or events: delay (durable across kill -9), deduplicate,
//! throttle, implode, and sub-stories.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{stories_dir, Server, Sink};

async fn start(files: &[(&str, &str)]) -> (tempfile::TempDir, tempfile::TempDir, Sink, Server) {
    let stories = stories_dir(files);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    assert!(server
        .cli(&["resource", "set", "sink_url", &sink.url])
        .status
        .success());
    (stories, data, sink, server)
}

fn run_id(v: &Value) -> String {
    v["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run id in {v}"))
        .to_string()
}

const DELAY: &str = r#"
name: later
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: wait
    type: delay
    from: inbound
    for: 2s
  - name: deliver
    type: http_request
    from: wait
    url: "{{ resource.sink_url }}/later"
    method: POST
    body: {n: "{{ inbound.body.n }}"}
"#;

#[tokio::test]
async fn a_pending_delay_survives_kill_9_and_fires_once() {
    let (_s, _d, sink, mut server) = start(&[("later.yaml", DELAY)]).await;
    let posted = Instant::now();
    let mut runs = Vec::new();
    for n in 0..3 {
        let (status, ids) = server.post("later", "inbound", &json!({"n": n})).await;
        assert_eq!(status, 202);
        runs.push(run_id(&ids));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.received().is_empty(), "nothing fires before its time");
    server.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().await;
    let got = sink.wait_for(3, Duration::from_secs(15)).await;
    assert!(
        posted.elapsed() >= Duration::from_secs(2),
        "fired after the delay"
    );
    for run in &runs {
        let detail = server.wait_run(run, Duration::from_secs(10)).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ns: Vec<i64> = sink
        .received()
        .iter()
        .map(|r| r.json()["n"].as_i64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(
        ns,
        [0, 1, 2],
        "each delayed event fired exactly once: {got:?}"
    );
}

const DEDUPE: &str = r#"
name: dedupe
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: once
    type: transform
    from: inbound
    mode: deduplicate
    key: "{{ inbound.body.email }}"
    within: 2s
  - name: deliver
    type: http_request
    from: once
    url: "{{ resource.sink_url }}/signup"
    method: POST
    body: {email: "{{ once.body.email }}", n: "{{ once.body.n }}"}
"#;

#[tokio::test]
async fn deduplicate_passes_the_first_per_key_until_the_window_ends() {
    let (_s, _d, sink, server) = start(&[("dedupe.yaml", DEDUPE)]).await;
    let first = Instant::now();
    for (n, email) in ["a@x.io", "a@x.io", "b@x.io", "a@x.io"].iter().enumerate() {
        let (_, ids) = server
            .post("dedupe", "inbound", &json!({"email": email, "n": n}))
            .await;
        server
            .wait_run(&run_id(&ids), Duration::from_secs(10))
            .await;
    }
    let got: Vec<Value> = sink.received().iter().map(|r| r.json()).collect();
    assert_eq!(
        got,
        [
            json!({"email": "a@x.io", "n": 0}),
            json!({"email": "b@x.io", "n": 2})
        ]
    );

    // After `within` since the first, the next one passes and opens a new window.
    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(first.elapsed()) + Duration::from_millis(200),
    )
    .await;
    let (_, ids) = server
        .post("dedupe", "inbound", &json!({"email": "a@x.io", "n": 9}))
        .await;
    server
        .wait_run(&run_id(&ids), Duration::from_secs(10))
        .await;
    let (_, ids) = server
        .post("dedupe", "inbound", &json!({"email": "a@x.io", "n": 10}))
        .await;
    let detail = server
        .wait_run(&run_id(&ids), Duration::from_secs(10))
        .await;
    let once = detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["agent"] == "once")
        .unwrap();
    assert_eq!(once["state"], "skipped", "dropped inside the new window");
    let got: Vec<Value> = sink.received().iter().map(|r| r.json()).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], json!({"email": "a@x.io", "n": 9}));
}

const THROTTLE: &str = r#"
name: throttle
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: budget
    type: transform
    from: inbound
    mode: throttle
    limit: 3
    per: 1m
    key: "{{ inbound.body.tenant }}"
"#;

#[tokio::test]
async fn throttle_drops_exactly_the_excess_per_key() {
    let (_s, _d, _sink, server) = start(&[("throttle.yaml", THROTTLE)]).await;
    let mut passed = std::collections::HashMap::new();
    for (i, tenant) in ["t1", "t1", "t2", "t1", "t1", "t1", "t2"]
        .iter()
        .enumerate()
    {
        let (_, ids) = server
            .post("throttle", "inbound", &json!({"tenant": tenant, "i": i}))
            .await;
        let detail = server
            .wait_run(&run_id(&ids), Duration::from_secs(10))
            .await;
        let job = detail["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["agent"] == "budget")
            .unwrap()
            .clone();
        if job["state"] == "succeeded" {
            *passed.entry(tenant.to_string()).or_insert(0) += 1;
        } else {
            assert_eq!(job["state"], "skipped");
        }
    }
    assert_eq!(passed["t1"], 3, "5 events for t1, limit 3");
    assert_eq!(passed["t2"], 2, "t2 has its own budget");
}

const IMPLODE: &str = r#"
name: gather
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: order
    type: transform
    from: inbound
    mode: implode
    key: "{{ inbound.body.order }}"
    size: "{{ inbound.body.of }}"
    max_wait: 1500ms
  - name: deliver
    type: http_request
    from: order
    url: "{{ resource.sink_url }}/orders"
    method: POST
    body:
      count: "{{ order.count }}"
      complete: "{{ order.complete }}"
      lines: "{{ order['items'] | map(attribute='body') | map(attribute='line') | list }}"
"#;

#[tokio::test]
async fn implode_gathers_a_group_and_flushes_an_incomplete_one_after_max_wait() {
    let (_s, _d, sink, server) = start(&[("gather.yaml", IMPLODE)]).await;
    for line in 1..=3 {
        let (status, _) = server
            .post(
                "gather",
                "inbound",
                &json!({"order": "A", "of": 3, "line": line}),
            )
            .await;
        assert_eq!(status, 202);
    }
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].json(),
        json!({"count": 3, "complete": true, "lines": [1, 2, 3]})
    );

    let started = Instant::now();
    server
        .post(
            "gather",
            "inbound",
            &json!({"order": "B", "of": 3, "line": 7}),
        )
        .await;
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "flushed only after max_wait"
    );
    assert_eq!(
        got[1].json(),
        json!({"count": 1, "complete": false, "lines": [7]})
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.received().len(), 2, "each group is emitted once");
}

const CHILD: &str = r#"
name: doubler
agents:
  - name: entry
    type: webhook
    auth: none
  - name: exit
    type: transform
    from: entry
    mode: message
    payload: {doubled: "{{ entry.body.n * 2 }}"}
"#;

const SLOW_CHILD: &str = r#"
name: slow
agents:
  - name: entry
    type: webhook
    auth: none
  - name: nap
    type: delay
    from: entry
    for: 30s
  - name: exit
    type: transform
    from: nap
    mode: message
    payload: {late: true}
"#;

const PARENT: &str = r#"
name: parent
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: call
    type: story
    from: inbound
    story: doubler
    input: {n: "{{ inbound.body.n }}"}
    wait: true
  - name: deliver
    type: http_request
    from: call
    url: "{{ resource.sink_url }}/result"
    method: POST
    body: "{{ call }}"
  - name: fire_and_forget
    type: story
    from: inbound
    story: doubler
    input: {n: 1}
  - name: impatient
    type: story
    from: inbound
    story: slow
    wait: true
    timeout: 1s
  - name: gave_up
    type: transform
    from: impatient.error
    mode: message
    payload: {kind: "{{ impatient.error.kind }}"}
"#;

#[tokio::test]
async fn a_sub_story_round_trip_with_wait_without_wait_and_timeout() {
    let (_s, _d, sink, server) = start(&[
        ("doubler.yaml", CHILD),
        ("slow.yaml", SLOW_CHILD),
        ("parent.yaml", PARENT),
    ])
    .await;
    let (_, ids) = server.post("parent", "inbound", &json!({"n": 21})).await;
    let got = sink.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got[0].json(), json!({"doubled": 42}));

    let detail = server
        .wait_run(&run_id(&ids), Duration::from_secs(15))
        .await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let events = detail["events"].as_array().unwrap();
    let started = events
        .iter()
        .find(|e| e["agent"] == "fire_and_forget")
        .unwrap();
    let child_run = started["payload"]["run_id"]
        .as_str()
        .expect("without wait: {run_id}");
    let child = server.wait_run(child_run, Duration::from_secs(5)).await;
    assert_eq!(child["run"]["story"], "doubler");
    assert_eq!(child["events"][1]["payload"], json!({"doubled": 2}));
    let gave_up = events
        .iter()
        .find(|e| e["agent"] == "gave_up")
        .expect("the timeout reached the error handler");
    assert_eq!(gave_up["payload"], json!({"kind": "timeout"}));
    let runs = server.cli_json(&["runs", "list", "--story", "doubler"]);
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        2,
        "one child per story agent, not one per wake"
    );
}

const ROUND_TRIP: &str = r#"
name: round-trip
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: split
    type: transform
    from: inbound
    mode: explode
    path: $.body.items
  - name: gather
    type: transform
    from: split
    mode: implode
    key: "{{ inbound.body.batch }}"
    size: "{{ split.count }}"
    max_wait: 30s
  - name: deliver
    type: http_request
    from: gather
    url: "{{ resource.sink_url }}/batches"
    method: POST
    body:
      batch: "{{ inbound.body.batch }}"
      complete: "{{ gather.complete }}"
      items: "{{ gather['items'] | sort(attribute='index') | map(attribute='item') | list }}"
"#;

#[tokio::test]
async fn explode_then_implode_gives_back_the_same_items() {
    let (_s, _d, sink, server) = start(&[("round-trip.yaml", ROUND_TRIP)]).await;
    let items = json!([
        {"sku": "a-1", "qty": 1},
        {"sku": "b-2", "qty": 2, "tags": ["x", "y"]},
        "a note",
        42,
        null,
        [1, 2]
    ]);
    let other = json!([{"sku": "z"}, {"sku": "y"}]);
    let (status, ids) = server
        .post(
            "round-trip",
            "inbound",
            &json!({"batch": "one", "items": items}),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = server
        .post(
            "round-trip",
            "inbound",
            &json!({"batch": "two", "items": other}),
        )
        .await;
    assert_eq!(status, 202);
    let got = sink.wait_for(2, Duration::from_secs(20)).await;
    let mut by_batch: Vec<Value> = got.iter().map(|r| r.json()).collect();
    by_batch.sort_by_key(|v| v["batch"].as_str().unwrap_or_default().to_string());
    assert_eq!(
        by_batch,
        vec![
            json!({"batch": "one", "complete": true, "items": items}),
            json!({"batch": "two", "complete": true, "items": other}),
        ]
    );
    let detail = server
        .wait_run(&run_id(&ids), Duration::from_secs(10))
        .await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let split = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["agent"] == "split")
        .count();
    assert_eq!(split, 6, "one event per element");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 2, "each batch is delivered once");
}
