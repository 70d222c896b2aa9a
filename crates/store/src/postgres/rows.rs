//! Mapping between PostgreSQL rows and the shared types.

use std::sync::Arc;

use sqlx_core::row::Row;
use sqlx_postgres::PgRow;
use switchyard_types::{
    Event, EventId, EventKind, Job, JobId, JobState, Run, RunId, RunStatus, Timestamp,
};
use uuid::Uuid;

use crate::{Error, QueuedJob, Resource};

pub const EVENT_COLUMNS: &str = "events.id, events.seq, events.story, events.agent, events.run_id, events.parent_id, events.created_at, events.kind, events.payload";
pub const RUN_COLUMNS: &str = "id, story, status, trigger_event_id, trigger_agent, started_at, finished_at, pending_jobs, error, started_by";
pub const JOB_COLUMNS: &str = "id, run_id, story, agent, input_event_id, state, attempts, created_at, due_at, started_at, finished_at, error";
pub const QUEUED_COLUMNS: &str =
    "j.id, j.run_id, j.story, j.agent, j.input_event_id, j.attempts, j.due_at, r.started_at, j.resumed";

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Corrupt(what.to_string())
}

fn get<'r, T>(row: &'r PgRow, col: usize) -> Result<T, Error>
where
    T: sqlx_core::decode::Decode<'r, sqlx_postgres::Postgres>
        + sqlx_core::types::Type<sqlx_postgres::Postgres>,
{
    row.try_get(col).map_err(corrupt)
}

fn attempts(row: &PgRow, col: usize) -> Result<u32, Error> {
    let n: i32 = get(row, col)?;
    u32::try_from(n).map_err(|_| corrupt(format!("negative attempts {n}")))
}

pub fn event_from_row(row: &PgRow) -> Result<Event, Error> {
    let kind: String = get(row, 7)?;
    let payload: &str = get(row, 8)?;
    Ok(Event {
        id: EventId(get::<Uuid>(row, 0)?),
        seq: get(row, 1)?,
        story: get(row, 2)?,
        agent: get(row, 3)?,
        run_id: RunId(get::<Uuid>(row, 4)?),
        parent_id: get::<Option<Uuid>>(row, 5)?.map(EventId),
        created_at: get::<Timestamp>(row, 6)?,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt(format!("event kind {kind}")))?,
        payload: Arc::new(serde_json::from_str(payload).map_err(corrupt)?),
    })
}

pub fn run_from_row(row: &PgRow) -> Result<Run, Error> {
    let status: String = get(row, 2)?;
    Ok(Run {
        id: RunId(get::<Uuid>(row, 0)?),
        story: get(row, 1)?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt(format!("run status {status}")))?,
        trigger_event_id: EventId(get::<Uuid>(row, 3)?),
        trigger_agent: get(row, 4)?,
        started_at: get(row, 5)?,
        finished_at: get(row, 6)?,
        pending_jobs: get(row, 7)?,
        error: get(row, 8)?,
        started_by: get(row, 9)?,
    })
}

pub fn job_from_row(row: &PgRow) -> Result<Job, Error> {
    let state: String = get(row, 5)?;
    Ok(Job {
        id: JobId(get::<Uuid>(row, 0)?),
        run_id: RunId(get::<Uuid>(row, 1)?),
        story: get(row, 2)?,
        agent: get(row, 3)?,
        input_event_id: EventId(get::<Uuid>(row, 4)?),
        state: JobState::parse(&state).ok_or_else(|| corrupt(format!("job state {state}")))?,
        attempts: attempts(row, 6)?,
        created_at: get(row, 7)?,
        due_at: get(row, 8)?,
        started_at: get(row, 9)?,
        finished_at: get(row, 10)?,
        error: get(row, 11)?,
    })
}

pub fn queued_from_row(row: &PgRow) -> Result<QueuedJob, Error> {
    Ok(QueuedJob {
        id: JobId(get::<Uuid>(row, 0)?),
        run_id: RunId(get::<Uuid>(row, 1)?),
        story: get(row, 2)?,
        agent: get(row, 3)?,
        input_event_id: EventId(get::<Uuid>(row, 4)?),
        attempts: attempts(row, 5)?,
        due_at: get(row, 6)?,
        run_started_at: get(row, 7)?,
        resumed: get(row, 8)?,
    })
}

pub fn resource_from_row(row: &PgRow) -> Result<Resource, Error> {
    Ok(Resource {
        name: get(row, 0)?,
        value: get(row, 1)?,
        updated_at: get(row, 2)?,
    })
}
