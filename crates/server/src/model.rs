//! The shapes of the REST API's answers: what the handlers serialize and what the OpenAPI
//! document describes (one set of types for both).

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use switchyard_types::{Event, EventId, Job, JobId, Run, RunId, Timestamp};

/// A webhook of a story.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WebhookRoute {
    /// The webhook agent.
    pub agent: String,
    /// Its URL path: `/webhook/{story}/{path}`.
    pub path: String,
}

/// A loaded story.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StorySummary {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// The file it was loaded from.
    pub file: String,
    /// Number of agents.
    pub agents: usize,
    /// Its webhooks.
    pub webhooks: Vec<WebhookRoute>,
    /// Whether it takes events.
    pub enabled: bool,
}

/// `GET /api/v1/stories`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StoryList {
    /// Stories, by name.
    pub stories: Vec<StorySummary>,
}

/// An agent of a story, as written.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentInfo {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is for.
    pub description: Option<String>,
    /// Upstream agents (`X.error` for error events).
    pub from: Vec<String>,
    /// Its options as written in the story file.
    pub options: Value,
}

/// `GET /api/v1/stories/{name}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StoryDetail {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// The file it was loaded from.
    pub file: String,
    /// Whether it takes events.
    pub enabled: bool,
    /// Its webhooks.
    pub webhooks: Vec<WebhookRoute>,
    /// Its agents, in file order.
    pub agents: Vec<AgentInfo>,
}

/// A story switched on or off.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StorySwitched {
    /// Story.
    pub name: String,
    /// Now enabled.
    pub enabled: bool,
}

/// The ids of a stored source event and its run.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Accepted {
    /// The event.
    pub event_id: EventId,
    /// The run it started.
    pub run_id: RunId,
}

/// `GET /api/v1/runs`: a page of runs, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunsPage {
    /// The runs.
    pub runs: Vec<Run>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<RunId>,
}

/// `GET /api/v1/runs/{id}`: a run with its events and jobs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunDetail {
    /// The run.
    pub run: Run,
    /// Its events in order.
    pub events: Vec<Event>,
    /// Its jobs (agent executions) in order.
    pub jobs: Vec<Job>,
}

/// `GET /api/v1/events`: events after a sequence number.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsPage {
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// Pass as `after` to continue.
    pub last_seq: i64,
}

/// `POST /api/v1/events/{id}/replay`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReplayAccepted {
    /// The run the new deliveries belong to.
    pub run_id: RunId,
    /// One new job per receiving agent.
    pub jobs: Vec<JobId>,
}

/// A shared value for templates.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ResourceValue {
    /// Name (`resource.NAME`).
    pub name: String,
    /// Value.
    pub value: String,
    /// Last change.
    pub updated_at: Timestamp,
}

/// `GET /api/v1/resources`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ResourceList {
    /// By name.
    pub resources: Vec<ResourceValue>,
}

/// Body of `PUT /api/v1/resources/{name}`.
#[derive(Debug, serde::Deserialize, JsonSchema)]
pub struct SetResource {
    /// The new value.
    pub value: String,
}

/// Every error answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `not_found`, `bad_request`, `unavailable`, …
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}
