//! `schedule` agents fire once per tick, across restarts, with and without `catch_up`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::{stories_dir, Server};

fn story(catch_up: bool) -> String {
    format!(
        r#"
name: ticker
agents:
  - name: every_second
    type: schedule
    cron: "* * * * * *"
    catch_up: {catch_up}
    payload: {{kind: "tick"}}
"#
    )
}

/// The scheduled times of every run, oldest first.
fn ticks(server: &Server) -> Vec<chrono::DateTime<chrono::Utc>> {
    let runs = server.cli_json(&["runs", "list", "--story", "ticker", "--limit", "1000"]);
    let mut out = Vec::new();
    for r in runs["runs"].as_array().unwrap() {
        let event = server.cli_json(&["events", "show", r["trigger_event_id"].as_str().unwrap()]);
        assert_eq!(event["payload"]["kind"], "tick");
        assert_eq!(r["started_by"], "schedule");
        let at = event["payload"]["scheduled_at"].as_str().unwrap();
        out.push(
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&chrono::Utc),
        );
    }
    out.sort();
    out
}

fn assert_unique(ticks: &[chrono::DateTime<chrono::Utc>]) {
    let set: BTreeSet<_> = ticks.iter().collect();
    assert_eq!(set.len(), ticks.len(), "a tick fired twice: {ticks:?}");
    for t in ticks {
        assert_eq!(
            t.timestamp_subsec_nanos(),
            0,
            "ticks are on whole seconds: {t}"
        );
    }
}

fn gaps(ticks: &[chrono::DateTime<chrono::Utc>]) -> usize {
    ticks
        .windows(2)
        .filter(|w| (w[1] - w[0]).num_seconds() != 1)
        .count()
}

#[tokio::test]
async fn a_six_field_schedule_fires_once_per_second_and_a_restart_repeats_nothing() {
    let stories = stories_dir(&[("ticker.yaml", &story(false))]);
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(stories.path(), &data.path().join("d")).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let first = ticks(&server);
    assert!(
        (2..=5).contains(&first.len()),
        "about one run per second: {first:?}"
    );
    assert_unique(&first);
    assert_eq!(gaps(&first), 0, "{first:?}");

    server.kill9();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.restart().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let all = ticks(&server);
    assert_unique(&all);
    assert!(all.len() > first.len());
    assert!(
        gaps(&all) >= 1,
        "without catch_up, ticks missed while down are not replayed: {all:?}"
    );
}

#[tokio::test]
async fn catch_up_replays_the_ticks_missed_while_down() {
    let stories = stories_dir(&[("ticker.yaml", &story(true))]);
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(stories.path(), &data.path().join("d")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill9();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    server.restart().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let all = ticks(&server);
    assert_unique(&all);
    assert!(all.len() >= 6, "{all:?}");
    assert_eq!(
        gaps(&all),
        0,
        "with catch_up, every missed tick fires after the restart: {all:?}"
    );
}

#[tokio::test]
async fn a_disabled_storys_schedule_does_not_fire() {
    let stories = stories_dir(&[("ticker.yaml", &story(false))]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    server.cli_json(&["story", "disable", "ticker"]);
    let before = ticks(&server).len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ticks(&server).len(), before, "no ticks while disabled");
    server.cli_json(&["story", "enable", "ticker"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(ticks(&server).len() > before, "ticks again once enabled");
    let _: Value = server.api("/runs?story=ticker").await;
}
