use std::path::Path;

use super::*;
use crate::load_str_with;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const PACK: &str = "name: demo
version: \"1.0.0\"
description: A demo pack
credentials:
  demo_token: An API token
resources:
  demo_api_url:
    default: https://api.demo.example
    description: Base URL
";

const CREATE: &str = r#"name: create
description: POST /v1/things
parameters:
  name:
    type: string
    required: true
    description: The thing's name.
  count:
    type: integer
    default: 1
  tags:
    type: array
run:
  type: http_request
  method: POST
  url: "{{ resource.demo_api_url }}/v1/things"
  auth:
    bearer: "{{ credential.demo_token }}"
  body:
    name: "{{ params.name }}"
    count: "{{ params.count }}"
"#;

fn demo_packs() -> (tempfile::TempDir, Packs) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "demo/pack.yaml", PACK);
    write(dir.path(), "demo/actions/create.yaml", CREATE);
    let (packs, diagnostics) = load_packs(dir.path());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    (dir, packs)
}

fn messages(diagnostics: &[Diagnostic], root: &Path) -> Vec<String> {
    diagnostics
        .iter()
        .map(|d| {
            let s = d.to_string();
            s.replace(&format!("{}/", root.display()), "")
        })
        .collect()
}

#[test]
fn loads_a_pack_and_its_actions() {
    let (_dir, packs) = demo_packs();
    let pack = packs.pack("demo").unwrap();
    assert_eq!(pack.version.as_deref(), Some("1.0.0"));
    assert_eq!(pack.credentials[0].name, "demo_token");
    assert_eq!(
        pack.resources[0].default.as_deref(),
        Some("https://api.demo.example")
    );
    assert_eq!(pack.actions, ["demo.create"]);
    let action = packs.actions.get("demo.create").unwrap();
    assert_eq!(action.body_kind, "http_request");
    let names: Vec<&str> = action.parameters.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["name", "count", "tags"]);
    assert_eq!(
        action
            .resource_defaults
            .get("demo_api_url")
            .map(String::as_str),
        Some("https://api.demo.example")
    );
}

#[test]
fn pack_problems_are_reported_at_their_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad/pack.yaml",
        "name: bad\nversion: 1.0\ndescripton: x\nresources:\n  bad_api_url:\n    defualt: x\n",
    );
    write(
        dir.path(),
        "bad/actions/one.yaml",
        r#"name: one
parameters:
  count:
    type: int
  flag:
    type: boolean
    default: "yes"
  size:
    type: string
    enum: [s, m]
    default: l
  Bad-Name:
    type: string
run:
  type: http_request
  from: somewhere
  url: "{{ params.x"
  metod: GET
"#,
    );
    write(
        dir.path(),
        "bad/actions/two.yaml",
        "name: three\nrun:\n  type: http_reqest\n  url: x\n",
    );
    write(
        dir.path(),
        "bad/actions/three.yaml",
        "description: no body\n",
    );
    write(
        dir.path(),
        "bad/actions/four.yaml",
        "run:\n  type: webhook\n  auth: none\n",
    );
    let (packs, diagnostics) = load_packs(dir.path());
    assert!(packs.actions.is_empty());
    let got = messages(&diagnostics, dir.path());
    let expect = [
        "bad/pack.yaml:2:10: error: `version` must be a string",
        "bad/pack.yaml:3:1: error: unknown field `descripton`\n  hint: did you mean `description`?",
        "bad/pack.yaml:6:5: error: unknown field `defualt`\n  hint: did you mean `default`?",
        "bad/actions/four.yaml:2:9: error: a `webhook` agent starts runs; it cannot be an action's body",
        "bad/actions/one.yaml:4:11: error: unknown parameter type `int`\n  hint: did you mean `integer`?",
        "bad/actions/one.yaml:7:14: error: the default \"yes\" is not of type boolean",
        "bad/actions/one.yaml:11:14: error: the default \"l\" is not one of the `enum` values",
        "bad/actions/one.yaml:12:3: error: parameter name `Bad-Name` must start with a lower-case letter",
        "bad/actions/one.yaml:16:3: error: an action's body takes no `from`",
        "bad/actions/one.yaml:17:8: error: bad template",
        "bad/actions/one.yaml:18:3: error: unknown option `metod`\n  hint: did you mean `method`?",
        "bad/actions/three.yaml:1:1: error: the action has no `run`",
        "bad/actions/two.yaml:1:7: error: action name `three` differs from its file name `two`",
        "bad/actions/two.yaml:3:9: error: unknown agent type `http_reqest`\n  hint: did you mean `http_request`?",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing `{e}` in:\n{}",
            got.join("\n")
        );
    }
}

