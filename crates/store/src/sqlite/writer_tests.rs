//! The group commit's guarantee: one failing write fails only its own waiter.

use std::sync::Arc;

use rusqlite::Connection;
use switchyard_types::{EventId, JobId, RunId};
use tokio::sync::oneshot;

use super::{apply_batch, WriteRequest};
use crate::ops::{WriteOp, WriteReply};
use crate::{CommitStats, NewJob, Result};

fn open() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = Connection::open(dir.path().join("t.db")).expect("open");
    super::super::migrate(&mut conn).expect("migrate");
    (dir, conn)
}

fn request(op: WriteOp) -> (WriteRequest, oneshot::Receiver<Result<WriteReply>>) {
    let (reply, rx) = oneshot::channel();
    (WriteRequest { op, reply }, rx)
}

fn set(name: &str) -> WriteOp {
    WriteOp::SetResource(name.into(), format!("\"{name}\""), 1)
}

/// A write that stores a job and then fails on the second (same id): a partial write.
fn partial_then_failing() -> WriteOp {
    let now = switchyard_types::now();
    let job = NewJob {
        id: JobId::new(),
        run_id: RunId::new(),
        story: Arc::from("s"),
        agent: Arc::from("a"),
        input_event_id: EventId::new(),
        created_at: now,
        due_at: now,
        deferred: false,
    };
    WriteOp::Replay(job.run_id, vec![job.clone(), job])
}

fn resources(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM resources ORDER BY name")
        .expect("prepare");
    let rows = stmt.query_map([], |r| r.get(0)).expect("query");
    rows.collect::<rusqlite::Result<_>>().expect("rows")
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// Applies `ops` as one batch, answering like the writer loop does.
fn commit(
    conn: &mut Connection,
    stats: &CommitStats,
    ops: Vec<WriteOp>,
) -> Vec<Result<WriteReply>> {
    let (batch, mut rxs): (Vec<_>, Vec<_>) = ops.into_iter().map(request).unzip();
    let results = apply_batch(conn, &batch, stats);
    for (req, result) in batch.into_iter().zip(results) {
        let _ = req.reply.send(result);
    }
    rxs.iter_mut()
        .map(|rx| rx.try_recv().expect("every waiter is answered"))
        .collect()
}

#[test]
fn a_batch_without_failures_commits_on_the_fast_path() {
    let (_dir, mut conn) = open();
    let stats = CommitStats::default();
    let answers = commit(&mut conn, &stats, vec![set("a"), set("b"), set("c")]);
    assert!(answers.iter().all(|a| matches!(a, Ok(WriteReply::Done))));
    assert_eq!(resources(&conn), ["a", "b", "c"]);
    assert_eq!(stats.snapshot().retried_batches, 0);
}

#[test]
fn a_failing_write_fails_only_its_own_waiter_and_leaves_nothing_behind() {
    let (_dir, mut conn) = open();
    let stats = CommitStats::default();
    let answers = commit(
        &mut conn,
        &stats,
        vec![set("a"), partial_then_failing(), set("b")],
    );
    assert!(
        matches!(answers[0], Ok(WriteReply::Done)),
        "{:?}",
        answers[0].as_ref().err()
    );
    let Err(err) = &answers[1] else {
        panic!("the duplicate job must fail");
    };
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    assert!(
        matches!(answers[2], Ok(WriteReply::Done)),
        "{:?}",
        answers[2].as_ref().err()
    );
    // The good writes are stored; the failing write's first job is not.
    assert_eq!(resources(&conn), ["a", "b"]);
    assert_eq!(count(&conn, "jobs"), 0);
    assert_eq!(stats.snapshot().retried_batches, 1);

    // The next batch without failures takes the fast path again.
    let answers = commit(&mut conn, &stats, vec![set("c")]);
    assert!(matches!(answers[0], Ok(WriteReply::Done)));
    assert_eq!(stats.snapshot().retried_batches, 1);
}

#[test]
fn a_batch_of_one_failing_write_answers_it_with_its_error() {
    let (_dir, mut conn) = open();
    let stats = CommitStats::default();
    let answers = commit(&mut conn, &stats, vec![partial_then_failing()]);
    assert!(answers[0].is_err());
    assert_eq!(count(&conn, "jobs"), 0);
}
