//! The harness of the shipped stories' end-to-end tests: the vendors' stand-ins
//! (`switchyard-standins`) in this process, a `switchyard serve` on copies of the shipped
//! stories and the shipped packs, pointed at the stand-ins through resources and
//! credentials, and helpers to play the systems around a story (GitHub delivering a signed
//! webhook, a deploy script) and to wait on conditions.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use switchyard_standins::StandIns;

use crate::actions::shipped_packs;
use crate::support::Server;

/// How long a test waits for anything: generous, for a slow shared CI machine.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// The shipped stories directory.
pub fn shipped_stories() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stories")
}

/// Stand-ins, and a server running some of the shipped stories against them.
pub struct StoryEnv {
    pub standins: StandIns,
    pub server: Server,
    _dirs: Vec<tempfile::TempDir>,
}

impl StoryEnv {
    /// Starts the stand-ins and a server on copies of the shipped stories `names` (the
    /// shipped packs, `extra` serve arguments), with every stand-in resource and credential
    /// set.
    pub async fn start(names: &[&str], extra: &[&str]) -> StoryEnv {
        let standins = StandIns::start().await;
        let stories = tempfile::tempdir().unwrap();
        for name in names {
            let file = format!("{name}.yaml");
            std::fs::copy(shipped_stories().join(&file), stories.path().join(&file))
                .unwrap_or_else(|e| panic!("copy the shipped story {file}: {e}"));
        }
        let data = tempfile::tempdir().unwrap();
        let packs = shipped_packs();
        let mut args = vec!["--packs", packs.to_str().unwrap()];
        args.extend_from_slice(extra);
        let server = Server::start_with(stories.path(), &data.path().join("d"), &args).await;
        let env = StoryEnv {
            standins,
            server,
            _dirs: vec![stories, data],
        };
        for (name, value) in env.standins.resources() {
            env.resource(&name, &value);
        }
        for (name, value) in env.standins.credentials() {
            env.credential(&name, &value);
        }
        let loaded = env.server.cli_json(&["story", "list"]);
        for name in names {
            assert!(
                loaded.to_string().contains(&format!("\"{name}\"")),
                "story {name} is not loaded: {loaded}\n{}",
                env.server.logs()
            );
        }
        env
    }

    /// `switchyard resource set NAME VALUE`.
    pub fn resource(&self, name: &str, value: &str) {
        let out = self.server.cli(&["resource", "set", name, value]);
        assert!(
            out.status.success(),
            "resource set {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `switchyard credential set NAME` with the value on standard input.
    pub fn credential(&self, name: &str, value: &str) {
        self.server.set_credential(name, value, &[]);
    }

    /// POSTs raw bytes to a webhook with headers; returns the status and the parsed answer.
    pub async fn post_raw(
        &self,
        story: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}/webhook/{story}/{path}", self.server.url))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("post webhook");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs JSON to a webhook with a bearer token.
    pub async fn post_bearer(
        &self,
        story: &str,
        path: &str,
        token: &str,
        body: &Value,
    ) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        self.post_raw(
            story,
            path,
            &[("authorization", &auth)],
            body.to_string().as_bytes(),
        )
        .await
    }

    /// Delivers a GitHub webhook event as GitHub does: `X-GitHub-Event`, a fresh
    /// `X-GitHub-Delivery`, and `X-Hub-Signature-256` over the raw body with `secret`.
    pub async fn github_event(
        &self,
        story: &str,
        path: &str,
        event: &str,
        secret: &str,
        body: &Value,
    ) -> (u16, Value) {
        let raw = body.to_string();
        let signature = github_signature(secret, raw.as_bytes());
        let delivery = uuid_like();
        self.post_raw(
            story,
            path,
            &[
                ("x-github-event", event),
                ("x-github-delivery", &delivery),
                ("x-hub-signature-256", &signature),
                ("user-agent", "GitHub-Hookshot/standin"),
            ],
            raw.as_bytes(),
        )
        .await
    }

    /// Waits until a run is over and asserts it succeeded; returns its detail.
    pub async fn succeeded(&self, run_id: &str) -> Value {
        let detail = self.server.wait_run(run_id, PATIENCE).await;
        assert_eq!(
            detail["run"]["status"],
            "succeeded",
            "run {run_id}: {detail:#}\n{}",
            self.server.logs()
        );
        detail
    }

    /// The runs of a story, newest first.
    pub fn runs(&self, story: &str) -> Vec<Value> {
        self.server
            .cli_json(&["runs", "list", "--story", story, "--limit", "1000"])["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Asserts that no stand-in refused a request (the packs and stories send what the
    /// vendors' API references ask for).
    pub fn assert_nothing_refused(&self) {
        let refused = self.standins.rejected();
        assert!(
            refused.is_empty(),
            "the stand-ins refused requests:\n{}",
            refused
                .iter()
                .map(|r| r.summary())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// A call to a stand-in's API as a vendor's other clients make it (the test playing a
    /// deployer, say): `Authorization: Bearer TOKEN`, GitHub's headers.
    pub async fn vendor_call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Value {
        let mut req = reqwest::Client::new()
            .request(method.clone(), url)
            .bearer_auth(token)
            .header("user-agent", "story-e2e")
            .header("accept", "application/vnd.github+json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.expect("stand-in call");
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {url}: {status} {v}");
        v
    }

    /// Plays GitHub after a deployer reported on a deployment: posts the deployment status
    /// to the GitHub stand-in (as the deployer does) and delivers the `deployment_status`
    /// event, built from the stand-in's own answers, to `story`'s `path`.
    pub async fn report_deployment(
        &self,
        story: &str,
        path: &str,
        repo: &str,
        deployment_id: u64,
        status: &Value,
        secret: &str,
    ) -> (u16, Value) {
        let g = self.standins.github();
        let api = format!("{}/repos/{repo}", g.url());
        let token = g.token().to_string();
        let created = self
            .vendor_call(
                reqwest::Method::POST,
                &format!("{api}/deployments/{deployment_id}/statuses"),
                &token,
                Some(status),
            )
            .await;
        let deployment = self
            .vendor_call(
                reqwest::Method::GET,
                &format!("{api}/deployments/{deployment_id}"),
                &token,
                None,
            )
            .await;
        let repository = self
            .vendor_call(reqwest::Method::GET, &api, &token, None)
            .await;
        let body = json!({
            "action": "created",
            "deployment_status": created,
            "deployment": deployment,
            "repository": repository,
            "sender": created["creator"],
        });
        self.github_event(story, path, "deployment_status", secret, &body)
            .await
    }
}

/// GitHub's `X-Hub-Signature-256` of a body.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A unique delivery id.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:08x}-0000-4000-8000-{:012x}", (t & 0xffff_ffff) as u64, n)
}

/// Polls `check` every 100 ms until it gives a value; panics with `what` after `PATIENCE`.
pub async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
