//! Twilio SendGrid v3 Mail Send stand-in
//! (https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send).
//!
//! `POST /v3/mail/send` with `Authorization: Bearer API_KEY` answers 202 with an empty body
//! and an `X-Message-Id` header, and records the mail. Refusals follow SendGrid: 401
//! `{"errors":[{"field":null,"message":"authorization required"}]}` without a key (another
//! message for a wrong one), 415 for a body that is not `application/json`, 400 with one
//! `{"field", "message", "help"}` per problem: `personalizations` missing or empty, a
//! personalization without `to`, an address that is not one, `from` missing, `subject` or
//! `content` missing when there is no `template_id`, a `template_id` that is not one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::log::lock;
use crate::reply::{
    authorization, describe_auth, empty, is_email, media_type, with_header, Auth, Reject, Reply,
};

const HELP: &str = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html";

/// An address: `{"email", "name"}`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Address {
    /// The address.
    pub email: String,
    /// The display name.
    pub name: Option<String>,
}

/// One envelope of a mail.
#[derive(Clone, Debug, Serialize)]
pub struct Personalization {
    /// Recipients.
    pub to: Vec<Address>,
    /// Copy recipients.
    pub cc: Vec<Address>,
    /// Blind copy recipients.
    pub bcc: Vec<Address>,
    /// A subject for this envelope.
    pub subject: Option<String>,
    /// The dynamic template's variables for this envelope.
    pub dynamic_template_data: Value,
}

/// A mail SendGrid accepted.
#[derive(Clone, Debug, Serialize)]
pub struct Mail {
    /// The `X-Message-Id` answered.
    pub message_id: String,
    /// The sender.
    pub from: Address,
    /// The envelopes.
    pub personalizations: Vec<Personalization>,
    /// The dynamic template's id, when one was used.
    pub template_id: Option<String>,
    /// The top-level subject.
    pub subject: Option<String>,
    /// The content blocks (`[{type, value}]`).
    pub content: Vec<Value>,
    /// The request body as sent.
    pub body: Value,
}

impl Mail {
    /// Every `to` address of every envelope.
    pub fn to(&self) -> Vec<String> {
        self.personalizations
            .iter()
            .flat_map(|p| p.to.iter().map(|a| a.email.clone()))
            .collect()
    }

    /// The first envelope's `dynamic_template_data`.
    pub fn data(&self) -> &Value {
        self.personalizations
            .first()
            .map(|p| &p.dynamic_template_data)
            .unwrap_or(&Value::Null)
    }
}

/// The SendGrid stand-in: its URL, API key and the mails it accepted.
pub struct SendGrid {
    base_url: String,
    api_key: String,
    mails: Mutex<Vec<Mail>>,
    templates: Mutex<Vec<String>>,
    next: AtomicU64,
}

impl SendGrid {
    pub(crate) fn new(base_url: String, api_key: String) -> SendGrid {
        SendGrid {
            base_url,
            api_key,
            mails: Mutex::default(),
            templates: Mutex::default(),
            next: AtomicU64::new(1),
        }
    }

    /// Base URL (the `sendgrid_api_url` resource).
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The API key every request must carry as `Authorization: Bearer KEY`.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Every mail accepted so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        lock(&self.mails).clone()
    }

    /// Declares a dynamic template; once any is declared, mails naming another are refused.
    pub fn add_template(&self, id: &str) {
        lock(&self.templates).push(id.to_string());
    }

    /// The state as JSON (for the binary's `/_standin/state`).
    pub fn snapshot(&self) -> Value {
        json!({ "mails": self.mails() })
    }
}

