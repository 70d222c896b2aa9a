//! A writer task: group commit on one PostgreSQL connection.
//!
//! It waits for the first write, takes every write already waiting (up to `max_batch`),
//! applies them as one transaction of multi-row statements, commits once, and only then
//! answers each waiter; writes that arrive during the commit form the next batch. Should a
//! write fail, the batch is redone with each write in its own savepoint, so one bad write
//! cannot spoil its batch.
//!
//! The task owns its connection and survives losing it: a connection that breaks before
//! COMMIT was sent is reopened and the batch tried again (nothing of it was committed); a
//! connection lost while COMMIT was in flight leaves the outcome unknown, so the writer asks
//! a new connection for the transaction's status (`txid_status`) before it answers anyone.
//! When the database cannot be reached every waiter gets `Error::Unavailable` at once, and
//! the next batch tries to connect again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::executor::Executor;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnectOptions, PgConnection};
use tokio::sync::{mpsc, oneshot};

use super::batch::{self, BatchError};
use crate::ops::{WriteOp, WriteReply};
use crate::{CommitStats, Error, Result};

/// A write and where to send its outcome.
pub struct WriteRequest {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteReply>>,
}

/// What every writer task needs.
pub struct WriterConfig {
    pub options: PgConnectOptions,
    pub max_batch: usize,
    pub connect_timeout: Duration,
    pub commit_timeout: Duration,
    pub stats: Arc<CommitStats>,
}

/// How an attempt to commit a batch failed.
enum Failure {
    /// Nothing was committed: try again (on a new connection when `reconnect`).
    Retry { reconnect: bool, message: String },
    /// The batch failed and the connection is unusable: tell the waiters.
    Fatal(String),
    /// COMMIT was sent but its answer was lost with the connection: whether transaction
    /// `xid` committed is found out on a new connection.
    Unknown {
        xid: i64,
        results: Vec<Result<WriteReply>>,
        message: String,
    },
}

