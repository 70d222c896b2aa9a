//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go to a single writer thread that commits whatever arrived while the previous
//! commit was in flight as one transaction (group commit), each write in its own savepoint
//! so one bad write cannot spoil its batch. Reads use a small pool of read connections on
//! blocking threads; WAL lets them run beside the writer.

mod idle;
mod prune;
mod rows;
mod security;
mod views;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use switchyard_types::{Event, EventId, Job, JobId, Run, RunId, Timestamp};
use tokio::sync::{mpsc, oneshot};

use crate::ops::{SecurityOp, WriteOp, WriteReply};
use crate::{
    ApiToken, AuditEntry, CommitStats, CommitStatsSnapshot, Error, FinishJob, Finished, ImplodeAdd,
    NewJob, Pruned, QueuedJob, Reschedule, Resource, Result, RunCount, RunQuery, StartRun, Started,
    StateScope, Store, StoredCredential,
};
use idle::{Activity, Msg};
use rows::{
    event_from_row, job_from_row, micros, queued_from_row, run_from_row, EVENT_COLUMNS,
    JOB_COLUMNS, RUN_COLUMNS,
};
use writer::WriteRequest;

/// Migrations in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../../migrations/sqlite/0003_operations.sql"),
    include_str!("../../../../migrations/sqlite/0004_events_by_agent.sql"),
    include_str!("../../../../migrations/sqlite/0005_job_wakes.sql"),
    include_str!("../../../../migrations/sqlite/0006_security.sql"),
    include_str!("../../../../migrations/sqlite/0007_prune.sql"),
];

/// How hard SQLite syncs on commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit (survives power loss). The default.
    Full,
    /// fsync at checkpoints only (survives process crashes, not power loss).
    Normal,
}

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// Directory holding `switchyard.db`.
    pub data_dir: PathBuf,
    /// Sync mode.
    pub durability: Durability,
    /// Largest event payload in bytes.
    pub max_event_bytes: usize,
    /// Most writes gathered in one transaction.
    pub max_batch: usize,
    /// Writes that may wait for the writer before callers are told it is overloaded.
    pub queue_capacity: usize,
}

impl SqliteConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            data_dir: data_dir.into(),
            durability: Durability::Full,
            max_event_bytes: 1 << 20,
            max_batch: 512,
            queue_capacity: 8192,
        }
    }
}

/// The SQLite store. Holds an exclusive lock on its data directory while open.
pub struct SqliteStore {
    writer: mpsc::Sender<Msg>,
    readers: Arc<ReaderPool>,
    stats: Arc<CommitStats>,
    max_event_bytes: usize,
    _lock: File,
}

struct ReaderPool {
    path: PathBuf,
    /// Shared with the writer thread, which releases their page caches when the store is quiet.
    idle: Arc<Mutex<Vec<Connection>>>,
    activity: Arc<Activity>,
    /// Wakes the writer thread to watch for quiet after reads.
    nudge: mpsc::WeakSender<Msg>,
}

impl ReaderPool {
    fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> {
        let pool = Arc::clone(self);
        async move {
            tokio::task::spawn_blocking(move || {
                let conn = match pool.idle.lock().ok().and_then(|mut v| v.pop()) {
                    Some(c) => c,
                    None => open_reader(&pool.path).map_err(unavailable)?,
                };
                let out = f(&conn).map_err(unavailable);
                if let Ok(mut idle) = pool.idle.lock() {
                    if idle.len() < 8 {
                        idle.push(conn);
                    }
                }
                pool.activity.read(&pool.nudge);
                out
            })
            .await
            .map_err(|e| Error::Unavailable(format!("read task failed: {e}")))?
        }
    }
}

