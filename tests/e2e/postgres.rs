//! `switchyard serve --database-url`: the same story on the PostgreSQL store, kill -9 in a
//! burst, and PostgreSQL itself stopped and restarted in a burst.
//!
//! These need PostgreSQL: `tests/run` starts a private server and sets
//! `SWITCHYARD_TEST_DATABASE_URL` (and `SWITCHYARD_REQUIRE_SERVICES=1`, which makes them fail
//! rather than pass unrun when it is missing).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_store::postgres::testing::{server_url, TestDatabase};

use crate::services::PrivateService;
use crate::support::{assert_all_delivered, stories_dir, Server, Sink};

/// Webhook → transform → http_request to the sink (shared with the scaled-out tests).
pub(crate) const STORY: &str = r#"
name: burst
agents:
  - name: inbound
    type: webhook
    auth: none
    idempotency_header: X-Delivery
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload: {n: "{{ inbound.body.n }}", run: "{{ run.id }}", doubled: "{{ inbound.body.n * 2 }}"}
  - name: deliver
    type: http_request
    from: shape
    url: "{{ resource.sink_url }}/in"
    method: POST
    headers: {X-Run: "{{ run.id }}"}
    body: "{{ shape }}"
"#;

/// A fresh database on the test server, or `None` when the test may not run.
pub(crate) async fn database(test: &str) -> Option<TestDatabase> {
    let server = server_url(test)?;
    Some(
        TestDatabase::create(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}")),
    )
}

