use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::testing::{build, emitted, problems, run};
use crate::ServicesConfig;

fn allowed() -> ServicesConfig {
    ServicesConfig {
        allow_commands: true,
        ..ServicesConfig::default()
    }
}

async fn exec(
    options: Value,
    input: Value,
    config: ServicesConfig,
) -> Result<Value, crate::AgentError> {
    let agent = build("command", options).expect("builds");
    run(agent.as_ref(), input, config, &HashMap::new())
        .await
        .map(|o| emitted(Ok(o)).remove(0))
}

#[tokio::test]
async fn refused_unless_the_server_allows_commands() {
    let e = exec(
        json!({"argv": ["true"]}),
        json!({}),
        ServicesConfig::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, "commands_disabled");
    assert!(e.message.contains("--allow-commands"), "{}", e.message);
    assert!(!e.retryable);
}

#[tokio::test]
async fn runs_with_templated_argv_stdin_env_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let out = exec(
        json!({
            "argv": ["sh", "-c", "echo \"$1 $GREETING\"; pwd; cat; echo; env", "sh", "{{ inbound.name }}"],
            "env": {"GREETING": "hello {{ inbound.name }}"},
            "stdin": "{{ inbound }}",
            "cwd": dir.path().to_str().unwrap(),
        }),
        json!({"name": "Ada"}),
        allowed(),
    )
    .await
    .unwrap();
    assert_eq!(out["exit_code"], 0);
    let stdout = out["stdout"].as_str().unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("Ada hello Ada"));
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(lines.next(), Some(cwd.to_str().unwrap()));
    assert_eq!(
        lines.next(),
        Some(r#"{"name":"Ada"}"#),
        "stdin is the rendered template"
    );
    // The server's environment is not inherited: only PATH, HOME, LANG and `env` (cargo
    // gives this test process CARGO_* variables; the child must not see them).
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(!stdout.contains("CARGO_"), "{stdout}");
    let names: Vec<&str> = lines.filter_map(|l| l.split('=').next()).collect();
    for n in &names {
        assert!(
            ["PATH", "HOME", "LANG", "GREETING", "PWD", "SHLVL", "_", "OLDPWD"].contains(n),
            "unexpected variable {n} in {names:?}"
        );
    }
    assert_eq!(out["stderr"], "");
    assert!(out.get("truncated").is_none());
}

#[tokio::test]
async fn a_non_zero_exit_is_an_error_with_the_tail_of_stderr_unless_expected() {
    let argv = json!(["sh", "-c", "echo partial; echo 'disk full' >&2; exit 3"]);
    let e = exec(json!({"argv": argv}), json!({}), allowed())
        .await
        .unwrap_err();
    assert_eq!(e.kind, "exit_status");
    assert!(e.message.contains("exited with 3"), "{}", e.message);
    assert!(e.message.ends_with("disk full"), "{}", e.message);

    let out = exec(
        json!({"argv": argv, "expect_exit": [0, 3]}),
        json!({}),
        allowed(),
    )
    .await
    .unwrap();
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["stdout"], "partial\n");
    assert_eq!(out["stderr"], "disk full\n");

    let e = exec(
        json!({"argv": ["true"], "expect_exit": [1]}),
        json!({}),
        allowed(),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("exited with 0"), "{}", e.message);
}

#[tokio::test]
async fn output_is_capped_and_the_event_says_so() {
    let config = ServicesConfig {
        max_command_output: 1000,
        ..allowed()
    };
    // 300 000 bytes on stdout: far more than the pipe buffer, so the child only finishes if
    // the reader keeps draining past the limit.
    let out = exec(
        json!({"argv": ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo small >&2"]}),
        json!({}),
        config,
    )
    .await
    .unwrap();
    assert_eq!(out["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(out["stderr"], "small\n");
    assert_eq!(
        out["truncated"],
        json!({"stdout": {"kept_bytes": 1000, "total_bytes": 300000}})
    );
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let e = exec(json!({"argv": ["/nonexistent/prog"]}), json!({}), allowed())
        .await
        .unwrap_err();
    assert_eq!(e.kind, "spawn");
    assert!(e.message.contains("/nonexistent/prog"), "{}", e.message);
}

fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie has ended; it only waits for its parent to read its status.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test]
async fn dropping_the_execution_kills_the_child_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let agent = build(
        "command",
        json!({"argv": ["sh", "-c", "sleep 30 & echo $$ $! > \"$1\"; wait", "sh", pids.to_str().unwrap()]}),
    )
    .unwrap();
    let r = tokio::time::timeout(
        Duration::from_millis(1000),
        run(agent.as_ref(), json!({}), allowed(), &HashMap::new()),
    )
    .await;
    assert!(r.is_err(), "the command should still be running");
    let text = std::fs::read_to_string(&pids).unwrap();
    let ids: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(ids.len(), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ids.iter().any(|p| alive(p)) {
        assert!(std::time::Instant::now() < deadline, "still alive: {ids:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn validate_refuses_a_shell_string_and_an_empty_argv() {
    let p = problems("command", json!({"argv": "rm -rf /tmp/x"}));
    assert_eq!(p[0].path, "/argv");
    assert!(p[0].message.contains("not a shell string"), "{:?}", p);
    assert!(
        p[0].hint.as_deref().unwrap().contains("[rm, -rf, /tmp/x]"),
        "{:?}",
        p
    );
    let p = problems("command", json!({"argv": []}));
    assert!(p[0].message.contains("empty"), "{:?}", p);
    let p = problems("command", json!({"argv": ["echo", {"x": 1}]}));
    assert_eq!(p[0].path, "/argv/1");
    let p = problems("command", json!({}));
    assert!(p[0].message.contains("missing field `argv`"), "{:?}", p);
    let p = problems("command", json!({"argv": ["echo"], "env": {"A=B": "x"}}));
    assert_eq!(p[0].path, "/env/A=B");
}
