//! DigitalOcean API v2 stand-in (https://docs.digitalocean.com/reference/api/digitalocean/):
//! Droplets (list with `tag_name`/`name` filters and `links.pages` pagination, create one
//! or many, get, delete one or by tag), Droplet actions, tags (create, get, list, delete,
//! tag and untag resources) and domains with their records.
//!
//! Every route needs `Authorization: Bearer TOKEN` (else 401
//! `{"id":"unauthorized","message":"Unable to authenticate you"}`); unknown paths answer 404
//! `{"id":"not_found",…}`, a known path with another method 405, bodies that fail the API's
//! validation 422 `{"id":"unprocessable_entity",…}`, unparsable bodies 400 `bad_request`.
//!
//! State: Droplets are created `new` with no networks (as the API answers) and become
//! `active` with a public and a private IPv4 once the boot delay has passed (zero by
//! default, so the next read already sees them active).

mod domains;
mod droplets;
mod model;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State as AxState};
use axum::http::HeaderMap;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::log::lock;
use crate::reply::{authorization, describe_auth, Auth, Reject};

use model::{Domain, State};
pub use model::{DomainRecord, Droplet, DropletAction};

/// The DigitalOcean stand-in: its URL, token and state.
pub struct DigitalOcean {
    base_url: String,
    token: String,
    state: Mutex<State>,
}

impl DigitalOcean {
    pub(crate) fn new(base_url: String, token: String, boot_delay: Duration) -> DigitalOcean {
        DigitalOcean {
            base_url,
            token,
            state: Mutex::new(State::new(boot_delay)),
        }
    }

    /// Base URL (the `digitalocean_api_url` resource), e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The token every request must carry as `Authorization: Bearer TOKEN`.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = lock(&self.state);
        s.settle(Instant::now());
        f(&mut s)
    }

    /// How long a Droplet created through the API stays `new` before it is `active`.
    pub fn set_boot_delay(&self, delay: Duration) {
        self.with_state(|s| s.boot_delay = delay);
    }

    /// Adds an `active` Droplet (with a public IPv4) carrying `tags` (created as needed):
    /// e.g. the pool of `trial-pending` Droplets a story takes from.
    pub fn add_droplet(&self, name: &str, tags: &[&str]) -> Droplet {
        self.with_state(|s| {
            let tags: Vec<String> = tags.iter().map(|t| s.ensure_tag(t)).collect();
            let id = s.insert_droplet(
                model::NewDroplet {
                    name: name.to_string(),
                    region: "nyc3".into(),
                    size: "s-1vcpu-1gb".into(),
                    image: json!("ubuntu-24-04-x64"),
                    tags,
                    ..Default::default()
                },
                Instant::now(),
            );
            s.boot(id);
            s.droplets[&id].clone()
        })
    }

    /// Sets a Droplet's status (`new`, `active`, `off`, `archive`); false when there is none.
    pub fn set_status(&self, id: u64, status: &str) -> bool {
        self.with_state(|s| {
            s.boot(id);
            match s.droplets.get_mut(&id) {
                Some(d) => {
                    d.status = status.to_string();
                    true
                }
                None => false,
            }
        })
    }

    /// Finishes a `new` Droplet's boot now (it becomes `active` with its addresses).
    pub fn boot(&self, id: u64) -> Option<Droplet> {
        self.with_state(|s| {
            s.boot(id);
            s.droplets.get(&id).cloned()
        })
    }

    /// Every Droplet, oldest first.
    pub fn droplets(&self) -> Vec<Droplet> {
        self.with_state(|s| s.droplets.values().cloned().collect())
    }

    /// One Droplet.
    pub fn droplet(&self, id: u64) -> Option<Droplet> {
        self.with_state(|s| s.droplets.get(&id).cloned())
    }

    /// The Droplets that carry `tag`, oldest first.
    pub fn droplets_tagged(&self, tag: &str) -> Vec<Droplet> {
        self.with_state(|s| {
            s.droplets
                .values()
                .filter(|d| d.has_tag(tag))
                .cloned()
                .collect()
        })
    }

    /// Every tag that exists (created by `POST /v2/tags`, with a Droplet, or seeded).
    pub fn tags(&self) -> Vec<String> {
        self.with_state(|s| s.tags.clone())
    }

    /// Every Droplet action requested so far (power_off, power_on, …), oldest first.
    pub fn actions(&self) -> Vec<DropletAction> {
        self.with_state(|s| s.actions.values().cloned().collect())
    }

    /// Adds a domain (zone) with the SOA and NS records DigitalOcean creates for one.
    pub fn add_domain(&self, name: &str) {
        self.with_state(|s| s.add_domain(name, None));
    }

    /// The domains, by name.
    pub fn domains(&self) -> Vec<String> {
        self.with_state(|s| s.domains.keys().cloned().collect())
    }

    /// Adds a record to a domain (created when missing); returns its id.
    pub fn add_record(&self, domain: &str, kind: &str, name: &str, data: &str) -> u64 {
        self.with_state(|s| {
            if !s.domains.contains_key(domain) {
                s.add_domain(domain, None);
            }
            s.insert_record(
                domain,
                DomainRecord {
                    id: 0,
                    kind: kind.to_string(),
                    name: name.to_string(),
                    data: data.to_string(),
                    priority: None,
                    port: None,
                    ttl: 1800,
                    weight: None,
                    flags: None,
                    tag: None,
                },
            )
        })
    }

    /// A domain's records (empty when there is no such domain).
    pub fn records(&self, domain: &str) -> Vec<DomainRecord> {
        self.with_state(|s| {
            s.domains
                .get(domain)
                .map(|d: &Domain| d.records.clone())
                .unwrap_or_default()
        })
    }

    /// The state as JSON (for the binary's `/_standin/state`).
    pub fn snapshot(&self) -> Value {
        self.with_state(|s| {
            json!({
                "droplets": s.droplets.values().map(|d| s.droplet_json(d, &self.base_url)).collect::<Vec<_>>(),
                "tags": s.tags,
                "domains": s.domains.iter().map(|(k, d)| (k.clone(), json!(d.records))).collect::<BTreeMap<_, _>>(),
                "actions": s.actions.values().collect::<Vec<_>>(),
            })
        })
    }
}

