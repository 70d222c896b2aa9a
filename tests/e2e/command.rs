//! The `command` agent through the binary: refused without `--allow-commands`, run with it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{stories_dir, Server};

const RUNNER: &str = r#"
name: runner
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: exec
    type: command
    from: inbound
    argv: [sh, -c, 'printf "%s|%s|%s|" "$1" "$GREETING" "${SWITCHYARD_MASTER_KEY:-unset}"; pwd; cat', sh, "{{ inbound.body.name }}"]
    env: {GREETING: "hi {{ inbound.body.name }}"}
    cwd: "{{ inbound.body.dir }}"
    stdin: "{{ inbound.body.input }}"
"#;

const EXITS: &str = r#"
name: exits
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: tolerant
    type: command
    from: inbound
    argv: [sh, -c, "echo out; echo 'no such branch' >&2; exit 3"]
    expect_exit: [0, 3]
  - name: strict
    type: command
    from: inbound
    argv: [sh, -c, "echo out; echo 'no such branch' >&2; exit 3"]
  - name: noted
    type: transform
    from: strict.error
    mode: message
    payload: {kind: "{{ strict.error.kind }}", message: "{{ strict.error.message }}"}
"#;

const BIG: &str = r#"
name: big
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: flood
    type: command
    from: inbound
    argv: [sh, -c, "head -c 3000000 /dev/zero | tr '\\0' x"]
"#;

const SLOW: &str = r#"
name: slow
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: hang
    type: command
    from: inbound
    timeout: 1s
    argv: [sh, -c, 'sleep 60 & echo $$ $! > "$1"; wait', sh, "{{ inbound.body.pidfile }}"]
"#;

fn event<'a>(detail: &'a Value, agent: &str) -> &'a Value {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["agent"] == agent)
        .unwrap_or_else(|| panic!("no event of {agent}: {detail}"))
}

async fn run(server: &Server, story: &str, body: Value) -> Value {
    let (status, ids) = server.post(story, "inbound", &body).await;
    assert_eq!(status, 202, "{ids}");
    server
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(20))
        .await
}

#[tokio::test]
async fn a_command_is_refused_unless_the_server_allows_commands() {
    let stories = stories_dir(&[("runner.yaml", RUNNER)]);
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body = json!({"name": "Ada", "dir": dir.path(), "input": "x"});

    let server = Server::start(stories.path(), &data.path().join("d")).await;
    let detail = run(&server, "runner", body.clone()).await;
    assert_eq!(detail["run"]["status"], "failed", "{detail}");
    let error = &event(&detail, "exec")["payload"]["error"];
    assert_eq!(error["kind"], "commands_disabled");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("--allow-commands"),
        "{error}"
    );
    drop(server);

    let server = Server::start_with_env(
        stories.path(),
        &data.path().join("d2"),
        &["--allow-commands"],
        // The master key is the secret a server's environment holds.
        &[(
            "SWITCHYARD_MASTER_KEY",
            "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
        )],
    )
    .await;
    let detail = run(&server, "runner", body).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let out = &event(&detail, "exec")["payload"];
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        out["stdout"],
        format!("Ada|hi Ada|unset|{}\nx", cwd.display()),
        "argv, env, cwd and stdin are rendered; the server's environment is not passed on"
    );
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["stderr"], "");
}

#[tokio::test]
async fn exit_codes_output_limits_and_timeouts() {
    let stories = stories_dir(&[
        ("exits.yaml", EXITS),
        ("big.yaml", BIG),
        ("slow.yaml", SLOW),
    ]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        stories.path(),
        &data.path().join("d"),
        &["--allow-commands"],
    )
    .await;

    // expect_exit lists 3: success; without it, 3 is an error event with stderr's tail.
    let detail = run(&server, "exits", json!({})).await;
    assert_eq!(
        event(&detail, "tolerant")["payload"],
        json!({"exit_code": 3, "stdout": "out\n", "stderr": "no such branch\n"})
    );
    let noted = &event(&detail, "noted")["payload"];
    assert_eq!(noted["kind"], "exit_status");
    assert_eq!(noted["message"], "`sh` exited with 3: no such branch");

    // 3 MB on stdout: 256 KiB kept, and the event says how much there was.
    let detail = run(&server, "big", json!({})).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let out = &event(&detail, "flood")["payload"];
    assert_eq!(out["stdout"].as_str().unwrap().len(), 256 * 1024);
    assert_eq!(
        out["truncated"],
        json!({"stdout": {"kept_bytes": 262144, "total_bytes": 3000000}})
    );

    // The agent's timeout ends the execution and kills the program and its children.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let started = Instant::now();
    let detail = run(&server, "slow", json!({"pidfile": pidfile})).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(detail["run"]["status"], "failed");
    assert_eq!(
        event(&detail, "hang")["payload"]["error"]["kind"],
        "timeout"
    );
    let pids = std::fs::read_to_string(&pidfile).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    for pid in pids.split_whitespace() {
        while alive(pid) {
            assert!(
                Instant::now() < deadline,
                "process {pid} survived the timeout"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie has ended; it only waits for its parent to collect it.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}
