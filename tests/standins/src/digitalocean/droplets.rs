//! Droplets, Droplet actions and tags.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde_json::{json, Map, Value};

use super::model::{valid_droplet_name, valid_tag, NewDroplet, IMAGES, REGIONS, SIZES};
use super::{json_object, not_found, unprocessable, DigitalOcean};
use crate::reply::{
    empty, json, page_of, page_params, page_url, query_get, query_pairs, type_name, Reject, Reply,
};

/// Droplet action types the API accepts.
const ACTION_TYPES: &[&str] = &[
    "enable_backups",
    "disable_backups",
    "change_backup_policy",
    "reboot",
    "power_cycle",
    "shutdown",
    "power_off",
    "power_on",
    "restore",
    "password_reset",
    "resize",
    "rebuild",
    "rename",
    "change_kernel",
    "enable_ipv6",
    "snapshot",
];

/// `links.pages` for page `page` of `last`.
pub(super) fn page_links(
    base: &str,
    path: &str,
    pairs: &[(String, String)],
    page: usize,
    last: usize,
) -> Value {
    let mut pages = Map::new();
    if page > 1 {
        pages.insert("first".into(), json!(page_url(base, path, pairs, 1)));
        pages.insert("prev".into(), json!(page_url(base, path, pairs, page - 1)));
    }
    if page < last {
        pages.insert("last".into(), json!(page_url(base, path, pairs, last)));
        pages.insert("next".into(), json!(page_url(base, path, pairs, page + 1)));
    }
    if pages.is_empty() {
        json!({})
    } else {
        json!({ "pages": pages })
    }
}

/// Page parameters, or 400 `bad_request`.
pub(super) fn pages(pairs: &[(String, String)]) -> Result<(usize, usize), Reject> {
    page_params(pairs, 20, 200).map_err(|e| super::error(400, "bad_request", &e))
}

fn droplet_id(raw: &str) -> Result<u64, Reject> {
    raw.parse::<u64>()
        .map_err(|_| not_found(&format!("`{raw}` is not a Droplet id")))
}

pub(crate) async fn list(State(d): State<Arc<DigitalOcean>>, RawQuery(q): RawQuery) -> Reply {
    let pairs = query_pairs(q.as_deref());
    let (page, per_page) = pages(&pairs)?;
    let tag = query_get(&pairs, "tag_name").map(str::to_string);
    let name = query_get(&pairs, "name").map(str::to_string);
    d.with_state(|s| {
        let all: Vec<Value> = s
            .droplets
            .values()
            .filter(|x| tag.as_deref().is_none_or(|t| x.has_tag(t)))
            .filter(|x| name.as_deref().is_none_or(|n| x.name == n))
            .map(|x| s.droplet_json(x, d.url()))
            .collect();
        let (items, last) = page_of(&all, page, per_page);
        Ok(json(
            200,
            json!({
                "droplets": items,
                "links": page_links(d.url(), "/v2/droplets", &pairs, page, last),
                "meta": {"total": all.len()},
            }),
        ))
    })
}

fn string_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Reject> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(unprocessable(&format!(
            "`{key}` must be a string, not {}",
            type_name(other)
        ))),
    }
}

fn bool_field(body: &Map<String, Value>, key: &str) -> Result<bool, Reject> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(unprocessable(&format!(
            "`{key}` must be a boolean, not {}",
            type_name(other)
        ))),
    }
}

fn check_region(region: Option<String>) -> Result<String, Reject> {
    let invalid = || unprocessable("You specified an invalid region for Droplet creation.");
    match region {
        None => Ok("nyc3".into()),
        Some(r) => {
            if REGIONS.iter().any(|x| x.0 == r) {
                Ok(r)
            } else {
                // A slug prefix (`nyc`) deploys in any of that region's datacenters.
                REGIONS
                    .iter()
                    .find(|x| x.0.trim_end_matches(char::is_numeric) == r)
                    .map(|x| x.0.to_string())
                    .ok_or_else(invalid)
            }
        }
    }
}

