//! Scaled out: a job no worker can run is dead-lettered; one that keeps killing its
//! workers fails as lost_worker.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_worker_can_run_is_dead_lettered_fails_its_run_and_can_be_replayed() {
    let Some(svc) = Services::new("scaled::a_job_no_worker_can_run…").await else {
        return;
    };
    // The front end has the story; the workers do not (a deploy that missed them).
    let front_stories = stories_dir(&[("burst.yaml", STORY)]);
    let worker_stories = stories_dir(&[]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let front = svc
        .front(front_stories.path(), &data.path().join("front"), &sink)
        .await;
    let (w1, w2) = svc
        .two_workers(worker_stories.path(), data.path(), ["w1", "w2"])
        .await;

    let (status, ids) = post(&front, "burst/inbound", &json!({"n": 5}), None).await;
    assert_eq!(status, 202, "{ids}");
    let run_id = ids["run_id"].as_str().unwrap();
    let detail = front.wait_run(run_id, Duration::from_secs(90)).await;
    assert_eq!(detail["run"]["status"], "failed", "{detail}");
    let error = detail["run"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("dead-lettered"), "{detail}");
    let handed_back = w1.metric("switchyard_jobs_handed_back_total").await
        + w2.metric("switchyard_jobs_handed_back_total").await;
    assert!(handed_back >= 5.0, "handed back {handed_back} times");
    let failed = front.cli_json(&["runs", "list", "--status", "failed"]);
    assert!(failed.to_string().contains(run_id), "{failed}");

    // Deploy the story to the workers, replay the event: the run completes.
    std::fs::write(worker_stories.path().join("burst.yaml"), STORY).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(w1.logs().contains("stories reloaded") && w2.logs().contains("stories reloaded")) {
        assert!(
            Instant::now() < deadline,
            "workers did not reload:\n{}",
            w1.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let inbound = detail["events"][0]["id"].as_str().unwrap();
    front.cli_json(&["events", "replay", inbound]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = front.api(&format!("/runs/{run_id}")).await;
        if d["run"]["status"] == "succeeded" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replayed run did not succeed: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].headers["x-run"], run_id);
    drop((w1, w2, front));
    svc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_killing_its_workers_fails_as_lost_worker() {
    let Some(svc) = Services::new("scaled::a_job_that_keeps_killing_its_workers…").await else {
        return;
    };
    const KILLER: &str = r#"
name: killer
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: crash
    type: command
    from: inbound
    argv: ["sh", "-c", "kill -9 $PPID; sleep 5"]
"#;
    let stories = stories_dir(&[("killer.yaml", KILLER)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let front = svc
        .front(stories.path(), &data.path().join("front"), &sink)
        .await;
    let extra = ["--allow-commands"];
    let mut workers: Vec<Worker> = (0..2)
        .map(|i| {
            svc.worker(
                stories.path(),
                data.path().join(format!("w{i}.log")),
                &extra,
            )
        })
        .collect();
    for w in &mut workers {
        w.ready().await;
    }

    let (status, ids) = post(&front, "killer/inbound", &json!({}), None).await;
    assert_eq!(status, 202, "{ids}");
    let run_id = ids["run_id"].as_str().unwrap().to_string();
    // A supervisor: restart the workers the job kills, until the run ends.
    let mut deaths = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let detail = loop {
        let d = front.api(&format!("/runs/{run_id}")).await;
        if d["run"]["status"] != "running" {
            break d;
        }
        for w in &mut workers {
            if w.exited() {
                deaths += 1;
                w.spawn();
            }
        }
        assert!(
            Instant::now() < deadline,
            "still running after {deaths} worker deaths: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(detail["run"]["status"], "failed", "{detail}");
    let error_event = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "error")
        .unwrap_or_else(|| panic!("no error event: {detail}"));
    assert_eq!(
        error_event["payload"]["error"]["kind"], "lost_worker",
        "{detail}"
    );
    assert!(deaths >= 3, "only {deaths} workers died");
    drop(workers);
    drop(front);
    svc.close().await;
}