fn errors(status: u16, list: Vec<(Option<String>, String)>) -> Reject {
    let reason = list
        .iter()
        .map(|(f, m)| match f {
            Some(f) => format!("{f}: {m}"),
            None => m.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let errors: Vec<Value> = list
        .into_iter()
        .map(|(field, message)| {
            let help = field
                .as_ref()
                .map(|f| format!("{HELP}#message.{}", f.split('.').next().unwrap_or("")));
            json!({"field": field, "message": message, "help": help})
        })
        .collect();
    Reject::json(status, json!({ "errors": errors }), reason)
}

fn address(v: Option<&Value>) -> Option<Address> {
    let v = v?.as_object()?;
    Some(Address {
        email: v.get("email")?.as_str()?.to_string(),
        name: v.get("name").and_then(Value::as_str).map(str::to_string),
    })
}

fn addresses(
    p: &Map<String, Value>,
    key: &str,
    at: &str,
    errs: &mut Vec<(Option<String>, String)>,
) -> Vec<Address> {
    let mut out = Vec::new();
    if let Some(Value::Array(list)) = p.get(key) {
        for (j, a) in list.iter().enumerate() {
            match address(Some(a)) {
                Some(a) if is_email(&a.email) => out.push(a),
                _ => errs.push((
                    Some(format!("{at}.{key}.{j}.email")),
                    "Does not contain a valid address.".into(),
                )),
            }
        }
    }
    out
}

/// Checks a Mail Send body; every problem is listed, as SendGrid does.
fn check(body: &Map<String, Value>, templates: &[String]) -> Result<Mail, Reject> {
    let mut errs: Vec<(Option<String>, String)> = Vec::new();
    let mut personalizations = Vec::new();
    match body.get("personalizations") {
        Some(Value::Array(ps)) if !ps.is_empty() => {
            if ps.len() > 1000 {
                errs.push((
                    Some("personalizations".into()),
                    "The personalizations field may not have more than 1000 items.".into(),
                ));
            }
            for (i, p) in ps.iter().enumerate() {
                let at = format!("personalizations.{i}");
                let Some(p) = p.as_object() else {
                    errs.push((Some(at), "Each personalization must be an object.".into()));
                    continue;
                };
                if !matches!(p.get("to"), Some(Value::Array(t)) if !t.is_empty()) {
                    errs.push((Some(format!("{at}.to")), "The to array is required for all personalization objects, and must have at least one email object with a valid email address.".into()));
                }
                let to = addresses(p, "to", &at, &mut errs);
                let cc = addresses(p, "cc", &at, &mut errs);
                let bcc = addresses(p, "bcc", &at, &mut errs);
                let data = p
                    .get("dynamic_template_data")
                    .cloned()
                    .unwrap_or(Value::Null);
                if !matches!(data, Value::Null | Value::Object(_)) {
                    errs.push((
                        Some(format!("{at}.dynamic_template_data")),
                        "The dynamic_template_data field must be an object.".into(),
                    ));
                }
                personalizations.push(Personalization {
                    to,
                    cc,
                    bcc,
                    subject: p.get("subject").and_then(Value::as_str).map(str::to_string),
                    dynamic_template_data: data,
                });
            }
        }
        _ => errs.push((
            Some("personalizations".into()),
            "The personalizations field is required and must have at least one personalization."
                .into(),
        )),
    }
    let from = address(body.get("from"));
    match &from {
        None => errs.push((Some("from".into()), "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.".into())),
        Some(a) if !is_email(&a.email) => errs.push((Some("from.email".into()), "The from email does not contain a valid address.".into())),
        Some(_) => {}
    }
    let template_id = match body.get("template_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => {
            let hex32 = |s: &str| s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit());
            let guid = |s: &str| {
                s.len() == 36
                    && s.chars().filter(|c| *c == '-').count() == 4
                    && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            };
            let well_formed = t.strip_prefix("d-").is_some_and(hex32) || guid(t);
            if !well_formed || (!templates.is_empty() && !templates.contains(t)) {
                errs.push((
                    Some("template_id".into()),
                    "The template_id is not a valid template ID.".into(),
                ));
            }
            Some(t.clone())
        }
        Some(_) => {
            errs.push((
                Some("template_id".into()),
                "The template_id must be a string.".into(),
            ));
            None
        }
    };
    let subject = body
        .get("subject")
        .and_then(Value::as_str)
        .map(str::to_string);
    let content: Vec<Value> = body
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if template_id.is_none() {
        let every_has_subject =
            !personalizations.is_empty() && personalizations.iter().all(|p| p.subject.is_some());
        if subject.as_deref().is_none_or(str::is_empty) && !every_has_subject {
            errs.push((Some("subject".into()), "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.".into()));
        }
        if content.is_empty() {
            errs.push((Some("content".into()), "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.".into()));
        }
    }
    for (i, c) in content.iter().enumerate() {
        let ok = c
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
            && c.get("value")
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty());
        if !ok {
            errs.push((
                Some(format!("content.{i}")),
                "The content value must be a string at least one character in length, with a type."
                    .into(),
            ));
        }
    }
    match (errs.is_empty(), from) {
        (true, Some(from)) => Ok(Mail {
            message_id: String::new(),
            from,
            personalizations,
            template_id,
            subject,
            content,
            body: Value::Object(body.clone()),
        }),
        _ => Err(errors(400, errs)),
    }
}

async fn send(State(sg): State<Arc<SendGrid>>, headers: HeaderMap, body: Bytes) -> Reply {
    let a = authorization(&headers);
    if a != Auth::Bearer(&sg.api_key) {
        let message = if a == Auth::Missing {
            "authorization required"
        } else {
            "The provided authorization grant is invalid, expired, or revoked"
        };
        return Err(Reject::json(
            401,
            json!({"errors": [{"field": null, "message": message, "help": null}]}),
            describe_auth(&a),
        ));
    }
    if media_type(&headers) != "application/json" {
        return Err(Reject::json(
            415,
            json!({"errors": [{"field": null, "message": "Content-Type should be application/json.", "help": null}]}),
            format!(
                "Content-Type is `{}`, not application/json",
                media_type(&headers)
            ),
        ));
    }
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) | Err(_) => {
            return Err(Reject::json(
                400,
                json!({"errors": [{"field": null, "message": "Bad Request", "help": null}]}),
                "the body is not a JSON object",
            ))
        }
    };
    let templates = lock(&sg.templates).clone();
    let mut mail = check(&body, &templates)?;
    let n = sg.next.fetch_add(1, Ordering::Relaxed);
    mail.message_id = format!("StandIn{n:015}");
    let id = mail.message_id.clone();
    lock(&sg.mails).push(mail);
    Ok(with_header(empty(202), "x-message-id", &id))
}

async fn fallback(req: Request) -> Reject {
    Reject::json(
        404,
        json!({"errors": [{"field": null, "message": "not found", "help": null}]}),
        format!(
            "no SendGrid API route {} {}",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn wrong_method(req: Request) -> impl IntoResponse {
    Reject::json(
        405,
        json!({"errors": [{"field": null, "message": "method not allowed", "help": null}]}),
        format!(
            "{} is not allowed on {} in the SendGrid API",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The stand-in's routes.
pub(crate) fn router(sg: Arc<SendGrid>) -> Router {
    Router::new()
        .route("/v3/mail/send", post(send))
        .method_not_allowed_fallback(wrong_method)
        .fallback(fallback)
        .with_state(sg)
}
