//! API tokens and roles: bearer authentication of `/api/v1`, the role each call needs, and
//! the audit record of every call that changes something.
//!
//! Roles are ordered: `viewer` reads; `operator` also triggers stories, replays events,
//! enables and disables stories and runs actions; `admin` also manages credentials, resources
//! and tokens and reads the audit log. Tokens are random (256 bits) and only their SHA-256 is
//! stored. The OpenAPI document (`GET /openapi.json`) is public: it describes the API and
//! holds no data.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use switchyard_store::{ApiToken, AuditEntry, Store};

use crate::error::ApiError;
use crate::AppState;

/// What a token may do; each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Also triggers, replays, enables and disables stories, runs actions.
    Operator,
    /// Also credentials, resources, tokens, audit.
    Admin,
}

impl Role {
    /// Parses `viewer`, `operator` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Who made a request (put in the request's extensions by [`require_token`]).
#[derive(Clone, Debug)]
pub struct Principal {
    /// The token's id; `None` on an open server without tokens.
    pub token_id: Option<String>,
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// What a handler changed, for the audit log (set in the response's extensions).
#[derive(Clone, Debug)]
pub struct AuditTarget(pub String);

/// The server's authentication state.
#[derive(Debug)]
pub struct Auth {
    open_without_tokens: bool,
    active_tokens: AtomicUsize,
}

impl Auth {
    /// `open_without_tokens`: accept requests without a token while no token exists (a
    /// server on loopback). `active_tokens`: tokens not revoked.
    pub fn new(open_without_tokens: bool, active_tokens: usize) -> Self {
        Auth {
            open_without_tokens,
            active_tokens: AtomicUsize::new(active_tokens),
        }
    }

    /// Whether requests without a token are accepted now.
    pub fn is_open(&self) -> bool {
        self.open_without_tokens && self.active_tokens.load(Ordering::Relaxed) == 0
    }

    /// Re-counts the active tokens after a change.
    pub async fn recount(&self, store: &dyn Store) -> Result<(), switchyard_store::Error> {
        let n = active_tokens(store).await?;
        self.active_tokens.store(n, Ordering::Relaxed);
        Ok(())
    }
}

/// Tokens not revoked.
pub async fn active_tokens(store: &dyn Store) -> Result<usize, switchyard_store::Error> {
    Ok(store
        .tokens()
        .await?
        .iter()
        .filter(|t| t.revoked_at.is_none())
        .count())
}

/// SHA-256 of a token: what is stored and looked up.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token and stores its hash; returns the record and the token, which is shown
/// once and never stored.
pub async fn create_token(
    store: &dyn Store,
    role: Role,
    name: Option<&str>,
) -> Result<(ApiToken, String), switchyard_store::Error> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!(
        "sy_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let mut id_bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut id_bytes);
    let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let id = format!("tok_{id}");
    let record = ApiToken {
        name: name
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}-{}", role.as_str(), &id[4..])),
        id,
        role: role.as_str().to_string(),
        hash: hash_token(&token),
        created_at: switchyard_types::now(),
        revoked_at: None,
    };
    store.create_token(record.clone()).await?;
    Ok((record, token))
}

/// The role a call to `/api/v1{path}` needs.
pub fn required_role(method: &Method, path: &str) -> Role {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let Some("credentials" | "tokens" | "audit") = segments.first().copied() {
        return Role::Admin;
    }
    if method == Method::GET || method == Method::HEAD {
        return Role::Viewer;
    }
    match segments.as_slice() {
        ["stories", _, "agents", _, "trigger"] => Role::Operator,
        ["stories", _, "enable" | "disable"] => Role::Operator,
        ["events", _, "replay"] => Role::Operator,
        ["actions", ..] | ["runs", ..] => Role::Operator,
        _ => Role::Admin,
    }
}

/// The audit action and target of a call that changes something.
fn describe(method: &Method, path: &str) -> (String, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = method.as_str();
    let (action, target) = match (m, segments.as_slice()) {
        ("POST", ["credentials", "rotate-key"]) => ("credential.rotate_key", String::new()),
        ("PUT", ["credentials", name]) => ("credential.set", name.to_string()),
        ("DELETE", ["credentials", name]) => ("credential.delete", name.to_string()),
        ("PUT", ["resources", name]) => ("resource.set", name.to_string()),
        ("DELETE", ["resources", name]) => ("resource.delete", name.to_string()),
        ("POST", ["tokens"]) => ("token.create", String::new()),
        ("DELETE", ["tokens", id]) => ("token.revoke", id.to_string()),
        ("POST", ["stories", story, "agents", agent, "trigger"]) => {
            ("story.trigger", format!("{story}/{agent}"))
        }
        ("POST", ["events", id, "replay"]) => ("event.replay", id.to_string()),
        ("POST", ["stories", story, "enable"]) => ("story.enable", story.to_string()),
        ("POST", ["stories", story, "disable"]) => ("story.disable", story.to_string()),
        _ => return (format!("{m} {path}"), String::new()),
    };
    (action.to_string(), target)
}

/// Calls that need no token: the API's own description.
fn is_public(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && path.trim_end_matches('/') == "/openapi.json"
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(token) = bearer(headers) else {
        if state.auth.is_open() {
            return Ok(Principal {
                token_id: None,
                name: "anonymous".into(),
                role: Role::Admin,
            });
        }
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server requires an API token: pass --token or set SWITCHYARD_TOKEN",
        ));
    };
    let found = state
        .engine
        .store()
        .token_by_hash(&hash_token(token))
        .await?;
    match found {
        Some(t) if t.revoked_at.is_none() => Ok(Principal {
            role: Role::parse(&t.role).unwrap_or(Role::Viewer),
            token_id: Some(t.id),
            name: t.name,
        }),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the API token is unknown or revoked",
        )),
    }
}

