//! HTTP: webhooks (`/webhook/{story}/{path}`), the REST API behind the CLI (`/api/v1`),
//! `/healthz` and `/readyz`. [`app`] builds the router; the binary serves it.

mod api;
pub mod auth;
mod error;
mod rate_limit;
mod security_api;
mod webhook;
mod webhook_auth;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, post, put};
use axum::Router;
use switchyard_engine::Engine;

pub use error::ApiError;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// API token authentication.
    pub auth: Arc<auth::Auth>,
    /// Per-webhook rate limits.
    pub rate_limits: Arc<rate_limit::RateLimits>,
}

impl AppState {
    /// The state of a server running `engine`, authenticating the API with `auth`.
    pub fn new(engine: Engine, auth: Arc<auth::Auth>) -> Self {
        AppState {
            engine,
            auth,
            rate_limits: Arc::default(),
        }
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/stories", get(api::list_stories))
        .route("/stories/{name}", get(api::show_story))
        .route("/stories/{name}/agents/{agent}/trigger", post(api::trigger))
        .route("/runs", get(api::list_runs))
        .route("/runs/{id}", get(api::show_run))
        .route("/events", get(api::list_events))
        .route("/events/{id}", get(api::show_event))
        .route("/events/{id}/replay", post(api::replay_event))
        .route("/resources", get(api::list_resources))
        .route(
            "/resources/{name}",
            put(api::set_resource)
                .get(api::get_resource)
                .delete(api::delete_resource),
        )
        .route("/credentials", get(security_api::list_credentials))
        .route("/credentials/rotate-key", post(security_api::rotate_key))
        .route(
            "/credentials/{name}",
            put(security_api::set_credential).delete(security_api::delete_credential),
        )
        .route(
            "/tokens",
            get(security_api::list_tokens).post(security_api::new_token),
        )
        .route("/tokens/{id}", delete(security_api::revoke_token))
        .route("/audit", get(security_api::list_audit))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route(
            "/webhook/{story}/{*path}",
            any(webhook::receive).layer(DefaultBodyLimit::disable()),
        )
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .nest("/api/v1", api)
        .with_state(state)
}
