//! Retention pruning, one bounded batch per write.
//!
//! A prune write holds the single writer (and every webhook queued behind it) for as long
//! as it runs, so each batch deletes at most about `max_rows` rows: whole runs, oldest
//! first, each with its events and jobs; a run larger than the budget loses its events and
//! jobs in chunks and goes with the last one. The side tables (idempotency keys, agent
//! marks, consumed implode items) are swept only once no old run is left, with what is left
//! of the budget. Every statement walks an index (see `tests::every_prune_statement_uses_an_index`).

use rusqlite::{params, Connection};

use crate::Pruned;

/// Finished runs older than the cutoff, oldest first (`runs_by_finished`), with how many
/// events and jobs each has (`events_by_run`, `jobs_by_run`).
const OLD_RUNS: &str = "SELECT id,
         (SELECT COUNT(*) FROM events WHERE run_id = runs.id)
         + (SELECT COUNT(*) FROM jobs WHERE run_id = runs.id)
     FROM runs
     WHERE finished_at IS NOT NULL AND finished_at < ?1 AND status != 'running'
     ORDER BY finished_at LIMIT ?2";
const DELETE_EVENTS: &str = "DELETE FROM events WHERE run_id = ?1";
const DELETE_JOBS: &str = "DELETE FROM jobs WHERE run_id = ?1";
const DELETE_RUN: &str = "DELETE FROM runs WHERE id = ?1";
/// Part of a run too large for one batch.
const DELETE_SOME_EVENTS: &str =
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE run_id = ?1 LIMIT ?2)";
const DELETE_SOME_JOBS: &str =
    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE run_id = ?1 LIMIT ?2)";
/// Expired rows of the side tables, each bounded.
const SIDE_DELETES: [&str; 3] = [
    "DELETE FROM webhook_deliveries WHERE (story, key) IN
         (SELECT story, key FROM webhook_deliveries WHERE created_at < ?1 LIMIT ?2)",
    "DELETE FROM agent_marks WHERE (story, agent, key, job_id) IN
         (SELECT story, agent, key, job_id FROM agent_marks WHERE at < ?1 LIMIT ?2)",
    "DELETE FROM implode_items WHERE (story, agent, key, job_id) IN
         (SELECT story, agent, key, job_id FROM implode_items
          WHERE consumed_by IS NOT NULL AND at < ?1 LIMIT ?2)",
];

/// Deletes one batch of at most about `max_rows` rows older than `before`.
pub(super) fn prune(tx: &Connection, before: i64, max_rows: usize) -> rusqlite::Result<Pruned> {
    let max_rows = max_rows.max(1);
    let mut budget = max_rows;
    let mut out = Pruned::default();
    // A run has at least its trigger event: it costs two rows or more.
    let limit = max_rows / 2 + 1;
    let runs: Vec<(Vec<u8>, i64)> = {
        let mut stmt = tx.prepare_cached(OLD_RUNS)?;
        let rows = stmt.query_map(params![before, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let runs_left = runs.len() == limit;
    for (id, rows) in &runs {
        let cost = *rows as usize + 1;
        if cost > budget {
            out.more = true;
            if out.rows() == 0 {
                // One run larger than a batch: take a chunk of it now, the rest later.
                out.events = tx
                    .prepare_cached(DELETE_SOME_EVENTS)?
                    .execute(params![id, budget as i64])?;
                let left = budget - out.events;
                if left > 0 {
                    out.jobs = tx
                        .prepare_cached(DELETE_SOME_JOBS)?
                        .execute(params![id, left as i64])?;
                }
            }
            return Ok(out);
        }
        out.events += tx.prepare_cached(DELETE_EVENTS)?.execute([id])?;
        out.jobs += tx.prepare_cached(DELETE_JOBS)?.execute([id])?;
        out.runs += tx.prepare_cached(DELETE_RUN)?.execute([id])?;
        budget -= cost;
    }
    if runs_left || budget == 0 {
        out.more = true;
        return Ok(out);
    }
    for sql in SIDE_DELETES {
        let n = tx
            .prepare_cached(sql)?
            .execute(params![before, budget as i64])?;
        out.expired += n;
        budget -= n;
        if budget == 0 {
            out.more = true;
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each prune statement reads through an index, never a scan of a whole table.
    #[test]
    fn every_prune_statement_uses_an_index() {
        let mut conn = Connection::open_in_memory().expect("open");
        super::super::migrate(&mut conn).expect("migrate");
        let statements = [OLD_RUNS, DELETE_EVENTS, DELETE_JOBS, DELETE_RUN]
            .into_iter()
            .chain([DELETE_SOME_EVENTS, DELETE_SOME_JOBS])
            .chain(SIDE_DELETES);
        for sql in statements {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("explain");
            let count = stmt.parameter_count();
            let args: Vec<i64> = vec![0; count];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .expect("plan")
                .collect::<rusqlite::Result<_>>()
                .expect("plan rows");
            for step in &plan {
                assert!(
                    !step.starts_with("SCAN ") || step.contains("USING"),
                    "`{sql}` scans a whole table: {plan:?}"
                );
            }
        }
    }
}
