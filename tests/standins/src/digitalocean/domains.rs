//! Domains and domain records.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde_json::{json, Map, Value};

use super::droplets::{page_links, pages};
use super::model::{DomainRecord, State as DoState, RECORD_TYPES};
use super::{json_object, not_found, unprocessable, DigitalOcean};
use crate::reply::{empty, json, page_of, query_get, query_pairs, type_name, Reject, Reply};

fn domain_json(s: &DoState, name: &str) -> Value {
    let ttl = s.domains.get(name).map(|d| d.ttl).unwrap_or(1800);
    json!({"name": name, "ttl": ttl, "zone_file": format!("$ORIGIN {name}.\n$TTL {ttl}\n")})
}

pub(crate) async fn list_domains(State(d): State<Arc<DigitalOcean>>) -> Reply {
    d.with_state(|s| {
        let all: Vec<Value> = s.domains.keys().map(|n| domain_json(s, n)).collect();
        Ok(json(
            200,
            json!({"domains": all, "links": {}, "meta": {"total": all.len()}}),
        ))
    })
}

pub(crate) async fn create_domain(State(d): State<Arc<DigitalOcean>>, body: Bytes) -> Reply {
    let body = json_object(&body)?;
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return Err(unprocessable("The domain `name` is required."));
    };
    let ip = match body.get("ip_address") {
        None | Some(Value::Null) => None,
        Some(Value::String(ip)) if ip.parse::<Ipv4Addr>().is_ok() => Some(ip.clone()),
        Some(_) => return Err(unprocessable("`ip_address` must be an IPv4 address.")),
    };
    d.with_state(|s| {
        if s.domains.contains_key(&name.to_ascii_lowercase()) {
            return Err(unprocessable(&format!("The domain {name} already exists.")));
        }
        s.add_domain(&name, ip.as_deref());
        Ok(json(
            201,
            json!({"domain": domain_json(s, &name.to_ascii_lowercase())}),
        ))
    })
}

pub(crate) async fn get_domain(
    State(d): State<Arc<DigitalOcean>>,
    Path(domain): Path<String>,
) -> Reply {
    d.with_state(|s| {
        if s.domains.contains_key(&domain) {
            Ok(json(200, json!({"domain": domain_json(s, &domain)})))
        } else {
            Err(not_found(&format!("no domain `{domain}`")))
        }
    })
}

pub(crate) async fn delete_domain(
    State(d): State<Arc<DigitalOcean>>,
    Path(domain): Path<String>,
) -> Reply {
    d.with_state(|s| match s.domains.remove(&domain) {
        Some(_) => Ok(empty(204)),
        None => Err(not_found(&format!("no domain `{domain}`"))),
    })
}

/// A record's fully qualified name, as the `name` filter compares it.
fn fqdn(name: &str, domain: &str) -> String {
    if name == "@" {
        domain.to_string()
    } else {
        format!("{name}.{domain}")
    }
}

pub(crate) async fn list_records(
    State(d): State<Arc<DigitalOcean>>,
    Path(domain): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let pairs = query_pairs(q.as_deref());
    let (page, per_page) = pages(&pairs)?;
    let name = query_get(&pairs, "name").map(str::to_ascii_lowercase);
    let kind = query_get(&pairs, "type").map(str::to_string);
    d.with_state(|s| {
        let Some(dom) = s.domains.get(&domain) else {
            return Err(not_found(&format!("no domain `{domain}`")));
        };
        let all: Vec<Value> = dom
            .records
            .iter()
            .filter(|r| {
                name.as_deref()
                    .is_none_or(|n| fqdn(&r.name, &domain) == n.trim_end_matches('.'))
            })
            .filter(|r| kind.as_deref().is_none_or(|k| r.kind == k))
            .map(|r| json!(r))
            .collect();
        let (items, last) = page_of(&all, page, per_page);
        let path = format!("/v2/domains/{domain}/records");
        Ok(json(
            200,
            json!({
                "domain_records": items,
                "links": page_links(d.url(), &path, &pairs, page, last),
                "meta": {"total": all.len()},
            }),
        ))
    })
}

fn int_field(body: &Map<String, Value>, key: &str) -> Result<Option<i64>, Reject> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(other) => Err(unprocessable(&format!(
            "`{key}` must be an integer, not {}",
            type_name(other)
        ))),
    }
}

fn str_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Reject> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.clone())),
        Some(other) => Err(unprocessable(&format!(
            "`{key}` must be a string, not {}",
            type_name(other)
        ))),
    }
}

/// Checks a record as DigitalOcean's attribute table requires for its type.
fn check_record(r: &DomainRecord) -> Result<(), Reject> {
    let need = |ok: bool, what: &str| -> Result<(), Reject> {
        if ok {
            Ok(())
        } else {
            Err(unprocessable(&format!(
                "{what} is required for {} records.",
                r.kind
            )))
        }
    };
    need(!r.data.is_empty(), "`data`")?;
    match r.kind.as_str() {
        "MX" => need(r.priority.is_some(), "`priority`")?,
        "SRV" => {
            need(!r.name.is_empty(), "`name`")?;
            need(r.priority.is_some(), "`priority`")?;
            need(r.port.is_some(), "`port`")?;
            need(r.weight.is_some(), "`weight`")?;
        }
        "CAA" => {
            need(!r.name.is_empty(), "`name`")?;
            need(r.flags.is_some(), "`flags`")?;
            need(r.tag.is_some(), "`tag`")?;
            if let Some(t) = &r.tag {
                if !["issue", "issuewild", "iodef"].contains(&t.as_str()) {
                    return Err(unprocessable("`tag` must be issue, issuewild or iodef."));
                }
            }
        }
        "SOA" => return Err(unprocessable("SOA records cannot be created.")),
        _ => need(!r.name.is_empty(), "`name`")?,
    }
    if r.kind == "A" && r.data.parse::<Ipv4Addr>().is_err() {
        return Err(unprocessable(&format!(
            "Data `{}` is not a valid IPv4 address (A record).",
            r.data
        )));
    }
    if r.kind == "AAAA" && r.data.parse::<Ipv6Addr>().is_err() {
        return Err(unprocessable(&format!(
            "Data `{}` is not a valid IPv6 address (AAAA record).",
            r.data
        )));
    }
    if r.ttl < 30 {
        return Err(unprocessable("TTL must be at least 30 seconds."));
    }
    let name_ok = r.name == "@"
        || r.name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*'))
        });
    if !r.name.is_empty() && !name_ok {
        return Err(unprocessable(&format!(
            "Name `{}` is not a valid host name.",
            r.name
        )));
    }
    Ok(())
}

