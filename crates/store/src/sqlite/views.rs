//! Read queries behind the web view: run counts by story and status, an agent's latest
//! events. Each is one indexed range.

use rusqlite::{params, Connection};
use switchyard_types::{Event, RunId, RunStatus, Timestamp};

use super::rows::{event_from_row, EVENT_COLUMNS};
use crate::RunCount;

/// The unary `+` keeps SQLite from grouping through `runs_by_story` (a scan of the whole
/// history) instead of searching the primary key range (the window's runs only).
const RUN_COUNTS: &str =
    "SELECT story, status, COUNT(*) FROM runs WHERE id >= ?1 GROUP BY +story, +status";

/// Runs started at or after `since`, by story and status: a range over the primary key
/// (UUIDv7 run ids begin with their creation time).
pub fn run_counts(c: &Connection, since: Timestamp) -> rusqlite::Result<Vec<RunCount>> {
    let bound = RunId::first_at(since);
    let mut stmt = c.prepare_cached(RUN_COUNTS)?;
    let rows = stmt.query_map([bound.as_bytes().as_slice()], |r| {
        let status: String = r.get(1)?;
        let count: i64 = r.get(2)?;
        Ok((r.get::<_, String>(0)?, status, count))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (story, status, count) = row?;
        // A status this build does not know is left out rather than failing the page.
        if let Some(status) = RunStatus::parse(&status) {
            out.push(RunCount {
                story,
                status,
                count: u64::try_from(count).unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// The latest events of an agent, newest first, below sequence `before` (index
/// `events_by_agent`).
pub fn agent_events(
    c: &Connection,
    story: &str,
    agent: &str,
    before: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE story = ?1 AND agent = ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4"
    ))?;
    let rows = stmt.query_map(
        params![
            story,
            agent,
            before.unwrap_or(i64::MAX),
            limit.clamp(1, 1000) as i64
        ],
        event_from_row,
    )?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchyard_types::{now, EventId, EventKind, JobId, RunId, RunStatus};

    use crate::sqlite::{SqliteConfig, SqliteStore};
    use crate::{FinishJob, NewEvent, NewJob, StartRun, Store};

    fn event(story: &str, agent: &str, run_id: RunId, parent: Option<EventId>) -> NewEvent {
        NewEvent {
            id: EventId::new(),
            story: story.into(),
            agent: agent.into(),
            run_id,
            parent_id: parent,
            kind: EventKind::Event,
            created_at: now(),
            json: Arc::from(r#"{"n":1}"#),
        }
    }

    /// Starts a run of `story` whose source event goes to one `next` job; returns the ids.
    async fn start(store: &SqliteStore, story: &str) -> (RunId, EventId, JobId) {
        let run_id = RunId::new();
        let ev = event(story, "inbound", run_id, None);
        let job = NewJob {
            id: JobId::new(),
            run_id,
            story: story.into(),
            agent: "next".into(),
            input_event_id: ev.id,
            created_at: now(),
            due_at: now(),
            deferred: false,
        };
        let (event_id, job_id) = (ev.id, job.id);
        store
            .start_run(StartRun {
                run_id,
                event: ev,
                jobs: vec![job],
                idempotency_key: None,
                started_by: None,
                parent: None,
            })
            .await
            .expect("start run");
        (run_id, event_id, job_id)
    }

    async fn finish(store: &SqliteStore, run_id: RunId, job_id: JobId, failure: Option<&str>) {
        store
            .finish_job(FinishJob {
                job_id,
                run_id,
                state: if failure.is_some() {
                    switchyard_types::JobState::Failed
                } else {
                    switchyard_types::JobState::Succeeded
                },
                attempts: 1,
                started_at: now(),
                finished_at: now(),
                error: failure.map(str::to_string),
                events: vec![],
                jobs: vec![],
                unhandled_failure: failure.map(str::to_string),
            })
            .await
            .expect("finish job");
    }

    #[tokio::test]
    async fn run_counts_group_recent_runs_by_story_and_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
        let window_start = now();
        let (r1, _, j1) = start(&store, "alpha").await;
        let (r2, _, j2) = start(&store, "alpha").await;
        start(&store, "alpha").await;
        start(&store, "beta").await;
        finish(&store, r1, j1, None).await;
        finish(&store, r2, j2, Some("boom")).await;

        let mut counts = store.run_counts(window_start).await.expect("counts");
        counts.sort_by(|a, b| (&a.story, a.status.as_str()).cmp(&(&b.story, b.status.as_str())));
        let got: Vec<(&str, RunStatus, u64)> = counts
            .iter()
            .map(|c| (c.story.as_str(), c.status, c.count))
            .collect();
        assert_eq!(
            got,
            [
                ("alpha", RunStatus::Failed, 1),
                ("alpha", RunStatus::Running, 1),
                ("alpha", RunStatus::Succeeded, 1),
                ("beta", RunStatus::Running, 1),
            ]
        );
        let later = switchyard_types::from_micros(now().timestamp_micros() + 1_000_000);
        assert!(store.run_counts(later).await.expect("counts").is_empty());
    }

    #[tokio::test]
    async fn agent_events_are_newest_first_and_paged_by_seq() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(start(&store, "alpha").await.1);
        }
        start(&store, "beta").await;

        let page = store
            .agent_events("alpha", "inbound", None, 2)
            .await
            .expect("events");
        let got: Vec<EventId> = page.iter().map(|e| e.id).collect();
        assert_eq!(got, [ids[2], ids[1]]);
        let older = store
            .agent_events("alpha", "inbound", Some(page[1].seq), 10)
            .await
            .expect("events");
        assert_eq!(older.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[0]]);
        assert!(store
            .agent_events("alpha", "next", None, 10)
            .await
            .expect("events")
            .is_empty());
    }

    #[test]
    fn both_queries_use_an_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(SqliteStore::open(SqliteConfig::new(dir.path())).expect("open"));
        let c = rusqlite::Connection::open(dir.path().join("switchyard.db")).expect("db");
        let plan = |sql: &str| -> String {
            let mut stmt = c
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .expect("rows")
                .collect::<Result<Vec<_>, _>>()
                .expect("plan rows");
            rows.join("; ")
        };
        let counts = plan(&super::RUN_COUNTS.replace("?1", "x'00'"));
        assert!(
            counts.contains("SEARCH") && !counts.contains("SCAN runs"),
            "{counts}"
        );
        let agent = plan(
            "SELECT seq FROM events WHERE story = 'a' AND agent = 'b' AND seq < 5 ORDER BY seq DESC LIMIT 3",
        );
        assert!(agent.contains("events_by_agent"), "{agent}");
    }
}
