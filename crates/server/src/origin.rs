//! Refuses state-changing API calls made by a browser from another origin (CSRF).
//!
//! The API authenticates with a bearer token in a header, never a cookie, so a cross-site
//! page cannot borrow a user's credentials; this guard also covers servers that run without
//! tokens: browsers always send `Origin` on cross-origin POST/PUT/DELETE (forms included),
//! and command-line clients send none.

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Middleware: a non-safe method whose `Origin` is not this server's host is a 403.
pub async fn same_origin_writes(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let origin_host = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .map(|(_, rest)| rest.trim_end_matches('/'));
            if host.is_none() || origin_host != host {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "cross_origin",
                    "this API does not accept writes from pages of another origin",
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}
