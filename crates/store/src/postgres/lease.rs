//! Coordination of several processes on PostgreSQL: job leases (claims go through the
//! writers, in bulk like finishes; renewals and the rest through the pool), the outbox
//! (`published_at`), the sweeper, and named leases.
//!
//! Times are the database's (`now()`), never a process's clock, so processes on machines
//! whose clocks disagree still agree on who holds what.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx_core::query::query;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, Postgres};
use switchyard_types::{JobId, RunId, Timestamp};
use uuid::Uuid;

use super::batch::BatchError;
use super::rows::{queued_from_row, QUEUED_COLUMNS};
use super::{route_id, unavailable, PgStore};
use crate::ops::{WriteOp, WriteReply};
use crate::{Claim, Coordination, QueuedJob, Result, Sweep};

/// A deferred job whose message arrives a little early (clocks differ) is still taken. (A
/// job that runs at once is always due, whatever the clock of the process that made it.)
const EARLY_MICROS: i64 = 1_000_000;

/// One claim of a batch.
pub struct ClaimOp<'a> {
    pub index: usize,
    pub job: JobId,
    pub owner: &'a Arc<str>,
    pub lease_micros: i64,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default()
}

/// Applies a batch's claims: one `UPDATE … FROM UNNEST` for all, then a look at the jobs it
/// did not take, to say why.
pub async fn claim_jobs(
    conn: &mut PgConnection,
    claims: &[ClaimOp<'_>],
    replies: &mut [Option<WriteReply>],
) -> std::result::Result<(), BatchError> {
    if claims.is_empty() {
        return Ok(());
    }
    // The same job twice in one batch: the first claim counts, the others find it held.
    let mut seen = HashSet::with_capacity(claims.len());
    let first: Vec<&ClaimOp> = claims.iter().filter(|c| seen.insert(c.job)).collect();
    let rows = query::<Postgres>(
        "UPDATE jobs SET
            rescues = jobs.rescues + CASE WHEN jobs.lease_owner IS NOT NULL AND jobs.lease_owner <> u.owner
                                          THEN 1 ELSE 0 END,
            lease_owner = u.owner,
            lease_until = now() + u.lease * interval '1 microsecond',
            published_at = COALESCE(jobs.published_at, now())
         FROM UNNEST($1::uuid[], $2::text[], $3::int8[]) AS u(id, owner, lease)
         WHERE jobs.id = u.id AND jobs.state = 'queued'
           AND (NOT jobs.deferred OR jobs.due_at <= now() + $4 * interval '1 microsecond')
           AND (jobs.lease_owner IS NULL OR jobs.lease_owner = u.owner OR jobs.lease_until < now())
         RETURNING jobs.id, jobs.attempts, jobs.resumed, jobs.rescues",
    )
    .bind(first.iter().map(|c| c.job.0).collect::<Vec<_>>())
    .bind(first.iter().map(|c| &**c.owner).collect::<Vec<&str>>())
    .bind(first.iter().map(|c| c.lease_micros).collect::<Vec<_>>())
    .bind(EARLY_MICROS)
    .fetch_all(&mut *conn)
    .await?;
    let mut taken: HashMap<Uuid, Claim> = HashMap::with_capacity(rows.len());
    for r in rows {
        let attempts: i32 = r.try_get(1)?;
        let rescues: i32 = r.try_get(3)?;
        taken.insert(
            r.try_get(0)?,
            Claim::Taken {
                attempts: u32::try_from(attempts).unwrap_or(0),
                resumed: r.try_get(2)?,
                rescues: u32::try_from(rescues).unwrap_or(0),
            },
        );
    }
    let missed: Vec<Uuid> = first
        .iter()
        .map(|c| c.job.0)
        .filter(|id| !taken.contains_key(id))
        .collect();
    let mut why: HashMap<Uuid, Claim> = HashMap::new();
    if !missed.is_empty() {
        let rows = query::<Postgres>(
            "SELECT id, state = 'queued',
                    CASE WHEN deferred THEN EXTRACT(EPOCH FROM (due_at - now())) ELSE 0 END::float8,
                    COALESCE(EXTRACT(EPOCH FROM (lease_until - now())), 0)::float8
             FROM jobs WHERE id = ANY($1)",
        )
        .bind(&missed)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            let queued: bool = r.try_get(1)?;
            let due_in: f64 = r.try_get(2)?;
            let held_for: f64 = r.try_get(3)?;
            let claim = if !queued {
                Claim::Done
            } else if due_in * 1e6 > EARLY_MICROS as f64 {
                Claim::NotDue { wait: secs(due_in) }
            } else {
                Claim::Held {
                    wait: secs(held_for),
                }
            };
            why.insert(r.try_get(0)?, claim);
        }
    }
    let mut answered: HashSet<Uuid> = HashSet::new();
    for c in claims {
        let id = c.job.0;
        let claim = if answered.insert(id) {
            taken
                .get(&id)
                .or_else(|| why.get(&id))
                .copied()
                .unwrap_or(Claim::Done)
        } else {
            Claim::Held {
                wait: Duration::from_micros(u64::try_from(c.lease_micros).unwrap_or(0)),
            }
        };
        replies[c.index] = Some(WriteReply::Claimed(claim));
    }
    Ok(())
}