/// A DigitalOcean error answer: `{"id", "message"}`.
pub(crate) fn error(status: u16, id: &str, message: &str) -> Reject {
    Reject::json(status, json!({"id": id, "message": message}), message)
}

/// 404 `not_found`.
pub(crate) fn not_found(what: &str) -> Reject {
    Reject::json(
        404,
        json!({"id": "not_found", "message": "The resource you were accessing could not be found."}),
        what,
    )
}

/// 422 `unprocessable_entity`.
pub(crate) fn unprocessable(message: &str) -> Reject {
    error(422, "unprocessable_entity", message)
}

/// The body as a JSON object, or 400 `bad_request`.
pub(crate) fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Reject> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Reject::json(
            400,
            json!({"id": "bad_request", "message": "error parsing request body"}),
            format!(
                "the body is JSON {} where an object is expected",
                crate::reply::type_name(&other)
            ),
        )),
        Err(e) => Err(Reject::json(
            400,
            json!({"id": "bad_request", "message": "error parsing request body"}),
            format!("the body is not JSON: {e}"),
        )),
    }
}

async fn auth(AxState(d): AxState<Arc<DigitalOcean>>, req: Request, next: Next) -> Response {
    let headers: &HeaderMap = req.headers();
    let a = authorization(headers);
    if a == Auth::Bearer(&d.token) {
        return next.run(req).await;
    }
    Reject::json(
        401,
        json!({"id": "unauthorized", "message": "Unable to authenticate you"}),
        describe_auth(&a),
    )
    .into_response()
}

async fn fallback(req: Request) -> Reject {
    not_found(&format!(
        "no DigitalOcean API route {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn wrong_method(req: Request) -> Reject {
    error(
        405,
        "method_not_allowed",
        &format!(
            "{} is not allowed on {} in the DigitalOcean API",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The stand-in's routes.
pub(crate) fn router(d: Arc<DigitalOcean>) -> Router {
    Router::new()
        .route(
            "/v2/droplets",
            get(droplets::list)
                .post(droplets::create)
                .delete(droplets::delete_by_tag),
        )
        .route(
            "/v2/droplets/{id}",
            get(droplets::get_one).delete(droplets::delete),
        )
        .route(
            "/v2/droplets/{id}/actions",
            post(droplets::action).get(droplets::list_actions),
        )
        .route(
            "/v2/droplets/{id}/actions/{action_id}",
            get(droplets::get_droplet_action),
        )
        .route("/v2/actions/{action_id}", get(droplets::get_action))
        .route(
            "/v2/tags",
            get(droplets::list_tags).post(droplets::create_tag),
        )
        .route(
            "/v2/tags/{tag}",
            get(droplets::get_tag).delete(droplets::delete_tag),
        )
        .route(
            "/v2/tags/{tag}/resources",
            post(droplets::tag_resources).delete(droplets::untag_resources),
        )
        .route(
            "/v2/domains",
            get(domains::list_domains).post(domains::create_domain),
        )
        .route(
            "/v2/domains/{domain}",
            get(domains::get_domain).delete(domains::delete_domain),
        )
        .route(
            "/v2/domains/{domain}/records",
            get(domains::list_records).post(domains::create_record),
        )
        .route(
            "/v2/domains/{domain}/records/{record_id}",
            get(domains::get_record)
                .put(domains::update_record)
                .patch(domains::update_record)
                .delete(domains::delete_record),
        )
        .route_layer(from_fn_with_state(d.clone(), auth))
        .method_not_allowed_fallback(wrong_method)
        .fallback(fallback)
        .with_state(d)
}
