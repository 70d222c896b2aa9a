//! `/api/v1/actions`: the loaded pack actions, and operators' action runs.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use switchyard_agents::action::PackAction;
use switchyard_engine::{ActionRunError, IngestError};
use switchyard_story::Pack;

use crate::error::ApiError;
use crate::AppState;

fn summary(a: &PackAction) -> Value {
    json!({
        "ref": a.reference,
        "pack": a.pack,
        "name": a.name,
        "description": a.description,
        "runs": a.body_kind,
        "parameters": a.parameters,
    })
}

fn pack_summary(p: &Pack) -> Value {
    json!({
        "name": p.name,
        "version": p.version,
        "description": p.description,
        "credentials": p.credentials,
        "resources": p.resources,
        "actions": p.actions,
    })
}

/// `GET /api/v1/actions`: every loaded action, and the packs.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let catalog = state.engine.catalog();
    let packs = catalog.packs();
    Json(json!({
        "actions": packs.actions.iter().map(|a| summary(a)).collect::<Vec<_>>(),
        "packs": packs.packs.iter().map(pack_summary).collect::<Vec<_>>(),
    }))
}

/// `GET /api/v1/actions/{ref}`: one action with its parameters and its pack.
pub async fn show(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.engine.catalog();
    let packs = catalog.packs();
    let action = packs
        .actions
        .get(&reference)
        .ok_or_else(|| not_found(&reference))?;
    let mut out = summary(action);
    out["file"] = json!(action.file.display().to_string());
    out["pack_info"] = packs.pack(&action.pack).map_or(Value::Null, pack_summary);
    Ok(Json(out))
}

fn not_found(reference: &str) -> ApiError {
    ApiError::not_found(format!(
        "no action named `{reference}` is loaded (`switchyard action list` shows them)"
    ))
}

/// Body of `POST /api/v1/actions/{ref}/run`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAction {
    /// The parameters, typed.
    #[serde(default)]
    params: Map<String, Value>,
}

/// `POST /api/v1/actions/{ref}/run`: checks the parameters against the action's schema,
/// then starts the run: 202 `{run_id, event_id, action}`. Bad parameters: 400
/// `{"error": {"code": "invalid_params", "message", "problems": [...]}}`, and nothing runs.
pub async fn run(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    body: Option<Json<RunAction>>,
) -> Result<Response, ApiError> {
    let params = body.map(|Json(b)| b.params).unwrap_or_default();
    let by = headers
        .get("x-switchyard-actor")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("cli")
        .to_string();
    match state.engine.run_action(&reference, params, Some(by)).await {
        Ok(ids) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"run_id": ids.run_id, "event_id": ids.event_id, "action": reference})),
        )
            .into_response()),
        Err(ActionRunError::NotFound(_)) => Err(not_found(&reference)),
        Err(ActionRunError::Invalid(problems)) => {
            let message = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n");
            Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {
                    "code": "invalid_params",
                    "message": message,
                    "problems": problems,
                }})),
            )
                .into_response())
        }
        Err(ActionRunError::Ingest(IngestError::Overloaded(n))) => Err(ApiError::unavailable(
            format!("overloaded: {n} jobs are waiting; try again later"),
        )),
        Err(ActionRunError::Ingest(IngestError::TooLarge(m))) => {
            Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m))
        }
        Err(ActionRunError::Ingest(IngestError::Payload(m))) => Err(ApiError::bad_request(m)),
        Err(ActionRunError::Ingest(IngestError::Store(e))) => Err(e.into()),
    }
}