#[async_trait]
impl Coordination for PgStore {
    async fn claim(&self, job: JobId, run: RunId, owner: &str, lease: Duration) -> Result<Claim> {
        let op = WriteOp::Claim {
            job,
            owner: owner.into(),
            lease_micros: micros(lease),
        };
        match self.write(route_id(run.as_bytes()), op).await? {
            WriteReply::Claimed(c) => Ok(c),
            _ => Err(crate::Error::Corrupt("unexpected writer reply".into())),
        }
    }

    async fn renew(&self, owner: &str, jobs: &[JobId], lease: Duration) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        query::<Postgres>(
            "UPDATE jobs SET lease_until = now() + $3 * interval '1 microsecond'
             WHERE id = ANY($1) AND lease_owner = $2 AND state = 'queued'",
        )
        .bind(jobs.iter().map(|j| j.0).collect::<Vec<_>>())
        .bind(owner)
        .bind(micros(lease))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn release(&self, owner: &str, job: JobId) -> Result<()> {
        query::<Postgres>(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $2 AND state = 'queued'",
        )
        .bind(job.0)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn mark_published(&self, jobs: &[JobId]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        // A row locked now is being claimed (which marks it), finished or swept: skipped,
        // rather than waited for. At worst the sweeper publishes such a job once more.
        query::<Postgres>(
            "UPDATE jobs SET published_at = now()
             FROM (SELECT id FROM jobs
                   WHERE id = ANY($1) AND state = 'queued' AND published_at IS NULL AND NOT deferred
                   FOR UPDATE SKIP LOCKED) AS p
             WHERE jobs.id = p.id",
        )
        .bind(jobs.iter().map(|j| j.0).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn mark_due_published(&self, jobs: &[(JobId, Timestamp)]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        query::<Postgres>(
            "UPDATE jobs SET published_at = now()
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, due_at)
             WHERE jobs.id = u.id AND jobs.due_at = u.due_at AND jobs.state = 'queued'
               AND jobs.published_at IS NULL",
        )
        .bind(jobs.iter().map(|j| j.0 .0).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.1).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn unmark_published(&self, jobs: &[JobId]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        query::<Postgres>(
            "UPDATE jobs SET published_at = NULL
             WHERE id = ANY($1) AND state = 'queued' AND lease_owner IS NULL",
        )
        .bind(jobs.iter().map(|j| j.0).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn due_unpublished(&self, until: Timestamp, limit: usize) -> Result<Vec<QueuedJob>> {
        let sql = format!(
            "SELECT {QUEUED_COLUMNS} FROM jobs j JOIN runs r ON r.id = j.run_id
             WHERE j.state = 'queued' AND j.deferred AND j.due_at <= $1
               AND j.published_at IS NULL AND j.lease_owner IS NULL
             ORDER BY j.due_at, j.id LIMIT $2"
        );
        query::<Postgres>(&sql)
            .bind(until)
            .bind(limit.clamp(1, 100_000) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(queued_from_row)
            .collect()
    }

    async fn sweep(&self, sweep: Sweep) -> Result<Vec<QueuedJob>> {
        // Every rule looks only at due jobs (`due_at <= now()`), an index range over the
        // queued jobs that excludes pending delays however many there are.
        let sql = format!(
            "WITH picked AS (
                SELECT j.id FROM jobs j
                WHERE j.state = 'queued' AND j.due_at <= now() AND (
                      (j.published_at IS NULL AND j.lease_owner IS NULL
                       AND j.due_at <= now() - $1 * interval '1 microsecond')
                   OR (j.lease_owner IS NOT NULL AND j.lease_until < now() - $2 * interval '1 microsecond')
                   OR ($3 AND j.lease_owner IS NULL AND j.published_at < now() - $4 * interval '1 microsecond'))
                ORDER BY j.due_at, j.id
                LIMIT $5
                FOR UPDATE OF j SKIP LOCKED
             ),
             swept AS (
                UPDATE jobs SET published_at = now(),
                    rescues = jobs.rescues + CASE WHEN jobs.lease_owner IS NOT NULL THEN 1 ELSE 0 END,
                    lease_owner = NULL, lease_until = NULL
                FROM picked WHERE jobs.id = picked.id
                RETURNING jobs.*
             )
             SELECT {QUEUED_COLUMNS} FROM swept j JOIN runs r ON r.id = j.run_id
             ORDER BY j.due_at, j.id"
        );
        query::<Postgres>(&sql)
            .bind(micros(sweep.unpublished_after))
            .bind(micros(sweep.expired_lease_after))
            .bind(sweep.lost_after.is_some())
            .bind(micros(sweep.lost_after.unwrap_or_default()))
            .bind(sweep.limit.clamp(1, 100_000) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(queued_from_row)
            .collect()
    }

    async fn hold_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let row = query::<Postgres>(
            "INSERT INTO leases (name, owner, until) VALUES ($1, $2, now() + $3 * interval '1 microsecond')
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
             WHERE leases.owner = excluded.owner OR leases.until < now()
             RETURNING owner",
        )
        .bind(name)
        .bind(owner)
        .bind(micros(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(row.is_some())
    }

    async fn drop_lease(&self, name: &str, owner: &str) -> Result<()> {
        query::<Postgres>("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
