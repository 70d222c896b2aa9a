//! `/api/v1`: the REST API behind the CLI, plus health, readiness and metrics.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_agents::Source;
use switchyard_engine::{IngestError, ReplayError};
use switchyard_store::RunQuery;
use switchyard_types::{EventId, RunId, RunStatus};

use crate::auth::Principal;
use crate::error::{ApiError, JsonBody};
use crate::model::*;
use crate::redact::redact_options;
use crate::webhook::parse_body;
use crate::AppState;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// `GET /readyz`: the store and the job queue answer; each says `ok` or why not.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.engine.store().ping().await.map_err(|e| e.to_string());
    let queue = state.engine.queue_status();
    let mut body = json!({
        "status": if store.is_ok() && queue.is_ok() { "ready" } else { "unavailable" },
        "store": store.as_ref().err().map_or("ok", |e| e.as_str()),
        "queue": queue.as_ref().err().map_or("ok", |e| e.as_str()),
        "queued_jobs": state.engine.queued(),
    });
    if state.engine.is_scaled_out() {
        body["coordinator"] = json!(state.engine.is_coordinator());
    }
    let status = if store.is_ok() && queue.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Unknown API path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return ApiError::not_found("metrics are not enabled").into_response();
    };
    metrics::gauge!("switchyard_queued_jobs").set(state.engine.queued() as f64);
    metrics::gauge!("switchyard_deferred_jobs_held").set(state.engine.deferred_held() as f64);
    let stats = state.engine.store().commit_stats();
    metrics::gauge!("switchyard_store_commits").set(stats.commits as f64);
    metrics::gauge!("switchyard_store_writes").set(stats.writes as f64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

fn webhook_routes(s: &switchyard_story::Story) -> Vec<WebhookRoute> {
    let mut routes: Vec<WebhookRoute> = s
        .webhooks
        .iter()
        .map(|(path, &i)| WebhookRoute {
            agent: s.agents[i].name.to_string(),
            path: format!("/webhook/{}/{}", s.name, path),
        })
        .collect();
    routes.sort_by(|a, b| a.path.cmp(&b.path));
    routes
}

/// `GET /api/v1/stories`.
pub async fn list_stories(State(state): State<AppState>) -> Json<StoryList> {
    let catalog = state.engine.catalog();
    let stories = catalog
        .stories()
        .iter()
        .map(|s| StorySummary {
            name: s.name.to_string(),
            description: s.description.clone(),
            file: s.file.display().to_string(),
            agents: s.agents.len(),
            webhooks: webhook_routes(s),
            enabled: state.engine.is_enabled(&s.name),
        })
        .collect();
    Json(StoryList { stories })
}

/// `GET /api/v1/stories/{name}`.
pub async fn show_story(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<StoryDetail>, ApiError> {
    let catalog = state.engine.catalog();
    let story = catalog
        .story(&name)
        .ok_or_else(|| ApiError::not_found(format!("no story named `{name}`")))?;
    Ok(Json(StoryDetail {
        name: story.name.to_string(),
        description: story.description.clone(),
        file: story.file.display().to_string(),
        enabled: state.engine.is_enabled(&story.name),
        webhooks: webhook_routes(story),
        agents: story
            .agents
            .iter()
            .map(|a| AgentInfo {
                name: a.name.to_string(),
                kind: a.kind.clone(),
                description: a.description.clone(),
                from: a.from.iter().map(|f| f.to_string()).collect(),
                options: redact_options(&a.options),
            })
            .collect(),
    }))
}

/// `POST /api/v1/stories/{name}/enable`.
pub async fn enable_story(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<StorySwitched>, ApiError> {
    set_enabled(state, name, true).await
}

/// `POST /api/v1/stories/{name}/disable`.
pub async fn disable_story(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<StorySwitched>, ApiError> {
    set_enabled(state, name, false).await
}

async fn set_enabled(
    state: AppState,
    name: String,
    enabled: bool,
) -> Result<Json<StorySwitched>, ApiError> {
    if state.engine.catalog().story(&name).is_none() {
        return Err(ApiError::not_found(format!("no story named `{name}`")));
    }
    state.engine.set_enabled(&name, enabled).await?;
    tracing::info!(story = %name, enabled, "story switched");
    Ok(Json(StorySwitched { name, enabled }))
}

/// `POST /api/v1/stories/{name}/agents/{agent}/trigger`: stores the event the webhook agent
/// would have emitted for a POST of the request's JSON body — or, for a schedule agent, the
/// event of a tick now (the body's keys added) — and answers its ids.
pub async fn trigger(
    State(state): State<AppState>,
    Path((name, agent)): Path<(String, String)>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let catalog = state.engine.catalog();
    let story = catalog
        .story(&name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no story named `{name}`")))?;
    let index = *story
        .by_name
        .get(agent.as_str())
        .ok_or_else(|| ApiError::not_found(format!("story `{name}` has no agent `{agent}`")))?;
    let mut json_headers = HeaderMap::new();
    json_headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let data = if body.is_empty() {
        Value::Null
    } else {
        parse_body(&json_headers, &body)?
    };
    let payload = match story.agents[index].agent.source() {
        Some(Source::Webhook(_)) => {
            let path = story
                .webhooks
                .iter()
                .find(|(_, &i)| i == index)
                .map(|(p, _)| p.clone())
                .unwrap_or_default();
            json!({
                "method": "POST",
                "path": path,
                "headers": {"content-type": "application/json"},
                "query": {},
                "body": data,
            })
        }
        // A tick now, out of turn ("run the hourly job now"): `{scheduled_at, …payload}`,
        // with the keys of a JSON object given as data on top.
        Some(Source::Schedule(schedule)) => {
            let cx = state.engine.template_context().build();
            let mut tick = schedule
                .event(switchyard_types::now(), &cx)
                .map_err(|e| ApiError::bad_request(format!("agent `{agent}`: {}", e.message)))?;
            match (&mut tick, data) {
                (_, Value::Null) => {}
                (Value::Object(t), Value::Object(extra)) => t.extend(extra),
                (_, _) => {
                    return Err(ApiError::bad_request(
                        "the data of a schedule agent's tick is a JSON object (its keys are added to the event)",
                    ))
                }
            }
            tick
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "agent `{agent}` is not a webhook or schedule agent; only those can be triggered"
            )))
        }
    };
    let by = match principal.filter(|p| p.token_id.is_some()) {
        Some(p) => format!("token:{}", p.name),
        None => headers
            .get("x-switchyard-actor")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("cli")
            .to_string(),
    };
    match state
        .engine
        .ingest(&story, index, payload, None, Some(by))
        .await
    {
        Ok(i) => Ok((
            StatusCode::ACCEPTED,
            Json(Accepted {
                event_id: i.event_id,
                run_id: i.run_id,
            }),
        )),
        Err(IngestError::Overloaded(_)) => Err(ApiError::unavailable(
            "the server is overloaded; try again shortly",
        )),
        Err(IngestError::TooLarge(m)) => {
            Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m))
        }
        Err(IngestError::Payload(m)) => Err(ApiError::bad_request(m)),
        Err(e @ IngestError::Disabled(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "story_disabled",
            e.to_string(),
        )),
        Err(IngestError::Store(e)) => Err(e.into()),
        Err(IngestError::QueueUnavailable(e)) => {
            tracing::warn!(error = %e, "refusing a trigger: the job queue is unavailable");
            Err(ApiError::unavailable(
                "the job queue is unavailable; try again",
            ))
        }
    }
}

