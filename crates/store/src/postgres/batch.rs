//! One batch of writes as a handful of multi-row statements.
//!
//! Writes in one batch were submitted concurrently, so any serial order of them is a valid
//! outcome; this applies them in one: the rare stateful writes (admissions, implode groups,
//! resources, replays) one by one, then every run start, every job finish and every
//! reschedule together, each kind as a few `INSERT … SELECT FROM UNNEST($1::uuid[], …)` /
//! `UPDATE … FROM UNNEST(…)` statements whose cost barely grows with the batch. Inserts that
//! always go together share a statement (data-modifying `WITH`): a batch of run starts is one
//! statement, the events and jobs of a batch of finishes another.

use std::collections::{HashMap, HashSet};

use sqlx_core::query::{query, Query};
use sqlx_core::row::Row;
use sqlx_postgres::{PgArguments, PgConnection, Postgres};
use switchyard_types::{EventId, EventKind, JobId, RunId, RunStatus, Timestamp};
use uuid::Uuid;

use super::{lease, state};
use crate::ops::{WriteOp, WriteReply};
use crate::{FinishJob, Finished, NewEvent, NewJob, Reschedule, StartRun, Started};

/// Why a batch could not be applied as a whole.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A statement failed.
    #[error("{0}")]
    Sql(#[from] sqlx_core::Error),
    /// A write cannot be applied (e.g. it names a run that does not exist).
    #[error("{0}")]
    Op(String),
}

/// Applies `ops` on `conn` (inside the caller's transaction); one reply per op, in order.
pub async fn apply(
    conn: &mut PgConnection,
    ops: &[&WriteOp],
) -> Result<Vec<WriteReply>, BatchError> {
    let mut replies: Vec<Option<WriteReply>> = ops.iter().map(|_| None).collect();
    let mut starts = Vec::new();
    let mut finishes = Vec::new();
    let mut reschedules = Vec::new();
    let mut claims = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            WriteOp::Start(s) => starts.push((i, s)),
            WriteOp::Finish(f) => finishes.push((i, f)),
            WriteOp::Reschedule(r) => reschedules.push((i, r)),
            WriteOp::Claim {
                job,
                owner,
                lease_micros,
            } => claims.push(lease::ClaimOp {
                index: i,
                job: *job,
                owner,
                lease_micros: *lease_micros,
            }),
            other => replies[i] = Some(state::apply(conn, other).await?),
        }
    }
    start_runs(conn, &starts, &mut replies).await?;
    finish_jobs(conn, &finishes, &mut replies).await?;
    reschedule(conn, &reschedules, &mut replies).await?;
    lease::claim_jobs(conn, &claims, &mut replies).await?;
    replies
        .into_iter()
        .map(|r| r.ok_or_else(|| BatchError::Op("a write was not applied".into())))
        .collect()
}

/// Events as the column arrays of an `UNNEST` insert, in the given order (so `seq` follows it).
#[derive(Default)]
struct EventColumns<'a> {
    id: Vec<Uuid>,
    run: Vec<Uuid>,
    parent: Vec<Option<Uuid>>,
    story: Vec<&'a str>,
    agent: Vec<&'a str>,
    kind: Vec<&'static str>,
    at: Vec<Timestamp>,
    payload: Vec<&'a str>,
}

impl<'a> EventColumns<'a> {
    fn new(events: impl Iterator<Item = &'a NewEvent>) -> Self {
        let mut c = EventColumns::default();
        for e in events {
            c.id.push(e.id.0);
            c.run.push(e.run_id.0);
            c.parent.push(e.parent_id.map(|p| p.0));
            c.story.push(&e.story);
            c.agent.push(&e.agent);
            c.kind.push(e.kind.as_str());
            c.at.push(e.created_at);
            c.payload.push(&e.json);
        }
        c
    }

    /// Binds the eight arrays of `insert_events_sql!` ($1..$8).
    fn bind<'q>(self, q: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        q.bind(self.id)
            .bind(self.run)
            .bind(self.parent)
            .bind(self.story)
            .bind(self.agent)
            .bind(self.kind)
            .bind(self.at)
            .bind(self.payload)
    }
}

/// Queued jobs as the column arrays of an `UNNEST` insert.
#[derive(Default)]
struct JobColumns<'a> {
    id: Vec<Uuid>,
    run: Vec<Uuid>,
    story: Vec<&'a str>,
    agent: Vec<&'a str>,
    input: Vec<Uuid>,
    deferred: Vec<bool>,
    created: Vec<Timestamp>,
    due: Vec<Timestamp>,
}

