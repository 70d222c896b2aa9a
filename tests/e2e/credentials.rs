//! Credentials through the binary: set from stdin or the environment, used by templates,
//! limited to their allowed hosts, and never shown, logged or stored in clear; the master
//! key: generated once, required when credentials exist, rotated.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{redirector, serve_refuses, stories_dir, Server, Sink};

const VENDOR_KEY: &str = "vk_live_9f8e7d6c5b4a3f2e1d0c";
const HOOK_TOKEN: &str = "hook_tok_5a4b3c2d1e0f";

const RELAY: &str = r#"
name: secret-relay
agents:
  - name: inbound
    type: webhook
    auth: {type: token, header: X-Hook-Token, secret: "{{ credential.hook_token }}"}
  - name: deliver
    type: http_request
    from: inbound
    url: "{{ resource.sink_url }}/deliver"
    method: POST
    headers:
      Authorization: "Bearer {{ credential.vendor_key }}"
    body:
      key: "{{ credential.vendor_key }}"
      note: "sent with {{ credential.vendor_key }} for {{ inbound.body.name }}"
  - name: echo
    type: transform
    from: deliver
    mode: message
    payload: {sent: "{{ credential.vendor_key }}", answer: "{{ deliver.body }}"}
  - name: failing
    type: http_request
    from: inbound
    url: "{{ resource.fail_url }}/fail?key={{ credential.vendor_key }}"
    expect: [200]
"#;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every `switchyard.db*` file of a data directory, as raw bytes.
fn database_files(data: &Path) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("switchyard.db"))
        })
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(!files.is_empty(), "no database files in {}", data.display());
    files
}

