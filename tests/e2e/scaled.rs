//! Scaled out: `serve --no-workers` front ends and `worker` processes over a real RabbitMQ
//! and a real PostgreSQL, and the faults they survive: a worker killed with SIGKILL mid-work,
//! RabbitMQ stopped and restarted in a burst of webhooks, a job no worker can run (dead
//! letters), a job that keeps killing its workers (lost_worker), schedules and delays with
//! several processes.
//!
//! These need PostgreSQL and RabbitMQ: `tests/run` starts private servers and sets
//! `SWITCHYARD_TEST_DATABASE_URL` and `SWITCHYARD_TEST_AMQP_URL` (and
//! `SWITCHYARD_REQUIRE_SERVICES=1`, which makes them fail rather than pass unrun when one is
//! missing). Each test has its own database and its own queue.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use switchyard_broker::testing::unique_queue;
use switchyard_store::postgres::testing::TestDatabase;

use crate::postgres::{
    acknowledged, assert_all_delivered, database, uuid_like, Answer, Burst, PrivatePostgres,
};
use crate::support::{bin, free_port, stories_dir, Server, Sink};

const STORY: &str = r#"
name: relay
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

/// The services of one test: a database of its own, a queue of its own on the broker.
struct Services {
    db: TestDatabase,
    amqp: String,
    queue: String,
    /// The master key every process of the test is given (`--master-key-file`).
    key_file: String,
    _keys: tempfile::TempDir,
}

impl Services {
    async fn new(test: &str) -> Option<Services> {
        let amqp = switchyard_broker::testing::server_url(test)?;
        let db = database(test).await?;
        let keys = tempfile::tempdir().expect("temp dir");
        let key_file = keys.path().join("master.key");
        let key = switchyard_engine::MasterKey::generate().to_base64();
        std::fs::write(&key_file, format!("{}\n", key.expose_secret())).expect("key file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod key file");
        }
        Some(Services {
            db,
            amqp,
            queue: unique_queue("e2e"),
            key_file: key_file.display().to_string(),
            _keys: keys,
        })
    }

    fn args<'a>(&'a self, amqp: &'a str) -> Vec<&'a str> {
        vec![
            "--database-url",
            self.db.url(),
            "--amqp-url",
            amqp,
            "--amqp-queue",
            &self.queue,
            "--master-key-file",
            &self.key_file,
        ]
    }

    /// A front end: API and webhooks, no agents.
    async fn front(&self, stories: &Path, data: &Path, sink: &Sink) -> Server {
        self.front_on(&self.amqp, stories, data, sink).await
    }

    async fn front_on(&self, amqp: &str, stories: &Path, data: &Path, sink: &Sink) -> Server {
        let mut args = self.args(amqp);
        args.push("--no-workers");
        let server = Server::start_with(stories, data, &args).await;
        let out = server.cli(&["resource", "set", "sink_url", &sink.url]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        server
    }

    fn worker(&self, stories: &Path, log: PathBuf, extra: &[&str]) -> Worker {
        Worker::start(self.args(&self.amqp), stories, log, extra)
    }

    async fn close(self) {
        self.db.drop_database().await.unwrap();
    }
}

/// A running `switchyard worker`, with /readyz on a port of its own.
struct Worker {
    child: Option<Child>,
    args: Vec<String>,
    port: u16,
    log: PathBuf,
}

impl Worker {
    fn start(base: Vec<&str>, stories: &Path, log: PathBuf, extra: &[&str]) -> Worker {
        let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--stories".to_string(),
            stories.display().to_string(),
            "--lease".to_string(),
            "2s".to_string(),
            "--concurrency".to_string(),
            "16".to_string(),
            // The sink is on loopback.
            "--allow-private-networks".to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut w = Worker {
            child: None,
            args,
            port: 0,
            log,
        };
        w.spawn();
        w
    }