impl<'a> JobColumns<'a> {
    fn new(jobs: impl Iterator<Item = &'a NewJob>) -> Self {
        let mut c = JobColumns::default();
        for j in jobs {
            c.id.push(j.id.0);
            c.run.push(j.run_id.0);
            c.story.push(&j.story);
            c.agent.push(&j.agent);
            c.input.push(j.input_event_id.0);
            c.deferred.push(j.deferred);
            c.created.push(j.created_at);
            c.due.push(j.due_at);
        }
        c
    }

    /// Binds the eight arrays of `insert_jobs_sql!` ($9..$16).
    fn bind<'q>(self, q: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        q.bind(self.id)
            .bind(self.run)
            .bind(self.story)
            .bind(self.agent)
            .bind(self.input)
            .bind(self.deferred)
            .bind(self.created)
            .bind(self.due)
    }
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// `INSERT INTO events` from the arrays $1..$8 ([`EventColumns`]).
macro_rules! insert_events_sql {
    () => {
        "INSERT INTO events (id, run_id, parent_id, story, agent, kind, created_at, payload)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                              $7::timestamptz[], $8::text[])"
    };
}

/// `INSERT INTO jobs` (queued) from the arrays $9..$16 ([`JobColumns`]).
macro_rules! insert_jobs_sql {
    () => {
        "INSERT INTO jobs (id, run_id, story, agent, input_event_id, state, attempts, deferred, created_at, due_at)
         SELECT u.id, u.run_id, u.story, u.agent, u.input, 'queued', 0, u.deferred, u.created_at, u.due_at
         FROM UNNEST($9::uuid[], $10::uuid[], $11::text[], $12::text[], $13::uuid[], $14::bool[],
                     $15::timestamptz[], $16::timestamptz[])
              AS u(id, run_id, story, agent, input, deferred, created_at, due_at)"
    };
}

/// Events and queued jobs in one statement (one round trip).
const INSERT_EVENTS_AND_JOBS: &str = concat!(
    "WITH new_events AS (",
    insert_events_sql!(),
    ") ",
    insert_jobs_sql!()
);

/// Runs ($17..$27) with their first events and queued jobs, in one statement.
const INSERT_RUNS_EVENTS_AND_JOBS: &str = concat!(
    "WITH new_events AS (",
    insert_events_sql!(),
    "), new_jobs AS (",
    insert_jobs_sql!(),
    ") ",
    "INSERT INTO runs (id, story, status, trigger_event_id, trigger_agent, started_at, finished_at,
                       pending_jobs, started_by, parent_job_id, parent_exit)
     SELECT * FROM UNNEST($17::uuid[], $18::text[], $19::text[], $20::uuid[], $21::text[],
                          $22::timestamptz[], $23::timestamptz[], $24::int8[], $25::text[],
                          $26::uuid[], $27::text[])"
);

/// Inserts queued jobs.
pub async fn insert_jobs<'a>(
    conn: &mut PgConnection,
    jobs: impl Iterator<Item = &'a NewJob>,
) -> Result<(), sqlx_core::Error> {
    insert_events_and_jobs(conn, std::iter::empty(), jobs).await
}

