//! Durable storage of events, runs and jobs.
//!
//! [`Store`] is the interface the engine and the server use; [`sqlite::SqliteStore`] is the
//! embedded implementation. Every write is a small unit (start a run, finish a job, …) that
//! the implementation may commit together with others that arrive at the same time (group
//! commit): the future of a write resolves only once its transaction is durable.
//!
//! Architecture invariant: this is the only crate that names a database library.

mod ops;
pub mod postgres;
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
    /// A `story` agent's job waiting for this run: woken when `exit` emits or the run ends.
    pub parent: Option<ParentLink>,
}

/// The job of a `story` agent that waits for a child run.
#[derive(Clone, Debug)]
pub struct ParentLink {
    /// The waiting job.
    pub job_id: JobId,
    /// The child story's agent whose event is the result.
    pub exit_agent: String,
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
        /// A parent `story` agent's job made due now (its child's exit agent emitted, or
        /// the child run ended).
        woke: Option<JobId>,
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
    /// The agent asked to be woken (a second phase), rather than a retry after a failure.
    pub resume: bool,
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
    /// Whether the agent asked to be woken (its second phase).
    pub resumed: bool,
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

/// What one pruning batch deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Runs.
    pub runs: usize,
    /// Events.
    pub events: usize,
    /// Jobs.
    pub jobs: usize,
    /// Expired webhook idempotency keys, agent marks and consumed implode items.
    pub expired: usize,
    /// The batch used up its row budget: more may be left before the cutoff.
    pub more: bool,
}

impl Pruned {
    /// Rows deleted in all.
    pub fn rows(&self) -> usize {
        self.runs + self.events + self.jobs + self.expired
    }
}

/// Whose state: a story's agent.
#[derive(Clone, Debug)]
pub struct StateScope {
    /// Story.
    pub story: Arc<str>,
    /// Agent.
    pub agent: Arc<str>,
}

/// What adding to an `implode` group did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImplodeAdd {
    /// The group is complete.
    Complete {
        /// Its items (JSON text) in arrival order.
        items: Vec<String>,
        /// The job that opened the group and waits for it (until `max_wait`), woken now that
        /// the group is complete so that it ends at once.
        woke: Option<JobId>,
    },
    /// The group is still open; `opened` when this item started it.
    Pending {
        /// This item opened the group.
        opened: bool,
    },
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

/// How many runs of one story with one status started in a window.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunCount {
    /// Story.
    pub story: String,
    /// Status now.
    pub status: RunStatus,
    /// Runs.
    pub count: u64,
}

/// What taking a job for a worker found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The job is this worker's until its lease runs out (renew it while running).
    Taken {
        /// Tries made so far.
        attempts: u32,
        /// Whether the agent asked to be woken and this is the wake.
        resumed: bool,
        /// How often the job was taken back from a worker that died with it.
        rescues: u32,
    },
    /// The job is finished (or gone): nothing to do.
    Done,
    /// The job waits for its time (a retry or a delay): it is published again when due.
    NotDue {
        /// Until it is due.
        wait: std::time::Duration,
    },
    /// Another worker holds it: its lease runs this long still.
    Held {
        /// Until the lease runs out.
        wait: std::time::Duration,
    },
}

/// What the outbox sweeper looks for.
#[derive(Clone, Copy, Debug)]
pub struct Sweep {
    /// Jobs due at least this long ago that were never published (the outbox).
    pub unpublished_after: std::time::Duration,
    /// Jobs whose lease ran out at least this long ago (their worker died): taken back.
    pub expired_lease_after: std::time::Duration,
    /// Jobs published at least this long ago and never taken (a message lost by the broker);
    /// only when the broker's queue is known to be empty, so a backlog is not republished.
    pub lost_after: Option<std::time::Duration>,
    /// Most jobs per sweep.
    pub limit: usize,
}

