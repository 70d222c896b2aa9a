//! Retention pruning on PostgreSQL, one bounded batch per write: the same budget rules as
//! the SQLite store (see `Store::prune`). Each statement is set-based and walks an index.

use sqlx_core::query::query;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, Postgres};
use switchyard_types::from_micros;
use uuid::Uuid;

use super::batch::BatchError;
use crate::Pruned;

/// Finished runs older than the cutoff, oldest first, with their events and jobs counted.
const OLD_RUNS: &str = "SELECT id,
         (SELECT COUNT(*) FROM events WHERE run_id = runs.id)
         + (SELECT COUNT(*) FROM jobs WHERE run_id = runs.id)
     FROM runs
     WHERE finished_at IS NOT NULL AND finished_at < $1 AND status <> 'running'
     ORDER BY finished_at LIMIT $2";
const DELETE_RUNS: [&str; 3] = [
    "DELETE FROM events WHERE run_id = ANY($1)",
    "DELETE FROM jobs WHERE run_id = ANY($1)",
    "DELETE FROM runs WHERE id = ANY($1)",
];
/// Part of a run too large for one batch.
const DELETE_SOME: [&str; 2] = [
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE run_id = $1 LIMIT $2)",
    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE run_id = $1 LIMIT $2)",
];
/// Expired rows of the side tables, each bounded.
const SIDE_DELETES: [&str; 3] = [
    "DELETE FROM webhook_deliveries WHERE (story, key) IN
         (SELECT story, key FROM webhook_deliveries WHERE created_at < $1 LIMIT $2)",
    "DELETE FROM agent_marks WHERE (story, agent, key, job_id) IN
         (SELECT story, agent, key, job_id FROM agent_marks WHERE at < $1 LIMIT $2)",
    "DELETE FROM implode_items WHERE (story, agent, key, job_id) IN
         (SELECT story, agent, key, job_id FROM implode_items
          WHERE consumed_by IS NOT NULL AND at < $1 LIMIT $2)",
];

/// Deletes one batch of at most about `max_rows` rows older than `before` (micros).
pub async fn prune(
    conn: &mut PgConnection,
    before: i64,
    max_rows: usize,
) -> Result<Pruned, BatchError> {
    let before = from_micros(before);
    let max_rows = max_rows.max(1);
    let mut budget = max_rows;
    let mut out = Pruned::default();
    // A run has at least its trigger event: it costs two rows or more.
    let limit = max_rows / 2 + 1;
    let runs: Vec<(Uuid, i64)> = query::<Postgres>(OLD_RUNS)
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx_core::Error>>()?;
    let runs_left = runs.len() == limit;
    let mut ids = Vec::with_capacity(runs.len());
    for (id, rows) in &runs {
        let cost = *rows as usize + 1;
        if cost > budget {
            out.more = true;
            break;
        }
        ids.push(*id);
        budget -= cost;
    }
    if ids.is_empty() && out.more {
        // One run larger than a batch: take a chunk of it now, the rest later.
        let id = runs[0].0;
        let mut deleted = [0usize; 2];
        for (n, sql) in DELETE_SOME.into_iter().enumerate() {
            let left = budget - deleted.iter().sum::<usize>();
            if left == 0 {
                break;
            }
            deleted[n] = query::<Postgres>(sql)
                .bind(id)
                .bind(left as i64)
                .execute(&mut *conn)
                .await?
                .rows_affected() as usize;
        }
        out.events = deleted[0];
        out.jobs = deleted[1];
        return Ok(out);
    }
    if !ids.is_empty() {
        let mut deleted = [0usize; 3];
        for (n, sql) in DELETE_RUNS.into_iter().enumerate() {
            deleted[n] = query::<Postgres>(sql)
                .bind(&ids)
                .execute(&mut *conn)
                .await?
                .rows_affected() as usize;
        }
        out.events = deleted[0];
        out.jobs = deleted[1];
        out.runs = deleted[2];
    }
    if out.more || runs_left || budget == 0 {
        out.more = true;
        return Ok(out);
    }
    for sql in SIDE_DELETES {
        let n = query::<Postgres>(sql)
            .bind(before)
            .bind(budget as i64)
            .execute(&mut *conn)
            .await?
            .rows_affected() as usize;
        out.expired += n;
        budget -= n;
        if budget == 0 {
            out.more = true;
            break;
        }
    }
    Ok(out)
}