    /// Starts the process (again), with /readyz on a fresh port.
    fn spawn(&mut self) {
        self.port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("worker log");
        let child = Command::new(bin())
            .arg("worker")
            .args(&self.args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .env("RUST_LOG", "info")
            .env_remove("SWITCHYARD_MASTER_KEY")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn switchyard worker");
        self.child = Some(child);
    }

    /// Waits until its /readyz answers 200.
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{}/readyz", self.port)).await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("worker exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "worker not ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process has exited (e.g. killed by one of its own jobs).
    fn exited(&mut self) -> bool {
        matches!(
            self.child.as_mut().map(|c| c.try_wait()),
            Some(Ok(Some(_))) | None
        )
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A counter from its /metrics (0 when absent).
    async fn metric(&self, name: &str) -> f64 {
        metric(&format!("http://127.0.0.1:{}", self.port), name).await
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The sum of a Prometheus counter's samples (any labels) at `base/metrics`.
async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            let rest = &l[name.len()..];
            rest.starts_with(' ') || rest.starts_with('{')
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn post(server: &Server, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/webhook/{path}", server.url))
        .json(body);
    if let Some(k) = key {
        req = req.header("X-Delivery", k);
    }
    let r = req.send().await.expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// The agents of a run's events, in order.
fn agents(detail: &Value) -> Vec<String> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["agent"].as_str().unwrap().to_string())
        .collect()
}

/// The sink's requests grouped by run (`X-Run`): the Idempotency-Keys each run's requests
/// carried.
fn keys_by_run(sink: &Sink) -> HashMap<String, Vec<String>> {
    let mut by_run: HashMap<String, Vec<String>> = HashMap::new();
    for r in sink.received() {
        let run = r.headers["x-run"].to_str().unwrap().to_string();
        let key = r.headers["idempotency-key"].to_str().unwrap().to_string();
        by_run.entry(run).or_default().push(key);
    }
    by_run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_story_runs_the_same_with_two_workers_as_embedded() {
    let Some(svc) =
        Services::new("scaled::a_story_runs_the_same_with_two_workers_as_embedded").await
    else {
        return;
    };
    let stories = stories_dir(&[("relay.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;

    // The embedded default, for comparison.
    let embedded = Server::start(stories.path(), &data.path().join("embedded")).await;
    embedded.cli(&["resource", "set", "sink_url", &sink.url]);
    let (status, ids) = post(&embedded, "relay/inbound", &json!({"n": 21}), None).await;
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
    let mut w1 = svc.worker(stories.path(), data.path().join("w1.log"), &[]);
    let mut w2 = svc.worker(stories.path(), data.path().join("w2.log"), &[]);
    w1.ready().await;
    w2.ready().await;
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
        let (status, ids) = post(&front, "relay/inbound", &json!({"n": 0}), None).await;
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

    let (status, ids) = post(&front, "relay/inbound", &json!({"n": 21}), None).await;
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
        let (status, ids) = post(&front, "relay/inbound", &json!({"n": n}), None).await;
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
    let (_, first) = post(&front, "relay/inbound", &json!({"n": 1}), Some("d-1")).await;
    let (_, again) = post(&front, "relay/inbound", &json!({"n": 1}), Some("d-1")).await;
    assert_eq!(first["run_id"], again["run_id"]);
    front
        .wait_run(first["run_id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    let runs = front.cli_json(&["runs", "list", "--story", "relay", "--limit", "100"]);
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
    let stories = stories_dir(&[("relay.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // A slow downstream API, so the killed worker holds requests in flight.
    sink.set_delay(Duration::from_millis(400));
    let front = svc
        .front(stories.path(), &data.path().join("front"), &sink)
        .await;
    let mut victim = svc.worker(stories.path(), data.path().join("victim.log"), &[]);
    let mut survivor = svc.worker(stories.path(), data.path().join("survivor.log"), &[]);
    victim.ready().await;
    survivor.ready().await;

    let mut runs = Vec::new();
    for n in 0..60 {
        let (status, ids) = post(&front, "relay/inbound", &json!({"n": n}), None).await;
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
    let redelivered = survivor.metric("switchyard_broker_redelivered_total").await;
    assert!(
        redelivered > 0.0,
        "the survivor got none of the victim's messages:\n{}",
        survivor.logs()
    );
    eprintln!(
        "60 runs complete after kill -9 of a worker: {redelivered} messages redelivered to the survivor, {resent} requests sent again with the same Idempotency-Key"
    );
    drop((survivor, front));
    svc.close().await;
}

/// A RabbitMQ broker of this test's own (so stopping it disturbs no other test), run by
/// `tests/services/rabbitmq.sh`.
struct PrivateRabbit {
    dir: PathBuf,
    url: String,
}

impl PrivateRabbit {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/services/rabbitmq.sh")
    }

    fn run(command: &str, dir: &Path) -> String {
        let out = Command::new(Self::script())
            .arg(command)
            .arg(dir)
            .output()
            .expect("run tests/services/rabbitmq.sh");
        assert!(
            out.status.success(),
            "rabbitmq.sh {command} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start() -> PrivateRabbit {
        let dir = std::env::temp_dir().join(format!("switchyard-rmq-{}", uuid_like()));
        let out = Self::run("start", &dir);
        let url = out
            .lines()
            .find_map(|l| l.strip_prefix("export SWITCHYARD_TEST_AMQP_URL="))
            .unwrap_or_else(|| panic!("rabbitmq.sh printed no URL: {out}"))
            .trim()
            .to_string();
        PrivateRabbit { dir, url }
    }

    fn stop(&self) {
        Self::run("stop", &self.dir);
    }

    fn restart(&self) {
        Self::run("start", &self.dir);
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("destroy")
            .arg(&self.dir)
            .output();
    }
}

/// Polls `/readyz` until `check` holds for its answer.
async fn wait_ready(url: &str, what: &str, check: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/readyz")).await {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or_default();
            if check(status, &body) {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "/readyz never showed {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_restart_mid_burst_answers_503_then_completes_every_202() {
    let Some(svc) = Services::new("scaled::rabbitmq_restart_mid_burst…").await else {
        return;
    };
    let rabbit = PrivateRabbit::start();
    let stories = stories_dir(&[("relay.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let front = svc
        .front_on(
            &rabbit.url,
            stories.path(),
            &data.path().join("front"),
            &sink,
        )
        .await;
    let mut worker = Worker::start(
        svc.args(&rabbit.url),
        stories.path(),
        data.path().join("w.log"),
        &[],
    );
    worker.ready().await;

    let burst = Burst::start(format!("{}/webhook/relay/inbound", front.url), 12);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    rabbit.stop();
    // Once the front end has noticed, webhooks are refused and /readyz says why.
    let body = wait_ready(&front.url, "the queue down", |status, b| {
        status == 503 && b["queue"] != "ok"
    })
    .await;
    assert_eq!(body["store"], "ok", "{body}");
    // The worker's /readyz says so too.
    let worker_url = format!("http://127.0.0.1:{}", worker.port);
    wait_ready(&worker_url, "the queue down on the worker", |status, b| {
        status == 503 && b["queue"] != "ok"
    })
    .await;
    let down_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let down_until = Instant::now();
    rabbit.restart();
    wait_ready(&front.url, "the queue back", |status, _| status == 200).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answers: Vec<Answer> = burst.finish().await;
    let (acknowledged, refused) =
        assert_outage(&answers, down_from, down_until, &front, &sink).await;
    wait_ready(
        &format!("http://127.0.0.1:{}", worker.port),
        "the worker ready",
        |s, _| s == 200,
    )
    .await;
    eprintln!(
        "{acknowledged} acknowledged, {refused} answered 503 while RabbitMQ was down; all delivered without a restart of Switchyard"
    );
    drop((worker, front));
    drop(rabbit);
    svc.close().await;
}

/// The answers sent and answered while a service was down (`from`..`until`) must all be 503,
/// some after it must be 202, and every 202 must complete at the sink.
async fn assert_outage(
    answers: &[Answer],
    from: Instant,
    until: Instant,
    front: &Server,
    sink: &Sink,
) -> (usize, usize) {
    let during: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent >= from && a.answered <= until)
        .collect();
    // For a failure message: (sent, answered) in ms relative to the outage's start, status.
    let ms = |t: Instant| {
        if t >= from {
            t.duration_since(from).as_millis() as i64
        } else {
            -(from.duration_since(t).as_millis() as i64)
        }
    };
    let around: Vec<(i64, i64, u16)> = answers
        .iter()
        .filter(|a| a.answered + Duration::from_secs(3) >= from && a.sent <= until)
        .map(|a| (ms(a.sent), ms(a.answered), a.status))
        .collect();
    assert!(
        during.len() >= 3,
        "too few webhooks during the outage to mean anything: {} (sent ms after the outage began, took ms, status: {around:?})",
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
        .filter(|a| a.sent > until && a.status == 202)
        .count();
    assert!(after > 0, "no webhook was accepted after the outage");
    let acknowledged = acknowledged(answers);
    assert_all_delivered(front, sink, &acknowledged).await;
    (acknowledged.len(), during.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_restart_mid_burst_pauses_workers_and_completes_every_202() {
    let test = "scaled::postgresql_restart_mid_burst…";
    let Some(amqp) = switchyard_broker::testing::server_url(test) else {
        return;
    };
    if switchyard_store::postgres::testing::server_url(test).is_none() {
        return;
    }
    let pg = PrivatePostgres::start();
    let queue = unique_queue("e2e");
    let args = vec![
        "--database-url",
        pg.url.as_str(),
        "--amqp-url",
        amqp.as_str(),
        "--amqp-queue",
        queue.as_str(),
    ];
    let stories = stories_dir(&[("relay.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let mut front_args = args.clone();
    front_args.push("--no-workers");
    let front = Server::start_with(stories.path(), &data.path().join("front"), &front_args).await;
    assert!(front
        .cli(&["resource", "set", "sink_url", &sink.url])
        .status
        .success());
    // The workers use the key the front end generated.
    let key_file = data.path().join("front").join("master.key");
    let key_file = key_file.to_str().unwrap();
    let worker_args = [args.clone(), vec!["--master-key-file", key_file]].concat();
    let mut w1 = Worker::start(
        worker_args.clone(),
        stories.path(),
        data.path().join("w1.log"),
        &[],
    );
    let mut w2 = Worker::start(worker_args, stories.path(), data.path().join("w2.log"), &[]);
    w1.ready().await;
    w2.ready().await;

    let burst = Burst::start(format!("{}/webhook/relay/inbound", front.url), 12);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    pg.stop();
    let body = wait_ready(&front.url, "the store down", |status, b| {
        status == 503 && b["store"] != "ok"
    })
    .await;
    assert_eq!(body["queue"], "ok", "{body}");
    // The workers' /readyz say so too.
    for w in [&w1, &w2] {
        wait_ready(
            &format!("http://127.0.0.1:{}", w.port),
            "the store down on a worker",
            |status, b| status == 503 && b["store"] != "ok",
        )
        .await;
    }
    let down_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let down_until = Instant::now();
    pg.restart();
    wait_ready(&front.url, "the store back", |status, _| status == 200).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answers = burst.finish().await;
    let (acknowledged, refused) =
        assert_outage(&answers, down_from, down_until, &front, &sink).await;
    for w in [&w1, &w2] {
        wait_ready(
            &format!("http://127.0.0.1:{}", w.port),
            "a worker ready again",
            |status, _| status == 200,
        )
        .await;
    }
    eprintln!(
        "{acknowledged} acknowledged, {refused} answered 503 while PostgreSQL was down; all delivered by the workers without a restart"
    );
    drop((w1, w2, front));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_worker_can_run_is_dead_lettered_fails_its_run_and_can_be_replayed() {
    let Some(svc) = Services::new("scaled::a_job_no_worker_can_run…").await else {
        return;
    };
    // The front end has the story; the workers do not (a deploy that missed them).
    let front_stories = stories_dir(&[("relay.yaml", STORY)]);
    let worker_stories = stories_dir(&[]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let front = svc
        .front(front_stories.path(), &data.path().join("front"), &sink)
        .await;
    let mut w1 = svc.worker(worker_stories.path(), data.path().join("w1.log"), &[]);
    let mut w2 = svc.worker(worker_stories.path(), data.path().join("w2.log"), &[]);
    w1.ready().await;
    w2.ready().await;

    let (status, ids) = post(&front, "relay/inbound", &json!({"n": 5}), None).await;
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
    std::fs::write(worker_stories.path().join("relay.yaml"), STORY).unwrap();
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
    let mut w1 = svc.worker(stories.path(), data.path().join("w1.log"), &[]);
    let mut w2 = svc.worker(stories.path(), data.path().join("w2.log"), &[]);
    w1.ready().await;
    w2.ready().await;

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
    let stories = stories_dir(&[("relay.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let front = svc
        .front(stories.path(), &data.path().join("front"), &sink)
        .await;
    let mut w1 = svc.worker(stories.path(), data.path().join("w1.log"), &[]);
    let mut w2 = svc.worker(stories.path(), data.path().join("w2.log"), &[]);
    w1.ready().await;
    w2.ready().await;

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
