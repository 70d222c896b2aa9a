//! The single writer thread: group commit.
//!
//! It blocks for the first write, then takes every write already waiting (up to
//! `max_batch`), applies them all in one IMMEDIATE transaction, commits once, and only then
//! answers each waiter. Writes that arrive during the commit form the next batch, so under
//! load one fsync covers many requests. Should a write fail, the transaction is rolled back
//! and the batch redone with each write in its own savepoint, so one bad write fails only
//! its own waiter (savepoints on every batch cost a third of the writer's CPU).

use std::sync::Arc;
use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use switchyard_types::{EventId, JobId, JobState, RunId, RunStatus};
use tokio::sync::{mpsc, oneshot};

use super::idle::{Msg, Next, Watch};
use super::rows::micros;
use crate::ops::{WriteOp, WriteReply};
use crate::{
    CommitStats, Error, FinishJob, Finished, ImplodeAdd, NewEvent, NewJob, Result, StartRun,
    Started, StateScope,
};

pub struct WriteRequest {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteReply>>,
}

pub fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Msg>,
    stats: Arc<CommitStats>,
    max_batch: usize,
    mut watch: Watch,
) {
    let mut batch: Vec<WriteRequest> = Vec::with_capacity(max_batch);
    loop {
        match watch.next(&mut rx) {
            Next::Msg(Msg::Write(req)) => batch.push(req),
            Next::Msg(Msg::Nudge) => {
                watch.busy();
                continue;
            }
            Next::Quiet => {
                watch.release(&conn);
                continue;
            }
            Next::Closed => break,
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Msg::Write(req)) => batch.push(req),
                Ok(Msg::Nudge) => {}
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let results = apply_batch(&mut conn, &batch, &stats);
        let took = started.elapsed();
        stats.record(batch.len(), took.as_micros() as u64);
        metrics::histogram!("switchyard_store_commit_seconds").record(took.as_secs_f64());
        metrics::histogram!("switchyard_store_batch_size").record(batch.len() as f64);
        for (req, result) in batch.drain(..).zip(results) {
            let _ = req.reply.send(result);
        }
        watch.busy();
    }
    tracing::debug!("store writer stopped");
}

fn apply_batch(
    conn: &mut Connection,
    batch: &[WriteRequest],
    stats: &CommitStats,
) -> Vec<Result<WriteReply>> {
    match apply_bulk(conn, batch) {
        Ok(replies) => replies.into_iter().map(Ok).collect(),
        Err(Bulk::Commit(e)) => fail_all(batch, &e),
        Err(Bulk::Write(e)) => {
            tracing::debug!(error = %e, "a write failed; redoing its batch write by write");
            stats.record_retry();
            metrics::counter!("switchyard_store_batch_retries_total").increment(1);
            apply_one_by_one(conn, batch)
        }
    }
}

/// Why the fast path gave up.
enum Bulk {
    /// A write failed; the transaction was rolled back (dropped), nothing is stored.
    Write(rusqlite::Error),
    /// The transaction could not be begun or committed: every write of the batch fails.
    Commit(rusqlite::Error),
}

/// The fast path: every write of the batch in one transaction, no savepoints.
fn apply_bulk(
    conn: &mut Connection,
    batch: &[WriteRequest],
) -> std::result::Result<Vec<WriteReply>, Bulk> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(Bulk::Commit)?;
    let mut replies = Vec::with_capacity(batch.len());
    for req in batch {
        // Dropping `tx` on the way out rolls the whole batch back.
        replies.push(apply(&tx, &req.op).map_err(Bulk::Write)?);
    }
    tx.commit().map_err(Bulk::Commit)?;
    Ok(replies)
}

/// The slow path, after a write failed: each write in its own savepoint inside one
/// transaction, so a failing write fails only its own waiter and the others commit.
fn apply_one_by_one(conn: &mut Connection, batch: &[WriteRequest]) -> Vec<Result<WriteReply>> {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch, &e),
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
        return fail_all(batch, &e);
    }
    results
}

/// Every write of `batch` fails with `e` (nothing of it was committed).
fn fail_all(batch: &[WriteRequest], e: &rusqlite::Error) -> Vec<Result<WriteReply>> {
    tracing::error!(error = %e, "store commit failed");
    batch
        .iter()
        .map(|_| Err(Error::Unavailable(e.to_string())))
        .collect()
}

