//! Scaled out: a story runs the same on two workers as embedded, and a worker killed with
//! SIGKILL mid-work hands its jobs to the other.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_story_runs_the_same_with_two_workers_as_embedded() {
    let Some(svc) =
        Services::new("scaled::a_story_runs_the_same_with_two_workers_as_embedded").await
    else {
        return;
    };
    let stories = stories_dir(&[("burst.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;

    // The embedded default, for comparison.
    let embedded = Server::start(stories.path(), &data.path().join("embedded")).await;
    embedded.cli(&["resource", "set", "sink_url", &sink.url]);
    let (status, ids) = post(&embedded, "burst/inbound", &json!({"n": 21}), None).await;
    assert_eq!(status, 202, "{ids}");
    let run = embedded
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    let embedded_agents = agents(&run);
    let embedded_body = sink.wait_for(1, Duration::from_secs(10)).await[0].json();
    drop(embedded);

    let mut args = svc.args(&svc.amqp);
    args.push("--no-workers");
    let front = Server::start_with(stories.path(), &data.path().join("front"), &args).await;
    let (w1, w2) = svc
        .two_workers(stories.path(), data.path(), ["w1", "w2"])
        .await;
    // A resource set through the front end reaches the running workers (within 2 s).
    let out = front.cli(&["resource", "set", "sink_url", &sink.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut failed_early = 0;
    loop {
        let (status, ids) = post(&front, "burst/inbound", &json!({"n": 0}), None).await;
        assert_eq!(status, 202, "{ids}");
        let run = front
            .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(60))
            .await;
        if run["run"]["status"] == "succeeded" {
            break;
        }
        failed_early += 1;
        assert!(
            Instant::now() < deadline,
            "the workers never saw the resource: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sink.wait_for(2, Duration::from_secs(10)).await;

    let ready: Value = reqwest::get(format!("{}/readyz", front.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["queue"], "ok", "{ready}");

    let (status, ids) = post(&front, "burst/inbound", &json!({"n": 21}), None).await;
    assert_eq!(status, 202, "{ids}");
    let run_id = ids["run_id"].as_str().unwrap();
    let run = front.wait_run(run_id, Duration::from_secs(60)).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    assert_eq!(agents(&run), embedded_agents);
    let got = sink.wait_for(3, Duration::from_secs(10)).await;
    let mut body = got[2].json();
    let mut expected = embedded_body.clone();
    body["run"] = json!("-");
    expected["run"] = json!("-");
    assert_eq!(body, expected);
    assert_eq!(got[2].headers["x-run"], run_id);

    // A burst: every run completes, and both workers take part.
    let mut runs = Vec::new();
    for n in 0..40 {
        let (status, ids) = post(&front, "burst/inbound", &json!({"n": n}), None).await;
        assert_eq!(status, 202, "{ids}");
        runs.push(ids["run_id"].as_str().unwrap().to_string());
    }
    for r in &runs {
        let detail = front.wait_run(r, Duration::from_secs(60)).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    }
    let (e1, e2) = (
        w1.metric("switchyard_agent_executions_total").await,
        w2.metric("switchyard_agent_executions_total").await,
    );
    assert!(e1 > 0.0 && e2 > 0.0, "executions per worker: {e1}, {e2}");
    let runs_so_far = 42.0 + f64::from(failed_early);
    assert_eq!(e1 + e2, 2.0 * runs_so_far, "each job ran once");

    // The same delivery twice with an idempotency key runs once.
    let (_, first) = post(&front, "burst/inbound", &json!({"n": 1}), Some("d-1")).await;
    let (_, again) = post(&front, "burst/inbound", &json!({"n": 1}), Some("d-1")).await;
    assert_eq!(first["run_id"], again["run_id"]);
    front
        .wait_run(first["run_id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    let runs = front.cli_json(&["runs", "list", "--story", "burst", "--limit", "100"]);
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(43 + failed_early as usize),
        "{runs}"
    );
    assert_eq!(sink.received().len(), 1 + 43);

    drop((w1, w2, front));
    svc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_worker_mid_work_hands_its_jobs_to_the_other_and_doubles_nothing() {
    let Some(svc) = Services::new("scaled::kill_9_of_a_worker_mid_work…").await else {
        return;
    };
    let stories = stories_dir(&[("burst.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // A slow downstream API, so the killed worker holds requests in flight.
    sink.set_delay(Duration::from_millis(400));
    let front = svc
        .front(stories.path(), &data.path().join("front"), &sink)
        .await;
    let (mut victim, survivor) = svc
        .two_workers(stories.path(), data.path(), ["victim", "survivor"])
        .await;

    let mut runs = Vec::new();
    for n in 0..60 {
        let (status, ids) = post(&front, "burst/inbound", &json!({"n": n}), None).await;
        assert_eq!(status, 202, "{ids}");
        runs.push(ids["run_id"].as_str().unwrap().to_string());
    }
    // Kill one worker once both are busy with the downstream API.
    sink.wait_for(8, Duration::from_secs(60)).await;
    victim.kill9();

    for r in &runs {
        let detail = front.wait_run(r, Duration::from_secs(120)).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        // Nothing doubled in the store: one event per agent.
        assert_eq!(agents(&detail), ["inbound", "shape", "deliver"], "{detail}");
    }
    // Nothing lost at the sink, nothing doubled: a request sent again (the victim died after
    // sending it, before recording it) carries the same Idempotency-Key, so the API can
    // tell; no run reached it under two keys.
    let by_run = keys_by_run(&sink);
    let mut resent = 0;
    for r in &runs {
        let keys = by_run
            .get(r)
            .unwrap_or_else(|| panic!("run {r} never reached the sink"));
        let distinct: HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), 1, "run {r} reached the sink as {keys:?}");
        resent += keys.len() - 1;
    }
    // The victim's work reached the survivor: messages it held unacknowledged come back from
    // RabbitMQ, and jobs it ran in place (a chain's next job, never published) or had
    // claimed are taken back once their lease runs out.
    let redelivered = survivor.metric("switchyard_broker_redelivered_total").await;
    let rescued = survivor.metric("switchyard_rescued_job_runs_total").await;
    assert!(
        redelivered + rescued > 0.0,
        "the survivor got none of the victim's work:\n{}",
        survivor.logs()
    );
    eprintln!(
        "60 runs complete after kill -9 of a worker: {redelivered} messages redelivered to the survivor, {rescued} jobs taken back from the victim, {resent} requests sent again with the same Idempotency-Key"
    );
    drop((survivor, front));
    svc.close().await;
}
