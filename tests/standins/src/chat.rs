//! Slack-compatible chat stand-in: incoming webhooks
//! (https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks) and the Web
//! API's `chat.postMessage` (https://docs.slack.dev/reference/methods/chat.postMessage).
//!
//! An incoming webhook (`POST /services/T…/B…/SECRET`, JSON or form `payload=`) answers 200
//! `ok` (text), 400 `invalid_payload` or `no_text`, 403 `invalid_token` for a URL that is no
//! webhook. `POST /api/chat.postMessage` answers 200 with JSON always, as Slack does:
//! `{"ok":true,"channel","ts","message"}` or `{"ok":false,"error"}` with `not_authed` (no
//! token), `invalid_auth`, `channel_not_found`, `no_text`, `invalid_blocks`; a JSON body
//! without `charset` in its Content-Type gets Slack's `missing_charset` warning. Messages
//! are recorded with their channel, `ts` and `thread_ts`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::log::lock;
use crate::reply::{authorization, describe_auth, json, media_type, Auth, Reject, Reply};

/// A message posted to a channel.
#[derive(Clone, Debug, Serialize)]
pub struct Message {
    /// The channel's id (`C…`).
    pub channel: String,
    /// The channel's name (without `#`).
    pub channel_name: String,
    /// The text.
    pub text: String,
    /// Block Kit blocks, when given.
    pub blocks: Value,
    /// The thread it replies in.
    pub thread_ts: Option<String>,
    /// Its own `ts`.
    pub ts: String,
    /// `webhook` or `chat.postMessage`.
    pub via: String,
    /// The request body as parsed.
    pub body: Value,
}

struct Channel {
    id: String,
    name: String,
}

struct ChatState {
    channels: Vec<Channel>,
    /// Webhook paths and the channel each posts to.
    webhooks: Vec<(String, String)>,
    messages: Vec<Message>,
    epoch: u64,
    seq: u64,
}

/// The chat stand-in.
pub struct Chat {
    base_url: String,
    bot_token: String,
    webhook_path: String,
    state: Mutex<ChatState>,
}

/// Channels that exist from the start.
const CHANNELS: &[&str] = &["general", "deploys", "releases", "support", "ops"];

impl Chat {
    pub(crate) fn new(
        base_url: String,
        bot_token: String,
        webhook_secret: &str,
        webhook_channel: &str,
    ) -> Chat {
        let webhook_path = format!("/services/T0STANDIN/B0STANDIN/{webhook_secret}");
        let chat = Chat {
            base_url,
            bot_token,
            webhook_path: webhook_path.clone(),
            state: Mutex::new(ChatState {
                channels: Vec::new(),
                webhooks: Vec::new(),
                messages: Vec::new(),
                epoch: chrono::Utc::now().timestamp().max(0) as u64,
                seq: 0,
            }),
        };
        for c in CHANNELS {
            chat.add_channel(c);
        }
        let id = chat.add_channel(webhook_channel);
        lock(&chat.state).webhooks.push((webhook_path, id));
        chat
    }

    /// Base URL (the `chat_api_url` resource).
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The bot token `chat.postMessage` needs (`Authorization: Bearer xoxb-…`).
    pub fn bot_token(&self) -> &str {
        &self.bot_token
    }

    /// The default incoming webhook's URL (the `chat_webhook_url` credential).
    pub fn webhook_url(&self) -> String {
        format!("{}{}", self.base_url, self.webhook_path)
    }

    /// Adds a channel (name without `#`); returns its id. An existing one is kept.
    pub fn add_channel(&self, name: &str) -> String {
        let name = name.trim_start_matches('#');
        let mut s = lock(&self.state);
        if let Some(c) = s.channels.iter().find(|c| c.name == name) {
            return c.id.clone();
        }
        let id = format!("C{:08}", s.channels.len() + 1);
        s.channels.push(Channel {
            id: id.clone(),
            name: name.to_string(),
        });
        id
    }

    /// Adds an incoming webhook posting to `channel` (created when missing); returns its URL.
    pub fn add_webhook(&self, channel: &str, secret: &str) -> String {
        let id = self.add_channel(channel);
        let path = format!(
            "/services/T0STANDIN/B{:08}/{secret}",
            lock(&self.state).webhooks.len() + 1
        );
        lock(&self.state).webhooks.push((path.clone(), id));
        format!("{}{path}", self.base_url)
    }

    /// Every message posted, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        lock(&self.state).messages.clone()
    }

    /// The messages posted to a channel (by name, with or without `#`, or id).
    pub fn messages_in(&self, channel: &str) -> Vec<Message> {
        let channel = channel.trim_start_matches('#');
        self.messages()
            .into_iter()
            .filter(|m| m.channel == channel || m.channel_name == channel)
            .collect()
    }

    /// The replies in the thread of the message with this `ts`.
    pub fn replies(&self, thread_ts: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(thread_ts))
            .collect()
    }

    /// The state as JSON (for the binary's `/_standin/state`).
    pub fn snapshot(&self) -> Value {
        let s = lock(&self.state);
        json!({
            "channels": s.channels.iter().map(|c| json!({"id": c.id, "name": c.name})).collect::<Vec<_>>(),
            "messages": s.messages,
        })
    }

    fn channel(&self, s: &ChatState, raw: &str) -> Option<(String, String)> {
        let raw = raw.trim_start_matches('#');
        s.channels
            .iter()
            .find(|c| c.id == raw || c.name == raw)
            .map(|c| (c.id.clone(), c.name.clone()))
    }

    fn post(&self, channel: &str, body: &Map<String, Value>, via: &str) -> Message {
        let mut s = lock(&self.state);
        s.seq += 1;
        let ts = format!("{}.{:06}", s.epoch + s.seq / 1_000_000, s.seq % 1_000_000);
        let (id, name) = self
            .channel(&s, channel)
            .unwrap_or_else(|| (channel.to_string(), channel.to_string()));
        let m = Message {
            channel: id,
            channel_name: name,
            text: body
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            blocks: body.get("blocks").cloned().unwrap_or(Value::Null),
            thread_ts: body.get("thread_ts").and_then(ts_value),
            ts,
            via: via.to_string(),
            body: Value::Object(body.clone()),
        };
        s.messages.push(m.clone());
        m
    }
}

