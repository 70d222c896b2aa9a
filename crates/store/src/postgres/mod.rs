//! The scaled-out store: PostgreSQL through sqlx.
//!
//! Writes go to a few writer tasks, each owning one connection, routed by run (or job, or
//! state key) so that the writes of one run always meet in the same writer and writers do
//! not contend for the same rows. Each writer commits whatever arrived while its previous
//! commit was in flight as one transaction of multi-row statements (group commit, see
//! [`writer`]). Job claims go to one more writer of their own, which applies each batch as
//! one statement without waiting for the WAL flush. Reads use a pool. Losing the database makes every call fail fast with
//! [`Error::Unavailable`]; the writers and the pool reconnect by themselves when it is back.

mod batch;
mod lease;
mod prune;
mod rows;
mod security;
mod state;
mod store_impl;
pub mod testing;
mod writer;
#[cfg(test)]
mod writer_plans;

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::error::BoxDynError;
use sqlx_core::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx_postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};

use crate::ops::{WriteOp, WriteReply};
use crate::{CommitStats, Error, NewEvent, Result};
use writer::{WriteRequest, WriterConfig};

/// The migrations in `migrations/postgres/`, compiled in.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "operations",
        include_str!("../../../../migrations/postgres/0002_operations.sql"),
    ),
    (
        3,
        "job wakes",
        include_str!("../../../../migrations/postgres/0003_job_wakes.sql"),
    ),
    (
        4,
        "security",
        include_str!("../../../../migrations/postgres/0004_security.sql"),
    ),
    (
        5,
        "scale out",
        include_str!("../../../../migrations/postgres/0005_scale_out.sql"),
    ),
    (
        6,
        "prune",
        include_str!("../../../../migrations/postgres/0006_prune.sql"),
    ),
];

/// Settings of the PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Largest event payload in bytes.
    pub max_event_bytes: usize,
    /// Writer tasks (each with its own connection) committing batches side by side (plus
    /// one for job claims).
    pub writers: usize,
    /// Most writes gathered in one transaction.
    pub max_batch: usize,
    /// Writes that may wait for each writer.
    pub queue_capacity: usize,
    /// Connections of the read pool.
    pub read_connections: u32,
    /// How long a read waits for a connection (and so how soon it fails while the database
    /// is down).
    pub acquire_timeout: Duration,
    /// How long a writer waits to connect.
    pub connect_timeout: Duration,
    /// Longest a batch may take to commit before its waiters are told the store is down.
    pub commit_timeout: Duration,
}

impl PgConfig {
    /// Defaults for a database URL.
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            max_event_bytes: 1 << 20,
            writers: 4,
            max_batch: 512,
            queue_capacity: 4096,
            read_connections: 8,
            acquire_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            commit_timeout: Duration::from_secs(15),
        }
    }
}

/// Why the store could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("bad database URL: {0}")]
    Url(String),
    /// The database does not answer or refuses us.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("cannot migrate the database: {0}")]
    Migrate(String),
}

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, std::result::Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The connection options of a writer.
///
/// Every statement a writer runs finds its rows by key. sqlx prepares each statement once per
/// connection, and PostgreSQL's generic plan for it, made while a table is still small (a
/// fresh database), is a sequential scan that stays cached as the table grows until
/// autovacuum's first ANALYZE: on a fresh database under load, thousands of whole-table scans
/// of `runs` in the first seconds (scaled-out runs/s +40 % without them; bench/PROFILE.md,
/// session 6). So writers plan without sequential scans wherever an index can serve.
fn writer_options(options: &PgConnectOptions) -> PgConnectOptions {
    options.clone().options([("enable_seqscan", "off")])
}

fn options(url: &str) -> std::result::Result<PgConnectOptions, ConnectError> {
    PgConnectOptions::from_str(url)
        .map(|o| {
            o.application_name("switchyard")
                .options([("client_min_messages", "warning")])
        })
        .map_err(|e| ConnectError::Url(e.to_string()))
}

/// Applies the migrations that `url`'s database lacks; returns the ones applied now as
/// `VERSION_NAME`. Safe to run from several processes at once (it takes a lock).
pub async fn migrate(url: &str) -> std::result::Result<Vec<String>, ConnectError> {
    let mut conn = options(url)?
        .connect()
        .await
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
    let before = applied_versions(&mut conn).await?;
    let migrator = Migrator::new(Embedded)
        .await
        .map_err(|e| ConnectError::Migrate(e.to_string()))?;
    migrator
        .run(&mut conn)
        .await
        .map_err(|e| ConnectError::Migrate(e.to_string()))?;
    let _ = conn.close().await;
    Ok(MIGRATIONS
        .iter()
        .filter(|(v, _, _)| !before.contains(v))
        .map(|(v, name, _)| format!("{v:04}_{name}"))
        .collect())
}

