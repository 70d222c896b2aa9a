//! Refuses state-changing API calls that a browser makes on behalf of another site (CSRF).
//!
//! The API authenticates with a bearer token in a header, never a cookie, so a page of another
//! site cannot borrow a user's credentials; this guard also covers servers that run without
//! tokens. Browsers say where a request comes from: `Sec-Fetch-Site` (every current browser)
//! is trusted first, as it does not depend on the `Host` a reverse proxy may rewrite; without
//! it, an `Origin` must name this server's host. Command-line clients send neither.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Whether a request with these headers comes from a page of another site.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text("sec-fetch-site") {
        Some("same-origin") | Some("none") => false,
        Some(_) => true,
        None => match text(header::ORIGIN.as_str()) {
            None => false,
            Some(origin) => {
                let origin_host = origin
                    .split_once("://")
                    .map(|(_, rest)| rest.trim_end_matches('/'));
                let host = text("x-forwarded-host").or(text(header::HOST.as_str()));
                origin_host.is_none() || origin_host != host
            }
        },
    }
}

/// Middleware: a write (not GET, HEAD or OPTIONS) from another site is a 403.
pub async fn same_origin_writes(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && cross_site(request.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "this API does not accept writes from pages of another site",
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::cross_site;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn decides_by_fetch_metadata_then_by_origin() {
        let cases: &[(&[(&'static str, &'static str)], bool)] = &[
            (&[], false),
            (&[("host", "a:1")], false),
            (
                &[
                    ("sec-fetch-site", "same-origin"),
                    ("origin", "http://proxy"),
                    ("host", "a:1"),
                ],
                false,
            ),
            (&[("sec-fetch-site", "none")], false),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "http://a:1"),
                    ("host", "a:1"),
                ],
                true,
            ),
            (&[("sec-fetch-site", "same-site")], true),
            (&[("origin", "http://a:1"), ("host", "a:1")], false),
            (&[("origin", "http://evil"), ("host", "a:1")], true),
            (&[("origin", "null"), ("host", "a:1")], true),
            (
                &[
                    ("origin", "https://ui.example"),
                    ("host", "internal:8700"),
                    ("x-forwarded-host", "ui.example"),
                ],
                false,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(cross_site(&headers(pairs)), *expected, "{pairs:?}");
        }
    }
}