/// Runs until every sender is dropped.
pub async fn run(config: Arc<WriterConfig>, mut rx: mpsc::Receiver<WriteRequest>) {
    let mut conn: Option<PgConnection> = None;
    let mut batch: Vec<WriteRequest> = Vec::with_capacity(config.max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < config.max_batch {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let ops: Vec<&WriteOp> = batch.iter().map(|r| &r.op).collect();
        let results = commit(&config, &mut conn, &ops, &mut rx).await;
        drop(ops);
        config
            .stats
            .record(batch.len(), started.elapsed().as_micros() as u64);
        for (req, result) in batch.drain(..).zip(results) {
            let _ = req.reply.send(result);
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
    tracing::debug!("PostgreSQL writer stopped");
}

fn fail_all(n: usize, message: &str) -> Vec<Result<WriteReply>> {
    (0..n)
        .map(|_| Err(Error::Unavailable(message.to_string())))
        .collect()
}

async fn commit(
    config: &WriterConfig,
    slot: &mut Option<PgConnection>,
    ops: &[&WriteOp],
    waiting: &mut mpsc::Receiver<WriteRequest>,
) -> Vec<Result<WriteReply>> {
    let mut last = String::new();
    for _ in 0..3 {
        if slot.is_none() {
            match tokio::time::timeout(config.connect_timeout, config.options.connect()).await {
                Ok(Ok(c)) => *slot = Some(c),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot connect to PostgreSQL");
                    return fail_all(ops.len(), &e.to_string());
                }
                Err(_) => {
                    tracing::warn!("timed out connecting to PostgreSQL");
                    return fail_all(ops.len(), "timed out connecting to PostgreSQL");
                }
            }
        }
        let Some(conn) = slot.as_mut() else {
            continue;
        };
        match tokio::time::timeout(config.commit_timeout, apply(conn, ops)).await {
            Ok(Ok(results)) => return results,
            Ok(Err(Failure::Retry { reconnect, message })) => {
                tracing::debug!(error = %message, reconnect, "retrying a batch");
                if reconnect {
                    *slot = None;
                }
                last = message;
            }
            Ok(Err(Failure::Unknown {
                xid,
                results,
                message,
            })) => {
                *slot = None;
                match resolve(config, xid, waiting).await {
                    Some(true) => return results,
                    Some(false) => last = message,
                    None => {
                        tracing::error!(error = %message, "lost the answer to a COMMIT");
                        return fail_all(ops.len(), &message);
                    }
                }
            }
            Ok(Err(Failure::Fatal(message))) => {
                tracing::error!(error = %message, "PostgreSQL commit failed");
                *slot = None;
                return fail_all(ops.len(), &message);
            }
            Err(_) => {
                tracing::error!("PostgreSQL commit timed out");
                *slot = None;
                return fail_all(ops.len(), "the commit timed out");
            }
        }
    }
    fail_all(ops.len(), &last)
}

/// Whether transaction `xid` committed (`txid_status`), asked on a new connection until the
/// commit timeout; `None` when the database stays out of reach.
///
/// Only this batch's waiters must wait for the answer: writes that arrive meanwhile, while the
/// database cannot be reached, are told at once that it is unavailable.
async fn resolve(
    config: &WriterConfig,
    xid: i64,
    waiting: &mut mpsc::Receiver<WriteRequest>,
) -> Option<bool> {
    let deadline = Instant::now() + config.commit_timeout;
    while Instant::now() < deadline {
        let status = async {
            let mut conn = config.options.connect().await?;
            let status: Option<String> = query_scalar("SELECT txid_status($1)")
                .bind(xid)
                .fetch_one(&mut conn)
                .await?;
            let _ = conn.close().await;
            Ok::<_, sqlx_core::Error>(status)
        };
        match tokio::time::timeout(config.connect_timeout, status).await {
            Ok(Ok(Some(s))) if s == "committed" => return Some(true),
            Ok(Ok(Some(s))) if s == "aborted" => return Some(false),
            Ok(Ok(_)) => tokio::time::sleep(Duration::from_millis(250)).await,
            Ok(Err(e)) => {
                refuse_waiting(waiting, &e.to_string());
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(_) => {
                refuse_waiting(waiting, "timed out connecting to PostgreSQL");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    None
}

/// Answers every write waiting for this writer with `Error::Unavailable`.
fn refuse_waiting(waiting: &mut mpsc::Receiver<WriteRequest>, message: &str) {
    while let Ok(req) = waiting.try_recv() {
        let _ = req.reply.send(Err(Error::Unavailable(message.to_string())));
    }
}

/// One attempt: the batch in bulk, or (when a write in it fails) write by write.
async fn apply(
    conn: &mut PgConnection,
    ops: &[&WriteOp],
) -> std::result::Result<Vec<Result<WriteReply>>, Failure> {
    if ops.iter().all(|op| matches!(op, WriteOp::Claim { .. })) {
        return claim(conn, ops).await;
    }
    let outcome = transact(conn, ops).await;
    if let Err(Failure::Retry {
        reconnect: false, ..
    }) = &outcome
    {
        // The connection is kept for the next try: end whatever is left of this transaction
        // (after a failed COMMIT there is none, and PostgreSQL only warns).
        execute(conn, "ROLLBACK").await?;
    }
    outcome
}

/// The batch as one transaction, managed by hand so that BEGIN and `txid_current()` share a
/// round trip: BEGIN, the batch's statements, COMMIT.
async fn transact(
    conn: &mut PgConnection,
    ops: &[&WriteOp],
) -> std::result::Result<Vec<Result<WriteReply>>, Failure> {
    let xid = begin(conn).await?;
    match batch::apply(conn, ops).await {
        Ok(replies) => {
            let results: Vec<Result<WriteReply>> = replies.into_iter().map(Ok).collect();
            return match conn.execute("COMMIT").await {
                Ok(_) => Ok(results),
                Err(e) => Err(at_commit(e, xid, results)),
            };
        }
        Err(BatchError::Sql(e)) if is_connection(&e) || is_transient(&e) => {
            return Err(before_commit(e))
        }
        Err(e) => {
            tracing::debug!(error = %e, "a write failed; redoing its batch write by write");
            execute(conn, "ROLLBACK").await?;
        }
    }
    let xid = begin(conn).await?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        execute(conn, "SAVEPOINT write").await?;
        match batch::apply(conn, std::slice::from_ref(op)).await {
            Ok(mut replies) => {
                execute(conn, "RELEASE SAVEPOINT write").await?;
                results.push(
                    replies
                        .pop()
                        .ok_or_else(|| Error::Unavailable("the write had no reply".into())),
                );
            }
            Err(BatchError::Sql(e)) if is_connection(&e) => return Err(before_commit(e)),
            Err(e) => {
                execute(conn, "ROLLBACK TO SAVEPOINT write").await?;
                tracing::error!(error = %e, "store write failed");
                results.push(Err(Error::Unavailable(e.to_string())));
            }
        }
    }
    match conn.execute("COMMIT").await {
        Ok(_) => Ok(results),
        Err(e) => Err(at_commit(e, xid, results)),
    }
}

/// Starts a transaction and returns its id (`txid_current()` also assigns one at once), both
/// in one simple-query round trip.
async fn begin(conn: &mut PgConnection) -> std::result::Result<i64, Failure> {
    let rows = conn
        .fetch_all("BEGIN; SELECT txid_current()")
        .await
        .map_err(before_commit)?;
    let row = rows
        .first()
        .ok_or_else(|| Failure::Fatal("BEGIN gave no transaction id".into()))?;
    row.try_get::<i64, _>(0).map_err(before_commit)
}

/// A statement of transaction control, before COMMIT was sent.
async fn execute(conn: &mut PgConnection, sql: &'static str) -> std::result::Result<(), Failure> {
    conn.execute(sql).await.map(drop).map_err(before_commit)
}

/// A batch of claims: one statement of its own (its own transaction), no BEGIN, no
/// transaction id, no COMMIT round trip. Trying it again after a lost answer is harmless:
/// a claim by the owner that holds the job already renews its lease.
async fn claim(
    conn: &mut PgConnection,
    ops: &[&WriteOp],
) -> std::result::Result<Vec<Result<WriteReply>>, Failure> {
    match batch::apply(conn, ops).await {
        Ok(replies) => Ok(replies.into_iter().map(Ok).collect()),
        Err(BatchError::Sql(e)) => Err(before_commit(e)),
        Err(BatchError::Op(message)) => Err(Failure::Fatal(message)),
    }
}

/// A failure before COMMIT was sent: nothing is committed, so the batch may be retried.
fn before_commit(e: sqlx_core::Error) -> Failure {
    if is_connection(&e) {
        Failure::Retry {
            reconnect: true,
            message: e.to_string(),
        }
    } else if is_transient(&e) {
        Failure::Retry {
            reconnect: false,
            message: e.to_string(),
        }
    } else {
        Failure::Fatal(e.to_string())
    }
}

/// A failure of COMMIT itself: a serialization failure or deadlock means it rolled back; a
/// lost connection leaves the outcome to be found out.
fn at_commit(e: sqlx_core::Error, xid: i64, results: Vec<Result<WriteReply>>) -> Failure {
    if is_transient(&e) {
        Failure::Retry {
            reconnect: false,
            message: e.to_string(),
        }
    } else if is_connection(&e) {
        Failure::Unknown {
            xid,
            results,
            message: e.to_string(),
        }
    } else {
        Failure::Fatal(e.to_string())
    }
}

fn sqlstate(e: &sqlx_core::Error) -> Option<String> {
    match e {
        sqlx_core::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The connection is gone or going: reconnecting is the remedy.
pub fn is_connection(e: &sqlx_core::Error) -> bool {
    use sqlx_core::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed => true,
        E::WorkerCrashed => true,
        E::Database(_) => sqlstate(e).is_some_and(|c| {
            // connection_exception, admin/crash shutdown, cannot_connect_now
            c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03"
        }),
        _ => false,
    }
}

/// A serialization failure or deadlock: the transaction was rolled back and may be retried.
fn is_transient(e: &sqlx_core::Error) -> bool {
    sqlstate(e).is_some_and(|c| c == "40001" || c == "40P01")
}
