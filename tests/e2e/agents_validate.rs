//! `switchyard validate` on bad options of the schedule, command, email, transform `explode`
//! and `http_request` `paginate` agents: each at its file:line:col, with a hint.

use std::process::Command;

use crate::support::{bin, stories_dir};

const BAD: &str = r#"name: bad-agents
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: nightly
    type: schedule
    cron: "0 25 * * *"
  - name: berlin
    type: schedule
    cron: "@daily"
    timezone: Europe/Berln
  - name: shell
    type: command
    from: inbound
    argv: "rm -rf /tmp/x"
  - name: slow
    type: command
    from: inbound
    argv: [sleep, "1"]
    timeout: 5 minutes
  - name: split
    type: transform
    from: inbound
    mode: explod
    path: $.body.items
  - name: split2
    type: transform
    from: inbound
    mode: explode
    path: "$.body[?("
  - name: mail
    type: email
    from: inbound
    to: ops@example.com
    sender: noreply@example.com
  - name: mail2
    type: email
    from: inbound
    to: ops@example.com
    subject: hi
    text: hello
  - name: list
    type: http_request
    from: inbound
    url: http://example.com
    paginate: {next: "$.links[", max_pages: 0}
  - name: tick
    type: schedule
    catch_up: true
  - name: seconds
    type: schedule
    cron: "*/5 * * * * * 2030"
  - name: mail3
    type: email
    from: inbound
    to: ops@example.com
    sender: noreply@example.com
    subject: hi
"#;

#[test]
fn bad_options_of_the_new_agents_are_reported_at_their_line_and_column() {
    let dir = stories_dir(&[("bad.yaml", BAD)]);
    let out = Command::new(bin())
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let f = dir.path().join("bad.yaml").display().to_string();
    let expect: &[(&str, &str, Option<&str>)] = &[
        (
            "8:11",
            "bad cron expression `0 25 * * *`: the hour field `25` is not valid (allowed: 0-23)",
            Some("minute hour day-of-month month day-of-week"),
        ),
        (
            "12:15",
            "unknown time zone `Europe/Berln`",
            Some("did you mean `Europe/Berlin`?"),
        ),
        (
            "16:11",
            "`argv` is a list of arguments, not a shell string",
            Some("argv: [rm, -rf, /tmp/x]"),
        ),
        ("21:14", "invalid duration \"5 minutes\"", None),
        (
            "25:11",
            "unknown variant `explod`, expected one of `message`, `extract`,",
            None,
        ),
        ("31:11", "bad JSONPath", Some("like `$.body.items`")),
        ("32:5", "missing field `subject`", None),
        ("37:5", "missing field `sender`", None),
        ("47:22", "bad JSONPath", Some("`link_header`")),
        ("47:45", "`max_pages` is between 1 and 1000", None),
        ("48:5", "missing field `cron`", None),
        (
            "53:11",
            "bad cron expression `*/5 * * * * * 2030`: a cron expression has 5 fields",
            None,
        ),
        (
            "54:5",
            "an email needs a body",
            Some("give `text`, `html`, or both"),
        ),
    ];
    for (at, message, hint) in expect {
        let line = format!("{f}:{at}: error: {message}");
        let found = text
            .lines()
            .position(|l| l.starts_with(&line))
            .unwrap_or_else(|| panic!("missing `{line}` in:\n{text}"));
        if let Some(hint) = hint {
            let next = text.lines().nth(found + 1).unwrap_or("");
            assert!(
                next.trim_start().starts_with("hint:") && next.contains(hint),
                "hint for `{line}` should mention `{hint}`, got `{next}`"
            );
        }
    }
    assert!(
        text.contains(&format!("{} error(s)", expect.len())),
        "exactly these errors:\n{text}"
    );
}