fn apply(tx: &Connection, op: &WriteOp) -> rusqlite::Result<WriteReply> {
    match op {
        WriteOp::Start(s) => start_run(tx, s).map(WriteReply::Started),
        WriteOp::Finish(f) => finish_job(tx, f).map(WriteReply::Finished),
        WriteOp::Reschedule(r) => {
            tx.prepare_cached(
                "UPDATE jobs SET attempts = ?2,
                    due_at = CASE WHEN ?6 AND woken_at IS NOT NULL THEN MIN(?3, woken_at) ELSE ?3 END, deferred = 1, started_at = COALESCE(?4, started_at), error = ?5,
                    resumed = ?6
                 WHERE id = ?1 AND state = 'queued'",
            )?
            .execute(params![
                r.job_id.as_bytes().as_slice(),
                r.attempts,
                micros(r.due_at),
                r.started_at.map(micros),
                r.error,
                r.resume
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
        WriteOp::Admit {
            scope,
            key,
            job,
            now,
            window_micros,
            limit,
        } => admit(tx, scope, key, *job, *now, *window_micros, *limit).map(WriteReply::Admitted),
        WriteOp::ImplodeAdd {
            scope,
            key,
            job,
            now,
            item,
            size,
        } => implode_add(tx, scope, key, *job, *now, item, *size).map(WriteReply::Imploded),
        WriteOp::ImplodeFlush { scope, key, job } => {
            implode_flush(tx, scope, key, *job).map(WriteReply::Flushed)
        }
        WriteOp::SetStoryEnabled(story, enabled, at) => {
            tx.prepare_cached(
                "INSERT INTO story_settings (story, enabled, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (story) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
            )?
            .execute(params![story, enabled, at])?;
            Ok(WriteReply::Done)
        }
        WriteOp::Prune { before, max_rows } => {
            super::prune::prune(tx, *before, *max_rows).map(WriteReply::Pruned)
        }
        WriteOp::DeleteResource(name) => {
            let n = tx
                .prepare_cached("DELETE FROM resources WHERE name = ?1")?
                .execute([name])?;
            Ok(WriteReply::Changed(n))
        }
        WriteOp::Security(op) => super::security::apply(tx, op),
        // The embedded store has no coordination (`Store::coordination` is `None`), so no
        // claim reaches it.
        WriteOp::Claim { .. } => Err(rusqlite::Error::ToSqlConversionFailure(
            "job claims need the PostgreSQL store".into(),
        )),
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
        "INSERT INTO runs (id, story, status, trigger_event_id, trigger_agent, started_at, finished_at, pending_jobs, error, started_by,
                           parent_job_id, parent_exit)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10, ?11)",
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
        s.parent.as_ref().map(|p| p.job_id.as_bytes().to_vec()),
        s.parent.as_ref().map(|p| p.exit_agent.as_str()),
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
    let (status, pending, parent_job, parent_exit): (String, i64, Option<Vec<u8>>, Option<String>) = tx
        .prepare_cached(
            "UPDATE runs SET
                pending_jobs = pending_jobs + ?2,
                error = COALESCE(error, ?3),
                status = CASE WHEN pending_jobs + ?2 <= 0
                              THEN (CASE WHEN COALESCE(error, ?3) IS NULL THEN 'succeeded' ELSE 'failed' END)
                              ELSE status END,
                finished_at = CASE WHEN pending_jobs + ?2 <= 0 THEN ?4 ELSE finished_at END
             WHERE id = ?1
             RETURNING status, pending_jobs, parent_job_id, parent_exit",
        )?
        .query_row(
            params![f.run_id.as_bytes().as_slice(), delta, f.unhandled_failure, micros(f.finished_at)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
    let run_ended = if pending <= 0 {
        RunStatus::parse(&status)
    } else {
        None
    };
    // A waiting parent wakes when the exit agent emits or when this run ends.
    let mut woke = None;
    if let (Some(parent), Some(exit)) = (parent_job, parent_exit) {
        let exit_emitted = f
            .events
            .iter()
            .any(|e| *e.agent == *exit && e.kind == switchyard_types::EventKind::Event);
        if exit_emitted || run_ended.is_some() {
            let n = tx
                .prepare_cached(
                    "UPDATE jobs SET due_at = MIN(due_at, ?2), woken_at = ?2 WHERE id = ?1 AND state = 'queued'",
                )?
                .execute(params![parent, micros(f.finished_at)])?;
            if n > 0 {
                woke = JobId::from_slice(&parent);
            }
        }
    }
    Ok(Finished::Applied { run_ended, woke })
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

fn admit(
    tx: &Connection,
    scope: &StateScope,
    key: &str,
    job: JobId,
    now: i64,
    window: i64,
    limit: u32,
) -> rusqlite::Result<bool> {
    let story: &str = &scope.story;
    let agent: &str = &scope.agent;
    let seen = tx
        .prepare_cached("SELECT 1 FROM agent_marks WHERE story = ?1 AND agent = ?2 AND key = ?3 AND job_id = ?4")?
        .exists(params![story, agent, key, job.as_bytes().as_slice()])?;
    if seen {
        return Ok(true);
    }
    let count: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM agent_marks WHERE story = ?1 AND agent = ?2 AND key = ?3 AND at > ?4")?
        .query_row(params![story, agent, key, now.saturating_sub(window)], |r| r.get(0))?;
    if count >= i64::from(limit) {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO agent_marks (story, agent, key, job_id, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![story, agent, key, job.as_bytes().as_slice(), now])?;
    // Keep the table small: marks older than the window can no longer matter for this key.
    tx.prepare_cached(
        "DELETE FROM agent_marks WHERE story = ?1 AND agent = ?2 AND key = ?3 AND at <= ?4",
    )?
    .execute(params![story, agent, key, now.saturating_sub(window)])?;
    Ok(true)
}

fn open_items(
    tx: &Connection,
    scope: &StateScope,
    key: &str,
) -> rusqlite::Result<Vec<(Vec<u8>, String)>> {
    let mut stmt = tx.prepare_cached(
        "SELECT job_id, item FROM implode_items WHERE story = ?1 AND agent = ?2 AND key = ?3 AND consumed_by IS NULL ORDER BY at, job_id",
    )?;
    let rows = stmt.query_map(params![&*scope.story, &*scope.agent, key], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    rows.collect()
}

fn consumed_by(
    tx: &Connection,
    scope: &StateScope,
    key: &str,
    job: JobId,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare_cached(
        "SELECT item FROM implode_items WHERE story = ?1 AND agent = ?2 AND key = ?3 AND consumed_by = ?4 ORDER BY at, job_id",
    )?;
    let rows = stmt.query_map(
        params![&*scope.story, &*scope.agent, key, job.as_bytes().as_slice()],
        |r| r.get(0),
    )?;
    rows.collect()
}

fn consume(tx: &Connection, scope: &StateScope, key: &str, job: JobId) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE implode_items SET consumed_by = ?4 WHERE story = ?1 AND agent = ?2 AND key = ?3 AND consumed_by IS NULL")?
        .execute(params![&*scope.story, &*scope.agent, key, job.as_bytes().as_slice()])?;
    Ok(())
}

fn implode_add(
    tx: &Connection,
    scope: &StateScope,
    key: &str,
    job: JobId,
    now: i64,
    item: &str,
    size: usize,
) -> rusqlite::Result<ImplodeAdd> {
    // A re-executed job that already completed a group completes it again, identically.
    let mine = consumed_by(tx, scope, key, job)?;
    if !mine.is_empty() {
        return Ok(ImplodeAdd::Complete {
            items: mine,
            woke: None,
        });
    }
    tx.prepare_cached(
        "INSERT INTO implode_items (story, agent, key, job_id, at, item) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![&*scope.story, &*scope.agent, key, job.as_bytes().as_slice(), now, item])?;
    let open = open_items(tx, scope, key)?;
    if open.len() >= size.max(1) {
        consume(tx, scope, key, job)?;
        // Consumed items stay until the group's last reader is done; prune old ones.
        tx.prepare_cached("DELETE FROM implode_items WHERE story = ?1 AND agent = ?2 AND key = ?3 AND consumed_by IS NOT NULL AND consumed_by != ?4")?
            .execute(params![&*scope.story, &*scope.agent, key, job.as_bytes().as_slice()])?;
        // The job that opened the group waits for it: wake it (as a child run wakes its
        // parent), so that it ends now rather than at `max_wait`.
        let mut woke = None;
        if let Some((opener, _)) = open
            .first()
            .filter(|(j, _)| j.as_slice() != job.as_bytes().as_slice())
        {
            let n = tx
                .prepare_cached(
                    "UPDATE jobs SET due_at = MIN(due_at, ?2), woken_at = ?2 WHERE id = ?1 AND state = 'queued'",
                )?
                .execute(params![opener, now])?;
            if n > 0 {
                woke = JobId::from_slice(opener);
            }
        }
        return Ok(ImplodeAdd::Complete {
            items: open.into_iter().map(|(_, i)| i).collect(),
            woke,
        });
    }
    let opened = open
        .first()
        .is_some_and(|(j, _)| j.as_slice() == job.as_bytes().as_slice());
    Ok(ImplodeAdd::Pending { opened })
}

fn implode_flush(
    tx: &Connection,
    scope: &StateScope,
    key: &str,
    job: JobId,
) -> rusqlite::Result<Option<Vec<String>>> {
    let mine = consumed_by(tx, scope, key, job)?;
    if !mine.is_empty() {
        return Ok(Some(mine));
    }
    let open = open_items(tx, scope, key)?;
    if !open
        .iter()
        .any(|(j, _)| j.as_slice() == job.as_bytes().as_slice())
    {
        // The group holding this job's item was already completed by another event.
        return Ok(None);
    }
    consume(tx, scope, key, job)?;
    Ok(Some(open.into_iter().map(|(_, i)| i).collect()))
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
