//! Durable storage of events, runs and jobs.
//!
//! [`Store`] is the interface the engine and the server use; [`sqlite::SqliteStore`] is the
//! embedded implementation. Every write is a small unit (start a run, finish a job, …) that
//! the implementation may commit together with others that arrive at the same time (group
//! commit): the future of a write resolves only once its transaction is durable.
//!
//! Architecture invariant: this is the only crate that names a database library.

mod security;
pub mod sqlite;
mod stats;

use std::sync::Arc;

use async_trait::async_trait;
pub use security::{ApiToken, AuditEntry, StoredCredential};
pub use stats::{CommitStats, CommitStatsSnapshot};
use switchyard_types::{
    Event, EventId, EventKind, Job, JobId, JobState, Run, RunId, RunStatus, Timestamp,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store cannot be reached or is failing; the caller should answer 503 and retry.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store is too busy to take the write in time.
    #[error("the store is overloaded")]
    Overloaded,
    /// A payload is larger than the event size limit.
    #[error("event payload is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the payload.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Stored data could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// Store results.
pub type Result<T> = std::result::Result<T, Error>;

/// An event to store, its payload already serialized (serialization happens on the caller's
/// thread, not on the single writer).
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// Id.
    pub id: EventId,
    /// Story.
    pub story: Arc<str>,
    /// Emitting agent.
    pub agent: Arc<str>,
    /// Run.
    pub run_id: RunId,
    /// Causing event.
    pub parent_id: Option<EventId>,
    /// Ordinary or error event.
    pub kind: EventKind,
    /// Time.
    pub created_at: Timestamp,
    /// The payload as JSON text.
    pub json: Arc<str>,
}

/// A job to create: one delivery of an event to one agent.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Id.
    pub id: JobId,
    /// Run.
    pub run_id: RunId,
    /// Story.
    pub story: Arc<str>,
    /// Receiving agent.
    pub agent: Arc<str>,
    /// The event it delivers.
    pub input_event_id: EventId,
    /// Creation time.
    pub created_at: Timestamp,
    /// When it may run.
    pub due_at: Timestamp,
    /// Whether it waits for a timer (retries, delays) rather than running at once.
    pub deferred: bool,
}

/// Start a run from a source event.
#[derive(Clone, Debug)]
pub struct StartRun {
    /// The run.
    pub run_id: RunId,
    /// The source event (its agent is the run's trigger agent).
    pub event: NewEvent,
    /// Deliveries of the source event to downstream agents.
    pub jobs: Vec<NewJob>,
    /// A webhook idempotency key: a repeat returns the first delivery's ids.
    pub idempotency_key: Option<String>,
    /// Who started it.
    pub started_by: Option<String>,
}

/// What starting a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    /// A new run was stored.
    New,
    /// The idempotency key was seen before: these are the first delivery's ids.
    Duplicate {
        /// The first delivery's event.
        event_id: EventId,
        /// The first delivery's run.
        run_id: RunId,
    },
}

/// Record the end of a job, its output events and the jobs they cause, atomically.
#[derive(Clone, Debug)]
pub struct FinishJob {
    /// The job.
    pub job_id: JobId,
    /// Its run.
    pub run_id: RunId,
    /// Succeeded, skipped or failed.
    pub state: JobState,
    /// Tries made.
    pub attempts: u32,
    /// When the last try started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
    /// The failure message, when failed.
    pub error: Option<String>,
    /// Emitted events (including an error event).
    pub events: Vec<NewEvent>,
    /// Deliveries of those events.
    pub jobs: Vec<NewJob>,
    /// Set when the job failed and no agent handles its error: the run will be failed.
    pub unhandled_failure: Option<String>,
}

/// What finishing a job did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Recorded; `Some(status)` when this was the run's last pending job.
    Applied {
        /// The run's final status, if it just ended.
        run_ended: Option<RunStatus>,
    },
    /// The job had already been finished (a redelivery): nothing was written.
    AlreadyFinished,
}

/// Put a job back in the queue for a later try (retry) or a later phase (delay).
#[derive(Clone, Debug)]
pub struct Reschedule {
    /// The job.
    pub job_id: JobId,
    /// Tries made so far.
    pub attempts: u32,
    /// When to run it again.
    pub due_at: Timestamp,
    /// When the last try started.
    pub started_at: Option<Timestamp>,
    /// The last try's error.
    pub error: Option<String>,
}