const BAD_STATEFUL: &str = r#"name: bad-stateful
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: nap
    type: delay
    from: inbound
    for: 10 minutes
  - name: both
    type: delay
    from: inbound
    for: 5s
    until: "{{ inbound.body.at }}"
  - name: neither
    type: delay
    from: inbound
  - name: group
    type: transform
    from: inbound
    mode: implode
    key: "{{ inbound.body.batch }}"
    size: 10
    max_wait: soon
  - name: tiny
    type: transform
    from: inbound
    mode: implode
    key: "{{ inbound.body.batch }}"
    size: 0
    max_wait: 1m
  - name: once
    type: transform
    from: inbound
    mode: deduplicate
    within: 1h
  - name: slowly
    type: transform
    from: inbound
    mode: throttle
    limit: 0
    per: 1m
  - name: call
    type: story
    from: inbound
    story: Not_A_Story
  - name: maybe
    type: story
    from: inbound
    story: child
    wait: maybe
"#;

const PARENT: &str = r#"name: parent
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: missing
    type: story
    from: inbound
    story: nobody
  - name: no_entry
    type: story
    from: inbound
    story: child
    entry: start
  - name: not_webhook
    type: story
    from: inbound
    story: child
    entry: work
  - name: no_exit
    type: story
    from: inbound
    story: child
    wait: true
  - name: fine
    type: story
    from: inbound
    story: child
    wait: true
    exit: work
"#;

const CHILD: &str = r#"name: child
agents:
  - name: entry
    type: webhook
    auth: none
  - name: work
    type: transform
    from: entry
    mode: message
    payload: {ok: true}
"#;

#[test]
fn bad_options_of_delay_implode_deduplicate_throttle_and_story_and_broken_story_references() {
    let dir = stories_dir(&[
        ("bad.yaml", BAD_STATEFUL),
        ("parent.yaml", PARENT),
        ("child.yaml", CHILD),
    ]);
    let out = Command::new(bin())
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let bad = dir.path().join("bad.yaml").display().to_string();
    let parent = dir.path().join("parent.yaml").display().to_string();
    let expect: &[(&str, &str, &str, Option<&str>)] = &[
        (
            &bad,
            "9:10",
            "invalid duration \"10 minutes\": write the unit right after the number",
            None,
        ),
        (
            &bad,
            "14:12",
            "give either `for` or `until`, not both",
            None,
        ),
        (
            &bad,
            "15:5",
            "a delay needs `for` or `until`",
            Some("`for: 5m`"),
        ),
        (&bad, "24:15", "invalid duration \"soon\"", None),
        (&bad, "30:11", "`size` must be at least 1", None),
        (&bad, "32:5", "missing field `key`", None),
        (&bad, "41:12", "`limit` must be at least 1", None),
        (&bad, "46:12", "`Not_A_Story` is not a story name", None),
        (
            &bad,
            "51:11",
            "invalid type: string \"maybe\", expected a boolean",
            None,
        ),
        (
            &parent,
            "9:12",
            "no story named `nobody` is among the stories checked",
            Some("child"),
        ),
        (
            &parent,
            "14:12",
            "story `child` has no agent `start` to start it through",
            None,
        ),
        (
            &parent,
            "19:12",
            "agent `work` of story `child` is a `transform` agent, not a webhook",
            None,
        ),
        (
            &parent,
            "24:11",
            "story `child` has no agent `exit` whose event to wait for",
            Some("default `exit`"),
        ),
    ];
    for (file, at, message, hint) in expect {
        let line = format!("{file}:{at}: error: {message}");
        let found = text
            .lines()
            .position(|l| l.starts_with(&line))
            .unwrap_or_else(|| panic!("missing `{line}` in:\n{text}"));
        if let Some(hint) = hint {
            let next = text.lines().nth(found + 1).unwrap_or("");
            assert!(
                next.trim_start().starts_with("hint:") && next.contains(hint),
                "hint for `{line}` should mention `{hint}`, got `{next}`"
            );
        }
    }
    assert!(
        text.contains(&format!("{} error(s)", expect.len())),
        "exactly these errors:\n{text}"
    );
}
