//! An artifact repository stand-in (a "raw" repository as Nexus or Artifactory serve one):
//! `PUT /{path}` stores the body and answers 201 `{"path", "size", "sha256"}`; `GET /{path}`
//! returns it (404 when absent). Both need `Authorization: Bearer TOKEN` or Basic auth with
//! the token as password (any user), else 401 with `WWW-Authenticate`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::log::lock;
use crate::reply::{authorization, describe_auth, json, Auth, Reject, Reply};

/// A stored artifact.
#[derive(Clone, Debug, Serialize)]
pub struct Artifact {
    /// Its path, without the leading `/`.
    pub path: String,
    /// Its bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Its size.
    pub size: usize,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// The Content-Type it was uploaded with.
    pub content_type: Option<String>,
}

/// The artifact repository stand-in.
pub struct Artifacts {
    base_url: String,
    token: String,
    files: Mutex<BTreeMap<String, Artifact>>,
}

impl Artifacts {
    pub(crate) fn new(base_url: String, token: String) -> Artifacts {
        Artifacts {
            base_url,
            token,
            files: Mutex::default(),
        }
    }

    /// Base URL (the `artifacts_url` resource).
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The token (bearer, or Basic password).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Every artifact, by path.
    pub fn artifacts(&self) -> Vec<Artifact> {
        lock(&self.files).values().cloned().collect()
    }

    /// One artifact (path without the leading `/`).
    pub fn artifact(&self, path: &str) -> Option<Artifact> {
        lock(&self.files).get(path.trim_start_matches('/')).cloned()
    }

    /// The state as JSON (for the binary's `/_standin/state`).
    pub fn snapshot(&self) -> Value {
        json!({ "artifacts": self.artifacts() })
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        match authorization(headers) {
            Auth::Bearer(t) => t == self.token,
            Auth::Other(v) => v
                .strip_prefix("Basic ")
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|up| up.split_once(':').map(|(_, p)| p == self.token))
                .unwrap_or(false),
            Auth::Missing => false,
        }
    }
}

async fn auth(State(a): State<Arc<Artifacts>>, req: Request, next: Next) -> Response {
    if a.authorized(req.headers()) {
        return next.run(req).await;
    }
    let why = describe_auth(&authorization(req.headers()));
    let mut r = Reject::json(
        401,
        json!({"errors": [{"status": 401, "message": "Unauthorized"}]}),
        why,
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"artifacts\""),
    );
    r
}

async fn put(
    State(a): State<Arc<Artifacts>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let sha = hex::encode(Sha256::digest(&body));
    let art = Artifact {
        path: path.clone(),
        size: body.len(),
        bytes: body.to_vec(),
        sha256: sha.clone(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    lock(&a.files).insert(path.clone(), art);
    Ok(json(
        201,
        json!({"path": path, "size": body.len(), "sha256": sha}),
    ))
}

async fn get_one(State(a): State<Arc<Artifacts>>, Path(path): Path<String>) -> Reply {
    match a.artifact(&path) {
        Some(x) => Ok((
            [(
                header::CONTENT_TYPE,
                x.content_type
                    .unwrap_or_else(|| "application/octet-stream".into()),
            )],
            x.bytes,
        )
            .into_response()),
        None => Err(Reject::json(
            404,
            json!({"errors": [{"status": 404, "message": "Not Found"}]}),
            format!("no artifact `{path}`"),
        )),
    }
}

async fn fallback(req: Request) -> Reject {
    Reject::json(
        404,
        json!({"errors": [{"status": 404, "message": "Not Found"}]}),
        format!("no artifact route {} {}", req.method(), req.uri().path()),
    )
}

/// The stand-in's routes.
pub(crate) fn router(a: Arc<Artifacts>) -> Router {
    Router::new()
        .route("/{*path}", get(get_one).put(put))
        .route_layer(from_fn_with_state(a.clone(), auth))
        .method_not_allowed_fallback(fallback)
        .fallback(fallback)
        .with_state(a)
}
