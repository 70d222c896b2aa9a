//! Mapping between SQLite rows and the shared types.

use std::sync::Arc;

use rusqlite::types::Type;
use rusqlite::Row;
use switchyard_types::{
    from_micros, Event, EventId, EventKind, Job, JobId, JobState, Run, RunId, RunStatus, Timestamp,
};

use crate::QueuedJob;

pub const EVENT_COLUMNS: &str = "events.id, events.seq, events.story, events.agent, events.run_id, events.parent_id, events.created_at, events.kind, events.payload";
pub const RUN_COLUMNS: &str = "id, story, status, trigger_event_id, trigger_agent, started_at, finished_at, pending_jobs, error, started_by";
pub const JOB_COLUMNS: &str = "id, run_id, story, agent, input_event_id, state, attempts, created_at, due_at, started_at, finished_at, error";

pub fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

fn bad(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Blob, what.to_string().into())
}

fn uuid_col(row: &Row<'_>, col: usize) -> rusqlite::Result<[u8; 16]> {
    let v = row
        .get_ref(col)?
        .as_blob()
        .map_err(|_| bad(col, "id is not a blob"))?;
    <[u8; 16]>::try_from(v).map_err(|_| bad(col, "id is not 16 bytes"))
}

fn event_id(row: &Row<'_>, col: usize) -> rusqlite::Result<EventId> {
    uuid_col(row, col).and_then(|b| EventId::from_slice(&b).ok_or_else(|| bad(col, "bad id")))
}
fn run_id(row: &Row<'_>, col: usize) -> rusqlite::Result<RunId> {
    uuid_col(row, col).and_then(|b| RunId::from_slice(&b).ok_or_else(|| bad(col, "bad id")))
}
fn job_id(row: &Row<'_>, col: usize) -> rusqlite::Result<JobId> {
    uuid_col(row, col).and_then(|b| JobId::from_slice(&b).ok_or_else(|| bad(col, "bad id")))
}
fn time(row: &Row<'_>, col: usize) -> rusqlite::Result<Timestamp> {
    row.get::<_, i64>(col).map(from_micros)
}
fn opt_time(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<Timestamp>> {
    row.get::<_, Option<i64>>(col).map(|v| v.map(from_micros))
}

pub fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let parent: Option<Vec<u8>> = row.get(5)?;
    let kind: String = row.get(7)?;
    let payload: String = row.get(8)?;
    Ok(Event {
        id: event_id(row, 0)?,
        seq: row.get(1)?,
        story: row.get(2)?,
        agent: row.get(3)?,
        run_id: run_id(row, 4)?,
        parent_id: match parent {
            Some(p) => Some(EventId::from_slice(&p).ok_or_else(|| bad(5, "bad parent id"))?),
            None => None,
        },
        created_at: time(row, 6)?,
        kind: EventKind::parse(&kind).ok_or_else(|| bad(7, "bad event kind"))?,
        payload: Arc::new(serde_json::from_str(&payload).map_err(|e| bad(8, &e.to_string()))?),
    })
}

pub fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    let status: String = row.get(2)?;
    Ok(Run {
        id: run_id(row, 0)?,
        story: row.get(1)?,
        status: RunStatus::parse(&status).ok_or_else(|| bad(2, "bad run status"))?,
        trigger_event_id: event_id(row, 3)?,
        trigger_agent: row.get(4)?,
        started_at: time(row, 5)?,
        finished_at: opt_time(row, 6)?,
        pending_jobs: row.get(7)?,
        error: row.get(8)?,
        started_by: row.get(9)?,
    })
}

pub fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get(5)?;
    Ok(Job {
        id: job_id(row, 0)?,
        run_id: run_id(row, 1)?,
        story: row.get(2)?,
        agent: row.get(3)?,
        input_event_id: event_id(row, 4)?,
        state: JobState::parse(&state).ok_or_else(|| bad(5, "bad job state"))?,
        attempts: row.get(6)?,
        created_at: time(row, 7)?,
        due_at: time(row, 8)?,
        started_at: opt_time(row, 9)?,
        finished_at: opt_time(row, 10)?,
        error: row.get(11)?,
    })
}

pub fn queued_from_row(row: &Row<'_>) -> rusqlite::Result<QueuedJob> {
    Ok(QueuedJob {
        id: job_id(row, 0)?,
        run_id: run_id(row, 1)?,
        story: row.get(2)?,
        agent: row.get(3)?,
        input_event_id: event_id(row, 4)?,
        attempts: row.get(5)?,
        due_at: time(row, 6)?,
        run_started_at: time(row, 7)?,
        resumed: row.get(8)?,
    })
}