/// Inserts events (in the given order) and queued jobs in one statement.
async fn insert_events_and_jobs<'a>(
    conn: &mut PgConnection,
    events: impl Iterator<Item = &'a NewEvent>,
    jobs: impl Iterator<Item = &'a NewJob>,
) -> Result<(), sqlx_core::Error> {
    let (events, jobs) = (EventColumns::new(events), JobColumns::new(jobs));
    if events.id.is_empty() && jobs.id.is_empty() {
        return Ok(());
    }
    jobs.bind(events.bind(query(INSERT_EVENTS_AND_JOBS)))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn start_runs(
    conn: &mut PgConnection,
    starts: &[(usize, &StartRun)],
    replies: &mut [Option<WriteReply>],
) -> Result<(), BatchError> {
    if starts.is_empty() {
        return Ok(());
    }
    claim_idempotency_keys(conn, starts, replies).await?;
    let fresh: Vec<&StartRun> = starts
        .iter()
        .filter(|(i, _)| replies[*i].is_none())
        .map(|(_, s)| *s)
        .collect();
    if !fresh.is_empty() {
        let n = fresh.len();
        let (mut id, mut story, mut status, mut trigger, mut agent, mut started, mut finished) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut pending, mut by, mut parent, mut exit) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for s in &fresh {
            let done = s.jobs.is_empty();
            id.push(s.run_id.0);
            story.push(&*s.event.story);
            status.push(if done {
                RunStatus::Succeeded.as_str()
            } else {
                RunStatus::Running.as_str()
            });
            trigger.push(s.event.id.0);
            agent.push(&*s.event.agent);
            started.push(s.event.created_at);
            finished.push(done.then_some(s.event.created_at));
            pending.push(s.jobs.len() as i64);
            by.push(s.started_by.as_deref());
            parent.push(s.parent.as_ref().map(|p| p.job_id.0));
            exit.push(s.parent.as_ref().map(|p| p.exit_agent.as_str()));
        }
        let events = EventColumns::new(fresh.iter().map(|s| &s.event));
        let jobs = JobColumns::new(fresh.iter().flat_map(|s| s.jobs.iter()));
        jobs.bind(events.bind(query(INSERT_RUNS_EVENTS_AND_JOBS)))
            .bind(id)
            .bind(story)
            .bind(status)
            .bind(trigger)
            .bind(agent)
            .bind(started)
            .bind(finished)
            .bind(pending)
            .bind(by)
            .bind(parent)
            .bind(exit)
            .execute(&mut *conn)
            .await?;
    }
    for (i, _) in starts {
        if replies[*i].is_none() {
            replies[*i] = Some(WriteReply::Started(Started::New));
        }
    }
    Ok(())
}

/// Claims the webhook idempotency keys of a batch's run starts. The first delivery of a key
/// claims it (also against other writers and processes: `ON CONFLICT DO NOTHING` waits for
/// a concurrent claim to commit); every other delivery is answered with the claimant's ids.
async fn claim_idempotency_keys(
    conn: &mut PgConnection,
    starts: &[(usize, &StartRun)],
    replies: &mut [Option<WriteReply>],
) -> Result<(), BatchError> {
    let mut claims: Vec<(usize, &StartRun, &str)> = Vec::new();
    let mut repeats: Vec<(usize, &str, &str)> = Vec::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for (i, s) in starts {
        if let Some(key) = s.idempotency_key.as_deref() {
            if seen.insert((&*s.event.story, key)) {
                claims.push((*i, s, key));
            } else {
                repeats.push((*i, &*s.event.story, key));
            }
        }
    }
    if claims.is_empty() {
        return Ok(());
    }
    let rows = query::<Postgres>(
        "INSERT INTO webhook_deliveries (story, key, event_id, run_id, created_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::timestamptz[])
         ON CONFLICT DO NOTHING RETURNING story, key",
    )
    .bind(claims.iter().map(|c| &*c.1.event.story).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.2).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.1.event.id.0).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.1.run_id.0).collect::<Vec<_>>())
    .bind(
        claims
            .iter()
            .map(|c| c.1.event.created_at)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut won: HashSet<(String, String)> = HashSet::with_capacity(rows.len());
    for r in rows {
        won.insert((r.try_get(0)?, r.try_get(1)?));
    }
    let mut ids: HashMap<(String, String), (EventId, RunId)> = HashMap::new();
    let lost: Vec<&(usize, &StartRun, &str)> = claims
        .iter()
        .filter(|c| !won.contains(&(c.1.event.story.to_string(), c.2.to_string())))
        .collect();
    if !lost.is_empty() {
        let rows = query::<Postgres>(
            "SELECT d.story, d.key, d.event_id, d.run_id FROM webhook_deliveries d
             JOIN UNNEST($1::text[], $2::text[]) AS u(story, key) ON d.story = u.story AND d.key = u.key",
        )
        .bind(lost.iter().map(|c| &*c.1.event.story).collect::<Vec<_>>())
        .bind(lost.iter().map(|c| c.2).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            ids.insert(
                (r.try_get(0)?, r.try_get(1)?),
                (EventId(r.try_get(2)?), RunId(r.try_get(3)?)),
            );
        }
    }
    for (i, s, key) in &claims {
        let k = (s.event.story.to_string(), key.to_string());
        if won.contains(&k) {
            ids.insert(k, (s.event.id, s.run_id));
        } else {
            let (event_id, run_id) = *ids.get(&k).ok_or_else(|| {
                BatchError::Op(format!("idempotency key {key} is claimed but not readable"))
            })?;
            replies[*i] = Some(WriteReply::Started(Started::Duplicate { event_id, run_id }));
        }
    }
    for (i, story, key) in repeats {
        let (event_id, run_id) = *ids
            .get(&(story.to_string(), key.to_string()))
            .ok_or_else(|| BatchError::Op(format!("idempotency key {key} has no claimant")))?;
        replies[i] = Some(WriteReply::Started(Started::Duplicate { event_id, run_id }));
    }
    Ok(())
}

