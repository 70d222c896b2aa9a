//! `/webhook/{story}/{path}`: authenticate, parse, store durably, answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use switchyard_agents::webhook::Webhook;
use switchyard_agents::Source;
use switchyard_engine::IngestError;
use switchyard_story::Story;

use crate::error::ApiError;
use crate::{webhook_auth, AppState};

/// How much of an oversized body is read and dropped before answering 413.
const DRAIN_LIMIT: usize = 16 << 20;

/// Handles one webhook delivery, counting it by story and answer status.
pub async fn receive(
    State(state): State<AppState>,
    Path((story_name, path)): Path<(String, String)>,
    request: Request<Body>,
) -> Response {
    let answer = match handle(state, &story_name, path, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let story = if answer.status() == StatusCode::NOT_FOUND {
        "unknown".to_string()
    } else {
        story_name
    };
    metrics::counter!("switchyard_webhooks_total", "story" => story, "status" => answer.status().as_u16().to_string()).increment(1);
    answer
}

async fn handle(
    state: AppState,
    story_name: &str,
    path: String,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let story_name = story_name.to_string();
    let catalog = state.engine.catalog();
    let story = catalog
        .story(&story_name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no story named `{story_name}`")))?;
    let index = *story.webhooks.get(&path).ok_or_else(|| {
        ApiError::not_found(format!("story `{story_name}` has no webhook at `{path}`"))
    })?;
    let Some(Source::Webhook(hook)) = story.agents[index].agent.source() else {
        return Err(ApiError::not_found(format!(
            "story `{story_name}` has no webhook at `{path}`"
        )));
    };

    if !state.engine.is_enabled(&story.name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "story_disabled",
            format!("story `{}` is disabled; nothing was stored", story.name),
        ));
    }
    let (parts, body) = request.into_parts();
    if !hook.methods.iter().any(|m| m == parts.method.as_str()) {
        let allow = hook.methods.join(", ");
        let mut r = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this webhook accepts {allow}"),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&allow) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return Ok(r);
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the body is larger than this webhook's limit of {} bytes",
                hook.max_body
            ),
        )
    };
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| len > hook.max_body)
    {
        // Read (and drop) a bounded amount of what the client is still sending, so that it
        // sees the 413 instead of a connection reset while it writes.
        let drain = axum::body::to_bytes(body, DRAIN_LIMIT);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        return Err(too_large());
    }
    let raw = axum::body::to_bytes(body, hook.max_body)
        .await
        .map_err(|_| too_large())?;

    let mut secrets = Vec::new();
    if let Some(auth) = &hook.auth {
        let cx = state.engine.template_context().build();
        let now = switchyard_types::now().timestamp();
        if let Err(e) = webhook_auth::verify(auth, &parts.headers, &raw, &cx, now) {
            tracing::warn!(story = %story.name, path = %path, reason = %e, "webhook authentication failed");
            metrics::counter!("switchyard_webhook_auth_failures_total", "story" => story.name.to_string()).increment(1);
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication failed",
            ));
        }
        // A token sent in a header is the credential itself: it must not be stored.
        secrets = cx.credentials_used();
    }

    if let Some(limit) = hook.rate_limit {
        let now = std::time::Instant::now();
        if let Err(wait) = state.rate_limits.take(&story.name, &path, limit, now) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::warn!(story = %story.name, path = %path, "webhook rate limit reached");
            return Err(ApiError {
                retry_after: Some(secs.max(1)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "this webhook accepts {} deliveries per {}; try again in {}s",
                        limit.limit,
                        limit.per,
                        secs.max(1)
                    ),
                )
            });
        }
    }

    let body = parse_body(&parts.headers, &raw)?;
    let idempotency_key = idempotency_key(hook, &parts.headers);
    // Built by moving the parts in: `json!` would serialize a deep copy of the body.
    let mut event = Map::with_capacity(5);
    event.insert("method".into(), Value::String(parts.method.as_str().into()));
    event.insert("path".into(), Value::String(path));
    event.insert("headers".into(), headers_json(&parts.headers));
    event.insert("query".into(), query_json(parts.uri.query()));
    event.insert("body".into(), body);
    let mut payload = Value::Object(event);
    switchyard_template::redact(&mut payload, &secrets);
    ingest_and_answer(
        &state,
        &story,
        index,
        hook,
        payload,
        idempotency_key,
        Some("webhook".into()),
    )
    .await
}

