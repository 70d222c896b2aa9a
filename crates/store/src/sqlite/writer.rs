//! The single writer thread: group commit.
//!
//! It blocks for the first write, then takes every write already waiting (up to
//! `max_batch`), applies each in its own savepoint inside one IMMEDIATE transaction, commits
//! once, and only then answers each waiter. Writes that arrive during the commit form the
//! next batch, so under load one fsync covers many requests.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use switchyard_types::{EventId, JobState, RunId, RunStatus};
use tokio::sync::{mpsc, oneshot};

use super::rows::micros;
use crate::{
    CommitStats, Error, FinishJob, Finished, NewEvent, NewJob, Reschedule, Result, StartRun,
    Started,
};

pub enum WriteOp {
    Start(StartRun),
    Finish(FinishJob),
    Reschedule(Reschedule),
    Replay(RunId, Vec<NewJob>),
    SetResource(String, String, i64),
    DeleteResource(String),
    Security(super::security::SecurityOp),
}

pub enum WriteReply {
    Started(Started),
    Finished(Finished),
    Done,
    Changed(usize),
}

pub struct WriteRequest {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteReply>>,
}

pub fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<WriteRequest>,
    stats: Arc<CommitStats>,
    max_batch: usize,
) {
    let mut batch: Vec<WriteRequest> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let results = apply_batch(&mut conn, &batch);
        stats.record(batch.len(), started.elapsed().as_micros() as u64);
        for (req, result) in batch.drain(..).zip(results) {
            let _ = req.reply.send(result);
        }
    }
    tracing::debug!("store writer stopped");
}

fn apply_batch(conn: &mut Connection, batch: &[WriteRequest]) -> Vec<Result<WriteReply>> {
    let fail_all = |e: rusqlite::Error| -> Vec<Result<WriteReply>> {
        tracing::error!(error = %e, "store commit failed");
        batch
            .iter()
            .map(|_| Err(Error::Unavailable(e.to_string())))
            .collect()
    };
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for req in batch {
        let result = (|| -> rusqlite::Result<WriteReply> {
            let sp = tx.savepoint()?;
            let reply = apply(&sp, &req.op)?;
            sp.commit()?;
            Ok(reply)
        })();
        results.push(result.map_err(|e| {
            tracing::error!(error = %e, "store write failed");
            Error::Unavailable(e.to_string())
        }));
    }
    if let Err(e) = tx.commit() {
        return fail_all(e);
    }
    results
}

fn apply(tx: &Connection, op: &WriteOp) -> rusqlite::Result<WriteReply> {
    match op {
        WriteOp::Start(s) => start_run(tx, s).map(WriteReply::Started),
        WriteOp::Finish(f) => finish_job(tx, f).map(WriteReply::Finished),
        WriteOp::Reschedule(r) => {
            tx.prepare_cached(
                "UPDATE jobs SET attempts = ?2, due_at = ?3, deferred = 1, started_at = COALESCE(?4, started_at), error = ?5
                 WHERE id = ?1 AND state = 'queued'",
            )?
            .execute(params![
                r.job_id.as_bytes().as_slice(),
                r.attempts,
                micros(r.due_at),
                r.started_at.map(micros),
                r.error
            ])?;
            Ok(WriteReply::Done)
        }
        WriteOp::Replay(run_id, jobs) => {
            insert_jobs(tx, jobs)?;
            tx.prepare_cached(
                "UPDATE runs SET pending_jobs = pending_jobs + ?2, status = 'running', finished_at = NULL, error = NULL
                 WHERE id = ?1",
            )?
            .execute(params![run_id.as_bytes().as_slice(), jobs.len() as i64])?;
            Ok(WriteReply::Done)
        }
        WriteOp::SetResource(name, value, at) => {
            tx.prepare_cached(
                "INSERT INTO resources (name, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?
            .execute(params![name, value, at])?;
            Ok(WriteReply::Done)
        }
        WriteOp::DeleteResource(name) => {
            let n = tx
                .prepare_cached("DELETE FROM resources WHERE name = ?1")?
                .execute([name])?;
            Ok(WriteReply::Changed(n))
        }
        WriteOp::Security(op) => super::security::apply(tx, op),
    }
}

fn start_run(tx: &Connection, s: &StartRun) -> rusqlite::Result<Started> {
    let story: &str = &s.event.story;
    if let Some(key) = &s.idempotency_key {
        let seen = tx
            .prepare_cached(
                "SELECT event_id, run_id FROM webhook_deliveries WHERE story = ?1 AND key = ?2",
            )?
            .query_row(params![story, key], |r| {
                let e: Vec<u8> = r.get(0)?;
                let run: Vec<u8> = r.get(1)?;
                Ok((e, run))
            })
            .optional()?;
        if let Some((e, run)) = seen {
            if let (Some(event_id), Some(run_id)) =
                (EventId::from_slice(&e), RunId::from_slice(&run))
            {
                return Ok(Started::Duplicate { event_id, run_id });
            }
        }
        tx.prepare_cached(
            "INSERT INTO webhook_deliveries (story, key, event_id, run_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            story,
            key,
            s.event.id.as_bytes().as_slice(),
            s.run_id.as_bytes().as_slice(),
            micros(s.event.created_at)
        ])?;
    }
    let done = s.jobs.is_empty();
    tx.prepare_cached(
        "INSERT INTO runs (id, story, status, trigger_event_id, trigger_agent, started_at, finished_at, pending_jobs, error, started_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9)",
    )?
    .execute(params![
        s.run_id.as_bytes().as_slice(),
        story,
        if done { RunStatus::Succeeded.as_str() } else { RunStatus::Running.as_str() },
        s.event.id.as_bytes().as_slice(),
        &*s.event.agent,
        micros(s.event.created_at),
        done.then(|| micros(s.event.created_at)),
        s.jobs.len() as i64,
        s.started_by,
    ])?;
    insert_events(tx, std::slice::from_ref(&s.event))?;
    insert_jobs(tx, &s.jobs)?;
    Ok(Started::New)
}

