//! The `email` agent through the binary, delivering to a real SMTP server process on
//! loopback (Python's aiosmtpd, installed when missing).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{free_port, stories_dir, Server};

const MAILER: &str = r#"
name: mailer
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: welcome
    type: email
    from: inbound
    to: "{{ inbound.body.user }} <{{ inbound.body.email }}>"
    cc: [audit@example.com]
    bcc: "{{ inbound.body.hidden }}"
    sender: "Switchyard <noreply@example.com>"
    reply_to: support@example.com
    subject: "Welcome, {{ inbound.body.user }}"
    text: "Hello {{ inbound.body.user }}, your trial is ready."
    html: "<p>Hello <b>{{ inbound.body.user }}</b></p>"
"#;

const REFUSED: &str = r#"
name: refused
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: send
    type: email
    from: inbound
    to: "{{ inbound.body.to }}"
    sender: noreply@example.com
    subject: "Status"
    text: "-"
    retry: {attempts: 3, backoff: 100ms, max_backoff: 200ms}
"#;

/// The SMTP server process; killed when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        ensure_aiosmtpd();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP sink (python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        SmtpSink { child, port, dir }
    }

    /// `smtp://…` with the account the sink accepts.
    fn url(&self) -> String {
        format!("smtp://ada:p%40ss%20word@127.0.0.1:{}", self.port)
    }

    fn files(&self, prefix: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.ends_with(".json") && name.starts_with(prefix)
            })
            .collect();
        files.sort();
        files
    }

    /// The accepted messages.
    fn delivered(&self) -> Vec<Value> {
        self.files("")
            .iter()
            .filter(|p| {
                !p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("deferred")
            })
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    fn wait_delivered(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.delivered();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages arrived",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ensure_aiosmtpd() {
    let has = || {
        Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has() {
        return;
    }
    let ok = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && has(),
        "the email tests need a real SMTP server: python3 and `pip install aiosmtpd`"
    );
}

/// The header `name` of a raw message (unfolded), if present.
fn header(data: &str, name: &str) -> Option<String> {
    let head = data.split("\r\n\r\n").next().unwrap_or(data);
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

async fn run(server: &Server, story: &str, body: Value) -> Value {
    let (status, ids) = server.post(story, "inbound", &body).await;
    assert_eq!(status, 202, "{ids}");
    server
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(20))
        .await
}

fn event<'a>(detail: &'a Value, agent: &str) -> &'a Value {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["agent"] == agent)
        .unwrap_or_else(|| panic!("no event of {agent}: {detail}"))
}

#[tokio::test]
async fn an_email_reaches_the_smtp_server_with_its_rendered_headers_and_bodies() {
    let smtp = SmtpSink::start();
    let stories = stories_dir(&[("mailer.yaml", MAILER)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    server.set_credential("smtp", &smtp.url(), &["127.0.0.1"]);

    let detail = run(
        &server,
        "mailer",
        json!({"user": "Ada", "email": "ada@example.com", "hidden": ["boss@example.com", "log@example.com"]}),
    )
    .await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let sent = &event(&detail, "welcome")["payload"];
    let message_id = sent["message_id"].as_str().unwrap();
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@switchyard>"),
        "{sent}"
    );
    assert_eq!(sent["to"], json!(["Ada <ada@example.com>"]));

    let got = smtp.wait_delivered(1);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m["login"], "ada", "the URL's user and password were used");
    assert_eq!(m["mail_from"], "noreply@example.com");
    assert_eq!(
        m["rcpt_tos"],
        json!([
            "ada@example.com",
            "audit@example.com",
            "boss@example.com",
            "log@example.com"
        ]),
        "Bcc recipients receive it"
    );
    let data = m["data"].as_str().unwrap();
    assert_eq!(
        header(data, "From").unwrap(),
        "Switchyard <noreply@example.com>"
    );
    assert_eq!(header(data, "To").unwrap(), "Ada <ada@example.com>");
    assert_eq!(header(data, "Cc").unwrap(), "audit@example.com");
    assert_eq!(header(data, "Reply-To").unwrap(), "support@example.com");
    assert_eq!(header(data, "Subject").unwrap(), "Welcome, Ada");
    assert_eq!(header(data, "Message-ID").unwrap(), message_id);
    assert_eq!(
        header(data, "Bcc"),
        None,
        "no Bcc header is visible:\n{data}"
    );
    assert!(!data.contains("boss@example.com"), "{data}");
    assert!(
        header(data, "Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: text/plain; charset=utf-8"),
        "{data}"
    );
    assert!(data.contains("Hello Ada, your trial is ready."), "{data}");
    assert!(
        data.contains("Content-Type: text/html; charset=utf-8"),
        "{data}"
    );
    assert!(data.contains("<p>Hello <b>Ada</b></p>"), "{data}");
}