/// Middleware of `/api/v1`: authenticates the bearer token, checks the role the call
/// needs, and records every call that changes something in the audit log.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if is_public(&method, &path) {
        return next.run(req).await;
    }
    let changes = !(method == Method::GET || method == Method::HEAD || method == Method::OPTIONS);
    let needed = required_role(&method, &path);
    let principal = match authenticate(&state, req.headers()).await {
        Ok(p) => p,
        Err(e) => {
            if changes && e.status == StatusCode::UNAUTHORIZED {
                audit(&state, None, &method, &path, None, "denied (401)").await;
            }
            return e.into_response();
        }
    };
    if principal.role < needed {
        if changes {
            audit(
                &state,
                Some(&principal),
                &method,
                &path,
                None,
                "denied (403)",
            )
            .await;
        }
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{}` has the role {}; this needs {}",
                principal.name,
                principal.role.as_str(),
                needed.as_str()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(principal.clone());
    let response = next.run(req).await;
    if changes {
        let status = response.status();
        let outcome = if status.is_success() {
            "ok".to_string()
        } else {
            format!("failed ({})", status.as_u16())
        };
        let target = response.extensions().get::<AuditTarget>().cloned();
        audit(&state, Some(&principal), &method, &path, target, &outcome).await;
    }
    response
}

async fn audit(
    state: &AppState,
    principal: Option<&Principal>,
    method: &Method,
    path: &str,
    target: Option<AuditTarget>,
    outcome: &str,
) {
    let (action, default_target) = describe(method, path);
    let entry = AuditEntry {
        seq: 0,
        at: switchyard_types::now(),
        token_id: principal.and_then(|p| p.token_id.clone()),
        token_name: principal.map(|p| p.name.clone()),
        role: principal.map(|p| p.role.as_str().to_string()),
        action,
        target: target.map_or(default_target, |t| t.0),
        outcome: outcome.to_string(),
    };
    if let Err(e) = state.engine.store().record_audit(entry).await {
        tracing::error!(error = %e, "could not record an audit entry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_per_call() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(required_role(&get, "/runs"), Role::Viewer);
        assert_eq!(required_role(&get, "/resources/x"), Role::Viewer);
        assert_eq!(required_role(&get, "/credentials"), Role::Admin);
        assert_eq!(required_role(&get, "/tokens"), Role::Admin);
        assert_eq!(required_role(&get, "/audit"), Role::Admin);
        assert_eq!(
            required_role(&post, "/stories/s/agents/a/trigger"),
            Role::Operator
        );
        assert_eq!(required_role(&post, "/events/e/replay"), Role::Operator);
        assert_eq!(required_role(&post, "/stories/s/enable"), Role::Operator);
        assert_eq!(required_role(&post, "/stories/s/disable"), Role::Operator);
        assert_eq!(required_role(&get, "/whoami"), Role::Viewer);
        assert!(is_public(&get, "/openapi.json"));
        assert!(!is_public(&post, "/openapi.json"));
        assert!(!is_public(&get, "/runs"));
        assert_eq!(required_role(&Method::PUT, "/resources/x"), Role::Admin);
        assert_eq!(required_role(&Method::DELETE, "/tokens/t"), Role::Admin);
        assert_eq!(required_role(&post, "/anything/else"), Role::Admin);
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    }

    #[test]
    fn audit_names() {
        assert_eq!(
            describe(&Method::PUT, "/credentials/gh"),
            ("credential.set".into(), "gh".into())
        );
        assert_eq!(
            describe(&Method::POST, "/stories/s/agents/a/trigger"),
            ("story.trigger".into(), "s/a".into())
        );
        assert_eq!(
            describe(&Method::POST, "/stories/s/disable"),
            ("story.disable".into(), "s".into())
        );
        assert_eq!(
            describe(&Method::PATCH, "/x"),
            ("PATCH /x".into(), String::new())
        );
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer sy_abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("sy_abc"));
        h.insert(header::AUTHORIZATION, "Basic x".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
