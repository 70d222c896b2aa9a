//! Credentials, API tokens and the audit log on the PostgreSQL store, through the binary:
//! a credential used by a story is never in the database in clear (checked on a `pg_dump`
//! of it); the first admin token is written with `token create --database-url` while the
//! server runs, and closes the open API; a server without the master key refuses to start.
//!
//! These need PostgreSQL (see tests/e2e/postgres.rs).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_store::postgres::testing::{server_url, TestDatabase};

use crate::support::{bin, serve_refuses, stories_dir, Server, Sink};

const SECRET: &str = "pg_live_7c6b5a4f3e2d1c0b";

const STORY: &str = r#"
name: vendor
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: call
    type: http_request
    from: inbound
    url: "{{ resource.sink_url }}/call"
    method: POST
    headers:
      Authorization: "Bearer {{ credential.vendor_key }}"
    body: {key: "{{ credential.vendor_key }}", n: "{{ inbound.body.n }}"}
  - name: note
    type: transform
    from: call
    mode: message
    payload: {sent_with: "{{ credential.vendor_key }}"}
"#;

/// `pg_dump` of Debian's PostgreSQL (tests/services/postgres.sh installs it).
fn pg_dump() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok())
                .map(|d| d.path().join("bin/pg_dump"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .expect("pg_dump is needed: apt-get install postgresql (tests/services/postgres.sh)")
}

/// The whole database as SQL text (schema and data).
fn dump(url: &str) -> String {
    let out = Command::new(pg_dump())
        .arg("--dbname")
        .arg(url)
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_tokens_and_audit_on_postgresql() {
    let Some(server_url) =
        server_url("postgres_security::credentials_tokens_and_audit_on_postgresql")
    else {
        return;
    };
    let db = TestDatabase::create(&server_url)
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
    let stories = stories_dir(&[("vendor.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let mut server = Server::start_with(
        stories.path(),
        &data.path().join("d"),
        &["--database-url", db.url()],
    )
    .await;
    assert!(
        server.logs().contains("GENERATED A NEW MASTER KEY"),
        "{}",
        server.logs()
    );
    cli_ok(server.cli(&["resource", "set", "sink_url", &sink.url]));
    server.set_credential("vendor_key", SECRET, &["127.0.0.1"]);

    let (status, ids) = server.post("vendor", "inbound", &json!({"n": 1})).await;
    assert_eq!(status, 202, "{ids}");
    let detail = server
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(20))
        .await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        got[0].headers["authorization"],
        format!("Bearer {SECRET}"),
        "the request carries the value"
    );
    assert_eq!(got[0].json()["key"], SECRET);
    let note = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["agent"] == "note")
        .expect("note event");
    assert_eq!(note["payload"]["sent_with"], "[redacted:vendor_key]");

    // The first admin token, written to the database while the server runs: the open API
    // closes within seconds.
    let created: Value = serde_json::from_str(&cli_ok(
        Command::new(bin())
            .args(["token", "create", "--role", "admin", "--name", "ops"])
            .args(["--database-url", db.url(), "--json"])
            .env_remove("SWITCHYARD_TOKEN")
            .output()
            .expect("run switchyard"),
    ))
    .expect("token JSON");
    let admin = created["token"].as_str().expect("token").to_string();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .get(format!("{}/api/v1/runs", server.url))
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the API stayed open after a token was created: {}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.token = Some(admin.clone());
    let viewer: Value = server.cli_json(&["token", "create", "--role", "viewer", "--name", "dash"]);
    let viewer = viewer["token"].as_str().unwrap().to_string();
    let listed = http
        .get(format!("{}/api/v1/credentials", server.url))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 403, "a viewer may not list credentials");
    let listed = server.cli_json(&["credential", "list"]);
    assert_eq!(listed["credentials"][0]["name"], "vendor_key");
    assert_eq!(
        listed["credentials"][0]["allowed_hosts"],
        json!(["127.0.0.1"])
    );
    let audit = server.cli_json(&["audit", "list"]);
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["action"] == "token.create"
            && e["token_name"] == "ops"
            && e["outcome"] == "ok"),
        "the viewer's token was made by `ops`: {audit}"
    );
    assert!(
        entries.iter().any(|e| e["action"] == "credential.set"
            && e["target"] == "vendor_key"
            && e["outcome"] == "ok"),
        "{audit}"
    );
    let listed_tokens = server.cli_json(&["token", "list"]);
    assert_eq!(
        listed_tokens["tokens"].as_array().map(Vec::len),
        Some(2),
        "{listed_tokens}"
    );

    // What PostgreSQL holds: ciphertexts and redacted payloads, never the value or a token.
    let sql = dump(db.url());
    assert!(sql.contains("credentials"), "the dump has the table");
    assert!(sql.contains("[redacted:vendor_key]"), "redacted payloads");
    for secret in [SECRET, admin.as_str(), viewer.as_str()] {
        assert!(!sql.contains(secret), "`{secret}` is in the database");
    }

    // Restarted with its key file: the credential still decrypts and is used.
    server.restart().await;
    let (status, ids) = server.post("vendor", "inbound", &json!({"n": 2})).await;
    assert_eq!(status, 202, "{ids}");
    let detail = server
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(20))
        .await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    assert_eq!(
        sink.wait_for(2, Duration::from_secs(5)).await[1].json()["key"],
        SECRET
    );
    drop(server);

    // Another server on the same database without the master key refuses to start.
    let elsewhere = tempfile::tempdir().unwrap();
    let said = serve_refuses(
        stories.path(),
        elsewhere.path(),
        &["--database-url", db.url()],
        &[],
    );
    assert!(
        said.contains("credential(s) are stored but no master key was given"),
        "{said}"
    );
    assert!(!said.contains(SECRET));
    db.drop_database().await.unwrap();
}