pub(crate) async fn create(State(d): State<Arc<DigitalOcean>>, body: Bytes) -> Reply {
    let body = json_object(&body)?;
    let names: Vec<String> = match (body.get("name"), body.get("names")) {
        (Some(Value::String(n)), None) => vec![n.clone()],
        (None, Some(Value::Array(ns))) => {
            if ns.is_empty() || ns.len() > 10 {
                return Err(unprocessable(
                    "`names` must hold between 1 and 10 Droplet names.",
                ));
            }
            ns.iter()
                .map(|n| match n {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(unprocessable(&format!(
                        "`names` must hold strings, not {}",
                        type_name(other)
                    ))),
                })
                .collect::<Result<_, _>>()?
        }
        (Some(_), Some(_)) => {
            return Err(unprocessable("Specify either `name` or `names`, not both."))
        }
        (Some(other), None) => {
            return Err(unprocessable(&format!(
                "`name` must be a string, not {}",
                type_name(other)
            )))
        }
        (None, Some(other)) => {
            return Err(unprocessable(&format!(
                "`names` must be an array, not {}",
                type_name(other)
            )))
        }
        (None, None) => return Err(unprocessable("Name is required (`name` or `names`).")),
    };
    for n in &names {
        if !valid_droplet_name(n) {
            return Err(unprocessable(&format!(
                "Name `{n}` is invalid: only letters, digits, `.` and `-`, starting and ending with a letter or digit (at most 255)."
            )));
        }
    }
    let size = string_field(&body, "size")?;
    let Some(size) = size.filter(|s| SIZES.iter().any(|x| x.0 == s)) else {
        return Err(unprocessable(
            "You specified an invalid size for Droplet creation.",
        ));
    };
    let image = match body.get("image") {
        Some(Value::String(s)) if IMAGES.iter().any(|i| i.0 == s) => json!(s),
        Some(Value::String(s)) if s.parse::<u64>().is_ok() => json!(s.parse::<u64>().ok()),
        Some(Value::Number(n)) if n.as_u64().is_some() => json!(n),
        _ => {
            return Err(unprocessable(
                "You specified an invalid image for Droplet creation.",
            ))
        }
    };
    let region = check_region(string_field(&body, "region")?)?;
    let mut tags = Vec::new();
    match body.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ts)) => {
            for t in ts {
                match t {
                    Value::String(t) if valid_tag(t) => tags.push(t.clone()),
                    Value::String(t) => {
                        return Err(unprocessable(&format!(
                            "tag name `{t}` is invalid: letters, digits, `:`, `-` and `_` only, at most 255"
                        )))
                    }
                    other => {
                        return Err(unprocessable(&format!(
                            "`tags` must hold strings, not {}",
                            type_name(other)
                        )))
                    }
                }
            }
        }
        Some(other) => {
            return Err(unprocessable(&format!(
                "`tags` must be an array, not {}",
                type_name(other)
            )))
        }
    }
    let user_data = string_field(&body, "user_data")?;
    if user_data.as_ref().is_some_and(|u| u.len() > 64 * 1024) {
        return Err(unprocessable("user_data must not exceed 64 KiB."));
    }
    let ssh_keys = match body.get("ssh_keys") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(k)) => k.clone(),
        Some(other) => {
            return Err(unprocessable(&format!(
                "`ssh_keys` must be an array, not {}",
                type_name(other)
            )))
        }
    };
    let vpc_uuid = string_field(&body, "vpc_uuid")?;
    let (monitoring, ipv6, backups) = (
        bool_field(&body, "monitoring")?,
        bool_field(&body, "ipv6")?,
        bool_field(&body, "backups")?,
    );
    d.with_state(|s| {
        let tags: Vec<String> = tags.iter().map(|t| s.ensure_tag(t)).collect();
        let mut droplets = Vec::new();
        let mut actions = Vec::new();
        for name in &names {
            let id = s.insert_droplet(
                NewDroplet {
                    name: name.clone(),
                    region: region.clone(),
                    size: size.clone(),
                    image: image.clone(),
                    tags: tags.clone(),
                    user_data: user_data.clone(),
                    ssh_keys: ssh_keys.clone(),
                    vpc_uuid: vpc_uuid.clone(),
                    monitoring,
                    ipv6,
                    backups,
                },
                Instant::now(),
            );
            let a = s.insert_action("create", id, &region);
            droplets.push(s.droplet_json(&s.droplets[&id], d.url()));
            actions.push(json!({"id": a.id, "rel": "create", "href": format!("{}/v2/actions/{}", d.url(), a.id)}));
        }
        let body = if body.contains_key("names") {
            json!({"droplets": droplets, "links": {"actions": actions}})
        } else {
            json!({"droplet": droplets[0], "links": {"actions": actions}})
        };
        Ok(json(202, body))
    })
}

