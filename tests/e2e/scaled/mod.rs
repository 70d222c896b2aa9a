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

use crate::postgres::{acknowledged, database, Answer, Burst, STORY};
use crate::services::PrivateService;
use crate::support::{assert_all_delivered, bin, free_port, stories_dir, Server, Sink};

mod failures;
mod outages;
mod processes;
mod runs;

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

    /// Two workers on `stories`, logging to `dir/NAME.log`, both ready.
    async fn two_workers(&self, stories: &Path, dir: &Path, names: [&str; 2]) -> (Worker, Worker) {
        let mut a = self.worker(stories, dir.join(format!("{}.log", names[0])), &[]);
        let mut b = self.worker(stories, dir.join(format!("{}.log", names[1])), &[]);
        a.ready().await;
        b.ready().await;
        (a, b)
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
