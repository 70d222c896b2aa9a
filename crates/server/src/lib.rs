//! HTTP: webhooks (`/webhook/{story}/{path}`), the REST API behind the CLI (`/api/v1`),
//! the web view (`/`), `/healthz` and `/readyz`. [`app`] builds the router; the binary
//! serves it.

mod api;
mod error;
mod origin;
mod redact;
mod stream;
pub mod ui;
mod views;
mod webhook;
mod webhook_auth;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, put};
use axum::Router;
use switchyard_engine::Engine;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// Cancelled when the server begins to shut down: ends long-lived responses (event
    /// streams) so a graceful shutdown does not wait for them forever.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// State for an engine, with a fresh shutdown token.
    pub fn new(engine: Engine) -> Self {
        AppState {
            engine,
            shutdown: CancellationToken::new(),
        }
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/stories", get(api::list_stories))
        .route("/stories/{name}", get(api::show_story))
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
        .route("/resources", get(api::list_resources))
        .route(
            "/resources/{name}",
            put(api::set_resource)
                .get(api::get_resource)
                .delete(api::delete_resource),
        )
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(origin::same_origin_writes));
    Router::new()
        .route(
            "/webhook/{story}/{*path}",
            any(webhook::receive).layer(DefaultBodyLimit::disable()),
        )
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .nest("/api/v1", api)
        .merge(ui::routes())
        .with_state(state)
}
