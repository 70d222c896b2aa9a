use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{EventId, JobId, RunId, Timestamp};

/// A JSON payload shared between ingest, store and workers without copying.
pub type Payload = Arc<Value>;

/// One stored event: the output of one agent execution (or of a source agent).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Unique id (UUIDv7, so ids sort by creation time).
    pub id: EventId,
    /// Position in the store's global order; used to follow events live.
    pub seq: i64,
    /// The story whose agent emitted it.
    pub story: String,
    /// The agent that emitted it.
    pub agent: String,
    /// The run it belongs to.
    pub run_id: RunId,
    /// The event that caused it (none for the event that started the run).
    pub parent_id: Option<EventId>,
    /// When it was stored.
    pub created_at: Timestamp,
    /// `event` for an ordinary event, `error` for an error event.
    pub kind: EventKind,
    /// The JSON value.
    #[schemars(with = "Value")]
    pub payload: Payload,
}

/// Whether an event is ordinary output or an agent's error event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Ordinary output, delivered to agents that list the emitter in `from`.
    Event,
    /// An error event, delivered to agents that list `EMITTER.error` in `from`.
    Error,
}

impl EventKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Event => "event",
            EventKind::Error => "error",
        }
    }
    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "event" => Some(EventKind::Event),
            "error" => Some(EventKind::Error),
            _ => None,
        }
    }
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Some agent still has work to do for it.
    Running,
    /// Every agent finished and no failure went unhandled.
    Succeeded,
    /// An agent failed and no agent handled its error event.
    Failed,
}

impl RunStatus {
    /// The stored and displayed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(RunStatus::Running),
            "succeeded" => Some(RunStatus::Succeeded),
            "failed" => Some(RunStatus::Failed),
            _ => None,
        }
    }
}

/// A run: everything caused by one source event.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// Unique id.
    pub id: RunId,
    /// The story it runs.
    pub story: String,
    /// Where it stands.
    pub status: RunStatus,
    /// The source event that started it.
    pub trigger_event_id: EventId,
    /// The source agent that started it.
    pub trigger_agent: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When its last job finished.
    pub finished_at: Option<Timestamp>,
    /// Jobs not yet finished (including pending delays and retries).
    pub pending_jobs: i64,
    /// The first unhandled failure, when it failed.
    pub error: Option<String>,
    /// Who started it: `webhook`, `schedule`, or the API token's name.
    pub started_by: Option<String>,
}

/// Where one agent execution stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker, for a retry, or for its time (delays).
    Queued,
    /// The agent did its work (and emitted zero or more events).
    Succeeded,
    /// The agent's `if` was false: it did nothing.
    Skipped,
    /// The agent failed after its retries.
    Failed,
}

impl JobState {
    /// The stored and displayed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Succeeded => "succeeded",
            JobState::Skipped => "skipped",
            JobState::Failed => "failed",
        }
    }
    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(JobState::Queued),
            "succeeded" => Some(JobState::Succeeded),
            "skipped" => Some(JobState::Skipped),
            "failed" => Some(JobState::Failed),
            _ => None,
        }
    }
}

/// One delivery of an event to one agent, as recorded for `runs show`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    /// Unique id; also the idempotency key of the execution.
    pub id: JobId,
    /// The run it belongs to.
    pub run_id: RunId,
    /// The story.
    pub story: String,
    /// The agent that runs it.
    pub agent: String,
    /// The event delivered to the agent.
    pub input_event_id: EventId,
    /// Where it stands.
    pub state: JobState,
    /// Tries so far.
    pub attempts: u32,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it is (or was) due: later than `created_at` for delays and retries.
    pub due_at: Timestamp,
    /// When its last try started.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// The last error message.
    pub error: Option<String>,
}

/// The body of an error event: what failed, why, and the input it failed on.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ErrorEvent {
    /// What went wrong.
    pub error: ErrorInfo,
    /// The payload the agent was working on.
    pub input: Value,
}

/// What went wrong in an agent execution.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ErrorInfo {
    /// A stable machine-readable kind: `http_status`, `timeout`, `template`, `ssrf`, …
    pub kind: String,
    /// A human-readable explanation.
    pub message: String,
    /// How many tries were made.
    pub attempts: u32,
}