fn finish_job(tx: &Connection, f: &FinishJob) -> rusqlite::Result<Finished> {
    let changed = tx
        .prepare_cached(
            "UPDATE jobs SET state = ?2, attempts = ?3, started_at = ?4, finished_at = ?5, error = ?6
             WHERE id = ?1 AND state = 'queued'",
        )?
        .execute(params![
            f.job_id.as_bytes().as_slice(),
            f.state.as_str(),
            f.attempts,
            micros(f.started_at),
            micros(f.finished_at),
            f.error
        ])?;
    if changed == 0 {
        return Ok(Finished::AlreadyFinished);
    }
    debug_assert!(f.state != JobState::Queued);
    insert_events(tx, &f.events)?;
    insert_jobs(tx, &f.jobs)?;
    let delta = f.jobs.len() as i64 - 1;
    let (status, pending): (String, i64) = tx
        .prepare_cached(
            "UPDATE runs SET
                pending_jobs = pending_jobs + ?2,
                error = COALESCE(error, ?3),
                status = CASE WHEN pending_jobs + ?2 <= 0
                              THEN (CASE WHEN COALESCE(error, ?3) IS NULL THEN 'succeeded' ELSE 'failed' END)
                              ELSE status END,
                finished_at = CASE WHEN pending_jobs + ?2 <= 0 THEN ?4 ELSE finished_at END
             WHERE id = ?1
             RETURNING status, pending_jobs",
        )?
        .query_row(
            params![f.run_id.as_bytes().as_slice(), delta, f.unhandled_failure, micros(f.finished_at)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    let run_ended = if pending <= 0 {
        RunStatus::parse(&status)
    } else {
        None
    };
    Ok(Finished::Applied { run_ended })
}

fn insert_events(tx: &Connection, events: &[NewEvent]) -> rusqlite::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (id, run_id, parent_id, story, agent, kind, created_at, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for e in events {
        stmt.execute(params![
            e.id.as_bytes().as_slice(),
            e.run_id.as_bytes().as_slice(),
            e.parent_id.as_ref().map(|p| p.as_bytes().as_slice()),
            &*e.story,
            &*e.agent,
            e.kind.as_str(),
            micros(e.created_at),
            &*e.json,
        ])?;
    }
    Ok(())
}

fn insert_jobs(tx: &Connection, jobs: &[NewJob]) -> rusqlite::Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO jobs (id, run_id, story, agent, input_event_id, state, attempts, deferred, created_at, due_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7, ?8)",
    )?;
    for j in jobs {
        stmt.execute(params![
            j.id.as_bytes().as_slice(),
            j.run_id.as_bytes().as_slice(),
            &*j.story,
            &*j.agent,
            j.input_event_id.as_bytes().as_slice(),
            j.deferred,
            micros(j.created_at),
            micros(j.due_at),
        ])?;
    }
    Ok(())
}