pub(crate) async fn get_one(State(d): State<Arc<DigitalOcean>>, Path(id): Path<String>) -> Reply {
    let id = droplet_id(&id)?;
    d.with_state(|s| match s.droplets.get(&id) {
        Some(x) => Ok(json(200, json!({"droplet": s.droplet_json(x, d.url())}))),
        None => Err(not_found(&format!("no Droplet {id}"))),
    })
}

pub(crate) async fn delete(State(d): State<Arc<DigitalOcean>>, Path(id): Path<String>) -> Reply {
    let id = droplet_id(&id)?;
    d.with_state(|s| match s.droplets.remove(&id) {
        Some(_) => Ok(empty(204)),
        None => Err(not_found(&format!("no Droplet {id}"))),
    })
}

pub(crate) async fn delete_by_tag(
    State(d): State<Arc<DigitalOcean>>,
    RawQuery(q): RawQuery,
) -> Reply {
    let pairs = query_pairs(q.as_deref());
    let Some(tag) = query_get(&pairs, "tag_name").map(str::to_string) else {
        return Err(unprocessable(
            "DELETE /v2/droplets needs a `tag_name` query parameter.",
        ));
    };
    d.with_state(|s| {
        s.droplets.retain(|_, x| !x.has_tag(&tag));
        Ok(empty(204))
    })
}