/// Moves each run's `pending_jobs` by its delta ($1 run ids, $2 deltas, $3 errors, $4 finish
/// times) and ends the runs that reach zero.
pub(super) const UPDATE_RUN_COUNTERS: &str = "
    UPDATE runs SET
        pending_jobs = runs.pending_jobs + u.delta,
        error = COALESCE(runs.error, u.error),
        status = CASE WHEN runs.pending_jobs + u.delta <= 0
                      THEN (CASE WHEN COALESCE(runs.error, u.error) IS NULL THEN 'succeeded' ELSE 'failed' END)
                      ELSE runs.status END,
        finished_at = CASE WHEN runs.pending_jobs + u.delta <= 0 THEN u.finished_at ELSE runs.finished_at END
    FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::timestamptz[]) AS u(id, delta, error, finished_at)
    WHERE runs.id = u.id
    RETURNING runs.id, runs.status, runs.pending_jobs, runs.parent_job_id, runs.parent_exit";

/// A run's share of a batch of finishes.
struct RunDelta {
    delta: i64,
    error: Option<String>,
    finished_at: Timestamp,
    /// The last finish of this run in the batch: it reports the run's end.
    last: usize,
}

async fn finish_jobs(
    conn: &mut PgConnection,
    finishes: &[(usize, &FinishJob)],
    replies: &mut [Option<WriteReply>],
) -> Result<(), BatchError> {
    if finishes.is_empty() {
        return Ok(());
    }
    // A job finished twice in one batch (a redelivery): the first one counts.
    let mut seen = HashSet::with_capacity(finishes.len());
    let candidates: Vec<&(usize, &FinishJob)> = finishes
        .iter()
        .filter(|(i, f)| {
            let first = seen.insert(f.job_id);
            if !first {
                replies[*i] = Some(WriteReply::Finished(Finished::AlreadyFinished));
            }
            first
        })
        .collect();
    let rows = query::<Postgres>(
        "UPDATE jobs SET state = u.state, attempts = u.attempts, started_at = u.started_at,
                         finished_at = u.finished_at, error = u.error
         FROM UNNEST($1::uuid[], $2::text[], $3::int4[], $4::timestamptz[], $5::timestamptz[], $6::text[])
              AS u(id, state, attempts, started_at, finished_at, error)
         WHERE jobs.id = u.id AND jobs.state = 'queued'
         RETURNING jobs.id",
    )
    .bind(candidates.iter().map(|c| c.1.job_id.0).collect::<Vec<_>>())
    .bind(candidates.iter().map(|c| c.1.state.as_str()).collect::<Vec<_>>())
    .bind(
        candidates
            .iter()
            .map(|c| i32::try_from(c.1.attempts).unwrap_or(i32::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(candidates.iter().map(|c| c.1.started_at).collect::<Vec<_>>())
    .bind(candidates.iter().map(|c| c.1.finished_at).collect::<Vec<_>>())
    .bind(candidates.iter().map(|c| c.1.error.as_deref()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let mut updated: HashSet<Uuid> = HashSet::with_capacity(rows.len());
    for r in rows {
        updated.insert(r.try_get(0)?);
    }
    let mut applied: Vec<(usize, &FinishJob)> = Vec::with_capacity(updated.len());
    for (i, f) in candidates {
        if updated.contains(&f.job_id.0) {
            applied.push((*i, f));
        } else {
            replies[*i] = Some(WriteReply::Finished(Finished::AlreadyFinished));
        }
    }
    if applied.is_empty() {
        return Ok(());
    }
    insert_events_and_jobs(
        conn,
        applied.iter().flat_map(|(_, f)| f.events.iter()),
        applied.iter().flat_map(|(_, f)| f.jobs.iter()),
    )
    .await?;

    // Move each run's counter once, by the sum of its finishes' deltas.
    let mut order: Vec<RunId> = Vec::new();
    let mut runs: HashMap<RunId, RunDelta> = HashMap::new();
    for (i, f) in &applied {
        let d = f.jobs.len() as i64 - 1;
        let entry = runs.entry(f.run_id).or_insert_with(|| {
            order.push(f.run_id);
            RunDelta {
                delta: 0,
                error: None,
                finished_at: f.finished_at,
                last: *i,
            }
        });
        entry.delta += d;
        if entry.error.is_none() {
            entry.error.clone_from(&f.unhandled_failure);
        }
        entry.finished_at = entry.finished_at.max(f.finished_at);
        entry.last = *i;
    }
    let rows = query::<Postgres>(UPDATE_RUN_COUNTERS)
        .bind(order.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(order.iter().map(|r| runs[r].delta).collect::<Vec<_>>())
        .bind(
            order
                .iter()
                .map(|r| runs[r].error.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            order
                .iter()
                .map(|r| runs[r].finished_at)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *conn)
        .await?;
    // run → (status, pending, parent job, parent's exit agent)
    let mut after: HashMap<RunId, (String, i64, Option<Uuid>, Option<String>)> =
        HashMap::with_capacity(rows.len());
    for r in rows {
        after.insert(
            RunId(r.try_get(0)?),
            (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?),
        );
    }

    // Each finish's outcome, and the parent `story` jobs to wake.
    let mut outcomes: Vec<(usize, Option<RunStatus>, Option<Uuid>)> = Vec::new();
    let mut wake: Vec<(Uuid, Timestamp)> = Vec::new();
    for (i, f) in &applied {
        let (status, pending, parent, exit) = after.get(&f.run_id).ok_or_else(|| {
            BatchError::Op(format!(
                "run {} of job {} does not exist",
                f.run_id, f.job_id
            ))
        })?;
        let run_ended = if *pending <= 0 && runs[&f.run_id].last == *i {
            RunStatus::parse(status)
        } else {
            None
        };
        let mut parent_woken = None;
        if let (Some(parent), Some(exit)) = (parent, exit) {
            let exit_emitted = f
                .events
                .iter()
                .any(|e| *e.agent == **exit && e.kind == EventKind::Event);
            if exit_emitted || run_ended.is_some() {
                wake.push((*parent, f.finished_at));
                parent_woken = Some(*parent);
            }
        }
        outcomes.push((*i, run_ended, parent_woken));
    }
    let mut woken: HashSet<Uuid> = HashSet::new();
    if !wake.is_empty() {
        let rows = query::<Postgres>(
            "UPDATE jobs SET due_at = LEAST(jobs.due_at, u.at), woken_at = u.at
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, at)
             WHERE jobs.id = u.id AND jobs.state = 'queued'
             RETURNING jobs.id",
        )
        .bind(wake.iter().map(|w| w.0).collect::<Vec<_>>())
        .bind(wake.iter().map(|w| w.1).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            woken.insert(r.try_get(0)?);
        }
    }
    for (i, run_ended, parent) in outcomes {
        let woke = parent.filter(|p| woken.contains(p)).map(JobId);
        replies[i] = Some(WriteReply::Finished(Finished::Applied { run_ended, woke }));
    }
    Ok(())
}

async fn reschedule(
    conn: &mut PgConnection,
    reschedules: &[(usize, &Reschedule)],
    replies: &mut [Option<WriteReply>],
) -> Result<(), BatchError> {
    if reschedules.is_empty() {
        return Ok(());
    }
    // The same job twice in one batch: the later one wins, as it would one after the other.
    let mut latest: HashMap<JobId, &Reschedule> = HashMap::with_capacity(reschedules.len());
    for (i, r) in reschedules {
        latest.insert(r.job_id, r);
        replies[*i] = Some(WriteReply::Done);
    }
    let rs: Vec<&Reschedule> = latest.into_values().collect();
    query::<Postgres>(
        "UPDATE jobs SET attempts = u.attempts,
                         due_at = CASE WHEN u.resumed AND jobs.woken_at IS NOT NULL
                                       THEN LEAST(u.due_at, jobs.woken_at) ELSE u.due_at END,
                         deferred = true,
                         started_at = COALESCE(u.started_at, jobs.started_at), error = u.error,
                         resumed = u.resumed, published_at = NULL, lease_owner = NULL,
                         lease_until = NULL
         FROM UNNEST($1::uuid[], $2::int4[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::bool[])
              AS u(id, attempts, due_at, started_at, error, resumed)
         WHERE jobs.id = u.id AND jobs.state = 'queued'",
    )
    .bind(rs.iter().map(|r| r.job_id.0).collect::<Vec<_>>())
    .bind(
        rs.iter()
            .map(|r| i32::try_from(r.attempts).unwrap_or(i32::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(rs.iter().map(|r| r.due_at).collect::<Vec<_>>())
    .bind(rs.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind(rs.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
    .bind(rs.iter().map(|r| r.resume).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
