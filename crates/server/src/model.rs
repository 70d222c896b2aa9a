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

/// A stored credential as listed: never its value.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CredentialSummary {
    /// Name (`credential.NAME`).
    pub name: String,
    /// Hosts it may be sent to; empty: any.
    pub allowed_hosts: Vec<String>,
    /// Id of the master key that encrypts it.
    pub key_id: String,
    /// First stored.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// `GET /api/v1/credentials`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CredentialList {
    /// By name.
    pub credentials: Vec<CredentialSummary>,
}

/// Body of `PUT /api/v1/credentials/{name}`.
#[derive(serde::Deserialize, JsonSchema)]
pub struct SetCredential {
    /// The secret value (stored encrypted, never answered back).
    pub value: String,
    /// Only send the value to these hosts (`*.example.com` for subdomains); empty: any.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for SetCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetCredential")
            .field("value", &"[redacted]")
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// Body of `POST /api/v1/credentials/rotate-key` (optional).
#[derive(Default, serde::Deserialize, JsonSchema)]
pub struct RotateKey {
    /// The new master key (32 bytes, base64). Required when the key comes from
    /// `SWITCHYARD_MASTER_KEY`; otherwise the server generates one and replaces its key file.
    #[serde(default)]
    pub new_key: Option<String>,
}

/// What a key rotation did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KeyRotated {
    /// The previous key's id.
    pub old_key_id: String,
    /// The new key's id.
    pub key_id: String,
    /// Credentials re-encrypted.
    pub credentials: usize,
    /// Where the new key was written; absent when it comes from the environment.
    pub key_file: Option<String>,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, serde::Deserialize, JsonSchema)]
pub struct NewToken {
    /// `viewer` (reads), `operator` (also triggers, replays, enables and disables stories)
    /// or `admin` (also credentials, resources, tokens, audit).
    pub role: String,
    /// Who or what uses it; default `ROLE-ID`.
    #[serde(default)]
    pub name: Option<String>,
}

/// A token just created: the only answer that ever holds the token itself.
#[derive(Serialize, JsonSchema)]
pub struct TokenCreated {
    /// Id (`tok_…`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// The bearer token. Shown once; only its SHA-256 is stored.
    pub token: String,
}

/// An API token as listed: never the token.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TokenSummary {
    /// Id (`tok_…`).
    pub id: String,
    /// Name.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// When it was revoked; a revoked token is refused.
    pub revoked_at: Option<Timestamp>,
}

/// `GET /api/v1/tokens`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TokenList {
    /// Oldest first, revoked ones included.
    pub tokens: Vec<TokenSummary>,
}

/// One entry of the audit log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditRecord {
    /// Position in the log.
    pub seq: i64,
    /// Time.
    pub at: Timestamp,
    /// The token used (absent on an open server, or when none was valid).
    pub token_id: Option<String>,
    /// Its name.
    pub token_name: Option<String>,
    /// Its role.
    pub role: Option<String>,
    /// What was asked: `credential.set`, `token.create`, `story.trigger`, …
    pub action: String,
    /// What it was asked on (a name, an id), or empty.
    pub target: String,
    /// `ok`, `denied (401)`, `denied (403)` or `failed (STATUS)`.
    pub outcome: String,
}

/// `GET /api/v1/audit`: newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditPage {
    /// Entries.
    pub entries: Vec<AuditRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

/// `GET /api/v1/whoami`: the caller's token and what it may do.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhoAmI {
    /// The token's name (`anonymous` on an open server).
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// The token's id; absent on an open server.
    pub token_id: Option<String>,
    /// True when the server takes requests without a token (loopback, no token created).
    pub open: bool,
}

/// A pack action, as `GET /api/v1/actions` lists it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActionSummary {
    /// `PACK.ACTION`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The pack.
    pub pack: String,
    /// The action's name in its pack.
    pub name: String,
    /// What it does (and the vendor endpoint it calls).
    pub description: Option<String>,
    /// The agent type of its body: `http_request`, `command`, `story`, `transform`, …
    pub runs: String,
    /// Its parameters, by name in file order.
    pub parameters: switchyard_agents::Parameters,
}

/// A credential a pack's actions read.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PackCredential {
    /// Name (`credential.NAME`).
    pub name: String,
    /// What it is.
    pub description: Option<String>,
}

/// A resource a pack's actions read.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PackResource {
    /// Name (`resource.NAME`).
    pub name: String,
    /// The value used while the resource is not set.
    pub default: Option<String>,
    /// What it is.
    pub description: Option<String>,
}

/// A loaded pack.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PackInfo {
    /// Name: the `PACK` of `PACK.ACTION`.
    pub name: String,
    /// Version.
    pub version: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Credentials its actions read.
    pub credentials: Vec<PackCredential>,
    /// Resources its actions read, with their defaults.
    pub resources: Vec<PackResource>,
    /// Its actions' references, sorted.
    pub actions: Vec<String>,
}

/// `GET /api/v1/actions`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActionList {
    /// Every loaded action, by reference.
    pub actions: Vec<ActionSummary>,
    /// The packs, by name.
    pub packs: Vec<PackInfo>,
}

/// `GET /api/v1/actions/{ref}`: one action with its pack.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActionDetail {
    /// The action.
    #[serde(flatten)]
    pub action: ActionSummary,
    /// The action file.
    pub file: String,
    /// Its pack.
    pub pack_info: Option<PackInfo>,
}

/// Body of `POST /api/v1/actions/{ref}/run`.
#[derive(Debug, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunAction {
    /// The parameters, typed (`{"droplet_id": 3164494}`); checked against the action's
    /// schema before anything runs.
    #[serde(default)]
    pub params: serde_json::Map<String, Value>,
}

/// `POST /api/v1/actions/{ref}/run`: the run started.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActionAccepted {
    /// The run (of the internal story `PACK.ACTION`).
    pub run_id: RunId,
    /// Its source event, holding the parameters.
    pub event_id: EventId,
    /// `PACK.ACTION`.
    pub action: String,
}

/// A 400 answer to `POST /api/v1/actions/{ref}/run`: the parameters do not fit the schema,
/// and nothing ran.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InvalidParamsBody {
    /// What went wrong.
    pub error: InvalidParamsDetail,
}

/// The problems with an action run's parameters.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InvalidParamsDetail {
    /// `invalid_params`.
    pub code: String,
    /// Every problem, one per line.
    pub message: String,
    /// Every problem, one per parameter concerned.
    pub problems: Vec<switchyard_agents::ParamProblem>,
}
