//! `/api/v1`: the REST API behind the CLI, plus health and readiness.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_agents::Source;
use switchyard_engine::ReplayError;
use switchyard_store::RunQuery;
use switchyard_types::{EventId, RunId, RunStatus};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::webhook::{ingest_and_answer, parse_body};
use crate::AppState;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store (and queue) answer.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine.store().ping().await {
        Ok(()) => {
            Json(json!({"status": "ready", "store": "ok", "queued_jobs": state.engine.queued()}))
                .into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "store": e.to_string()})),
        )
            .into_response(),
    }
}

/// Unknown API path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

fn story_summary(s: &switchyard_story::Story) -> Value {
    let webhooks: Vec<Value> = s
        .webhooks
        .iter()
        .map(|(path, &i)| json!({"agent": &*s.agents[i].name, "path": format!("/webhook/{}/{}", s.name, path)}))
        .collect();
    json!({
        "name": &*s.name,
        "description": s.description,
        "file": s.file.display().to_string(),
        "agents": s.agents.len(),
        "webhooks": webhooks,
        "enabled": true,
    })
}

/// `GET /api/v1/stories`.
pub async fn list_stories(State(state): State<AppState>) -> Json<Value> {
    let catalog = state.engine.catalog();
    Json(json!({"stories": catalog.stories().iter().map(|s| story_summary(s)).collect::<Vec<_>>()}))
}

/// `GET /api/v1/stories/{name}`.
pub async fn show_story(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.engine.catalog();
    let story = catalog
        .story(&name)
        .ok_or_else(|| ApiError::not_found(format!("no story named `{name}`")))?;
    let mut out = story_summary(story);
    out["agents"] = Value::Array(
        story
            .agents
            .iter()
            .map(|a| {
                json!({
                    "name": &*a.name,
                    "type": a.kind,
                    "description": a.description,
                    "from": a.from.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
                    "options": a.options,
                })
            })
            .collect(),
    );
    Ok(Json(out))
}

/// `POST /api/v1/stories/{name}/agents/{agent}/trigger`: emits the event the webhook agent
/// would have emitted for a POST of the request's JSON body.
pub async fn trigger(
    State(state): State<AppState>,
    Path((name, agent)): Path<(String, String)>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let catalog = state.engine.catalog();
    let story = catalog
        .story(&name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no story named `{name}`")))?;
    let index = *story
        .by_name
        .get(agent.as_str())
        .ok_or_else(|| ApiError::not_found(format!("story `{name}` has no agent `{agent}`")))?;
    let Some(Source::Webhook(hook)) = story.agents[index].agent.source() else {
        return Err(ApiError::bad_request(format!(
            "agent `{agent}` is not a webhook agent; only webhooks can be triggered"
        )));
    };
    let mut json_headers = HeaderMap::new();
    json_headers.insert(
        axum::http::header::CONTENT_TYPE,
        "application/json"
            .parse()
            .map_err(|_| ApiError::bad_request("header"))?,
    );
    let data = if body.is_empty() {
        Value::Null
    } else {
        parse_body(&json_headers, &body)?
    };
    let path = story
        .webhooks
        .iter()
        .find(|(_, &i)| i == index)
        .map(|(p, _)| p.clone())
        .unwrap_or_default();
    let payload = json!({
        "method": "POST",
        "path": path,
        "headers": {"content-type": "application/json"},
        "query": {},
        "body": data,
    });
    let by = match principal.filter(|p| p.token_id.is_some()) {
        Some(p) => format!("token:{}", p.name),
        None => headers
            .get("x-switchyard-actor")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("cli")
            .to_string(),
    };
    let mut r = ingest_and_answer(&state, &story, index, hook, payload, None, Some(by)).await?;
    // The CLI wants the ids, not the webhook's custom answer.
    *r.status_mut() = StatusCode::ACCEPTED;
    Ok(r)
}

/// Query of `GET /api/v1/runs`.
#[derive(Debug, Deserialize)]
pub struct RunsQuery {
    story: Option<String>,
    status: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/runs`: newest first, keyset-paginated with `before`.
pub async fn list_runs(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
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
        Some(b) => Some(
            RunId::from_str(b)
                .map_err(|_| ApiError::bad_request(format!("`{b}` is not a run id")))?,
        ),
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
    let next = if runs.len() == limit {
        runs.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({"runs": runs, "next_before": next})))
}

fn parse_id<T: FromStr>(s: &str, what: &str) -> Result<T, ApiError> {
    T::from_str(s).map_err(|_| ApiError::bad_request(format!("`{s}` is not a valid {what} id")))
}

/// `GET /api/v1/runs/{id}`: the run, its events and its jobs.
pub async fn show_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: RunId = parse_id(&id, "run")?;
    let store = state.engine.store();
    let run = store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))?;
    let (events, jobs) = tokio::try_join!(store.run_events(id), store.run_jobs(id))?;
    Ok(Json(json!({"run": run, "events": events, "jobs": jobs})))
}

/// Query of `GET /api/v1/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    after: Option<i64>,
    story: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/events?after=SEQ`: events after a sequence number (for `events tail`).
/// Without `after`, returns no events and the current last sequence number.
pub async fn list_events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = state.engine.store();
    let Some(after) = q.after else {
        return Ok(Json(
            json!({"events": [], "last_seq": store.last_event_seq().await?}),
        ));
    };
    let events = store
        .events_after(
            after,
            q.story.as_deref().filter(|s| !s.is_empty()),
            q.limit.unwrap_or(100),
        )
        .await?;
    let last = events.last().map_or(after, |e| e.seq);
    Ok(Json(json!({"events": events, "last_seq": last})))
}

/// `GET /api/v1/events/{id}`.
pub async fn show_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: EventId = parse_id(&id, "event")?;
    let event = state
        .engine
        .store()
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event {id} not found")))?;
    Ok(Json(json!(event)))
}

/// `POST /api/v1/events/{id}/replay`.
pub async fn replay_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: EventId = parse_id(&id, "event")?;
    match state.engine.replay(id).await {
        Ok(r) => Ok((StatusCode::ACCEPTED, Json(json!(r))).into_response()),
        Err(ReplayError::NotFound(_)) => Err(ApiError::not_found(format!("event {id} not found"))),
        Err(ReplayError::Gone(m)) => Err(ApiError::new(StatusCode::CONFLICT, "gone", m)),
        Err(ReplayError::Store(e)) => Err(e.into()),
    }
}

/// `GET /api/v1/resources`.
pub async fn list_resources(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"resources": state.engine.store().resources().await?}),
    ))
}

/// `GET /api/v1/resources/{name}`.
pub async fn get_resource(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = state.engine.store().resources().await?;
    let r = all
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no resource named `{name}`")))?;
    Ok(Json(json!(r)))
}

/// Body of `PUT /api/v1/resources/{name}`.
#[derive(Debug, Deserialize)]
pub struct SetResource {
    value: String,
}

/// `PUT /api/v1/resources/{name}`.
pub async fn set_resource(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<SetResource>,
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
