//! HTTP: webhooks (`/webhook/{story}/{path}`), the REST API behind the CLI (`/api/v1`),
//! the web view (`/`), `/healthz` and `/readyz`. [`app`] builds the router; the binary
//! serves it.

mod actions;
mod api;
pub mod auth;
mod error;
pub mod model;
mod openapi;
mod origin;
mod rate_limit;
mod redact;
mod security_api;
mod stream;
pub mod ui;
mod views;
mod webhook;
mod webhook_auth;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, post, put};
use axum::Router;
use switchyard_engine::Engine;
use tokio_util::sync::CancellationToken;

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
    /// Renders the Prometheus metrics (None: `/metrics` answers 404).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Cancelled when the server begins to shut down: ends long-lived responses (event
    /// streams) so a graceful shutdown does not wait for them forever.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// The state of a server running `engine`, authenticating the API with `auth`; with a
    /// fresh shutdown token and no metrics.
    pub fn new(engine: Engine, auth: Arc<auth::Auth>) -> Self {
        AppState {
            engine,
            auth,
            rate_limits: Arc::default(),
            metrics: None,
            shutdown: CancellationToken::new(),
        }
    }

    /// With a Prometheus handle for `/metrics`.
    pub fn with_metrics(
        mut self,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        self.metrics = metrics;
        self
    }
}

/// Only `/healthz`, `/readyz` and `/metrics`: what a `worker` serves (for health checks).
pub fn health_app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .with_state(state)
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/stories", get(api::list_stories))
        .route("/stories/{name}", get(api::show_story))
        .route("/stories/{name}/enable", post(api::enable_story))
        .route("/stories/{name}/disable", post(api::disable_story))
        .route("/stories/{name}/agents/{agent}/trigger", post(api::trigger))
        .route(
            "/stories/{name}/agents/{agent}/events",
            get(views::agent_events),
        )
        .route("/runs", get(api::list_runs))
        .route("/runs/stats", get(views::run_stats))
        .route("/runs/{id}", get(api::show_run))
        .route("/events", get(api::list_events))
        .route("/events/stream", get(stream::events_stream))
        .route("/events/{id}", get(api::show_event))
        .route("/events/{id}/replay", post(api::replay_event))
        .route("/actions", get(actions::list))
        .route("/actions/{ref}", get(actions::show))
        .route("/actions/{ref}/run", post(actions::run))
        .route("/openapi.json", get(openapi::serve))
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
        .route("/whoami", get(security_api::whoami))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(origin::same_origin_writes));
    Router::new()
        .route(
            "/webhook/{story}/{*path}",
            any(webhook::receive).layer(DefaultBodyLimit::disable()),
        )
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .nest("/api/v1", api)
        .merge(ui::routes())
        .with_state(state)
}
