use std::path::Path;

use switchyard_agents::{Services, ServicesConfig};

use super::*;

const STORY: &str = r#"name: relay
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload:
      greeting: "Hello {{ inbound.body.name }}"
      n: "{{ inbound.body.count + 1 }}"
      url: "{{ resource.greeter_url }}"
  - name: deliver
    type: http_request
    from: shape
    url: "{{ resource.greeter_url }}/greetings"
    method: POST
    body: "{{ shape }}"
  - name: big
    type: trigger
    from: shape
    rules:
      - {value: "{{ shape.n }}", op: ">", expected: 3}
  - name: alert
    type: transform
    from: deliver.error
    mode: message
    payload: {failed: "{{ deliver.error.message }}"}
  - name: done
    type: transform
    from: deliver
    mode: message
    payload: {id: "{{ deliver.body.id }}", status: "{{ deliver.status }}"}
"#;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

async fn run_test(test: &str) -> (tempfile::TempDir, FileReport) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "relay.yaml", STORY);
    write(dir.path(), "relay.test.yaml", test);
    let services = Services::new(ServicesConfig::default()).unwrap();
    let report = run_file(
        &dir.path().join("relay.test.yaml"),
        &Packs::empty(),
        &services,
    )
    .await;
    (dir, report)
}

#[tokio::test]
async fn passing_cases_with_canned_http_responses_and_error_paths() {
    let (_dir, report) = run_test(
        r#"resources: {greeter_url: "https://greeter.test"}
cases:
  - name: a newcomer
    event: {agent: inbound, body: {name: Ada, count: 1}}
    responses:
      deliver: {status: 201, body: {id: 7}}
    expect:
      shape: {greeting: Hello Ada, n: 2, url: "https://greeter.test"}
      done: {id: 7, status: 201}
    not_run: [big, alert]
    ran: [deliver]
  - name: the greeter is down
    event: {agent: inbound, body: {name: Bo, count: 5}}
    responses:
      deliver: {status: 503, body: "down for maintenance"}
    expect:
      big: {n: 6}
      alert: {failed: "answered 503: down for maintenance"}
      deliver.error: {error: {kind: http_status}}
    not_run: [done]
"#,
    )
    .await;
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    for c in &report.cases {
        assert!(c.passed, "{}: {:?}", c.name, c.failures);
    }
    assert_eq!(report.cases[0].ran, ["inbound", "shape", "deliver", "done"]);
}

#[tokio::test]
async fn failures_say_which_agent_which_field_expected_and_got() {
    let (_dir, report) = run_test(
        r#"resources: {greeter_url: "https://greeter.test"}
cases:
  - name: wrong expectations
    event: {agent: inbound, body: {name: Ada, count: 3}}
    responses:
      deliver: [{status: 200, body: {id: 1}}]
    expect:
      shape: {n: 3, missing: x}
      alert: {failed: ""}
    not_run: [big]
  - name: no canned response
    event: {agent: inbound, body: {name: Ada, count: 1}}
"#,
    )
    .await;
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    let messages: Vec<&str> = report.cases[0]
        .failures
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "agent `shape`, field `n`: expected 3, got 4",
            "agent `shape`, field `missing`: expected \"x\", got nothing (no such field)",
            "agent `alert` emitted no event: it was never reached",
            "agent `big` ran (it emitted 1 event(s)), but the case says it does not",
        ]
    );
    let f = &report.cases[0].failures[0];
    assert_eq!(
        (f.agent.as_deref(), f.field.as_deref()),
        (Some("shape"), Some("n"))
    );
    assert!(!report.cases[1].passed);
    assert!(
        report.cases[1].failures[0]
            .message
            .contains("`deliver` is a `http_request` agent, which reaches the outside"),
        "{:?}",
        report.cases[1].failures
    );
}

#[tokio::test]
async fn problems_in_the_test_file_are_reported_at_line_and_column() {
    let (dir, report) = run_test(
        r#"cases:
  - name: typos
    event: {agent: inbond, body: {}}
    responses:
      delivr: {status: 200}
    expect:
      shape: {n: 1}
    not_runn: [big]
"#,
    )
    .await;
    let file = dir.path().join("relay.test.yaml").display().to_string();
    let got: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    let expect = [
        format!("{file}:3:20: error: story `relay` has no agent `inbond`\n  hint: did you mean `inbound`?"),
        format!("{file}:5:7: error: story `relay` has no agent `delivr`\n  hint: did you mean `deliver`?"),
        format!("{file}:8:5: error: unknown field `not_runn`\n  hint: did you mean `not_run`?"),
    ];
    assert_eq!(got, expect);
    assert!(!report.passed());
}

#[tokio::test]
async fn several_events_compare_as_a_list_and_responses_are_templates() {
    let (_dir, report) = run_test(
        r#"resources: {greeter_url: "https://greeter.test"}
cases:
  - name: echo
    event: {agent: inbound, body: {name: Cy, count: 0}}
    responses:
      deliver:
        result: {status: 200, body: {id: "{{ shape.greeting }}"}}
    expect:
      done: {id: Hello Cy}
"#,
    )
    .await;
    assert!(report.passed(), "{:?}", report.cases);
}
