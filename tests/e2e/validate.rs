//! `switchyard validate`: every problem as file:line:col with a hint; exit 1.

use std::process::Command;

use crate::support::{bin, stories_dir};

const BAD: &str = r#"name: broken
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: shape
    type: transfrom
    from: inbound
  - name: call
    type: http_request
    from: inbound
    url: "{{ inbound.body.url"
    metod: POST
  - name: call
    type: trigger
    from: nowhere
  - name: waiter
    type: http_request
    from: inbound
    url: "http://example.com"
    timeout: 5 minutes
  - name: a
    type: trigger
    from: b
  - name: b
    type: trigger
    from: a
"#;

fn validate(dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(bin())
        .arg("validate")
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn every_problem_is_reported_at_its_line_and_column() {
    let dir = stories_dir(&[("broken.yaml", BAD)]);
    let (code, text) = validate(dir.path());
    assert_eq!(code, 1, "{text}");
    let f = dir.path().join("broken.yaml").display().to_string();
    let expect = [
        (
            format!("{f}:7:11: error: unknown agent type `transfrom`"),
            Some("did you mean `transform`?"),
        ),
        (format!("{f}:12:10: error: bad template"), None),
        (
            format!("{f}:13:5: error: unknown option `metod`"),
            Some("did you mean `method`?"),
        ),
        (
            format!("{f}:14:11: error: duplicate agent name `call`"),
            None,
        ),
        (
            format!("{f}:21:14: error: invalid duration \"5 minutes\""),
            None,
        ),
        (
            format!("{f}:24:11: error: agents form a cycle: a → b → a"),
            None,
        ),
    ];
    for (line, hint) in &expect {
        assert!(text.contains(line.as_str()), "missing `{line}` in:\n{text}");
        if let Some(h) = hint {
            assert!(text.contains(h), "missing hint `{h}` in:\n{text}");
        }
    }
}

#[test]
fn graph_problems_are_reported() {
    let story = r#"name: graph
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: first
    type: trigger
    from: inbound
  - name: first
    type: trigger
    from: inbound
  - name: lost
    type: trigger
    from: inbond
"#;
    let cycle = r#"name: cycle
agents:
  - name: a
    type: trigger
    from: b
  - name: b
    type: trigger
    from: a
"#;
    let dir = stories_dir(&[("graph.yaml", story), ("cycle.yaml", cycle)]);
    let (code, text) = validate(dir.path());
    assert_eq!(code, 1);
    let g = dir.path().join("graph.yaml").display().to_string();
    let c = dir.path().join("cycle.yaml").display().to_string();
    assert!(
        text.contains(&format!("{g}:9:11: error: duplicate agent name `first`")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{g}:14:11: error: `from` names `inbond`, which is not an agent of this story"
        )),
        "{text}"
    );
    assert!(text.contains("did you mean `inbound`?"), "{text}");
    assert!(
        text.contains(&format!("{c}:")) && text.contains("agents form a cycle: a → b → a"),
        "{text}"
    );
}

#[test]
fn yaml_syntax_errors_have_positions_and_good_files_pass() {
    let dir = stories_dir(&[("syntax.yaml", "name: x\nagents:\n  - name: [oops\n")]);
    let (code, text) = validate(dir.path());
    assert_eq!(code, 1);
    let f = dir.path().join("syntax.yaml").display().to_string();
    assert!(
        text.contains(&format!("{f}:")) && text.contains("YAML syntax error"),
        "{text}"
    );

    let good = stories_dir(&[(
        "ok.yaml",
        "name: ok\nagents:\n  - name: inbound\n    type: webhook\n    auth: none\n",
    )]);
    let (code, text) = validate(good.path());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("0 error(s)"), "{text}");
}

#[test]
fn a_webhook_without_auth_is_warned_about() {
    let dir = stories_dir(&[(
        "open.yaml",
        "name: open\nagents:\n  - name: inbound\n    type: webhook\n",
    )]);
    let (code, text) = validate(dir.path());
    assert_eq!(code, 0, "a warning is not an error: {text}");
    assert!(text.contains("warning: webhook has no `auth`"), "{text}");
}

#[test]
fn the_shipped_stories_validate() {
    // With the shipped packs, whose actions the stories use (as CI runs it).
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new(bin())
        .arg("validate")
        .arg(format!("{root}/stories"))
        .arg(format!("{root}/packs"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 error(s), 0 warning(s)"), "{text}");
}

#[test]
fn schema_is_json_schema_of_every_agent_type() {
    let out = Command::new(bin()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let variants = schema["properties"]["agents"]["items"]["oneOf"]
        .as_array()
        .unwrap();
    let types: Vec<&str> = variants
        .iter()
        .map(|v| v["properties"]["type"]["const"].as_str().unwrap())
        .collect();
    for t in ["webhook", "http_request", "transform", "trigger"] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let http = variants
        .iter()
        .find(|v| v["title"] == "http_request")
        .unwrap();
    assert_eq!(http["additionalProperties"], false);
    assert!(http["properties"]["retry"].is_object() && http["properties"]["url"].is_object());
}
