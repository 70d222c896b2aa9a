//! `/api/v1/actions`: the loaded pack actions, and operators' action runs.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchyard_agents::action::PackAction;
use switchyard_engine::{ActionRunError, IngestError};
use switchyard_story::Pack;

use crate::error::ApiError;
use crate::model::*;
use crate::AppState;

fn summary(a: &PackAction) -> ActionSummary {
    ActionSummary {
        reference: a.reference.clone(),
        pack: a.pack.clone(),
        name: a.name.clone(),
        description: a.description.clone(),
        runs: a.body_kind.clone(),
        parameters: a.parameters.clone(),
    }
}

fn pack_info(p: &Pack) -> PackInfo {
    PackInfo {
        name: p.name.clone(),
        version: p.version.clone(),
        description: p.description.clone(),
        credentials: p
            .credentials
            .iter()
            .map(|c| PackCredential {
                name: c.name.clone(),
                description: c.description.clone(),
            })
            .collect(),
        resources: p
            .resources
            .iter()
            .map(|r| PackResource {
                name: r.name.clone(),
                default: r.default.clone(),
                description: r.description.clone(),
            })
            .collect(),
        actions: p.actions.clone(),
    }
}

/// `GET /api/v1/actions`: every loaded action, and the packs.
pub async fn list(State(state): State<AppState>) -> Json<ActionList> {
    let catalog = state.engine.catalog();
    let packs = catalog.packs();
    Json(ActionList {
        actions: packs.actions.iter().map(|a| summary(a)).collect(),
        packs: packs.packs.iter().map(pack_info).collect(),
    })
}

/// `GET /api/v1/actions/{ref}`: one action with its parameters and its pack.
pub async fn show(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<ActionDetail>, ApiError> {
    let catalog = state.engine.catalog();
    let packs = catalog.packs();
    let action = packs
        .actions
        .get(&reference)
        .ok_or_else(|| not_found(&reference))?;
    Ok(Json(ActionDetail {
        action: summary(action),
        file: action.file.display().to_string(),
        pack_info: packs.pack(&action.pack).map(pack_info),
    }))
}

fn not_found(reference: &str) -> ApiError {
    ApiError::not_found(format!(
        "no action named `{reference}` is loaded (`switchyard action list` shows them)"
    ))
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
            Json(ActionAccepted {
                run_id: ids.run_id,
                event_id: ids.event_id,
                action: reference,
            }),
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
                Json(InvalidParamsBody {
                    error: InvalidParamsDetail {
                        code: "invalid_params".into(),
                        message,
                        problems,
                    },
                }),
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
        Err(ActionRunError::Ingest(e @ IngestError::Disabled(_))) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "story_disabled",
            e.to_string(),
        )),
        Err(ActionRunError::Ingest(IngestError::Store(e))) => Err(e.into()),
        Err(ActionRunError::Ingest(IngestError::QueueUnavailable(e))) => {
            tracing::warn!(error = %e, "refusing an action run: the job queue is unavailable");
            Err(ApiError::unavailable(
                "the job queue is unavailable; try again",
            ))
        }
    }
}
