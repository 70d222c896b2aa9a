//! API tokens, roles and the audit log through the binary.

use serde_json::{json, Value};

use crate::support::{serve_refuses, stories_dir, Server};

const HELLO: &str = r#"
name: hello
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload: {hi: "{{ inbound.body.name }}"}
"#;

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::support::bin())
        .args(args)
        .env_remove("SWITCHYARD_TOKEN")
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `token create --data DIR --json` on a stopped server: the first admin token.
fn first_admin(data: &std::path::Path) -> String {
    let out = run(&[
        "token",
        "create",
        "--role",
        "admin",
        "--name",
        "root",
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["role"], "admin");
    v["token"].as_str().unwrap().to_string()
}

async fn call(server: &Server, token: Option<&str>, method: &str, path: &str) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1{path}", server.url);
    let mut req = http.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if method == "PUT" || method == "POST" {
        let body = if path.starts_with("/tokens") {
            json!({"role": "viewer"})
        } else {
            json!({"value": "v", "name": "x"})
        };
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_role_is_refused_what_it_may_not_do() {
    let stories = stories_dir(&[("hello.yaml", HELLO)]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let admin = first_admin(&data);
    let mut server = Server::start(stories.path(), &data).await;
    assert!(server.logs().contains("the API requires a bearer token"));

    // No token, a bogus token: 401 with the JSON error shape, through the CLI too.
    let (status, body) = call(&server, None, "GET", "/runs").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(call(&server, Some("sy_bogus"), "GET", "/runs").await.0, 401);
    let out = server.cli(&["runs", "list"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("requires an API token"),
        "{}",
        stderr(&out)
    );

    server.token = Some(admin.clone());
    let viewer = server.cli_json(&["token", "create", "--role", "viewer", "--name", "dash"]);
    let operator = server.cli_json(&["token", "create", "--role", "operator", "--name", "ops"]);
    let viewer = viewer["token"].as_str().unwrap().to_string();
    let operator = operator["token"].as_str().unwrap().to_string();
    let ids = server.cli_json(&["trigger", "hello", "inbound", "--data", r#"{"name":"Ada"}"#]);
    let event = ids["event_id"].as_str().unwrap().to_string();
    let replay = format!("/events/{event}/replay");

    // (method, path, least role that may)
    let table: &[(&str, &str, &str)] = &[
        ("GET", "/runs", "viewer"),
        ("GET", "/stories", "viewer"),
        ("GET", "/resources", "viewer"),
        ("POST", "/stories/hello/agents/inbound/trigger", "operator"),
        ("POST", &replay, "operator"),
        ("POST", "/stories/hello/disable", "operator"),
        ("POST", "/stories/hello/enable", "operator"),
        ("GET", "/whoami", "viewer"),
        ("PUT", "/resources/r1", "admin"),
        ("DELETE", "/resources/r1", "admin"),
        ("GET", "/credentials", "admin"),
        ("PUT", "/credentials/c1", "admin"),
        ("GET", "/tokens", "admin"),
        ("POST", "/tokens", "admin"),
        ("GET", "/audit", "admin"),
    ];
    let rank = |r: &str| {
        ["viewer", "operator", "admin"]
            .iter()
            .position(|x| *x == r)
            .unwrap()
    };
    for (method, path, least) in table {
        for (role, token) in [
            ("viewer", &viewer),
            ("operator", &operator),
            ("admin", &admin),
        ] {
            let (status, body) = call(&server, Some(token), method, path).await;
            if rank(role) < rank(least) {
                assert_eq!(status, 403, "{role} {method} {path}: {body}");
                assert_eq!(body["error"]["code"], "forbidden");
                assert!(body["error"]["message"].as_str().unwrap().contains(least));
            } else {
                assert!(
                    (200..300).contains(&status),
                    "{role} {method} {path}: {status} {body}"
                );
            }
        }
    }

    // The CLI says so too.
    for (token, args) in [
        (&viewer, vec!["trigger", "hello", "inbound", "--data", "{}"]),
        (&viewer, vec!["events", "replay", &event]),
        (&operator, vec!["resource", "set", "x", "y"]),
        (&operator, vec!["credential", "list"]),
        (&operator, vec!["token", "create", "--role", "admin"]),
        (&operator, vec!["audit", "list"]),
    ] {
        server.token = Some(token.clone());
        let out = server.cli(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("(HTTP 403)"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    server.token = Some(operator.clone());
    server.cli_json(&["trigger", "hello", "inbound", "--data", "{}"]);

    // Revoked tokens are refused; token lists never show tokens.
    server.token = Some(admin.clone());
    let out = server.cli(&["token", "revoke", "dash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(call(&server, Some(&viewer), "GET", "/runs").await.0, 401);
    let listed = server.cli_json(&["token", "list"]);
    let text = listed.to_string();
    assert!(!text.contains(&admin) && !text.contains(&viewer) && !text.contains("hash"));
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 4);

    // The audit log names who did what, refusals included.
    let audit = server.cli_json(&["audit", "list"]);
    let entries = audit["entries"].as_array().unwrap();
    let find = |action: &str, who: &str, outcome: &str| {
        entries
            .iter()
            .any(|e| e["action"] == action && e["token_name"] == who && e["outcome"] == outcome)
    };
    assert!(find("token.create", "root", "ok"), "{audit}");
    assert!(find("story.trigger", "ops", "ok"), "{audit}");
    assert!(find("story.trigger", "dash", "denied (403)"), "{audit}");
    assert!(find("resource.set", "ops", "denied (403)"), "{audit}");
    assert!(find("resource.set", "root", "ok"), "{audit}");
    assert!(find("token.revoke", "root", "ok"), "{audit}");
    assert!(entries
        .iter()
        .any(|e| e["action"] == "story.trigger" && e["target"] == "hello/inbound"));
    assert!(
        entries.iter().all(|e| e["action"] != "GET /runs"),
        "reads are not audited"
    );
    let runs = server.cli_json(&["runs", "list"]);
    assert!(runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["started_by"] == "token:ops"));

    // A running server holds the data directory: direct writes are refused clearly.
    let out = run(&[
        "token",
        "create",
        "--role",
        "admin",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("in use by a running server"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn an_open_loopback_server_says_so_and_requires_tokens_once_one_exists() {
    let stories = stories_dir(&[("hello.yaml", HELLO)]);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(stories.path(), &dir.path().join("d")).await;
    assert!(
        server.logs().contains("THE API IS OPEN"),
        "{}",
        server.logs()
    );
    server.cli_json(&["runs", "list"]);
    let created = server.cli_json(&["token", "create", "--role", "admin", "--name", "first"]);
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("sy_") && token.len() > 40, "{token}");
    let out = server.cli(&["runs", "list"]);
    assert!(
        !out.status.success(),
        "anonymous calls stop once a token exists"
    );
    server.token = Some(token);
    server.cli_json(&["runs", "list"]);
    // Human output prints the token alone on stdout.
    let out = server.cli(&["token", "create", "--role", "viewer"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.trim().starts_with("sy_") && printed.lines().count() == 1,
        "{printed}"
    );
    assert!(stderr(&out).contains("not shown again"));
}

#[tokio::test]
async fn serving_beyond_loopback_requires_a_token() {
    let stories = stories_dir(&[("hello.yaml", HELLO)]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let port = crate::support::free_port();
    let listen = format!("0.0.0.0:{port}");
    let err = serve_refuses(stories.path(), &data, &["--listen", &listen], &[]);
    assert!(err.contains("requires API tokens"), "{err}");
    assert!(err.contains("token create --role admin"), "{err}");
}
