//! HTTP: webhooks (`/webhook/{story}/{path}`), the REST API behind the CLI (`/api/v1`),
//! `/healthz` and `/readyz`. [`app`] builds the router; the binary serves it.

mod actions;
mod api;
mod error;
mod webhook;
mod webhook_auth;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, put};
use axum::Router;
use switchyard_engine::Engine;

pub use error::ApiError;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
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
        .route("/actions", get(actions::list))
        .route("/actions/{reference}", get(actions::show))
        .route("/actions/{reference}/run", post(actions::run))
        .route("/resources", get(api::list_resources))
        .route(
            "/resources/{name}",
            put(api::set_resource)
                .get(api::get_resource)
                .delete(api::delete_resource),
        )
        .fallback(api::not_found);
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