/// Stores the event and builds the webhook's answer.
pub async fn ingest_and_answer(
    state: &AppState,
    story: &Arc<Story>,
    index: usize,
    hook: &Webhook,
    payload: Value,
    idempotency_key: Option<String>,
    started_by: Option<String>,
) -> Result<Response, ApiError> {
    let response_payload = hook.response.as_ref().map(|_| payload.clone());
    let ingested = match state
        .engine
        .ingest(story, index, payload, idempotency_key, started_by)
        .await
    {
        Ok(i) => i,
        Err(IngestError::Overloaded(n)) => {
            tracing::warn!(story = %story.name, queued = n, "refusing webhook: too many jobs waiting");
            return Err(ApiError::unavailable(
                "the server is overloaded; try again shortly",
            ));
        }
        Err(IngestError::TooLarge(m)) => {
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m))
        }
        Err(IngestError::Payload(m)) => return Err(ApiError::bad_request(m)),
        Err(e @ IngestError::Disabled(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "story_disabled",
                e.to_string(),
            ))
        }
        Err(IngestError::Store(e)) => return Err(e.into()),
        Err(IngestError::QueueUnavailable(e)) => {
            tracing::warn!(story = %story.name, error = %e, "refusing webhook: the job queue is unavailable");
            return Err(ApiError::unavailable(
                "the job queue is unavailable; try again shortly",
            ));
        }
    };
    let ids = json!({"event_id": ingested.event_id, "run_id": ingested.run_id});
    let (Some(response), Some(event)) = (&hook.response, response_payload) else {
        let mut r = (StatusCode::ACCEPTED, Json(ids)).into_response();
        if ingested.duplicate {
            r.headers_mut()
                .insert("x-switchyard-duplicate", HeaderValue::from_static("true"));
        }
        return Ok(r);
    };
    let event = Arc::new(event);
    let cx = state
        .engine
        .template_context()
        .agent(&story.agents[index].name, Arc::clone(&event))
        .event(event)
        .run(
            &ingested.run_id.to_string(),
            &story.name,
            switchyard_types::now(),
        )
        .build();
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::ACCEPTED);
    let mut r = match &response.body {
        None => (status, Json(ids)).into_response(),
        Some(t) => match t.render(&cx) {
            Ok(Value::String(s)) => (status, s).into_response(),
            Ok(v) => (status, Json(v)).into_response(),
            Err(e) => {
                // The event is stored: say so, and why the custom answer failed.
                tracing::warn!(story = %story.name, error = %e, "webhook response template failed");
                (StatusCode::ACCEPTED, Json(json!({"event_id": ingested.event_id, "run_id": ingested.run_id, "warning": format!("response template failed: {e}")}))).into_response()
            }
        },
    };
    for (name, value) in &response.headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            value
                .render_string(&cx)
                .map_err(|_| ())
                .and_then(|s| HeaderValue::from_str(&s).map_err(|_| ())),
        ) {
            r.headers_mut().insert(n, v);
        }
    }
    Ok(r)
}

fn idempotency_key(hook: &Webhook, headers: &HeaderMap) -> Option<String> {
    use switchyard_agents::webhook::WebhookAuth;
    let name = match (&hook.idempotency_header, &hook.auth) {
        (Some(h), _) => h.as_str(),
        // Standard Webhooks: a redelivered message keeps its `webhook-id`.
        (None, Some(WebhookAuth::StandardWebhooks { .. })) => "webhook-id",
        _ => return None,
    };
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Parses the body by its declared content type only: JSON, form, else text.
pub fn parse_body(headers: &HeaderMap, raw: &[u8]) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if content_type == "application/json" || content_type.ends_with("+json") {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(raw)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")));
    }
    if content_type == "application/x-www-form-urlencoded" {
        let mut map = Map::new();
        for (k, v) in url::form_urlencoded::parse(raw) {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        return Ok(Value::Object(map));
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    Ok(Value::String(String::from_utf8_lossy(raw).into_owned()))
}

/// Headers as a JSON object, names lower-cased, repeated headers joined with `, `.
pub fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = Map::with_capacity(headers.len());
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match map.get_mut(name.as_str()) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(&v);
            }
            _ => {
                map.insert(name.as_str().to_string(), Value::String(v));
            }
        }
    }
    Value::Object(map)
}

/// The query string as a JSON object; a repeated key becomes a list.
pub fn query_json(query: Option<&str>) -> Value {
    let mut map = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let v = Value::String(v.into_owned());
        match map.get_mut(k.as_ref()) {
            Some(Value::Array(items)) => items.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
            }
            None => {
                map.insert(k.into_owned(), v);
            }
        }
    }
    Value::Object(map)
}