async fn start_server(stories: &Path, data: &Path, url: &str, sink: &Sink) -> Server {
    let server = Server::start_with(stories, data, &["--database-url", url]).await;
    let out = server.cli(&["resource", "set", "sink_url", &sink.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_runs_on_postgresql_like_on_the_embedded_store() {
    let Some(db) = database("postgres::story_runs_on_postgresql_like_on_the_embedded_store").await
    else {
        return;
    };
    let stories = stories_dir(&[("burst.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let server = start_server(stories.path(), &data.path().join("d"), db.url(), &sink).await;

    let ready = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let (status, ids) = server.post("burst", "inbound", &json!({"n": 21})).await;
    assert_eq!(status, 202, "{ids}");
    let run_id = ids["run_id"].as_str().unwrap();
    let detail = server.wait_run(run_id, Duration::from_secs(20)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let agents: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["inbound", "shape", "deliver"]);
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        got[0].json(),
        json!({"n": 21, "run": run_id, "doubled": 42})
    );
    assert_eq!(got[0].headers["x-run"], run_id);

    // The same delivery twice with an idempotency key runs once.
    let post = |key: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/webhook/burst/inbound", server.url))
            .header("X-Delivery", key)
            .json(&json!({"n": 1}))
            .send()
    };
    let first: Value = post("d-1").await.unwrap().json().await.unwrap();
    let again: Value = post("d-1").await.unwrap().json().await.unwrap();
    assert_eq!(first["run_id"], again["run_id"]);
    server
        .wait_run(first["run_id"].as_str().unwrap(), Duration::from_secs(20))
        .await;

    let runs = server.cli_json(&["runs", "list", "--story", "burst"]);
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(2), "{runs}");
    drop(server);
    db.drop_database().await.unwrap();
}

/// Webhook senders that keep posting until stopped, recording what each request got: the
/// given number on pooled connections, plus two probes that open a new connection for each
/// request and give up on an answer after 2 s. (The senders of a burst can all be held by
/// a store outage: a request whose COMMIT was in flight when PostgreSQL went away waits until
/// its outcome is known. The probes show how requests made during the outage are answered.)
pub(crate) struct Burst {
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

/// One request: when it was sent and answered, its status (0: no answer), its run.
pub(crate) struct Answer {
    pub sent: Instant,
    pub answered: Instant,
    pub status: u16,
    pub run_id: Option<String>,
    /// Why there was no answer (status 0).
    pub error: Option<String>,
}

impl Burst {
    pub(crate) fn start(url: String, senders: usize) -> Burst {
        let stop = Arc::new(AtomicBool::new(false));
        let senders = (0..senders + 2)
            .map(|worker| {
                let (url, stop) = (url.clone(), Arc::clone(&stop));
                let probe = worker >= senders;
                tokio::spawn(async move {
                    let http = if probe {
                        reqwest::Client::builder()
                            .timeout(Duration::from_secs(2))
                            .pool_max_idle_per_host(0)
                    } else {
                        reqwest::Client::builder().timeout(Duration::from_secs(30))
                    }
                    .build()
                    .unwrap();
                    let mut answers = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let sent = Instant::now();
                        let body = json!({"n": worker * 100_000 + n});
                        let (status, run_id, error) = match http.post(&url).json(&body).send().await
                        {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let v: Value = r.json().await.unwrap_or_default();
                                (status, v["run_id"].as_str().map(str::to_string), None)
                            }
                            Err(e) => (0, None, Some(format!("{e:?}"))),
                        };
                        if status == 0 || status == 503 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        answers.push(Answer {
                            sent,
                            answered: Instant::now(),
                            status,
                            run_id,
                            error,
                        });
                    }
                    answers
                })
            })
            .collect();
        Burst { stop, senders }
    }

    pub(crate) async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for s in self.senders {
            all.extend(s.await.unwrap());
        }
        all
    }
}

/// The runs acknowledged with 202; every other answer must be a 5xx or no answer.
pub(crate) fn acknowledged(answers: &[Answer]) -> Vec<String> {
    for a in answers {
        assert!(
            a.status == 202 || a.status == 0 || a.status >= 500,
            "unexpected status {}",
            a.status
        );
    }
    answers
        .iter()
        .filter(|a| a.status == 202)
        .map(|a| a.run_id.clone().expect("a 202 names its run"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_burst_on_postgresql_loses_no_acknowledged_event() {
    let Some(db) =
        database("postgres::kill_9_mid_burst_on_postgresql_loses_no_acknowledged_event").await
    else {
        return;
    };
    let stories = stories_dir(&[("burst.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let mut server = start_server(stories.path(), &data.path().join("d"), db.url(), &sink).await;

    let burst = Burst::start(format!("{}/webhook/burst/inbound", server.url), 16);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.kill9();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acknowledged = acknowledged(&burst.finish().await);
    assert!(
        acknowledged.len() > 50,
        "the burst was too small to mean anything: {}",
        acknowledged.len()
    );

    server.restart().await;
    assert_all_delivered(&server, &sink, &acknowledged, Duration::from_secs(90)).await;
    eprintln!(
        "{} acknowledged events, all delivered after kill -9 and restart on PostgreSQL",
        acknowledged.len()
    );
    drop(server);
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_restart_mid_burst_answers_503_then_completes_every_202() {
    if server_url("postgres::postgresql_restart_mid_burst_answers_503_then_completes_every_202")
        .is_none()
    {
        return;
    }
    let pg = PrivateService::postgres();
    let stories = stories_dir(&[("burst.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let server = start_server(stories.path(), &data.path().join("d"), &pg.url, &sink).await;

    let burst = Burst::start(format!("{}/webhook/burst/inbound", server.url), 12);
    tokio::time::sleep(Duration::from_millis(800)).await;
    pg.stop();
    let down_from = Instant::now();
    // While it is down: /readyz says the store is down.
    let ready = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(body["store"].is_string(), "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let down_until = Instant::now();
    pg.restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answers = burst.finish().await;

    let during: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent >= down_from && a.answered <= down_until)
        .collect();
    let overlapping: Vec<String> = answers
        .iter()
        .filter(|a| a.answered >= down_from && a.sent <= down_until)
        .map(|a| {
            format!(
                "{} sent at +{}ms took {}ms",
                a.status,
                a.sent.saturating_duration_since(down_from).as_millis(),
                (a.answered - a.sent).as_millis()
            )
        })
        .collect();
    eprintln!("requests overlapping the outage: {overlapping:?}");
    assert!(
        during.len() >= 3,
        "too few webhooks during the outage to mean anything: {}",
        during.len()
    );
    assert!(
        during.iter().all(|a| a.status == 503),
        "webhooks during the outage must get 503, got {:?} {:?}",
        during.iter().map(|a| a.status).collect::<HashSet<_>>(),
        during
            .iter()
            .filter_map(|a| a.error.as_deref())
            .collect::<Vec<_>>()
    );
    let after = answers
        .iter()
        .filter(|a| a.sent > down_until + Duration::from_millis(500) && a.status == 202)
        .count();
    assert!(
        after > 0,
        "no webhook was accepted after PostgreSQL came back"
    );
    let acknowledged = acknowledged(&answers);
    assert_all_delivered(&server, &sink, &acknowledged, Duration::from_secs(90)).await;
    let ready = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let logs = server.logs();
    eprintln!(
        "{} acknowledged, {} answered 503 during the outage, {} jobs parked; all delivered without a restart of Switchyard",
        acknowledged.len(),
        during.len(),
        logs.matches("it will run again when the store is back").count()
    );
}