pub(crate) async fn action(
    State(d): State<Arc<DigitalOcean>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let id = droplet_id(&id)?;
    let body = json_object(&body)?;
    let kind = match body.get("type") {
        Some(Value::String(t)) if ACTION_TYPES.contains(&t.as_str()) => t.clone(),
        Some(Value::String(t)) => {
            return Err(unprocessable(&format!(
                "`{t}` is not a Droplet action type (one of {})",
                ACTION_TYPES.join(", ")
            )))
        }
        _ => return Err(unprocessable("The action `type` is required.")),
    };
    let needs = |key: &str| -> Result<String, Reject> {
        match body.get(key) {
            Some(Value::String(v)) if !v.is_empty() => Ok(v.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(unprocessable(&format!(
                "The `{kind}` action requires `{key}`."
            ))),
        }
    };
    let param = match kind.as_str() {
        "rename" => Some(needs("name")?),
        "resize" => Some(needs("size")?),
        "rebuild" | "restore" => Some(needs("image")?),
        "change_kernel" => Some(needs("kernel")?),
        _ => None,
    };
    d.with_state(|s| {
        let Some(x) = s.droplets.get_mut(&id) else {
            return Err(not_found(&format!("no Droplet {id}")));
        };
        if x.status == "new" {
            return Err(unprocessable("Droplet already has a pending event."));
        }
        match kind.as_str() {
            "power_off" | "shutdown" => x.status = "off".into(),
            "power_on" | "reboot" | "power_cycle" => x.status = "active".into(),
            "rename" => x.name = param.unwrap_or_default(),
            "resize" => x.size = param.unwrap_or_default(),
            "enable_ipv6" => x.ipv6 = true,
            "enable_backups" => x.backups = true,
            "disable_backups" => x.backups = false,
            _ => {}
        }
        let region = x.region.clone();
        let a = s.insert_action(&kind, id, &region);
        let mut v = s.action_json(&a);
        v["status"] = json!("in-progress");
        v["completed_at"] = Value::Null;
        Ok(json(201, json!({ "action": v })))
    })
}

pub(crate) async fn list_actions(
    State(d): State<Arc<DigitalOcean>>,
    Path(id): Path<String>,
) -> Reply {
    let id = droplet_id(&id)?;
    d.with_state(|s| {
        if !s.droplets.contains_key(&id) {
            return Err(not_found(&format!("no Droplet {id}")));
        }
        let actions: Vec<Value> = s
            .actions
            .values()
            .filter(|a| a.droplet_id == id)
            .map(|a| s.action_json(a))
            .collect();
        Ok(json(
            200,
            json!({"actions": actions, "links": {}, "meta": {"total": actions.len()}}),
        ))
    })
}

pub(crate) async fn get_droplet_action(
    State(d): State<Arc<DigitalOcean>>,
    Path((id, action_id)): Path<(String, String)>,
) -> Reply {
    let id = droplet_id(&id)?;
    d.with_state(|s| {
        match action_id
            .parse::<u64>()
            .ok()
            .and_then(|a| s.actions.get(&a))
        {
            Some(a) if a.droplet_id == id => Ok(json(200, json!({"action": s.action_json(a)}))),
            _ => Err(not_found(&format!("no action {action_id} on Droplet {id}"))),
        }
    })
}

pub(crate) async fn get_action(
    State(d): State<Arc<DigitalOcean>>,
    Path(action_id): Path<String>,
) -> Reply {
    d.with_state(|s| {
        match action_id
            .parse::<u64>()
            .ok()
            .and_then(|a| s.actions.get(&a))
        {
            Some(a) => Ok(json(200, json!({"action": s.action_json(a)}))),
            None => Err(not_found(&format!("no action {action_id}"))),
        }
    })
}

pub(crate) async fn list_tags(State(d): State<Arc<DigitalOcean>>) -> Reply {
    d.with_state(|s| {
        let tags: Vec<Value> = s.tags.iter().map(|t| s.tag_json(t, d.url())).collect();
        Ok(json(
            200,
            json!({"tags": tags, "links": {}, "meta": {"total": tags.len()}}),
        ))
    })
}

fn invalid_tag(name: &str) -> Reject {
    let msg = format!(
        "Error validating resource tag: \"tag-name \\\"{name}\\\" contains invalid characters\""
    );
    Reject::json(
        400,
        json!({"error": msg, "messages": null, "root_causes": [format!("rpc error: code = InvalidArgument desc = {msg}")]}),
        format!(
            "tag name `{name}` is invalid: letters, digits, `:`, `-` and `_` only, at most 255"
        ),
    )
}

pub(crate) async fn create_tag(State(d): State<Arc<DigitalOcean>>, body: Bytes) -> Reply {
    let body = json_object(&body)?;
    let name = match body.get("name") {
        Some(Value::String(n)) => n.clone(),
        _ => return Err(unprocessable("The tag `name` is required.")),
    };
    if !valid_tag(&name) {
        return Err(invalid_tag(&name));
    }
    d.with_state(|s| {
        let name = s.ensure_tag(&name);
        Ok(json(201, json!({"tag": s.tag_json(&name, d.url())})))
    })
}

pub(crate) async fn get_tag(State(d): State<Arc<DigitalOcean>>, Path(tag): Path<String>) -> Reply {
    d.with_state(|s| {
        if s.tags.contains(&tag) {
            Ok(json(200, json!({"tag": s.tag_json(&tag, d.url())})))
        } else {
            Err(not_found(&format!("no tag `{tag}`")))
        }
    })
}

pub(crate) async fn delete_tag(
    State(d): State<Arc<DigitalOcean>>,
    Path(tag): Path<String>,
) -> Reply {
    d.with_state(|s| {
        if !s.tags.contains(&tag) {
            return Err(not_found(&format!("no tag `{tag}`")));
        }
        s.tags.retain(|t| t != &tag);
        for x in s.droplets.values_mut() {
            x.tags.retain(|t| t != &tag);
        }
        Ok(empty(204))
    })
}

/// The Droplet ids a tag/untag body names (`resources: [{resource_id, resource_type}]`).
fn tagged_droplets(body: &Bytes) -> Result<Vec<u64>, Reject> {
    let body = json_object(body)?;
    let Some(Value::Array(resources)) = body.get("resources") else {
        return Err(unprocessable(
            "`resources` is required: an array of {resource_id, resource_type}.",
        ));
    };
    if resources.is_empty() {
        return Err(unprocessable("`resources` must not be empty."));
    }
    let mut ids = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let id = match r.get("resource_id") {
            Some(Value::String(id)) => id.clone(),
            Some(other) => {
                return Err(Reject::json(
                    400,
                    json!({"id": "bad_request", "message": "error parsing request body"}),
                    format!(
                    "resources[{i}].resource_id must be a string (the Droplet id as text), not {}",
                    type_name(other)
                ),
                ))
            }
            None => {
                return Err(unprocessable(&format!(
                    "resources[{i}].resource_id is required."
                )))
            }
        };
        match r.get("resource_type").and_then(Value::as_str) {
            Some("droplet") => {}
            Some(t @ ("database" | "image" | "volume" | "volume_snapshot")) => {
                return Err(not_found(&format!(
                    "resources[{i}]: the stand-in has no {t} `{id}`"
                )))
            }
            Some(t) => {
                return Err(unprocessable(&format!(
                    "resources[{i}].resource_type `{t}` is not one of droplet, database, image, volume, volume_snapshot."
                )))
            }
            None => {
                return Err(unprocessable(&format!(
                    "resources[{i}].resource_type is required."
                )))
            }
        }
        ids.push(
            id.parse::<u64>()
                .map_err(|_| not_found(&format!("resources[{i}]: no Droplet `{id}`")))?,
        );
    }
    Ok(ids)
}