/// A `ts` given as a string (or, leniently, a number).
fn ts_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// JSON, or a form whose fields are strings (`payload=JSON` for webhooks).
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Option<Map<String, Value>> {
    if media_type(headers) == "application/x-www-form-urlencoded" {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        if let Some((_, p)) = pairs.iter().find(|(k, _)| k == "payload") {
            return serde_json::from_str::<Value>(p).ok()?.as_object().cloned();
        }
        return Some(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
    }
    serde_json::from_slice::<Value>(body)
        .ok()?
        .as_object()
        .cloned()
}

fn has_content(body: &Map<String, Value>) -> bool {
    let nonempty = |k: &str| match body.get(k) {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    };
    nonempty("text") || nonempty("blocks") || nonempty("attachments")
}

fn text(status: u16, body: &'static str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "text/html")],
        body,
    )
        .into_response()
}

async fn webhook(State(c): State<Arc<Chat>>, req: Request) -> Reply {
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let channel = lock(&c.state)
        .webhooks
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, ch)| ch.clone());
    let Some(channel) = channel else {
        return Err(Reject::text(
            403,
            "invalid_token",
            format!("{path} is not an incoming webhook of the stand-in (see Chat::webhook_url)"),
        ));
    };
    let Some(body) = parse_body(&headers, &body) else {
        return Err(Reject::text(
            400,
            "invalid_payload",
            "the body is not a JSON object (or a form with payload=JSON)",
        ));
    };
    if !has_content(&body) {
        return Err(Reject::text(
            400,
            "no_text",
            "the message has no `text`, `blocks` or `attachments`",
        ));
    }
    if body.get("thread_ts").is_some_and(|t| ts_value(t).is_none()) {
        return Err(Reject::text(
            400,
            "invalid_payload",
            "`thread_ts` is not a message ts",
        ));
    }
    c.post(&channel, &body, "webhook");
    Ok(text(200, "ok"))
}

/// Slack answers Web API errors with 200 and `{"ok": false, "error"}`.
fn api_error(error: &str, reason: String) -> Reject {
    Reject::json(200, json!({"ok": false, "error": error}), reason)
}

async fn api(
    State(c): State<Arc<Chat>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    if method != "chat.postMessage" {
        return Err(Reject::json(
            404,
            json!({"ok": false, "error": "unknown_method", "req_method": method}),
            format!("the stand-in serves only chat.postMessage, not {method}"),
        ));
    }
    let is_json = media_type(&headers) == "application/json";
    let Some(body) = parse_body(&headers, &body) else {
        return Err(api_error(
            "invalid_arguments",
            "the body is not a JSON object or a form".into(),
        ));
    };
    let a = authorization(&headers);
    let token = match &a {
        Auth::Bearer(t) => Some(t.to_string()),
        _ if !is_json => body
            .get("token")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    match token {
        None => return Err(api_error("not_authed", describe_auth(&a))),
        Some(t) if t != c.bot_token => return Err(api_error("invalid_auth", describe_auth(&a))),
        Some(_) => {}
    }
    let Some(raw) = body
        .get("channel")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(api_error("channel_not_found", "no `channel`".into()));
    };
    let known = c.channel(&lock(&c.state), raw);
    let Some((channel, _)) = known else {
        return Err(api_error(
            "channel_not_found",
            format!("no channel `{raw}` (add it with Chat::add_channel)"),
        ));
    };
    if !has_content(&body) {
        return Err(api_error(
            "no_text",
            "the message has no `text`, `blocks` or `attachments`".into(),
        ));
    }
    if body.get("blocks").is_some_and(|b| !b.is_array()) {
        return Err(api_error(
            "invalid_blocks",
            "`blocks` is not an array".into(),
        ));
    }
    let m = c.post(&channel, &body, "chat.postMessage");
    let mut message = json!({
        "user": "U0STANDIN", "type": "message", "ts": m.ts, "bot_id": "B0STANDIN",
        "app_id": "A0STANDIN", "text": m.text, "team": "T0STANDIN",
    });
    if let Some(t) = &m.thread_ts {
        message["thread_ts"] = json!(t);
    }
    if !m.blocks.is_null() {
        message["blocks"] = m.blocks.clone();
    }
    let mut out = json!({"ok": true, "channel": m.channel, "ts": m.ts, "message": message});
    let charset = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("charset"));
    if is_json && !charset {
        out["warning"] = json!("missing_charset");
        out["response_metadata"] = json!({"warnings": ["missing_charset"]});
    }
    Ok(json(200, out))
}

async fn fallback(req: Request) -> Reject {
    Reject::text(
        404,
        "no_service",
        format!("no chat route {} {}", req.method(), req.uri().path()),
    )
}

async fn wrong_method(req: Request) -> Reject {
    Reject::text(
        405,
        "invalid_method",
        format!(
            "{} is not allowed on {} (Slack takes POST)",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The stand-in's routes.
pub(crate) fn router(c: Arc<Chat>) -> Router {
    Router::new()
        .route("/services/{*rest}", post(webhook))
        .route("/api/{method}", post(api))
        .method_not_allowed_fallback(wrong_method)
        .fallback(fallback)
        .with_state(c)
}