#[tokio::test]
async fn a_credential_reaches_the_api_but_is_never_stored_shown_or_logged() {
    let stories = stories_dir(&[("relay.yaml", RELAY)]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let sink = Sink::start().await;
    let fail_sink = Sink::start().await;
    // The API echoes the key back, and the failing API puts it in its error body.
    sink.answer(200, &format!(r#"{{"received": "{VENDOR_KEY}"}}"#));
    fail_sink.answer(500, &format!(r#"{{"error": "bad key {VENDOR_KEY}"}}"#));
    let server = Server::start(stories.path(), &data).await;
    ok(&server.cli(&["resource", "set", "sink_url", &sink.url]));
    ok(&server.cli(&["resource", "set", "fail_url", &fail_sink.url]));
    let printed = ok(&server.cli_input(
        &[
            "credential",
            "set",
            "vendor_key",
            "--allowed-host",
            "127.0.0.1",
        ],
        &format!("{VENDOR_KEY}\n"),
        &[],
    ));
    assert!(!printed.contains(VENDOR_KEY));
    ok(&server.cli_input(
        &["credential", "set", "hook_token", "--from-env", "HOOK"],
        "",
        &[("HOOK", HOOK_TOKEN)],
    ));

    // Wrong token: 401 and nothing stored.
    let http = reqwest::Client::new();
    let hook = format!("{}/webhook/secret-relay/inbound", server.url);
    let r = http
        .post(&hook)
        .header("x-hook-token", "wrong")
        .json(&json!({"name": "Mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(server.api("/runs").await["runs"], json!([]));

    let r = http
        .post(&hook)
        .header("x-hook-token", HOOK_TOKEN)
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let ids: Value = r.json().await.unwrap();
    let run_id = ids["run_id"].as_str().unwrap().to_string();

    // The API got the real value, in a header and in the body.
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].headers["authorization"],
        format!("Bearer {VENDOR_KEY}").as_str()
    );
    assert_eq!(got[0].json()["key"], VENDOR_KEY);
    assert_eq!(
        got[0].json()["note"],
        format!("sent with {VENDOR_KEY} for Ada").as_str()
    );
    let failed = fail_sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        failed[0].query.as_deref(),
        Some(format!("key={VENDOR_KEY}").as_str())
    );

    let detail = server.wait_run(&run_id, Duration::from_secs(10)).await;
    assert_eq!(detail["run"]["status"], "failed", "{detail}");
    let text = detail.to_string();
    assert!(
        !text.contains(VENDOR_KEY) && !text.contains(HOOK_TOKEN),
        "{text}"
    );
    let events = detail["events"].as_array().unwrap();
    let by_agent = |a: &str| events.iter().find(|e| e["agent"] == a).unwrap();
    assert_eq!(by_agent("echo")["payload"]["sent"], "[redacted:vendor_key]");
    assert_eq!(
        by_agent("deliver")["payload"]["body"]["received"],
        "[redacted:vendor_key]"
    );
    assert_eq!(
        by_agent("inbound")["payload"]["headers"]["x-hook-token"],
        "[redacted:hook_token]"
    );
    let error = by_agent("failing")["payload"]["error"]["message"]
        .as_str()
        .unwrap();
    assert!(error.contains("[redacted:vendor_key]"), "{error}");
    assert!(detail["run"]["error"]
        .as_str()
        .unwrap()
        .contains("[redacted:vendor_key]"));

    // The CLI never prints it.
    for args in [
        vec!["credential", "list"],
        vec!["credential", "list", "--json"],
        vec!["runs", "show", &run_id],
        vec!["runs", "show", &run_id, "--json"],
        vec!["runs", "list", "--json"],
        vec![
            "events",
            "show",
            by_agent("echo")["id"].as_str().unwrap(),
            "--json",
        ],
    ] {
        let out = ok(&server.cli(&args));
        assert!(
            !out.contains(VENDOR_KEY) && !out.contains(HOOK_TOKEN),
            "{args:?}: {out}"
        );
    }
    let listed = server.cli_json(&["credential", "list"]);
    assert_eq!(listed["credentials"][0]["name"], "hook_token");
    assert_eq!(
        listed["credentials"][1]["allowed_hosts"],
        json!(["127.0.0.1"])
    );

    // Neither the database files (read raw, after the run) nor the log hold it.
    let mut server = server;
    server.kill9();
    for (name, bytes) in database_files(&data) {
        assert!(!contains(&bytes, VENDOR_KEY), "{name} holds the credential");
        assert!(
            !contains(&bytes, HOOK_TOKEN),
            "{name} holds the webhook token"
        );
    }
    let logs = server.logs();
    assert!(
        !logs.contains(VENDOR_KEY) && !logs.contains(HOOK_TOKEN),
        "{logs}"
    );
    assert!(
        logs.contains("[redacted:vendor_key]"),
        "errors are logged redacted"
    );
}

const HOSTS: &str = r#"
name: hosts
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: call
    type: http_request
    from: inbound
    url: "{{ inbound.body.url }}"
    headers:
      X-Key: "{{ credential.github_token }}"
"#;

#[tokio::test]
async fn a_credential_is_refused_for_hosts_it_is_not_allowed_to_reach_even_after_a_redirect() {
    let stories = stories_dir(&[("hosts.yaml", HOSTS)]);
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let port = sink.url.rsplit(':').next().unwrap().to_string();
    let (hop, _task) = redirector(format!("http://localhost:{port}/moved")).await;
    let server = Server::start(stories.path(), &dir.path().join("d")).await;
    ok(&server.cli_input(
        &[
            "credential",
            "set",
            "github_token",
            "--allowed-host",
            "127.0.0.1",
        ],
        "ghp_abcdef123456",
        &[],
    ));
    let run = |url: String| {
        let server = &server;
        async move {
            let (_, ids) = server.post("hosts", "inbound", &json!({"url": url})).await;
            let d = server
                .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(10))
                .await;
            d["events"][1].clone()
        }
    };
    let allowed = run(format!("http://127.0.0.1:{port}/ok")).await;
    assert_eq!(allowed["kind"], "event", "{allowed}");
    assert_eq!(sink.received()[0].headers["x-key"], "ghp_abcdef123456");

    let other = run(format!("http://localhost:{port}/other")).await;
    assert_eq!(
        other["payload"]["error"]["kind"], "credential_host",
        "{other}"
    );
    let message = other["payload"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("github_token") && message.contains("localhost"),
        "{message}"
    );

    let redirected = run(format!("http://127.0.0.1:{hop}/start")).await;
    assert_eq!(
        redirected["payload"]["error"]["kind"], "credential_host",
        "{redirected}"
    );
    assert_eq!(sink.received().len(), 1, "only the allowed call arrived");
}

const USES_KEY: &str = r#"
name: uses-key
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: call
    type: http_request
    from: inbound
    url: "{{ resource.sink_url }}/k"
    headers: {X-Key: "{{ credential.api_key }}"}
"#;

async fn sends_key(server: &Server, sink: &Sink, expect: usize) -> String {
    let (status, ids) = server.post("uses-key", "inbound", &json!({})).await;
    assert_eq!(status, 202);
    let d = server
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(10))
        .await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    let got = sink.wait_for(expect, Duration::from_secs(5)).await;
    got[expect - 1].headers["x-key"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_master_key_file_is_generated_once_required_and_rotated() {
    let stories = stories_dir(&[("uses-key.yaml", USES_KEY)]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let key_file = data.join("master.key");
    let sink = Sink::start().await;
    let mut server = Server::start(stories.path(), &data).await;
    assert!(server.logs().contains("GENERATED A NEW MASTER KEY"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    ok(&server.cli(&["resource", "set", "sink_url", &sink.url]));
    ok(&server.cli_input(&["credential", "set", "api_key"], "first-value-111", &[]));
    assert_eq!(sends_key(&server, &sink, 1).await, "first-value-111");
    let original = std::fs::read(&key_file).unwrap();
    server.kill9();

    // Credentials exist: a missing or a wrong key stops the server from starting.
    std::fs::remove_file(&key_file).unwrap();
    let err = serve_refuses(stories.path(), &data, &[], &[]);
    assert!(
        err.contains("1 credential(s) are stored but no master key"),
        "{err}"
    );
    assert!(
        !key_file.exists(),
        "no new key is generated while credentials exist"
    );
    std::fs::write(&key_file, "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMTI=\n").unwrap();
    let err = serve_refuses(stories.path(), &data, &[], &[]);
    assert!(
        err.contains("is not the key that encrypted credential `api_key`"),
        "{err}"
    );
    std::fs::write(&key_file, &original).unwrap();

    // Rotation replaces the key file; the credential still works after a restart.
    server.restart().await;
    let before = server.cli_json(&["credential", "list"])["credentials"][0]["key_id"].clone();
    let rotated = server.cli_json(&["credential", "rotate-key"]);
    assert_eq!(rotated["credentials"], 1);
    assert_eq!(rotated["old_key_id"], before);
    assert_ne!(rotated["key_id"], before);
    assert_ne!(std::fs::read(&key_file).unwrap(), original);
    assert_eq!(sends_key(&server, &sink, 2).await, "first-value-111");
    server.restart().await;
    assert_eq!(
        server.cli_json(&["credential", "list"])["credentials"][0]["key_id"],
        rotated["key_id"]
    );
    assert_eq!(sends_key(&server, &sink, 3).await, "first-value-111");
    ok(&server.cli(&["credential", "delete", "api_key"]));
    assert_eq!(
        server.cli_json(&["credential", "list"])["credentials"],
        json!([])
    );
}

#[tokio::test]
async fn a_key_from_the_environment_is_rotated_with_a_key_the_operator_gives() {
    const OLD: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const NEW: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    let stories = stories_dir(&[("uses-key.yaml", USES_KEY)]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let sink = Sink::start().await;
    let env = [("SWITCHYARD_MASTER_KEY", OLD)];
    let mut server = Server::launch(stories.path(), &data, &[], false, &env).await;
    assert!(
        !data.join("master.key").exists(),
        "no key file when the key is given"
    );
    ok(&server.cli(&["resource", "set", "sink_url", &sink.url]));
    ok(&server.cli_input(&["credential", "set", "api_key"], "env-value-222", &[]));

    let out = server.cli(&["credential", "rotate-key"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--new-key-from-env"));
    ok(&server.cli_input(
        &["credential", "rotate-key", "--new-key-from-env", "NEW_KEY"],
        "",
        &[("NEW_KEY", NEW)],
    ));
    assert_eq!(sends_key(&server, &sink, 1).await, "env-value-222");
    server.kill9();

    let err = serve_refuses(stories.path(), &data, &[], &env);
    assert!(err.contains("is not the key that encrypted"), "{err}");
    let server = Server::launch(
        stories.path(),
        &data,
        &[],
        false,
        &[("SWITCHYARD_MASTER_KEY", NEW)],
    )
    .await;
    assert_eq!(sends_key(&server, &sink, 2).await, "env-value-222");
}