fn unavailable(e: rusqlite::Error) -> Error {
    Error::Unavailable(e.to_string())
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // 8 MB of page cache, as for the writer (below): the OS caches the file anyway.
    conn.pragma_update(None, "cache_size", -8_000)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating and migrating) the store in `config.data_dir`.
    pub fn open(config: SqliteConfig) -> std::result::Result<Self, OpenError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| OpenError::Io(config.data_dir.clone(), e))?;
        let lock_path = config.data_dir.join("switchyard.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| OpenError::Io(lock_path.clone(), e))?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Locked(config.data_dir.clone()));
        }
        let path = config.data_dir.join("switchyard.db");
        let mut conn = Connection::open(&path).map_err(|e| OpenError::Sqlite(path.clone(), e))?;
        let sync = match config.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        (|| -> rusqlite::Result<()> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", sync)?;
            // 8 MB of page cache: inserts touch the right edges of the indexes, and the OS
            // caches the file anyway. A larger cache fills up under any sustained load and
            // stays resident (32 MB here made the server's RSS grow by ~40 MB; bench/PROFILE.md).
            conn.pragma_update(None, "cache_size", -8_000)?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            migrate(&mut conn)
        })()
        .map_err(|e| OpenError::Sqlite(path.clone(), e))?;
        let stats = Arc::new(CommitStats::default());
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let writer_stats = Arc::clone(&stats);
        let max_batch = config.max_batch;
        let activity = Arc::new(Activity::default());
        let idle_readers = Arc::new(Mutex::new(Vec::new()));
        let watch = idle::Watch::new(Arc::clone(&activity), Arc::clone(&idle_readers));
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(conn, rx, writer_stats, max_batch, watch))
            .map_err(|e| OpenError::Io(path.clone(), e))?;
        Ok(SqliteStore {
            readers: Arc::new(ReaderPool {
                path,
                idle: idle_readers,
                activity,
                nudge: tx.downgrade(),
            }),
            writer: tx,
            stats,
            max_event_bytes: config.max_event_bytes,
            _lock: lock,
        })
    }

    async fn write(&self, op: WriteOp) -> Result<WriteReply> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Msg::Write(WriteRequest { op, reply }))
            .await
            .map_err(|_| Error::Unavailable("the store writer has stopped".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("the store writer has stopped".into()))?
    }

    fn check_size(&self, events: &[&crate::NewEvent]) -> Result<()> {
        for e in events {
            if e.json.len() > self.max_event_bytes {
                return Err(Error::TooLarge {
                    size: e.json.len(),
                    limit: self.max_event_bytes,
                });
            }
        }
        Ok(())
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A file could not be created or opened.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// SQLite refused.
    #[error("{0}: {1}")]
    Sqlite(PathBuf, rusqlite::Error),
    /// Another Switchyard process has the data directory open.
    #[error(
        "{0} is in use by another Switchyard process (only one `serve` may use a data directory)"
    )]
    Locked(PathBuf),
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = i + 1, "applied SQLite migration");
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn start_run(&self, start: StartRun) -> Result<Started> {
        self.check_size(&[&start.event])?;
        match self.write(WriteOp::Start(start)).await? {
            WriteReply::Started(s) => Ok(s),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    async fn finish_job(&self, finish: FinishJob) -> Result<Finished> {
        self.check_size(&finish.events.iter().collect::<Vec<_>>())?;
        match self.write(WriteOp::Finish(finish)).await? {
            WriteReply::Finished(f) => Ok(f),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    async fn reschedule(&self, reschedule: Reschedule) -> Result<()> {
        self.write(WriteOp::Reschedule(reschedule))
            .await
            .map(|_| ())
    }

    async fn replay(&self, run_id: RunId, jobs: Vec<NewJob>) -> Result<()> {
        self.write(WriteOp::Replay(run_id, jobs)).await.map(|_| ())
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>> {
        self.readers
            .with(move |c| {
                c.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))?
                    .query_row([id.as_bytes().as_slice()], event_from_row)
                    .optional()
            })
            .await
    }

    async fn lineage(&self, id: EventId, limit: usize) -> Result<Vec<Event>> {
        self.readers
            .with(move |c| {
                let sql = format!(
                    "WITH RECURSIVE chain(id, depth) AS (
                        SELECT ?1, 0
                        UNION ALL
                        SELECT e.parent_id, chain.depth + 1 FROM events e JOIN chain ON e.id = chain.id
                        WHERE e.parent_id IS NOT NULL AND chain.depth + 1 < ?2)
                     SELECT {EVENT_COLUMNS} FROM chain JOIN events ON events.id = chain.id ORDER BY chain.depth"
                );
                let mut stmt = c.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![id.as_bytes().as_slice(), limit as i64], event_from_row)?;
                rows.collect()
            })
            .await
    }

    async fn runs(&self, q: RunQuery) -> Result<Vec<Run>> {
        self.readers
            .with(move |c| {
                let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1=1");
                let mut args: Vec<rusqlite::types::Value> = Vec::new();
                if let Some(s) = &q.story {
                    args.push(s.clone().into());
                    sql.push_str(&format!(" AND story = ?{}", args.len()));
                }
                if let Some(s) = q.status {
                    args.push(s.as_str().to_string().into());
                    sql.push_str(&format!(" AND status = ?{}", args.len()));
                }
                if let Some(b) = q.before {
                    args.push(b.as_bytes().to_vec().into());
                    sql.push_str(&format!(" AND id < ?{}", args.len()));
                }
                args.push((q.limit.clamp(1, 1000) as i64).into());
                sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
                let mut stmt = c.prepare_cached(&sql)?;
                let rows = stmt.query_map(rusqlite::params_from_iter(args), run_from_row)?;
                rows.collect()
            })
            .await
    }

    async fn run(&self, id: RunId) -> Result<Option<Run>> {
        self.readers
            .with(move |c| {
                c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                    .query_row([id.as_bytes().as_slice()], run_from_row)
                    .optional()
            })
            .await
    }

    async fn run_events(&self, id: RunId) -> Result<Vec<Event>> {
        self.readers
            .with(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 ORDER BY seq"
                ))?;
                let rows = stmt.query_map([id.as_bytes().as_slice()], event_from_row)?;
                rows.collect()
            })
            .await
    }

    async fn run_jobs(&self, id: RunId) -> Result<Vec<Job>> {
        self.readers
            .with(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE run_id = ?1 ORDER BY id"
                ))?;
                let rows = stmt.query_map([id.as_bytes().as_slice()], job_from_row)?;
                rows.collect()
            })
            .await
    }

    async fn events_after(
        &self,
        seq: i64,
        story: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let story = story.map(str::to_string);
        self.readers
            .with(move |c| {
                let limit = limit.clamp(1, 10_000) as i64;
                match &story {
                    Some(s) => {
                        let mut stmt = c.prepare_cached(&format!(
                            "SELECT {EVENT_COLUMNS} FROM events WHERE story = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                        ))?;
                        let rows = stmt.query_map(params![s, seq, limit], event_from_row)?;
                        rows.collect()
                    }
                    None => {
                        let mut stmt = c.prepare_cached(&format!(
                            "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                        ))?;
                        let rows = stmt.query_map(params![seq, limit], event_from_row)?;
                        rows.collect()
                    }
                }
            })
            .await
    }

    async fn run_counts(&self, since: Timestamp) -> Result<Vec<RunCount>> {
        self.readers
            .with(move |c| views::run_counts(c, since))
            .await
    }

    async fn agent_events(
        &self,
        story: &str,
        agent: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let (story, agent) = (story.to_string(), agent.to_string());
        self.readers
            .with(move |c| views::agent_events(c, &story, &agent, before, limit))
            .await
    }

    async fn last_event_seq(&self) -> Result<i64> {
        self.readers
            .with(|c| c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0)))
            .await
    }

    async fn queued_jobs(
        &self,
        deferred: bool,
        after: Option<(Timestamp, JobId)>,
        until: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<QueuedJob>> {
        self.readers
            .with(move |c| {
                let sql = "SELECT j.id, j.run_id, j.story, j.agent, j.input_event_id, j.attempts, j.due_at, r.started_at, j.resumed
                     FROM jobs j JOIN runs r ON r.id = j.run_id
                     WHERE j.state = 'queued' AND j.deferred = ?1 AND (j.due_at, j.id) > (?2, ?3) AND j.due_at <= ?4
                     ORDER BY j.due_at, j.id LIMIT ?5";
                let mut stmt = c.prepare_cached(sql)?;
                let rows = stmt.query_map(
                    params![
                        deferred,
                        after.map_or(i64::MIN, |a| micros(a.0)),
                        after.map_or(Vec::new(), |a| a.1.as_bytes().to_vec()),
                        until.map_or(i64::MAX, micros),
                        limit as i64
                    ],
                    queued_from_row,
                )?;
                rows.collect()
            })
            .await
    }

    async fn job(&self, id: JobId) -> Result<Option<QueuedJob>> {
        self.readers
            .with(move |c| {
                c.prepare_cached(
                    "SELECT j.id, j.run_id, j.story, j.agent, j.input_event_id, j.attempts, j.due_at, r.started_at, j.resumed, j.state
                     FROM jobs j JOIN runs r ON r.id = j.run_id WHERE j.id = ?1",
                )?
                .query_row([id.as_bytes().as_slice()], |r| {
                    let state: String = r.get(9)?;
                    Ok((queued_from_row(r)?, state))
                })
                .optional()
            })
            .await
            .map(|o| o.and_then(|(j, state)| (state == "queued").then_some(j)))
    }

    async fn latest_event(&self, run_id: RunId, agent: &str) -> Result<Option<Event>> {
        let agent = agent.to_string();
        self.readers
            .with(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 AND agent = ?2 AND kind = 'event' ORDER BY seq DESC LIMIT 1"
                ))?
                .query_row(params![run_id.as_bytes().as_slice(), agent], event_from_row)
                .optional()
            })
            .await
    }

    async fn admit(
        &self,
        scope: &StateScope,
        key: &str,
        job: JobId,
        now: Timestamp,
        window: std::time::Duration,
        limit: u32,
    ) -> Result<bool> {
        let op = WriteOp::Admit {
            scope: scope.clone(),
            key: key.to_string(),
            job,
            now: micros(now),
            window_micros: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
            limit,
        };
        match self.write(op).await? {
            WriteReply::Admitted(b) => Ok(b),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    async fn implode_add(
        &self,
        scope: &StateScope,
        key: &str,
        job: JobId,
        now: Timestamp,
        item: Arc<str>,
        size: usize,
    ) -> Result<ImplodeAdd> {
        if item.len() > self.max_event_bytes {
            return Err(Error::TooLarge {
                size: item.len(),
                limit: self.max_event_bytes,
            });
        }
        let op = WriteOp::ImplodeAdd {
            scope: scope.clone(),
            key: key.to_string(),
            job,
            now: micros(now),
            item,
            size,
        };
        match self.write(op).await? {
            WriteReply::Imploded(r) => Ok(r),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    async fn implode_flush(
        &self,
        scope: &StateScope,
        key: &str,
        job: JobId,
    ) -> Result<Option<Vec<String>>> {
        match self
            .write(WriteOp::ImplodeFlush {
                scope: scope.clone(),
                key: key.to_string(),
                job,
            })
            .await?
        {
            WriteReply::Flushed(r) => Ok(r),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    async fn last_idempotency_key(&self, story: &str, prefix: &str) -> Result<Option<String>> {
        let (story, prefix) = (story.to_string(), prefix.to_string());
        self.readers
            .with(move |c| {
                // Keys starting with `prefix` sort in [prefix, prefix + U+FFFF).
                let upper = format!("{prefix}\u{ffff}");
                c.prepare_cached(
                    "SELECT key FROM webhook_deliveries WHERE story = ?1 AND key >= ?2 AND key < ?3 ORDER BY key DESC LIMIT 1",
                )?
                .query_row(params![story, prefix, upper], |r| r.get(0))
                .optional()
            })
            .await
    }

    async fn set_story_enabled(&self, story: &str, enabled: bool) -> Result<()> {
        let at = switchyard_types::now().timestamp_micros();
        self.write(WriteOp::SetStoryEnabled(story.to_string(), enabled, at))
            .await
            .map(|_| ())
    }

    async fn disabled_stories(&self) -> Result<Vec<String>> {
        self.readers
            .with(|c| {
                let mut stmt = c.prepare_cached(
                    "SELECT story FROM story_settings WHERE enabled = 0 ORDER BY story",
                )?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .await
    }

    async fn prune(&self, before: Timestamp, max_rows: usize) -> Result<Pruned> {
        match self
            .write(WriteOp::Prune {
                before: micros(before),
                max_rows,
            })
            .await?
        {
            WriteReply::Pruned(p) => Ok(p),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    async fn set_resource(&self, name: &str, value: &str) -> Result<()> {
        let at = switchyard_types::now().timestamp_micros();
        self.write(WriteOp::SetResource(
            name.to_string(),
            value.to_string(),
            at,
        ))
        .await
        .map(|_| ())
    }

    async fn delete_resource(&self, name: &str) -> Result<bool> {
        match self
            .write(WriteOp::DeleteResource(name.to_string()))
            .await?
        {
            WriteReply::Changed(n) => Ok(n > 0),
            _ => Ok(false),
        }
    }

    async fn resources(&self) -> Result<Vec<Resource>> {
        self.readers
            .with(|c| {
                let mut stmt = c.prepare_cached(
                    "SELECT name, value, updated_at FROM resources ORDER BY name",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok(Resource {
                        name: r.get(0)?,
                        value: r.get(1)?,
                        updated_at: switchyard_types::from_micros(r.get(2)?),
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn put_credentials(&self, credentials: Vec<StoredCredential>) -> Result<()> {
        self.write(WriteOp::Security(SecurityOp::PutCredentials(credentials)))
            .await
            .map(|_| ())
    }

    async fn delete_credential(&self, name: &str) -> Result<bool> {
        let op = SecurityOp::DeleteCredential(name.to_string());
        Ok(matches!(self.write(WriteOp::Security(op)).await?, WriteReply::Changed(n) if n > 0))
    }

    async fn credentials(&self) -> Result<Vec<StoredCredential>> {
        self.readers.with(security::credentials).await
    }

    async fn create_token(&self, token: ApiToken) -> Result<()> {
        self.write(WriteOp::Security(SecurityOp::CreateToken(token)))
            .await
            .map(|_| ())
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        self.readers.with(security::tokens).await
    }

    async fn token_by_hash(&self, hash: &[u8]) -> Result<Option<ApiToken>> {
        let hash = hash.to_vec();
        self.readers
            .with(move |c| security::token_by_hash(c, &hash))
            .await
    }

    async fn revoke_token(&self, id_or_name: &str) -> Result<usize> {
        let at = switchyard_types::now().timestamp_micros();
        let op = SecurityOp::RevokeToken(id_or_name.to_string(), at);
        match self.write(WriteOp::Security(op)).await? {
            WriteReply::Changed(n) => Ok(n),
            _ => Ok(0),
        }
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<()> {
        self.write(WriteOp::Security(SecurityOp::RecordAudit(entry)))
            .await
            .map(|_| ())
    }

    async fn audit(&self, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>> {
        self.readers
            .with(move |c| security::audit(c, before, limit))
            .await
    }

    async fn ping(&self) -> Result<()> {
        if self.writer.is_closed() {
            return Err(Error::Unavailable("the store writer has stopped".into()));
        }
        self.readers
            .with(|c| c.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    fn commit_stats(&self) -> CommitStatsSnapshot {
        self.stats.snapshot()
    }
}