#[tokio::test]
async fn smtp_refusals_are_permanent_and_deferrals_are_retried_with_the_same_message_id() {
    let smtp = SmtpSink::start();
    let stories = stories_dir(&[("refused.yaml", REFUSED)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    server.set_credential("smtp", &smtp.url(), &[]);

    // 550: no retry even though three tries are allowed.
    let detail = run(&server, "refused", json!({"to": "reject@example.com"})).await;
    assert_eq!(detail["run"]["status"], "failed");
    let error = &event(&detail, "send")["payload"]["error"];
    assert_eq!(error["kind"], "smtp");
    assert_eq!(error["attempts"], 1, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("no such user"),
        "{error}"
    );
    assert!(
        !error["message"].as_str().unwrap().contains("p%40ss"),
        "{error}"
    );

    // 451 on every try: all three tries are made.
    let detail = run(&server, "refused", json!({"to": "defer@example.com"})).await;
    assert_eq!(detail["run"]["status"], "failed");
    assert_eq!(event(&detail, "send")["payload"]["error"]["attempts"], 3);

    // 451 after DATA once, then accepted: the retry carries the same Message-ID.
    let detail = run(&server, "refused", json!({"to": "flaky@example.com"})).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let message_id = event(&detail, "send")["payload"]["message_id"].clone();
    let deferred = smtp.files("deferred");
    assert_eq!(deferred.len(), 1);
    let first: Value = serde_json::from_slice(&std::fs::read(&deferred[0]).unwrap()).unwrap();
    let delivered = smtp.wait_delivered(1);
    let ids: Vec<String> = [&first, &delivered[0]]
        .iter()
        .map(|m| header(m["data"].as_str().unwrap(), "Message-ID").unwrap())
        .collect();
    assert_eq!(ids, [message_id.as_str().unwrap(); 2]);
}

const TLS: &str = r#"
name: tls
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: required
    type: email
    from: inbound
    smtp: smtp_required
    to: a@example.com
    sender: noreply@example.com
    subject: "-"
    text: "-"
  - name: implicit
    type: email
    from: inbound
    smtp: smtp_implicit
    to: a@example.com
    sender: noreply@example.com
    subject: "-"
    text: "-"
"#;

#[tokio::test]
async fn tls_settings_are_never_downgraded_to_plain_text() {
    // The sink offers no STARTTLS and speaks no TLS: both agents must fail, and the
    // password must not have been sent.
    let smtp = SmtpSink::start();
    let stories = stories_dir(&[("tls.yaml", TLS)]);
    let data = tempfile::tempdir().unwrap();
    let required = format!(
        "smtp://ada:p%40ss%20word@127.0.0.1:{}?tls=required",
        smtp.port
    );
    let implicit = format!("smtps://ada:p%40ss%20word@127.0.0.1:{}", smtp.port);
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    server.set_credential("smtp_required", &required, &[]);
    server.set_credential("smtp_implicit", &implicit, &[]);
    let detail = run(&server, "tls", json!({})).await;
    assert_eq!(detail["run"]["status"], "failed");
    for agent in ["required", "implicit"] {
        let error = &event(&detail, agent)["payload"]["error"];
        assert_eq!(error["kind"], "smtp", "{agent}: {error}");
        assert!(
            !error["message"].as_str().unwrap().contains("p%40ss"),
            "{error}"
        );
    }
    let required = event(&detail, "required")["payload"]["error"]["message"].clone();
    assert!(
        required
            .as_str()
            .unwrap()
            .contains("STARTTLS is not supported"),
        "{required}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(smtp.files("").is_empty(), "nothing was delivered");
}

#[tokio::test]
async fn an_smtp_credential_is_only_used_with_its_allowed_host_and_never_stored() {
    let smtp = SmtpSink::start();
    let stories = stories_dir(&[("mailer.yaml", MAILER)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    // Bound to another host: the agent refuses to log in to this one.
    server.set_credential("smtp", &smtp.url(), &["mail.example.com"]);
    let detail = run(
        &server,
        "mailer",
        json!({"user": "Ada", "email": "ada@example.com", "hidden": []}),
    )
    .await;
    assert_eq!(detail["run"]["status"], "failed", "{detail}");
    let error = &event(&detail, "welcome")["payload"]["error"];
    assert_eq!(error["kind"], "credential_host", "{error}");
    assert_eq!(error["attempts"], 1, "not retried: {error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("`smtp`") && message.contains("mail.example.com"),
        "{message}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(smtp.files("").is_empty(), "nothing was sent");

    // Allowed: delivered; nothing the run stored holds the URL or its password.
    server.set_credential("smtp", &smtp.url(), &["127.0.0.1"]);
    let detail = run(
        &server,
        "mailer",
        json!({"user": "Ada", "email": "ada@example.com", "hidden": []}),
    )
    .await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    assert_eq!(smtp.wait_delivered(1)[0]["login"], "ada");
    let listed = server.cli_json(&["credential", "list"]).to_string();
    let stored = format!("{detail}{listed}{}", server.logs());
    for secret in [smtp.url().as_str(), "p%40ss", "p@ss word"] {
        assert!(!stored.contains(secret), "`{secret}` leaked:\n{stored}");
    }
}