pub(crate) async fn tag_resources(
    State(d): State<Arc<DigitalOcean>>,
    Path(tag): Path<String>,
    body: Bytes,
) -> Reply {
    let ids = tagged_droplets(&body)?;
    d.with_state(|s| {
        if !s.tags.contains(&tag) {
            return Err(not_found(&format!(
                "no tag `{tag}` (create it with POST /v2/tags first; names are case stable)"
            )));
        }
        if let Some(missing) = ids.iter().find(|id| !s.droplets.contains_key(id)) {
            return Err(not_found(&format!("no Droplet {missing}")));
        }
        for id in ids {
            if let Some(x) = s.droplets.get_mut(&id) {
                if !x.tags.contains(&tag) {
                    x.tags.push(tag.clone());
                }
            }
        }
        Ok(empty(204))
    })
}

pub(crate) async fn untag_resources(
    State(d): State<Arc<DigitalOcean>>,
    Path(tag): Path<String>,
    body: Bytes,
) -> Reply {
    let ids = tagged_droplets(&body)?;
    d.with_state(|s| {
        if !s.tags.contains(&tag) {
            return Err(not_found(&format!("no tag `{tag}`")));
        }
        if let Some(missing) = ids.iter().find(|id| !s.droplets.contains_key(id)) {
            return Err(not_found(&format!("no Droplet {missing}")));
        }
        for id in ids {
            if let Some(x) = s.droplets.get_mut(&id) {
                x.tags.retain(|t| t != &tag);
            }
        }
        Ok(empty(204))
    })
}
