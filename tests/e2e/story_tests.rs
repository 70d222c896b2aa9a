//! `switchyard test` (story tests, offline), `validate` of packs at file:line:col, and
//! `pack import-scripts`, through the binary.

use std::process::{Command, Output};

use crate::actions::shipped_packs;
use crate::support::{bin, stories_dir};

fn run(args: &[&str], cwd: Option<&std::path::Path>) -> (i32, String) {
    let mut c = Command::new(bin());
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out: Output = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const RELAY: &str = r#"name: relay
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload:
      n: "{{ inbound.body.count + 1 }}"
  - name: deliver
    type: http_request
    from: shape
    url: "{{ resource.api }}/things"
    method: POST
    body: "{{ shape }}"
  - name: report
    type: action
    from: deliver
    uses: core.echo
    with:
      message: "created {{ deliver.body.id }}"
"#;

const RELAY_TEST: &str = r#"resources: {api: "https://api.test"}
cases:
  - name: posts the next number and reports the id
    event: {agent: inbound, body: {count: 2}}
    responses:
      deliver: {status: 201, body: {id: 7, n: 3}}
      report: {result: {message: created 7}}
    expect:
      deliver: {status: 201, body: {n: 3}}
      report: {message: created 7}
  - name: a wrong expectation
    event: {agent: inbound, body: {count: 3}}
    responses:
      deliver: {status: 201, body: {id: 8, n: 4}}
      report: {result: {}}
    expect:
      deliver: {body: {n: 3}}
"#;

#[test]
fn a_failing_story_test_says_which_agent_which_field_expected_and_got() {
    let dir = stories_dir(&[("relay.yaml", RELAY), ("relay.test.yaml", RELAY_TEST)]);
    let packs = shipped_packs();
    let (code, out) = run(
        &[
            "test",
            dir.path().to_str().unwrap(),
            "--packs",
            packs.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ok   posts the next number and reports the id"),
        "{out}"
    );
    assert!(out.contains("FAIL a wrong expectation"), "{out}");
    assert!(
        out.contains("agent `deliver`, field `body.n`: expected 3, got 4"),
        "{out}"
    );
    assert!(
        out.contains("2 case(s) in 1 file(s): 1 passed, 1 failed"),
        "{out}"
    );

    let (code, out) = run(
        &[
            "test",
            dir.path().to_str().unwrap(),
            "--packs",
            packs.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failure = &v["files"][0]["cases"][1]["failures"][0];
    assert_eq!(failure["agent"], "deliver");
    assert_eq!(failure["field"], "body.n");
    assert_eq!(failure["expected"], 3);
    assert_eq!(failure["got"], 4);
}

#[test]
fn the_shipped_story_tests_pass_and_the_shipped_packs_validate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (code, out) = run(&["test", "stories"], Some(&root));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 failed"), "{out}");
    let (code, out) = run(&["validate", "stories", "packs"], Some(&root));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 error(s)"), "{out}");
}

#[test]
fn pack_problems_are_reported_at_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join("demo");
    std::fs::create_dir_all(pack.join("actions")).unwrap();
    std::fs::write(pack.join("pack.yaml"), "name: demo\nversion: \"1\"\n").unwrap();
    std::fs::write(
        pack.join("actions/call.yaml"),
        "parameters:\n  count:\n    type: int\n    requried: true\nrun:\n  type: http_request\n  url: \"{{ params.count\"\n",
    )
    .unwrap();
    let story = "name: uses\nagents:\n  - name: inbound\n    type: webhook\n    auth: none\n  - name: echo\n    type: action\n    from: inbound\n    uses: core.echo\n    with:\n      mesage: hi\n";
    let stories = stories_dir(&[("uses.yaml", story)]);
    let (code, out) = run(&["validate", dir.path().to_str().unwrap()], None);
    assert_eq!(code, 1, "{out}");
    let f = pack.join("actions/call.yaml").display().to_string();
    for line in [
        format!("{f}:3:11: error: unknown parameter type `int`\n  hint: did you mean `integer`?"),
        format!("{f}:4:5: error: unknown field `requried`\n  hint: did you mean `required`?"),
        format!("{f}:7:8: error: bad template"),
    ] {
        assert!(out.contains(&line), "missing `{line}` in:\n{out}");
    }

    let packs = shipped_packs();
    let (code, out) = run(
        &[
            "validate",
            stories.path().to_str().unwrap(),
            "--packs",
            packs.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 1, "{out}");
    let s = stories.path().join("uses.yaml").display().to_string();
    assert!(
        out.contains(&format!(
            "{s}:10:5: error: missing required parameter `message`"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{s}:11:7: error: unknown parameter `mesage` for action `core.echo`\n  hint: did you mean `message`?"
        )),
        "{out}"
    );
}

#[test]
fn import_scripts_writes_a_pack_from_header_comments() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let script = scripts.join("rotate-logs.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n# @description Rotates a service's logs.\n# @param service string required The service.\n# @param keep integer default=7 Files to keep.\necho \"$PARAM_SERVICE $PARAM_KEEP\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(scripts.join("notes.txt"), "not executable").unwrap();
    let (code, out) = run(
        &["pack", "import-scripts", "scripts", "--pack", "ops"],
        Some(dir.path()),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ops.rotate_logs  (2 parameter(s))"), "{out}");
    let action =
        std::fs::read_to_string(dir.path().join("packs/ops/actions/rotate_logs.yaml")).unwrap();
    assert!(action.contains("type: command"), "{action}");
    assert!(
        action.contains(r#"PARAM_KEEP: "{{ params.keep | default('') }}""#),
        "{action}"
    );
    assert!(dir
        .path()
        .join("packs/ops/scripts/rotate-logs.sh")
        .is_file());
    assert!(!dir.path().join("packs/ops/actions/notes.yaml").exists());
    let (code, out) = run(&["validate", "packs"], Some(dir.path()));
    assert_eq!(code, 0, "{out}");
    // A second import does not overwrite without --force.
    let (code, out) = run(
        &["pack", "import-scripts", "scripts", "--pack", "ops"],
        Some(dir.path()),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--force"), "{out}");
}
