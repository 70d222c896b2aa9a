//! HubSpot CRM stand-in (https://developers.hubspot.com/docs/api-reference/crm): contacts,
//! deals and companies (create, read, update, archive, search with `filterGroups`) and
//! default associations (v4).
//!
//! Every route needs `Authorization: Bearer TOKEN` (a private app token; else 401 with
//! category `INVALID_AUTHENTICATION`). Creating a contact whose email exists answers 409
//! `Contact already exists. Existing ID: N`; unknown properties, badly formed emails and
//! options outside a property's list answer 400 `VALIDATION_ERROR` with HubSpot's
//! "Property values were not valid" message.

mod crm;
mod model;
mod search;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value};

use crate::log::lock;
use crate::reply::{authorization, describe_auth, Auth, Reject};

use model::HsState;
pub use model::{Association, CrmObject, ObjectType};

/// The HubSpot stand-in: its URL, token and CRM records.
pub struct HubSpot {
    base_url: String,
    token: String,
    state: Mutex<HsState>,
    correlation: AtomicU64,
}

impl HubSpot {
    pub(crate) fn new(base_url: String, token: String) -> HubSpot {
        HubSpot {
            base_url,
            token,
            state: Mutex::new(HsState::default()),
            correlation: AtomicU64::new(1),
        }
    }

    /// Base URL (the `hubspot_api_url` resource).
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The private app token every request must carry as `Authorization: Bearer TOKEN`.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut HsState) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// A fresh correlation id, as HubSpot puts in every error.
    pub(crate) fn correlation_id(&self) -> String {
        let n = self.correlation.fetch_add(1, Ordering::Relaxed);
        format!("0b8a1c2e-5f3d-4a6b-9c7e-{n:012x}")
    }

    /// A HubSpot error body: `{"status":"error","message","correlationId","category"}`.
    pub(crate) fn error(&self, status: u16, category: &str, message: &str) -> Reject {
        Reject::json(
            status,
            json!({"status": "error", "message": message, "correlationId": self.correlation_id(), "category": category}),
            message,
        )
    }

    /// Adds a contact with these properties (e.g. `[("email", "ada@example.com")]`); returns its id.
    pub fn add_contact(&self, properties: &[(&str, &str)]) -> String {
        self.add_object(ObjectType::Contacts, properties)
    }

    /// Adds a record of any type; returns its id.
    pub fn add_object(&self, kind: ObjectType, properties: &[(&str, &str)]) -> String {
        self.with_state(|s| {
            let props = properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            s.insert(kind, props).id
        })
    }

    /// Declares a custom property (e.g. `trial_url` on contacts) so writes to it are accepted.
    pub fn add_property(&self, kind: ObjectType, name: &str) {
        self.with_state(|s| {
            s.custom_properties
                .entry(kind)
                .or_default()
                .insert(name.to_string());
        });
    }

    /// Every contact, oldest first.
    pub fn contacts(&self) -> Vec<CrmObject> {
        self.objects(ObjectType::Contacts)
    }

    /// Every deal, oldest first.
    pub fn deals(&self) -> Vec<CrmObject> {
        self.objects(ObjectType::Deals)
    }

    /// Every record of a type, oldest first.
    pub fn objects(&self, kind: ObjectType) -> Vec<CrmObject> {
        self.with_state(|s| {
            s.objects
                .values()
                .filter(|o| o.kind == kind)
                .cloned()
                .collect()
        })
    }

    /// The contact with this email (case-insensitive).
    pub fn contact_by_email(&self, email: &str) -> Option<CrmObject> {
        self.with_state(|s| s.contact_by_email(email).cloned())
    }

    /// Every association, in the direction it was made.
    pub fn associations(&self) -> Vec<Association> {
        self.with_state(|s| s.associations.clone())
    }

    /// The ids of the `to` records associated with one record (either direction).
    pub fn associated(&self, kind: ObjectType, id: &str, to: ObjectType) -> Vec<String> {
        self.with_state(|s| s.associated(kind, id, to))
    }

    /// The state as JSON (for the binary's `/_standin/state`).
    pub fn snapshot(&self) -> Value {
        self.with_state(|s| {
            json!({
                "objects": s.objects.values().collect::<Vec<_>>(),
                "associations": s.associations,
            })
        })
    }
}

async fn auth(State(h): State<Arc<HubSpot>>, req: Request, next: Next) -> Response {
    let a = authorization(req.headers());
    if a == Auth::Bearer(&h.token) {
        return next.run(req).await;
    }
    let message = match a {
        Auth::Missing => "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        _ => "Authentication credentials not found or invalid. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    };
    Reject::json(
        401,
        json!({"status": "error", "message": message, "correlationId": h.correlation_id(), "category": "INVALID_AUTHENTICATION"}),
        describe_auth(&a),
    )
    .into_response()
}

async fn fallback(State(h): State<Arc<HubSpot>>, req: Request) -> Reject {
    Reject::json(
        404,
        json!({"status": "error", "message": "Resource not found", "correlationId": h.correlation_id(), "category": "OBJECT_NOT_FOUND"}),
        format!("no HubSpot API route {} {}", req.method(), req.uri().path()),
    )
}

async fn wrong_method(State(h): State<Arc<HubSpot>>, req: Request) -> Reject {
    Reject::json(
        405,
        json!({"status": "error", "message": "HTTP 405 Method Not Allowed", "correlationId": h.correlation_id(), "category": "METHOD_NOT_ALLOWED"}),
        format!(
            "{} is not allowed on {} in the HubSpot API",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The stand-in's routes.
pub(crate) fn router(h: Arc<HubSpot>) -> Router {
    Router::new()
        .route("/crm/v3/objects/{kind}", post(crm::create).get(crm::list))
        .route("/crm/v3/objects/{kind}/search", post(search::search))
        .route(
            "/crm/v3/objects/{kind}/{id}",
            get(crm::read).patch(crm::update).delete(crm::archive),
        )
        .route(
            "/crm/v4/objects/{from}/{from_id}/associations/default/{to}/{to_id}",
            put(crm::associate_default),
        )
        .route(
            "/crm/v4/objects/{from}/{from_id}/associations/{to}",
            get(crm::list_associations),
        )
        .route_layer(from_fn_with_state(h.clone(), auth))
        .method_not_allowed_fallback(wrong_method)
        .fallback(fallback)
        .with_state(h)
}