#[test]
fn a_pack_name_must_match_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "one/pack.yaml", "name: other\n");
    let (packs, diagnostics) = load_packs(dir.path());
    assert!(packs.packs.is_empty());
    assert!(
        diagnostics[0]
            .message
            .contains("differs from its directory `one`"),
        "{diagnostics:?}"
    );
}

#[test]
fn a_story_s_literal_with_is_checked_against_the_action_schema() {
    let (_dir, packs) = demo_packs();
    let story = r#"name: s
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: make
    type: action
    from: inbound
    uses: demo.create
    with:
      nmae: x
      count: three
  - name: make_again
    type: action
    from: inbound
    uses: demo.craete
  - name: make_ok
    type: action
    from: inbound
    uses: demo.create
    with:
      name: "{{ inbound.body.name }}"
      count: "{{ inbound.body.n }}"
      tags: [a, b]
"#;
    let loaded = load_str_with(Path::new("s.yaml"), story, &packs);
    let got: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
    let expect = [
        "s.yaml:10:5: error: missing required parameter `name` — name (string, required): The thing's name",
        "s.yaml:11:7: error: unknown parameter `nmae` for action `demo.create`\n  hint: did you mean `name`?",
        "s.yaml:12:14: error: parameter `count` must be an integer, got \"three\" — count (integer)",
        "s.yaml:16:11: error: unknown action `demo.craete`\n  hint: did you mean `demo.create`?",
    ];
    assert_eq!(got.len(), expect.len(), "{}", got.join("\n"));
    for (g, e) in got.iter().zip(expect) {
        assert!(g.starts_with(e), "expected `{e}`, got `{g}`");
    }
}

#[test]
fn a_story_with_valid_actions_loads() {
    let (_dir, packs) = demo_packs();
    let story = r#"name: s
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: make
    type: action
    from: inbound
    uses: demo.create
    with: "{{ inbound.body }}"
"#;
    let loaded = load_str_with(Path::new("s.yaml"), story, &packs);
    assert!(loaded.story.is_some(), "{:?}", loaded.diagnostics);
    // Without packs, the same story names an action that cannot be found.
    let loaded = crate::load_str(Path::new("s.yaml"), story);
    assert!(loaded.story.is_none());
    assert!(loaded.diagnostics[0]
        .message
        .contains("unknown action `demo.create`"));
}

#[test]
fn the_fingerprint_follows_the_files() {
    let (dir, packs) = demo_packs();
    let (again, _) = load_packs(dir.path());
    assert_eq!(packs.fingerprint, again.fingerprint);
    write(
        dir.path(),
        "demo/actions/create.yaml",
        &CREATE.replace("/v1/things", "/v2/things"),
    );
    let (changed, _) = load_packs(dir.path());
    assert_ne!(packs.fingerprint, changed.fingerprint);
}

/// An action body that waits on a sub-story: its `timeout` is the wait's limit.
const WAIT_BODY: &str = r#"name: wait
parameters: {}
run:
  type: story
  story: child
  wait: true
  timeout: 2h
"#;

#[test]
fn timeouts_of_actions_reach_their_bodies_and_the_agents_that_run_them() {
    let (dir, _) = demo_packs();
    write(
        dir.path(),
        "demo/actions/wait.yaml",
        &WAIT_BODY.replace("name: wait\n", "name: wait\ndescription: waits\n"),
    );
    let (packs, diagnostics) = load_packs(dir.path());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let wait = packs.actions.get("demo.wait").unwrap();
    assert_eq!(wait.timeout, Some(std::time::Duration::from_secs(7200)));
    // The body's `story` agent waits as long as the action's `timeout` (as a story's
    // `story` agent waits as long as its own `timeout`).
    let body = format!("{:?}", wait.body);
    assert!(body.contains("wait_for: Duration(7200s)"), "{body}");

    let story = r#"name: s
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: slow
    type: action
    from: inbound
    uses: demo.wait
  - name: capped
    type: action
    from: inbound
    uses: demo.wait
    timeout: 5m
  - name: make
    type: action
    from: inbound
    uses: demo.create
    with: {name: x}
"#;
    let loaded = load_str_with(Path::new("s.yaml"), story, &packs);
    let story = loaded.story.expect("loads");
    let timeout = |name: &str| story.agents[story.by_name[name]].timeout.map(|d| d.std());
    // Without a `timeout` of its own, an `action` agent has its action's.
    assert_eq!(timeout("slow"), Some(std::time::Duration::from_secs(7200)));
    assert_eq!(timeout("capped"), Some(std::time::Duration::from_secs(300)));
    assert_eq!(timeout("make"), None);
}
