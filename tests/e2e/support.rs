//! Test harness: a `switchyard serve` process, a recording HTTP sink, CLI calls.

#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A temporary directory with story files.
pub fn stories_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write story");
    }
    dir
}

/// A running `switchyard serve`.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
    pub stories: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
    extra: Vec<String>,
    /// Keep the SSRF guard on (by default the harness passes `--allow-private-networks`,
    /// since the sinks the tests call listen on loopback).
    strict: bool,
    /// Environment variables for the server process.
    env: Vec<(String, String)>,
    /// API token that `cli`, `cli_json` and `api` send, once set.
    pub token: Option<String>,
}

impl Server {
    /// Starts a server on `stories` with a data directory `data`; waits until it answers.
    pub async fn start(stories: &Path, data: &Path) -> Server {
        Server::start_with(stories, data, &[]).await
    }

    /// Like `start`, with extra `serve` arguments.
    pub async fn start_with(stories: &Path, data: &Path, extra: &[&str]) -> Server {
        Server::launch(stories, data, extra, false, &[]).await
    }

    /// Like `start_with`, with extra environment variables for the server process.
    pub async fn start_with_env(
        stories: &Path,
        data: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::launch(stories, data, extra, false, env).await
    }

    /// Like `start_with`, with the SSRF guard on (no `--allow-private-networks`).
    pub async fn start_strict(stories: &Path, data: &Path, extra: &[&str]) -> Server {
        Server::launch(stories, data, extra, true, &[]).await
    }

    /// Starts a server with every option: extra arguments, the SSRF guard, environment.
    pub async fn launch(
        stories: &Path,
        data: &Path,
        extra: &[&str],
        strict: bool,
        env: &[(&str, &str)],
    ) -> Server {
        let port = free_port();
        let mut s = Server {
            child: None,
            port,
            url: format!("http://127.0.0.1:{port}"),
            stories: stories.to_path_buf(),
            data: data.to_path_buf(),
            log: data.with_extension("log"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            strict,
            token: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(bin())
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--stories")
            .arg(&self.stories)
            .arg("--data")
            .arg(&self.data)
            .args(&self.extra)
            .args(
                if self.strict || self.extra.iter().any(|a| a == "--allow-private-networks") {
                    &[][..]
                } else {
                    &["--allow-private-networks"][..]
                },
            )
            .env_remove("SWITCHYARD_MASTER_KEY")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn switchyard serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("switchyard serve exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "server did not start:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process with SIGKILL (no shutdown at all).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the process to stop (SIGTERM) and waits up to `timeout` for it to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the process again on the same port, stories and data.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// The server's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a CLI command against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut c = Command::new(bin());
        c.args(args)
            .env("SWITCHYARD_URL", &self.url)
            .env_remove("SWITCHYARD_TOKEN");
        if let Some(t) = &self.token {
            c.env("SWITCHYARD_TOKEN", t);
        }
        c.output().expect("run switchyard")
    }

    /// Runs a CLI command with standard input and extra environment variables.
    pub fn cli_input(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        use std::io::Write as _;
        let mut c = Command::new(bin());
        c.args(args)
            .env("SWITCHYARD_URL", &self.url)
            .env_remove("SWITCHYARD_TOKEN")
            .envs(env.iter().copied());
        if let Some(t) = &self.token {
            c.env("SWITCHYARD_TOKEN", t);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run switchyard");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("run switchyard")
    }

    /// Stores a credential through the CLI (`credential set NAME`, the value on standard
    /// input), bound to `allowed_hosts` when any are given; panics when it is refused.
    pub fn set_credential(&self, name: &str, value: &str, allowed_hosts: &[&str]) {
        let mut args = vec!["credential", "set", name];
        for h in allowed_hosts {
            args.extend(["--allowed-host", h]);
        }
        let out = self.cli_input(&args, value, &[]);
        assert!(
            out.status.success(),
            "credential set {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a CLI command with `--json` and parses its output; panics with stderr on failure.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "switchyard {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// POSTs JSON to a webhook; returns status and parsed body.
    pub async fn post(&self, story: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/webhook/{story}/{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("post webhook");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GET on the API.
    pub async fn api(&self, path: &str) -> Value {
        let mut req = reqwest::Client::new().get(format!("{}/api/v1{path}", self.url));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("api").json().await.expect("json")
    }

    /// Waits until a run is no longer running; returns `{run, events, jobs}`.
    pub async fn wait_run(&self, run_id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.api(&format!("/runs/{run_id}")).await;
            if v["run"]["status"] != "running" && !v["run"].is_null() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} still running after {timeout:?}: {v}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs `switchyard serve` expecting it to refuse to start; returns what it printed.
pub fn serve_refuses(stories: &Path, data: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--stories")
        .arg(stories)
        .arg("--data")
        .arg(data)
        .args(if extra.contains(&"--listen") {
            Vec::new()
        } else {
            vec!["--listen".to_string(), format!("127.0.0.1:{}", free_port())]
        })
        .args(extra)
        .env_remove("SWITCHYARD_MASTER_KEY")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchyard serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().expect("output");
            assert!(!status.success(), "serve exited successfully");
            return format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "serve did not refuse to start:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("sink body is not JSON ({e}): {:?}", self.body))
    }
}

#[derive(Clone, Default)]
struct SinkState {
    received: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<VecDeque<Answer>>>,
    /// How long each answer takes (a slow downstream API).
    delay: Arc<Mutex<Duration>>,
}

/// A queued answer: status, extra headers, JSON body text.
type Answer = (u16, Vec<(String, String)>, String);

/// A real HTTP server on loopback that records every request and answers 200 `{"ok":true}`
/// unless answers were queued with [`Sink::answer`].
pub struct Sink {
    pub url: String,
    state: SinkState,
    _task: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Starts a sink.
    pub async fn start() -> Sink {
        let state = SinkState::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            url,
            state,
            _task: task,
        }
    }

    /// Queues the next answers (status, JSON body text).
    pub fn answer(&self, status: u16, body: &str) {
        self.answer_with_headers(status, &[], body);
    }

    /// Queues an answer with extra response headers (e.g. `Link`).
    pub fn answer_with_headers(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        self.state.plan.lock().unwrap().push_back((
            status,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body.to_string(),
        ));
    }

    /// Makes every answer take `delay` (the request is recorded when it arrives).
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "sink got {} of {n} requests in {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn record(
    State(state): State<SinkState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    state.received.lock().unwrap().push(Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body,
    });
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, extra, body) = state.plan.lock().unwrap().pop_front().unwrap_or((
        200,
        Vec::new(),
        r#"{"ok":true}"#.to_string(),
    ));
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    for (k, v) in extra {
        headers.append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            v.parse().expect("header value"),
        );
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        headers,
        body,
    )
}

/// A server on loopback that answers every request with a redirect to `target`.
pub async fn redirector(target: String) -> (u16, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move {
            (
                StatusCode::FOUND,
                [(axum::http::header::LOCATION, target)],
                "",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

/// Every acknowledged run succeeded (each within `patience`) and reached the sink: the
/// header `X-Run` of a delivery names its run.
pub async fn assert_all_delivered(
    server: &Server,
    sink: &Sink,
    acknowledged: &[String],
    patience: Duration,
) {
    for run_id in acknowledged {
        let detail = server.wait_run(run_id, patience).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    }
    let delivered: HashSet<String> = sink
        .received()
        .iter()
        .map(|r| r.headers["x-run"].to_str().unwrap().to_string())
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !delivered.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged runs never reached the sink: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
}