/// Query of `GET /api/v1/runs`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunsQuery {
    /// Only this story.
    pub story: Option<String>,
    /// Only this status: running, succeeded or failed.
    pub status: Option<String>,
    /// Runs older than this run id (keyset pagination).
    pub before: Option<String>,
    /// Page size (1–1000, default 50).
    pub limit: Option<usize>,
}

fn parse_id<T: FromStr>(s: &str, what: &str) -> Result<T, ApiError> {
    T::from_str(s).map_err(|_| ApiError::bad_request(format!("`{s}` is not a valid {what} id")))
}

/// `GET /api/v1/runs`: newest first, keyset-paginated with `before`.
pub async fn list_runs(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<RunsPage>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown status `{s}`: use running, succeeded or failed"
            ))
        })?),
    };
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(b) => Some(parse_id::<RunId>(b, "run")?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let runs = state
        .engine
        .store()
        .runs(RunQuery {
            story: q.story.filter(|s| !s.is_empty()),
            status,
            before,
            limit,
        })
        .await?;
    let next_before = if runs.len() == limit {
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(RunsPage { runs, next_before }))
}

/// `GET /api/v1/runs/{id}`: the run, its events and its jobs.
pub async fn show_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let id: RunId = parse_id(&id, "run")?;
    let store = state.engine.store();
    let run = store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))?;
    let (events, jobs) = tokio::try_join!(store.run_events(id), store.run_jobs(id))?;
    Ok(Json(RunDetail { run, events, jobs }))
}

