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
