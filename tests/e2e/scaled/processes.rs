//! Scaled out with several processes: schedules and delays fire once, and a story or a
//! credential changed on the front end reaches every worker.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_tick_and_a_delay_once_with_several_processes() {
    let Some(svc) = Services::new("scaled::a_schedule_fires_once_per_tick…").await else {
        return;
    };
    const TICKS: &str = r#"
name: ticks
agents:
  - name: every_second
    type: schedule
    cron: "* * * * * *"
"#;
    const LATER: &str = r#"
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
    headers: {X-Run: "{{ run.id }}"}
    body: "{{ inbound.body }}"
"#;
    let stories = stories_dir(&[("ticks.yaml", TICKS), ("later.yaml", LATER)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let front = svc
        .front(stories.path(), &data.path().join("front"), &sink)
        .await;
    let (w1, w2) = svc
        .two_workers(stories.path(), data.path(), ["w1", "w2"])
        .await;

    let mut sent = Vec::new();
    for n in 0..10 {
        let (status, ids) = post(&front, "later/inbound", &json!({"n": n}), None).await;
        assert_eq!(status, 202, "{ids}");
        sent.push((Instant::now(), ids["run_id"].as_str().unwrap().to_string()));
    }
    for (at, run) in &sent {
        let detail = front.wait_run(run, Duration::from_secs(60)).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        assert!(at.elapsed() >= Duration::from_secs(2));
        assert_eq!(agents(&detail), ["inbound", "wait", "deliver"], "{detail}");
    }
    // Each delay fired once: one request per run, and no more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let by_run = keys_by_run(&sink);
    assert_eq!(by_run.len(), 10);
    assert!(by_run.values().all(|k| k.len() == 1), "{by_run:?}");

    // Three processes run for a while (at least five ticks): each tick fired once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let runs = front.cli_json(&["runs", "list", "--story", "ticks", "--limit", "1000"]);
        if runs["runs"].as_array().map_or(0, Vec::len) >= 5 {
            break runs;
        }
        assert!(Instant::now() < deadline, "the schedule stalled: {runs}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let ticks: Vec<String> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| scheduled_at(&front, r["id"].as_str().unwrap()))
        .collect();
    let distinct: HashSet<&String> = ticks.iter().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick fired twice: {ticks:?}");
    drop((w1, w2, front));
    svc.close().await;
}

/// The `scheduled_at` of a schedule run's event (through the CLI, synchronously).
fn scheduled_at(front: &Server, run: &str) -> String {
    let d = front.cli_json(&["runs", "show", run]);
    d.to_string()
        .split("\"scheduled_at\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no scheduled_at in {d}"))
        .to_string()
}

/// A story with a credential in a header; `VERSION` is replaced to change it.
const KEYED: &str = r#"
name: keyed
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: deliver
    type: http_request
    from: inbound
    url: "{{ resource.sink_url }}/keyed"
    method: POST
    headers: {X-Key: "{{ credential.sink_key }}", X-Run: "{{ run.id }}"}
    body: {version: VERSION, n: "{{ inbound.body.n }}"}
"#;

/// How many times `needle` is in the worker's log.
fn log_count(w: &Worker, needle: &str) -> usize {
    w.logs().matches(needle).count()
}

/// Waits until every worker has logged `needle` more than `before[i]` times.
async fn wait_logged(workers: &[&Worker], needle: &str, before: &[usize]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if workers
            .iter()
            .zip(before)
            .all(|(w, b)| log_count(w, needle) > *b)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every worker logged `{needle}`:\n{}",
            workers
                .iter()
                .map(|w| w.logs())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_story_and_a_credential_changed_on_the_front_end_reach_every_worker() {
    let Some(svc) = Services::new("scaled::a_story_and_a_credential_changed…").await else {
        return;
    };
    // One stories directory shared by every process (as a shared volume would be).
    let stories = stories_dir(&[("burst.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let front = svc
        .front(stories.path(), &data.path().join("front"), &sink)
        .await;
    let (w1, w2) = svc
        .two_workers(stories.path(), data.path(), ["w1", "w2"])
        .await;

    // A credential set through the front end, encrypted in PostgreSQL, is decrypted by the
    // running workers with the master key they were given.
    let out = front.cli_input(
        &["credential", "set", "sink_key", "--from-env", "K"],
        "",
        &[("K", "k-7f3a")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A new story deployed to the shared directory: every process reloads it.
    const RELOADED: &str = "stories reloaded";
    let before = [log_count(&w1, RELOADED), log_count(&w2, RELOADED)];
    std::fs::write(
        stories.path().join("keyed.yaml"),
        KEYED.replace("VERSION", "1"),
    )
    .unwrap();
    wait_logged(&[&w1, &w2], RELOADED, &before).await;
    // The front end reloads on its own clock: wait until it takes the webhook.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ids) = post(&front, "keyed/inbound", &json!({"n": 0}), None).await;
        if status == 202 {
            let run = front
                .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(60))
                .await;
            // Credentials reach the workers within 2 s of being set.
            if run["run"]["status"] == "succeeded" {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the story or the credential never reached the workers: {status} {ids}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The story changed: once both workers have reloaded, every run uses the new version.
    let before = [log_count(&w1, RELOADED), log_count(&w2, RELOADED)];
    std::fs::write(
        stories.path().join("keyed.yaml"),
        KEYED.replace("VERSION", "2"),
    )
    .unwrap();
    wait_logged(&[&w1, &w2], RELOADED, &before).await;
    let (e1, e2) = (
        w1.metric("switchyard_agent_executions_total").await,
        w2.metric("switchyard_agent_executions_total").await,
    );
    let seen = sink.received().len();
    let mut runs = Vec::new();
    for n in 1..=30 {
        let (status, ids) = post(&front, "keyed/inbound", &json!({"n": n}), None).await;
        assert_eq!(status, 202, "{ids}");
        runs.push(ids["run_id"].as_str().unwrap().to_string());
    }
    for r in &runs {
        let detail = front.wait_run(r, Duration::from_secs(60)).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    }
    let got = sink.wait_for(seen + 30, Duration::from_secs(30)).await;
    for r in &got[seen..] {
        assert_eq!(r.path, "/keyed");
        assert_eq!(r.headers["x-key"], "k-7f3a");
        assert_eq!(r.json()["version"], 2, "{}", r.json());
    }
    // Both workers ran some of them.
    assert!(
        w1.metric("switchyard_agent_executions_total").await > e1
            && w2.metric("switchyard_agent_executions_total").await > e2,
        "both workers should have run jobs of the new version"
    );
    // The credential's value is nowhere in the workers' logs.
    assert!(!w1.logs().contains("k-7f3a") && !w2.logs().contains("k-7f3a"));
    drop((w1, w2, front));
    svc.close().await;
}