async fn applied_versions(
    conn: &mut sqlx_postgres::PgConnection,
) -> std::result::Result<Vec<i64>, ConnectError> {
    let q = |e: sqlx_core::Error| ConnectError::Connect(e.to_string());
    let exists: bool =
        sqlx_core::query_scalar::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .map_err(q)?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx_core::query_scalar::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *conn)
        .await
        .map_err(q)
}

/// The PostgreSQL store.
pub struct PgStore {
    writers: Vec<mpsc::Sender<WriteRequest>>,
    /// The writer of job claims (see [`writer`]): one statement per batch, not waiting for
    /// the WAL flush.
    claimer: mpsc::Sender<WriteRequest>,
    pool: PgPool,
    stats: Arc<CommitStats>,
    max_event_bytes: usize,
}

impl PgStore {
    /// Connects, applies the migrations, and starts the writer tasks.
    pub async fn connect(config: PgConfig) -> std::result::Result<Self, ConnectError> {
        let options = options(&config.url)?;
        migrate(&config.url).await?;
        let pool = PgPoolOptions::new()
            .max_connections(config.read_connections.max(1))
            .min_connections(0)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(|e| ConnectError::Connect(e.to_string()))?;
        let stats = Arc::new(CommitStats::default());
        let writer_config = Arc::new(WriterConfig {
            options: writer_options(&options),
            max_batch: config.max_batch.max(1),
            connect_timeout: config.connect_timeout,
            commit_timeout: config.commit_timeout,
            stats: Arc::clone(&stats),
        });
        let count = config.writers.max(1);
        let mut writers = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
            tokio::spawn(writer::run(Arc::clone(&writer_config), rx));
            writers.push(tx);
        }
        // A claim is a lease, not a record anyone was promised: should the database crash
        // before its WAL reaches the disk, the job is only published and run once more
        // (at least once, as ever). So claims do not wait for the flush.
        let claim_config = Arc::new(WriterConfig {
            options: writer_config
                .options
                .clone()
                .options([("synchronous_commit", "off")]),
            max_batch: writer_config.max_batch,
            connect_timeout: config.connect_timeout,
            commit_timeout: config.commit_timeout,
            stats: Arc::clone(&stats),
        });
        let (claimer, rx) = mpsc::channel(config.queue_capacity.max(1));
        tokio::spawn(writer::run(claim_config, rx));
        Ok(PgStore {
            writers,
            claimer,
            pool,
            stats,
            max_event_bytes: config.max_event_bytes,
        })
    }

    /// The writer for a routing key: writes with the same key meet in the same writer.
    fn writer_for(&self, key: u64) -> &mpsc::Sender<WriteRequest> {
        let n = self.writers.len() as u64;
        &self.writers[(key % n) as usize]
    }

    async fn write(&self, route: u64, op: WriteOp) -> Result<WriteReply> {
        let writer = match op {
            WriteOp::Claim { .. } => &self.claimer,
            _ => self.writer_for(route),
        };
        let (reply, rx) = oneshot::channel();
        writer
            .send(WriteRequest { op, reply })
            .await
            .map_err(|_| Error::Unavailable("the store writer has stopped".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("the store writer has stopped".into()))?
    }

    fn check_size(&self, events: &[NewEvent]) -> Result<()> {
        check_size(self.max_event_bytes, events.iter().map(|e| e.json.len()))
    }
}

fn check_size(limit: usize, sizes: impl Iterator<Item = usize>) -> Result<()> {
    for size in sizes {
        if size > limit {
            return Err(Error::TooLarge { size, limit });
        }
    }
    Ok(())
}

/// A routing key from an id: its last 8 bytes (random in a UUIDv7).
fn route_id(bytes: &[u8; 16]) -> u64 {
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&bytes[8..]);
    u64::from_le_bytes(tail)
}

/// A routing key from strings (FNV-1a).
fn route_str(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn unavailable(e: sqlx_core::Error) -> Error {
    Error::Unavailable(e.to_string())
}