/// A job waiting to run, with what a worker needs to find its input.
#[derive(Clone, Debug)]
pub struct QueuedJob {
    /// Id.
    pub id: JobId,
    /// Run.
    pub run_id: RunId,
    /// Story.
    pub story: String,
    /// Agent to run.
    pub agent: String,
    /// Input event.
    pub input_event_id: EventId,
    /// Tries made so far.
    pub attempts: u32,
    /// When it may run.
    pub due_at: Timestamp,
    /// When its run started.
    pub run_started_at: Timestamp,
}

/// A shared value for templates.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Resource {
    /// Name (`resource.NAME`).
    pub name: String,
    /// Value.
    pub value: String,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Filter and page of `runs list`.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    /// Only this story.
    pub story: Option<String>,
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Keyset pagination: runs older than this one.
    pub before: Option<RunId>,
    /// Page size.
    pub limit: usize,
}

/// The embedded or scaled-out store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a source event, its run and its first jobs. Durable when it returns.
    async fn start_run(&self, start: StartRun) -> Result<Started>;
    /// Records a job's end with its output, atomically; idempotent per job.
    async fn finish_job(&self, finish: FinishJob) -> Result<Finished>;
    /// Puts a job back for a later try or phase.
    async fn reschedule(&self, reschedule: Reschedule) -> Result<()>;
    /// Re-delivers a stored event: adds jobs to its run and marks the run running again.
    async fn replay(&self, run_id: RunId, jobs: Vec<NewJob>) -> Result<()>;

    /// One event.
    async fn event(&self, id: EventId) -> Result<Option<Event>>;
    /// An event followed by its ancestors, nearest first (at most `limit`).
    async fn lineage(&self, id: EventId, limit: usize) -> Result<Vec<Event>>;
    /// Runs, newest first.
    async fn runs(&self, query: RunQuery) -> Result<Vec<Run>>;
    /// One run.
    async fn run(&self, id: RunId) -> Result<Option<Run>>;
    /// A run's events in order.
    async fn run_events(&self, id: RunId) -> Result<Vec<Event>>;
    /// A run's jobs in creation order.
    async fn run_jobs(&self, id: RunId) -> Result<Vec<Job>>;
    /// Events stored after `seq`, oldest first.
    async fn events_after(&self, seq: i64, story: Option<&str>, limit: usize)
        -> Result<Vec<Event>>;
    /// The highest event sequence number (0 when empty).
    async fn last_event_seq(&self) -> Result<i64>;
    /// Queued jobs, ordered by (due time, id), after the keyset position `after` and due by
    /// `until`: those that run at once (`deferred = false`, for recovery after a restart) or
    /// those waiting for a timer (`deferred = true`: retries, delays).
    async fn queued_jobs(
        &self,
        deferred: bool,
        after: Option<(Timestamp, JobId)>,
        until: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<QueuedJob>>;
    /// Sets a shared value for templates.
    async fn set_resource(&self, name: &str, value: &str) -> Result<()>;
    /// Removes a shared value; whether it existed.
    async fn delete_resource(&self, name: &str) -> Result<bool>;
    /// Every shared value, by name.
    async fn resources(&self) -> Result<Vec<Resource>>;
    /// Stores credentials (insert or replace, keeping the creation time), all in one
    /// transaction: a key rotation re-encrypts everything or nothing.
    async fn put_credentials(&self, credentials: Vec<StoredCredential>) -> Result<()>;
    /// Removes a credential; whether it existed.
    async fn delete_credential(&self, name: &str) -> Result<bool>;
    /// Every credential (encrypted), by name.
    async fn credentials(&self) -> Result<Vec<StoredCredential>>;
    /// Stores a new API token (hashed).
    async fn create_token(&self, token: ApiToken) -> Result<()>;
    /// Every API token, revoked ones included, oldest first.
    async fn tokens(&self) -> Result<Vec<ApiToken>>;
    /// The token with this SHA-256, revoked or not.
    async fn token_by_hash(&self, hash: &[u8]) -> Result<Option<ApiToken>>;
    /// Revokes the active token with this id, or every active token with this name; how many.
    async fn revoke_token(&self, id_or_name: &str) -> Result<usize>;
    /// Appends to the audit log.
    async fn record_audit(&self, entry: AuditEntry) -> Result<()>;
    /// The audit log, newest first, entries before `before` (a `seq`), at most `limit`.
    async fn audit(&self, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>>;
    /// Whether the store answers.
    async fn ping(&self) -> Result<()>;
    /// Group commit figures.
    fn commit_stats(&self) -> CommitStatsSnapshot;
}
