use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::Schedule;
use crate::testing::{build, problems};
use crate::{Agent, Source};

fn schedule(options: Value) -> Arc<dyn Agent> {
    build("schedule", options).unwrap_or_else(|p| panic!("{p:?}"))
}

fn as_schedule(agent: &dyn Agent) -> &Schedule {
    match agent.source() {
        Some(Source::Schedule(s)) => s,
        other => panic!("not a schedule: {other:?}"),
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The next `n` ticks after `start`, as RFC 3339 UTC strings.
fn ticks(cron: &str, tz: &str, start: &str, n: usize) -> Vec<String> {
    let agent = schedule(json!({"cron": cron, "timezone": tz}));
    let s = as_schedule(agent.as_ref());
    let mut at = t(start);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match s.next_after(at) {
            Some(next) => {
                assert!(next > at, "{cron}: {next} is not after {at}");
                out.push(fmt(next));
                at = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn five_and_six_fields_names_steps_and_nicknames() {
    let from = "2024-01-01T00:00:00Z"; // a Monday
    assert_eq!(
        ticks("*/20 9 * * *", "UTC", from, 4),
        [
            "2024-01-01T09:00:00Z",
            "2024-01-01T09:20:00Z",
            "2024-01-01T09:40:00Z",
            "2024-01-02T09:00:00Z"
        ]
    );
    assert_eq!(
        ticks("*/2 * * * * *", "UTC", from, 3),
        [
            "2024-01-01T00:00:02Z",
            "2024-01-01T00:00:04Z",
            "2024-01-01T00:00:06Z"
        ],
        "6 fields: seconds first"
    );
    assert_eq!(
        ticks("0 12 * JAN,feb sat", "UTC", from, 2),
        ["2024-01-06T12:00:00Z", "2024-01-13T12:00:00Z"]
    );
    assert_eq!(ticks("@daily", "UTC", from, 1), ["2024-01-02T00:00:00Z"]);
    assert_eq!(ticks("@hourly", "UTC", from, 1), ["2024-01-01T01:00:00Z"]);
    assert_eq!(ticks("@weekly", "UTC", from, 1), ["2024-01-07T00:00:00Z"]);
    assert_eq!(ticks("@monthly", "UTC", from, 1), ["2024-02-01T00:00:00Z"]);
    assert_eq!(ticks("@YEARLY", "UTC", from, 1), ["2025-01-01T00:00:00Z"]);
    assert_eq!(ticks("@annually", "UTC", from, 1), ["2025-01-01T00:00:00Z"]);
}

#[test]
fn sunday_is_zero_or_seven() {
    let from = "2024-01-01T00:00:00Z";
    let zero = ticks("0 8 * * 0", "UTC", from, 3);
    assert_eq!(zero[0], "2024-01-07T08:00:00Z");
    assert_eq!(ticks("0 8 * * 7", "UTC", from, 3), zero);
    assert_eq!(ticks("0 8 * * SUN", "UTC", from, 3), zero);
    assert_eq!(
        ticks("0 8 * * 5-7", "UTC", from, 3),
        [
            "2024-01-05T08:00:00Z",
            "2024-01-06T08:00:00Z",
            "2024-01-07T08:00:00Z"
        ]
    );
}

#[test]
fn day_of_month_or_day_of_week_as_in_vixie_cron() {
    let from = "2024-01-01T00:00:00Z";
    // Both restricted: the 13th OR any Friday.
    assert_eq!(
        ticks("0 0 13 * FRI", "UTC", from, 4),
        [
            "2024-01-05T00:00:00Z",
            "2024-01-12T00:00:00Z",
            "2024-01-13T00:00:00Z",
            "2024-01-19T00:00:00Z"
        ]
    );
    // A day field that starts with `*` makes it AND: odd days that are Mondays.
    assert_eq!(
        ticks("0 0 */2 * MON", "UTC", "2023-12-31T00:00:00Z", 3),
        [
            "2024-01-01T00:00:00Z",
            "2024-01-15T00:00:00Z",
            "2024-01-29T00:00:00Z"
        ]
    );
    // Only one restricted: that one decides.
    assert_eq!(
        ticks("0 0 * * MON", "UTC", from, 1),
        ["2024-01-08T00:00:00Z"]
    );
    assert_eq!(
        ticks("0 0 15 * *", "UTC", from, 1),
        ["2024-01-15T00:00:00Z"]
    );
}

#[test]
fn next_after_is_strict_and_ignores_fractions_of_a_second() {
    let agent = schedule(json!({"cron": "* * * * * *"}));
    let s = as_schedule(agent.as_ref());
    assert_eq!(
        s.next_after(t("2024-01-01T10:00:00Z")),
        Some(t("2024-01-01T10:00:01Z"))
    );
    assert_eq!(
        s.next_after(t("2024-01-01T10:00:00.600Z")),
        Some(t("2024-01-01T10:00:01Z"))
    );
    let never = schedule(json!({"cron": "0 0 30 2 *"}));
    assert_eq!(
        as_schedule(never.as_ref()).next_after(t("2024-01-01T00:00:00Z")),
        None
    );
}

#[test]
fn wall_clock_in_a_time_zone_across_daylight_saving_changes() {
    // Europe/Berlin: clocks go 02:00 → 03:00 on 2024-03-31, 03:00 → 02:00 on 2024-10-27.
    let berlin = "Europe/Berlin";
    assert_eq!(
        ticks("0 9 * * *", berlin, "2024-03-29T12:00:00Z", 3),
        [
            "2024-03-30T08:00:00Z",
            "2024-03-31T07:00:00Z",
            "2024-04-01T07:00:00Z"
        ],
        "09:00 local moves from 08:00Z to 07:00Z"
    );
    // A fixed time inside the skipped hour runs at the first instant after the gap.
    assert_eq!(
        ticks("30 2 * * *", berlin, "2024-03-30T12:00:00Z", 2),
        ["2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z"]
    );
    // A fixed time inside the repeated hour runs once.
    assert_eq!(
        ticks("30 2 * * *", berlin, "2024-10-26T12:00:00Z", 2),
        ["2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"]
    );
    // An interval job fires in both passes of the repeated hour and skips the missing one.
    assert_eq!(
        ticks("0,30 2 * * *", berlin, "2024-10-26T12:00:00Z", 4),
        [
            "2024-10-27T00:00:00Z",
            "2024-10-27T00:30:00Z",
            "2024-10-27T01:00:00Z",
            "2024-10-27T01:30:00Z"
        ]
    );
    assert_eq!(
        ticks("*/30 * * * *", berlin, "2024-03-31T00:15:00Z", 3),
        [
            "2024-03-31T00:30:00Z",
            "2024-03-31T01:00:00Z",
            "2024-03-31T01:30:00Z"
        ]
    );
}

#[test]
fn the_event_is_scheduled_at_plus_the_rendered_payload() {
    let agent =
        schedule(json!({"cron": "@hourly", "payload": {"job": "sweep", "n": "{{ 1 + 1 }}"}}));
    let s = as_schedule(agent.as_ref());
    let cx = switchyard_template::ContextBuilder::new().build();
    assert_eq!(
        s.event(t("2024-01-01T01:00:00Z"), &cx).unwrap(),
        json!({"scheduled_at": "2024-01-01T01:00:00Z", "job": "sweep", "n": 2})
    );
    assert!(!s.catch_up());
    assert_eq!(s.expression(), "@hourly");
    assert_eq!(s.timezone(), chrono_tz::Tz::UTC);
}

#[test]
fn validate_reports_bad_expressions_time_zones_and_payloads() {
    let bad = [
        ("* * * *", "has 4"),
        ("0 0 1 1 * 2024", "the day-of-week field `2024`"), // 6 fields: seconds first
        ("0 0 1 1 * * 2024", "has 7"),
        (
            "61 * * * *",
            "the minute field `61` is not valid (allowed: 0-59)",
        ),
        ("0 25 * * *", "the hour field `25`"),
        ("0 0 0 0 * *", "the day-of-month field `0`"),
        ("* * * 13 *", "the month field `13`"),
        ("61 * * * * *", "the second field `61`"),
        ("* * * * FUNDAY", "the day-of-week field `FUNDAY`"),
        ("0/10 * * * *", "bad cron expression"),
        ("@fortnightly", "unknown schedule"),
        ("@daily 5", "text after"),
        ("0 0 * * +MON", "not crontab syntax"),
        ("", "has 0"),
    ];
    for (cron, want) in bad {
        let p = problems("schedule", json!({"cron": cron}));
        assert_eq!(p[0].path, "/cron", "{cron}: {p:?}");
        assert!(p[0].message.contains(want), "{cron}: {}", p[0].message);
    }
    let p = problems(
        "schedule",
        json!({"cron": "@daily", "timezone": "Europe/Berln"}),
    );
    assert_eq!(p[0].path, "/timezone");
    assert_eq!(p[0].message, "unknown time zone `Europe/Berln`");
    assert_eq!(p[0].hint.as_deref(), Some("did you mean `Europe/Berlin`?"));
    let p = problems("schedule", json!({"cron": "@daily", "payload": [1]}));
    assert_eq!(p[0].path, "/payload");
    let p = problems("schedule", json!({"timezone": "UTC"}));
    assert!(p[0].message.contains("missing field `cron`"), "{p:?}");
}

/// Expressions compared with croniter; each runs from every start in every time zone.
const REFERENCE_EXPRESSIONS: &[&str] = &[
    "* * * * *",
    "*/5 * * * *",
    "*/7 * * * *",
    "0 * * * *",
    "15,45 * * * *",
    "0-10/3 * * * *",
    "5-59/20 * * * *",
    "0 */2 * * *",
    "0 9-17 * * *",
    "30 9-17/2 * * MON-FRI",
    "0 0 * * *",
    "0 12 * * *",
    "59 23 * * *",
    "0 0 1 * *",
    "0 0 31 * *",
    "0 0 29 2 *",
    "0 0 L * *",
    "0 0 1,15 * *",
    "0 0 1-7 * *",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 * * 1-5",
    "0 0 * * 5-7",
    "0 0 * * SAT,SUN",
    "0 8 * * mon",
    "0 0 13 * 5",
    "0 0 1 * 1",
    "0 0 1-7 * MON",
    "0 0 */2 * MON",
    "0 0 15 * */3",
    "0 0 */10 * */2",
    "0 0 * JAN *",
    "0 0 1 JAN-MAR *",
    "0 0 1 */3 *",
    "0 0 1 6 *",
    "0 0 1 1 *",
    "30 2 * * *",
    "0 2 * * *",
    "0 3 * * *",
    "0 1 * * *",
    "*/15 1-3 * * *",
    "0,30 2 * * *",
    "45 1 * * SUN",
    "0 0 * * 1#2",
    "0 0 L 2 *",
    "0 0 15W * *",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
    "*/10 * * * * *",
    "30 0 0 * * *",
    "0 30 12 1 * *",
    "15-45/15 * 9 * * MON",
    "0 0 0 29 2 *",
];

const REFERENCE_STARTS: &[&str] = &[
    "2024-01-01T00:00:00Z",
    "2023-12-31T23:59:59Z",
    "2024-02-28T23:59:30Z",
    "2024-03-10T06:30:00Z", // New York springs forward at 07:00Z
    "2024-03-31T00:10:00Z", // Berlin springs forward at 01:00Z
    "2024-10-27T00:10:00Z", // Berlin falls back at 01:00Z
    "2024-11-03T05:10:00Z", // New York falls back at 06:00Z
    "2025-06-15T12:34:56Z",
];

const REFERENCE_ZONES: &[&str] = &["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata"];

/// Ticks per case.
const REFERENCE_TICKS: usize = 6;

fn ensure_croniter() {
    let has = |py: &str| {
        Command::new("python3")
            .args(["-c", py])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has("import croniter") {
        return;
    }
    let installed = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "croniter"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed && has("import croniter"),
        "this test compares with Python's croniter: python3 and `pip install croniter` are needed"
    );
}

/// Times at which croner's documented daylight-saving behaviour (Vixie cron's) differs
/// from croniter's, checked by `wall_clock_in_a_time_zone_across_daylight_saving_changes`
/// instead: a wall-clock time in a repeated or skipped hour.
fn dst_ambiguous(zone: &str, tick: &str) -> bool {
    let hours: &[(&str, &str)] = match zone {
        "Europe/Berlin" => &[
            ("2024-03-31T00:", "2024-03-31T01:"),
            ("2024-10-27T00:", "2024-10-27T01:"),
        ],
        "America/New_York" => &[
            ("2024-03-10T06:", "2024-03-10T07:"),
            ("2024-11-03T05:", "2024-11-03T06:"),
        ],
        _ => &[],
    };
    hours
        .iter()
        .any(|(a, b)| tick.starts_with(a) || tick.starts_with(b))
}

#[test]
fn next_fire_times_match_croniter_for_many_expressions() {
    ensure_croniter();
    let mut cases = Vec::new();
    for &cron in REFERENCE_EXPRESSIONS {
        for &zone in REFERENCE_ZONES {
            for &start in REFERENCE_STARTS {
                cases.push((cron, zone, start));
            }
        }
    }
    let input: Vec<Value> = cases
        .iter()
        .map(|(cron, zone, start)| {
            json!({"cron": cron, "timezone": zone, "start": start, "count": REFERENCE_TICKS})
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cron_reference.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the croniter script failed");
    let reference: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reference.len(), cases.len());

    let mut compared = 0;
    let mut mismatches = Vec::new();
    let mut dst_differences = Vec::new();
    for ((cron, zone, start), want) in cases.iter().zip(&reference) {
        let got = ticks(cron, zone, start, REFERENCE_TICKS);
        let want: Vec<String> = match want.as_array() {
            Some(w) => w.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
            None => {
                mismatches.push(format!("{cron} [{zone}] from {start}: croniter: {want}"));
                continue;
            }
        };
        // Compare up to the first tick that either side puts in a DST-ambiguous hour.
        let mut n = 0;
        let mut stopped = false;
        while n < got.len().max(want.len()) {
            let (g, w) = (got.get(n), want.get(n));
            if g != w {
                stopped = g.is_some_and(|t| dst_ambiguous(zone, t))
                    || w.is_some_and(|t| dst_ambiguous(zone, t));
                break;
            }
            n += 1;
        }
        if stopped {
            dst_differences.push(format!("{cron} [{zone}] from {start}: {got:?} vs {want:?}"));
        } else if n < got.len().max(want.len()) {
            mismatches.push(format!(
                "{cron} [{zone}] from {start}:\n  switchyard {got:?}\n  croniter   {want:?}"
            ));
        }
        let cut = n;
        compared += cut;
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from croniter:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    if !dst_differences.is_empty() {
        // Expected: croniter fires fixed-time jobs twice in a repeated hour and interval jobs
        // in a skipped one; see the module documentation for the behaviour here.
        eprintln!(
            "daylight-saving differences from croniter (expected):\n{}",
            dst_differences.join("\n")
        );
    }
    assert!(
        compared > cases.len() * 4,
        "too few ticks compared: {compared}"
    );
}