/// Query of `GET /api/v1/events`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EventsQuery {
    /// Events after this sequence number; without it, none are returned, only `last_seq`.
    pub after: Option<i64>,
    /// Only this story.
    pub story: Option<String>,
    /// Page size (1–10000, default 100).
    pub limit: Option<usize>,
}

/// `GET /api/v1/events?after=SEQ`: events after a sequence number (for `events tail`).
pub async fn list_events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    let store = state.engine.store();
    let Some(after) = q.after else {
        return Ok(Json(EventsPage {
            events: Vec::new(),
            last_seq: store.last_event_seq().await?,
        }));
    };
    let events = store
        .events_after(
            after,
            q.story.as_deref().filter(|s| !s.is_empty()),
            q.limit.unwrap_or(100),
        )
        .await?;
    let last_seq = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventsPage { events, last_seq }))
}

/// `GET /api/v1/events/{id}`.
pub async fn show_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<switchyard_types::Event>, ApiError> {
    let id: EventId = parse_id(&id, "event")?;
    let event = state
        .engine
        .store()
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event {id} not found")))?;
    Ok(Json(event))
}

/// `POST /api/v1/events/{id}/replay`.
pub async fn replay_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ReplayAccepted>), ApiError> {
    let id: EventId = parse_id(&id, "event")?;
    match state.engine.replay(id).await {
        Ok(r) => Ok((
            StatusCode::ACCEPTED,
            Json(ReplayAccepted {
                run_id: r.run_id,
                jobs: r.jobs,
            }),
        )),
        Err(ReplayError::NotFound(_)) => Err(ApiError::not_found(format!("event {id} not found"))),
        Err(ReplayError::Gone(m)) => Err(ApiError::new(StatusCode::CONFLICT, "gone", m)),
        Err(ReplayError::Store(e)) => Err(e.into()),
    }
}

fn resource_value(r: switchyard_store::Resource) -> ResourceValue {
    ResourceValue {
        name: r.name,
        value: r.value,
        updated_at: r.updated_at,
    }
}

/// `GET /api/v1/resources`.
pub async fn list_resources(State(state): State<AppState>) -> Result<Json<ResourceList>, ApiError> {
    let resources = state
        .engine
        .store()
        .resources()
        .await?
        .into_iter()
        .map(resource_value)
        .collect();
    Ok(Json(ResourceList { resources }))
}

/// `GET /api/v1/resources/{name}`.
pub async fn get_resource(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ResourceValue>, ApiError> {
    let all = state.engine.store().resources().await?;
    let r = all
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no resource named `{name}`")))?;
    Ok(Json(resource_value(r)))
}

/// `PUT /api/v1/resources/{name}`.
pub async fn set_resource(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SetResource>,
) -> Result<StatusCode, ApiError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ApiError::bad_request(
            "resource names hold letters, digits and `_`",
        ));
    }
    state.engine.set_resource(&name, &body.value).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/resources/{name}`.
pub async fn delete_resource(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.engine.delete_resource(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no resource named `{name}`")))
    }
}
