//! `/api/v1/credentials`, `/api/v1/tokens`, `/api/v1/audit` (admin only, see `auth.rs`) and
//! `/api/v1/whoami`. A credential's value goes in and never comes out.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::SecretString;
use serde::Deserialize;
use switchyard_engine::{CredentialError, MasterKey};

use crate::auth::{create_token, AuditTarget, Principal, Role};
use crate::error::{ApiError, JsonBody};
use crate::model::{
    AuditPage, AuditRecord, CredentialList, CredentialSummary, KeyRotated, NewToken, RotateKey,
    SetCredential, TokenCreated, TokenList, TokenSummary, WhoAmI,
};
use crate::AppState;

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::Invalid(_) | CredentialError::RotateNeedsKey => {
                ApiError::bad_request(e.to_string())
            }
            CredentialError::InvalidKey(_) => ApiError::bad_request(e.to_string()),
            CredentialError::NotFound(_) => ApiError::not_found(e.to_string()),
            CredentialError::NoKey => ApiError::new(StatusCode::CONFLICT, "no_key", e.to_string()),
            CredentialError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "credential operation failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the credential operation failed; see the server log",
                )
            }
        }
    }
}

/// `GET /api/v1/credentials`: names, hosts and dates; never values.
pub async fn list_credentials(
    State(state): State<AppState>,
) -> Result<Json<CredentialList>, ApiError> {
    let credentials = state
        .engine
        .credentials()
        .await?
        .into_iter()
        .map(|c| CredentialSummary {
            name: c.name,
            allowed_hosts: c.allowed_hosts,
            key_id: c.key_id,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
        .collect();
    Ok(Json(CredentialList { credentials }))
}

/// `PUT /api/v1/credentials/{name}`.
pub async fn set_credential(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SetCredential>,
) -> Result<StatusCode, ApiError> {
    let value = SecretString::from(body.value);
    state
        .engine
        .set_credential(&name, value, body.allowed_hosts)
        .await?;
    tracing::info!(credential = %name, "credential set");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/credentials/{name}`.
pub async fn delete_credential(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_credential(&name).await?;
    tracing::info!(credential = %name, "credential deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/credentials/rotate-key`: re-encrypts every credential under a new key.
pub async fn rotate_key(
    State(state): State<AppState>,
    body: Option<Json<RotateKey>>,
) -> Result<Json<KeyRotated>, ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    let new_key = match body.new_key {
        Some(k) => Some(MasterKey::from_base64(&k).map_err(|why| {
            ApiError::bad_request(format!("the new master key is not valid: {why}"))
        })?),
        None => None,
    };
    let rotated = state.engine.rotate_master_key(new_key).await?;
    Ok(Json(KeyRotated {
        old_key_id: rotated.old_key_id,
        key_id: rotated.key_id,
        credentials: rotated.credentials,
        key_file: rotated.key_file.map(|p| p.display().to_string()),
    }))
}

/// `POST /api/v1/tokens`: the token is in this answer only.
pub async fn new_token(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown role `{}`: use viewer, operator or admin",
            body.role
        ))
    })?;
    let store = state.engine.store();
    let (record, token) = create_token(store.as_ref(), role, body.name.as_deref()).await?;
    state.auth.recount(store.as_ref()).await?;
    let target = format!("{} ({})", record.name, record.id);
    let mut r = (
        StatusCode::CREATED,
        Json(TokenCreated {
            id: record.id,
            name: record.name,
            role: record.role,
            created_at: record.created_at,
            token,
        }),
    )
        .into_response();
    r.extensions_mut().insert(AuditTarget(target));
    Ok(r)
}

/// `GET /api/v1/tokens`: ids, names, roles and dates (never the tokens).
pub async fn list_tokens(State(state): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    let tokens = state
        .engine
        .store()
        .tokens()
        .await?
        .into_iter()
        .map(|t| TokenSummary {
            id: t.id,
            name: t.name,
            role: t.role,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        })
        .collect();
    Ok(Json(TokenList { tokens }))
}

/// `DELETE /api/v1/tokens/{id_or_name}`.
pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
) -> Result<StatusCode, ApiError> {
    let store = state.engine.store();
    let n = store.revoke_token(&id).await?;
    state.auth.recount(store.as_ref()).await?;
    if n == 0 {
        return Err(ApiError::not_found(format!("no active token `{id}`")));
    }
    tracing::info!(token = %id, by = ?principal.map(|p| p.0.name), "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /api/v1/audit`.
#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/v1/audit`: newest first, paged with `before`.
pub async fn list_audit(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = state.engine.store().audit(q.before, limit).await?;
    let next_before = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|e| AuditRecord {
            seq: e.seq,
            at: e.at,
            token_id: e.token_id,
            token_name: e.token_name,
            role: e.role,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
        })
        .collect();
    Ok(Json(AuditPage {
        entries,
        next_before,
    }))
}

/// `GET /api/v1/whoami`: the caller's token name and role, so a client (the web view) can
/// offer only what the token may do.
pub async fn whoami(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
) -> Json<WhoAmI> {
    let p = principal.map(|p| p.0);
    Json(WhoAmI {
        name: p
            .as_ref()
            .map_or_else(|| "anonymous".into(), |p| p.name.clone()),
        role: p.as_ref().map_or(Role::Admin, |p| p.role).as_str().into(),
        token_id: p.and_then(|p| p.token_id),
        open: state.auth.is_open(),
    })
}