/// Fields of a record from a body, over `base`.
fn record_from(body: &Map<String, Value>, base: DomainRecord) -> Result<DomainRecord, Reject> {
    let mut r = base;
    if let Some(t) = str_field(body, "type")? {
        if !RECORD_TYPES.contains(&t.as_str()) {
            return Err(unprocessable(&format!(
                "`{t}` is not a record type ({}).",
                RECORD_TYPES.join(", ")
            )));
        }
        r.kind = t;
    }
    if let Some(n) = str_field(body, "name")? {
        r.name = n.to_ascii_lowercase();
    }
    if let Some(v) = str_field(body, "data")? {
        r.data = v;
    }
    if let Some(v) = int_field(body, "ttl")? {
        r.ttl = v;
    }
    for (key, slot) in [
        ("priority", &mut r.priority),
        ("port", &mut r.port),
        ("weight", &mut r.weight),
        ("flags", &mut r.flags),
    ] {
        if body.contains_key(key) {
            *slot = int_field(body, key)?;
        }
    }
    if body.contains_key("tag") {
        r.tag = str_field(body, "tag")?;
    }
    Ok(r)
}

fn cname_conflict(s: &DoState, domain: &str, r: &DomainRecord) -> Result<(), Reject> {
    let clash = s.domains.get(domain).is_some_and(|d| {
        d.records
            .iter()
            .any(|o| o.id != r.id && o.name == r.name && (o.kind == "CNAME" || r.kind == "CNAME"))
    });
    if clash {
        return Err(unprocessable(
            "CNAME records cannot share a name with other records.",
        ));
    }
    Ok(())
}

pub(crate) async fn create_record(
    State(d): State<Arc<DigitalOcean>>,
    Path(domain): Path<String>,
    body: Bytes,
) -> Reply {
    let body = json_object(&body)?;
    if !matches!(body.get("type"), Some(Value::String(_))) {
        return Err(unprocessable("The record `type` is required."));
    }
    d.with_state(|s| {
        let Some(dom) = s.domains.get(&domain) else {
            return Err(not_found(&format!("no domain `{domain}`")));
        };
        let mut r = record_from(
            &body,
            DomainRecord {
                id: 0,
                kind: String::new(),
                name: String::new(),
                data: String::new(),
                priority: None,
                port: None,
                ttl: dom.ttl,
                weight: None,
                flags: None,
                tag: None,
            },
        )?;
        if r.kind == "MX" && r.name.is_empty() {
            r.name = "@".into();
        }
        check_record(&r)?;
        cname_conflict(s, &domain, &r)?;
        r.id = s.insert_record(&domain, r.clone());
        Ok(json(201, json!({ "domain_record": r })))
    })
}

fn record_id(raw: &str) -> Result<u64, Reject> {
    raw.parse::<u64>()
        .map_err(|_| not_found(&format!("`{raw}` is not a record id")))
}

pub(crate) async fn get_record(
    State(d): State<Arc<DigitalOcean>>,
    Path((domain, id)): Path<(String, String)>,
) -> Reply {
    let id = record_id(&id)?;
    d.with_state(|s| {
        match s
            .domains
            .get(&domain)
            .and_then(|x| x.records.iter().find(|r| r.id == id))
        {
            Some(r) => Ok(json(200, json!({ "domain_record": r }))),
            None => Err(not_found(&format!("no record {id} in domain `{domain}`"))),
        }
    })
}

pub(crate) async fn update_record(
    State(d): State<Arc<DigitalOcean>>,
    Path((domain, id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let id = record_id(&id)?;
    let body = json_object(&body)?;
    d.with_state(|s| {
        let Some(old) = s
            .domains
            .get(&domain)
            .and_then(|x| x.records.iter().find(|r| r.id == id))
            .cloned()
        else {
            return Err(not_found(&format!("no record {id} in domain `{domain}`")));
        };
        let r = record_from(&body, old)?;
        check_record(&r)?;
        cname_conflict(s, &domain, &r)?;
        if let Some(slot) = s
            .domains
            .get_mut(&domain)
            .and_then(|x| x.records.iter_mut().find(|x| x.id == id))
        {
            *slot = r.clone();
        }
        Ok(json(200, json!({ "domain_record": r })))
    })
}

pub(crate) async fn delete_record(
    State(d): State<Arc<DigitalOcean>>,
    Path((domain, id)): Path<(String, String)>,
) -> Reply {
    let id = record_id(&id)?;
    d.with_state(|s| {
        let Some(dom) = s.domains.get_mut(&domain) else {
            return Err(not_found(&format!("no domain `{domain}`")));
        };
        let before = dom.records.len();
        dom.records.retain(|r| r.id != id);
        if dom.records.len() == before {
            return Err(not_found(&format!("no record {id} in domain `{domain}`")));
        }
        Ok(empty(204))
    })
}