/// Several processes sharing one store: job leases, the outbox, named leases. The scaled-out
/// mode needs it; only the PostgreSQL store has it (see [`Store::coordination`]).
#[async_trait]
pub trait Coordination: Send + Sync + 'static {
    /// Takes a queued job (a deferred one only when due) for `owner` for `lease`, unless
    /// another owner's lease holds it.
    /// Taking a job from an owner whose lease ran out counts a rescue.
    async fn claim(
        &self,
        job: JobId,
        run: RunId,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Claim>;
    /// Extends `owner`'s leases on `jobs` to `lease` from now.
    async fn renew(&self, owner: &str, jobs: &[JobId], lease: std::time::Duration) -> Result<()>;
    /// Gives a job back (its lease ends now) without counting a rescue.
    async fn release(&self, owner: &str, job: JobId) -> Result<()>;
    /// Records that messages for `jobs` were confirmed by the broker. Only jobs that run at
    /// once are marked: a job rescheduled meanwhile (a retry, a delay) stays in the outbox.
    /// A job whose row another write holds at that moment (a claim, which marks it too, a
    /// finish, a sweep) may be left as it is rather than waited for.
    async fn mark_published(&self, jobs: &[JobId]) -> Result<()>;
    /// Records that messages for deferred jobs due at the given times were confirmed; a job
    /// whose due time has moved since (rescheduled again) stays in the outbox.
    async fn mark_due_published(&self, jobs: &[(JobId, Timestamp)]) -> Result<()>;
    /// Forgets that `jobs` were published (their publish failed after a sweep marked them).
    async fn unmark_published(&self, jobs: &[JobId]) -> Result<()>;
    /// Deferred jobs (retries, delays, wakes) due by `until` that have no message yet.
    async fn due_unpublished(&self, until: Timestamp, limit: usize) -> Result<Vec<QueuedJob>>;
    /// Picks jobs to publish again (see [`Sweep`]), marks them published, takes back expired
    /// leases (counting a rescue each); several sweepers never pick the same job.
    async fn sweep(&self, sweep: Sweep) -> Result<Vec<QueuedJob>>;
    /// Takes or renews the named lease for `owner` for `ttl`; whether `owner` holds it now.
    async fn hold_lease(&self, name: &str, owner: &str, ttl: std::time::Duration) -> Result<bool>;
    /// Gives up the named lease if `owner` holds it.
    async fn drop_lease(&self, name: &str, owner: &str) -> Result<()>;
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
    /// Runs started at or after `since`, counted by story and status (an index range over
    /// the time-ordered run ids: the cost follows the runs in the window, not the history).
    async fn run_counts(&self, since: Timestamp) -> Result<Vec<RunCount>>;
    /// The latest events of one agent of a story, newest first, with a sequence number below
    /// `before` (keyset pagination), at most `limit`.
    async fn agent_events(
        &self,
        story: &str,
        agent: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Event>>;
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
    /// One job.
    async fn job(&self, id: JobId) -> Result<Option<QueuedJob>>;
    /// The latest event of `agent` in a run.
    async fn latest_event(&self, run_id: RunId, agent: &str) -> Result<Option<Event>>;

    /// Lets an event through a `deduplicate`/`throttle` window when fewer than `limit`
    /// events passed for `key` since `now - window`; a job admitted before is admitted again.
    async fn admit(
        &self,
        scope: &StateScope,
        key: &str,
        job: JobId,
        now: Timestamp,
        window: std::time::Duration,
        limit: u32,
    ) -> Result<bool>;
    /// Adds an event to an `implode` group; completes the group when it holds `size`.
    async fn implode_add(
        &self,
        scope: &StateScope,
        key: &str,
        job: JobId,
        now: Timestamp,
        item: Arc<str>,
        size: usize,
    ) -> Result<ImplodeAdd>;
    /// Closes the open group containing `job`'s item, if it is still open.
    async fn implode_flush(
        &self,
        scope: &StateScope,
        key: &str,
        job: JobId,
    ) -> Result<Option<Vec<String>>>;

    /// The greatest idempotency key of `story` that starts with `prefix` (schedules record
    /// their ticks as `schedule:AGENT:TIME`, so this is the last tick fired).
    async fn last_idempotency_key(&self, story: &str, prefix: &str) -> Result<Option<String>>;
    /// Switches a story on or off (persisted across restarts and reloads).
    async fn set_story_enabled(&self, story: &str, enabled: bool) -> Result<()>;
    /// The stories switched off.
    async fn disabled_stories(&self) -> Result<Vec<String>>;
    /// Deletes about `max_rows` rows (at most `max_rows`, except at least one run's worth when
    /// one run alone is larger) of history older than `before`, as one short write: finished
    /// runs that ended before `before`, oldest first, each with its events and jobs; a run
    /// with more than `max_rows` events and jobs loses them in chunks over several batches
    /// and is deleted with the last one. Once no such run is left, the same batch deletes
    /// expired webhook idempotency keys and agent state. `more` says whether the budget was
    /// used up (call again). Running runs (and so pending delays and retries) are never touched.
    async fn prune(&self, before: Timestamp, max_rows: usize) -> Result<Pruned>;

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
    /// Coordination of several processes, when this store can share them (PostgreSQL).
    fn coordination(&self) -> Option<&dyn Coordination> {
        None
    }
}
