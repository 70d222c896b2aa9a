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

/// Agents that keep state or wait: deduplicate, throttle, implode, delay.
const TIMED: &str = r#"name: timed
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: split
    type: transform
    from: inbound
    mode: explode
    path: $.body.items
  - name: once
    type: transform
    from: split
    mode: deduplicate
    key: "{{ split.item.k }}"
    within: 1h
  - name: cap
    type: transform
    from: split
    mode: throttle
    limit: 2
    per: 1m
  - name: batch
    type: transform
    from: split
    mode: implode
    key: "{{ split.item.g }}"
    size: 2
    max_wait: 10m
  - name: sizes
    type: transform
    from: batch
    mode: message
    payload: {count: "{{ batch.count }}", complete: "{{ batch.complete }}", at: "{{ now }}"}
  - name: later
    type: delay
    from: inbound
    for: "{{ inbound.body.wait }}"
  - name: stamp
    type: transform
    from: later
    mode: message
    payload: {at: "{{ now }}", started: "{{ run.started_at }}"}
  - name: again
    type: transform
    from: later
    mode: deduplicate
    key: "{{ later.body.items[0].k }}"
    within: 30m
"#;

async fn run_story_test(story: &str, test: &str) -> FileReport {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "s.yaml", story);
    write(dir.path(), "s.test.yaml", test);
    let services = Services::new(ServicesConfig::default()).unwrap();
    run_file(&dir.path().join("s.test.yaml"), &Packs::empty(), &services).await
}

#[tokio::test]
async fn stateful_and_waiting_agents_run_on_the_case_s_clock() {
    let report = run_story_test(
        TIMED,
        r#"now: "2024-05-06T07:00:00Z"
cases:
  - name: three items, an hour's delay
    event:
      agent: inbound
      body:
        wait: 1h
        items: [{k: a, g: x}, {k: a, g: x}, {k: b, g: y}]
    expect:
      # The first event per key passes; the second `a` is dropped.
      once: [{item: {k: a}, index: 0}, {item: {k: b}, index: 2}]
      # Two per minute.
      cap: [{index: 0}, {index: 1}]
      # Group x completes at once; group y is flushed incomplete when max_wait is up.
      sizes:
        - {count: 2, complete: true, at: "2024-05-06T07:00:00Z"}
        - {count: 1, complete: false, at: "2024-05-06T07:10:00Z"}
      # The delay passes its event on after everything that happens before the hour is up,
      # with the case's clock moved on by the hour.
      stamp: {at: "2024-05-06T08:00:00Z", started: "2024-05-06T07:00:00Z"}
      # An hour later a 30 minute deduplication window has closed again.
      again: {body: {wait: 1h}}
  - name: a wait shorter than the window
    event:
      agent: inbound
      body: {wait: 5m, items: [{k: a, g: x}]}
    expect:
      stamp: {at: "2024-05-06T07:05:00Z"}
      sizes: {count: 1, complete: false, at: "2024-05-06T07:10:00Z"}
"#,
    )
    .await;
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    for c in &report.cases {
        assert!(c.passed, "{}: {:#?}", c.name, c.failures);
    }
}

#[tokio::test]
async fn a_deferring_agent_can_be_given_its_result_and_a_sub_story_needs_one() {
    let story = r#"name: waits
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: later
    type: delay
    from: inbound
    for: 7d
  - name: after
    type: transform
    from: later
    mode: message
    payload: {seen: "{{ later.body.n }}"}
  - name: child
    type: story
    from: inbound
    story: other
    wait: true
  - name: report
    type: transform
    from: child
    mode: message
    payload: {result: "{{ child.ok }}"}
"#;
    let report = run_story_test(
        story,
        r#"cases:
  - name: the test says what the delay emits
    event: {agent: inbound, body: {n: 1}}
    responses:
      later: {result: {body: {n: 2}}}
      child: {result: {ok: yes}}
    expect:
      after: {seen: 2}
      report: {result: "yes"}
  - name: a sub-story without a canned result
    event: {agent: inbound, body: {n: 1}}
    expect:
      after: {seen: 1}
"#,
    )
    .await;
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    assert!(report.cases[0].passed, "{:#?}", report.cases[0].failures);
    let second = &report.cases[1];
    assert!(!second.passed);
    let messages: Vec<&str> = second.failures.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("`child` is a `story` agent, which reaches the outside"),
        "{messages:?}"
    );
}
