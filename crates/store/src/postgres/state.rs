//! The stateful writes, applied one at a time inside a batch: admissions of
//! `deduplicate`/`throttle`, `implode` groups, resources, replays and (in [`super::security`])
//! credentials, tokens and the audit log.
//!
//! An admission counts then inserts, which under READ COMMITTED is a race between two
//! transactions; so admissions and implode groups first take a transaction-scoped advisory
//! lock on their (story, agent, key), which serializes them across writers and processes.

use sqlx_core::query::query;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, Postgres};
use switchyard_types::{from_micros, JobId};
use uuid::Uuid;

use super::batch::{insert_jobs, BatchError};
use crate::ops::{WriteOp, WriteReply};
use crate::{ImplodeAdd, StateScope};

/// Applies one stateful write.
pub async fn apply(conn: &mut PgConnection, op: &WriteOp) -> Result<WriteReply, BatchError> {
    match op {
        WriteOp::Replay(run_id, jobs) => {
            insert_jobs(conn, jobs.iter()).await?;
            query::<Postgres>(
                "UPDATE runs SET pending_jobs = pending_jobs + $2, status = 'running', finished_at = NULL, error = NULL
                 WHERE id = $1",
            )
            .bind(run_id.0)
            .bind(jobs.len() as i64)
            .execute(&mut *conn)
            .await?;
            Ok(WriteReply::Done)
        }
        WriteOp::SetResource(name, value, at) => {
            query::<Postgres>(
                "INSERT INTO resources (name, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(value)
            .bind(from_micros(*at))
            .execute(&mut *conn)
            .await?;
            Ok(WriteReply::Done)
        }
        WriteOp::DeleteResource(name) => {
            let done = query::<Postgres>("DELETE FROM resources WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            Ok(WriteReply::Changed(done.rows_affected() as usize))
        }
        WriteOp::Security(op) => super::security::apply(conn, op).await,
        WriteOp::Admit {
            scope,
            key,
            job,
            now,
            window_micros,
            limit,
        } => {
            let since = now.saturating_sub(*window_micros);
            admit(conn, scope, key, *job, *now, since, *limit)
                .await
                .map(WriteReply::Admitted)
        }
        WriteOp::ImplodeAdd {
            scope,
            key,
            job,
            now,
            item,
            size,
        } => implode_add(conn, scope, key, *job, *now, item, *size)
            .await
            .map(WriteReply::Imploded),
        WriteOp::ImplodeFlush { scope, key, job } => implode_flush(conn, scope, key, *job)
            .await
            .map(WriteReply::Flushed),
        WriteOp::SetStoryEnabled(story, enabled, at) => {
            query::<Postgres>(
                "INSERT INTO story_settings (story, enabled, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (story) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(story)
            .bind(*enabled)
            .bind(from_micros(*at))
            .execute(&mut *conn)
            .await?;
            Ok(WriteReply::Done)
        }
        WriteOp::Prune { before, max_rows } => Ok(WriteReply::Pruned(
            super::prune::prune(conn, *before, *max_rows).await?,
        )),
        WriteOp::Start(_) | WriteOp::Finish(_) | WriteOp::Reschedule(_) | WriteOp::Claim { .. } => {
            Err(BatchError::Op(
                "run starts, finishes, reschedules and claims are applied in bulk".into(),
            ))
        }
    }
}

/// A stable 64-bit key for an advisory lock (FNV-1a: the same in every process).
fn lock_key(scope: &StateScope, key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        scope.story.as_bytes(),
        scope.agent.as_bytes(),
        key.as_bytes(),
    ] {
        for b in part.iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

async fn lock(conn: &mut PgConnection, scope: &StateScope, key: &str) -> Result<(), BatchError> {
    query::<Postgres>("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(scope, key))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn admit(
    conn: &mut PgConnection,
    scope: &StateScope,
    key: &str,
    job: JobId,
    now: i64,
    since: i64,
    limit: u32,
) -> Result<bool, BatchError> {
    lock(conn, scope, key).await?;
    let row = query::<Postgres>(
        "SELECT COUNT(*) FILTER (WHERE job_id = $4), COUNT(*) FILTER (WHERE at > $5)
         FROM agent_marks WHERE story = $1 AND agent = $2 AND key = $3",
    )
    .bind(&*scope.story)
    .bind(&*scope.agent)
    .bind(key)
    .bind(job.0)
    .bind(from_micros(since))
    .fetch_one(&mut *conn)
    .await?;
    let (mine, passed): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if mine > 0 {
        return Ok(true);
    }
    if passed >= i64::from(limit) {
        return Ok(false);
    }
    // Keep the table small: marks older than the window can no longer matter for this key.
    query::<Postgres>(
        "WITH pruned AS (
             DELETE FROM agent_marks WHERE story = $1 AND agent = $2 AND key = $3 AND at <= $6)
         INSERT INTO agent_marks (story, agent, key, job_id, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&*scope.story)
    .bind(&*scope.agent)
    .bind(key)
    .bind(job.0)
    .bind(from_micros(now))
    .bind(from_micros(since))
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

async fn open_items(
    conn: &mut PgConnection,
    scope: &StateScope,
    key: &str,
) -> Result<Vec<(Uuid, String)>, BatchError> {
    let rows = query::<Postgres>(
        "SELECT job_id, item FROM implode_items
         WHERE story = $1 AND agent = $2 AND key = $3 AND consumed_by IS NULL ORDER BY at, job_id",
    )
    .bind(&*scope.story)
    .bind(&*scope.agent)
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

async fn consumed_by(
    conn: &mut PgConnection,
    scope: &StateScope,
    key: &str,
    job: JobId,
) -> Result<Vec<String>, BatchError> {
    let rows = query::<Postgres>(
        "SELECT item FROM implode_items
         WHERE story = $1 AND agent = $2 AND key = $3 AND consumed_by = $4 ORDER BY at, job_id",
    )
    .bind(&*scope.story)
    .bind(&*scope.agent)
    .bind(key)
    .bind(job.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

async fn consume(
    conn: &mut PgConnection,
    scope: &StateScope,
    key: &str,
    job: JobId,
) -> Result<(), BatchError> {
    query::<Postgres>(
        "UPDATE implode_items SET consumed_by = $4
         WHERE story = $1 AND agent = $2 AND key = $3 AND consumed_by IS NULL",
    )
    .bind(&*scope.story)
    .bind(&*scope.agent)
    .bind(key)
    .bind(job.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn implode_add(
    conn: &mut PgConnection,
    scope: &StateScope,
    key: &str,
    job: JobId,
    now: i64,
    item: &str,
    size: usize,
) -> Result<ImplodeAdd, BatchError> {
    lock(conn, scope, key).await?;
    // A re-executed job that already completed a group completes it again, identically.
    let mine = consumed_by(conn, scope, key, job).await?;
    if !mine.is_empty() {
        return Ok(ImplodeAdd::Complete {
            items: mine,
            woke: None,
        });
    }
    query::<Postgres>(
        "INSERT INTO implode_items (story, agent, key, job_id, at, item) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(&*scope.story)
    .bind(&*scope.agent)
    .bind(key)
    .bind(job.0)
    .bind(from_micros(now))
    .bind(item)
    .execute(&mut *conn)
    .await?;
    let open = open_items(conn, scope, key).await?;
    if open.len() >= size.max(1) {
        consume(conn, scope, key, job).await?;
        // Consumed items stay until the group's last reader is done; prune older groups.
        query::<Postgres>(
            "DELETE FROM implode_items WHERE story = $1 AND agent = $2 AND key = $3
             AND consumed_by IS NOT NULL AND consumed_by <> $4",
        )
        .bind(&*scope.story)
        .bind(&*scope.agent)
        .bind(key)
        .bind(job.0)
        .execute(&mut *conn)
        .await?;
        // The job that opened the group waits for it: wake it (as a child run wakes its
        // parent), so that it ends now rather than at `max_wait`.
        let mut woke = None;
        if let Some((opener, _)) = open.first().filter(|(j, _)| *j != job.0) {
            let rows = query::<Postgres>(
                "UPDATE jobs SET due_at = LEAST(due_at, $2), woken_at = $2
                 WHERE id = $1 AND state = 'queued' RETURNING id",
            )
            .bind(opener)
            .bind(from_micros(now))
            .fetch_all(&mut *conn)
            .await?;
            if !rows.is_empty() {
                woke = Some(JobId(*opener));
            }
        }
        return Ok(ImplodeAdd::Complete {
            items: open.into_iter().map(|(_, i)| i).collect(),
            woke,
        });
    }
    let opened = open.first().is_some_and(|(j, _)| *j == job.0);
    Ok(ImplodeAdd::Pending { opened })
}

async fn implode_flush(
    conn: &mut PgConnection,
    scope: &StateScope,
    key: &str,
    job: JobId,
) -> Result<Option<Vec<String>>, BatchError> {
    lock(conn, scope, key).await?;
    let mine = consumed_by(conn, scope, key, job).await?;
    if !mine.is_empty() {
        return Ok(Some(mine));
    }
    let open = open_items(conn, scope, key).await?;
    if !open.iter().any(|(j, _)| *j == job.0) {
        // The group holding this job's item was already completed by another event.
        return Ok(None);
    }
    consume(conn, scope, key, job).await?;
    Ok(Some(open.into_iter().map(|(_, i)| i).collect()))
}
