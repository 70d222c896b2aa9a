//! CRM object and association routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde_json::{json, Map, Value};

use super::model::{default_association_type, invalid_message, Association, CrmObject, ObjectType};
use super::HubSpot;
use crate::reply::{empty, json, now_rfc3339, query_get, query_pairs, type_name, Reject, Reply};

pub(super) fn object_type(h: &HubSpot, raw: &str) -> Result<ObjectType, Reject> {
    ObjectType::parse(raw).ok_or_else(|| {
        h.error(
            400,
            "VALIDATION_ERROR",
            &format!("Unable to infer object type from: {raw}"),
        )
    })
}

pub(super) fn body_object(h: &HubSpot, body: &[u8]) -> Result<Map<String, Value>, Reject> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(h.error(
            400,
            "VALIDATION_ERROR",
            &format!(
                "Invalid input JSON: expected an object, got {}",
                type_name(&other)
            ),
        )),
        Err(e) => Err(h.error(
            400,
            "VALIDATION_ERROR",
            &format!(
                "Invalid input JSON on line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        )),
    }
}

fn not_found(h: &HubSpot, kind: ObjectType, id: &str) -> Reject {
    h.error(
        404,
        "OBJECT_NOT_FOUND",
        &format!("No {} with id {id} exists", kind.name()),
    )
}

/// The `properties` object of a create/update body.
fn properties_of<'a>(
    h: &HubSpot,
    body: &'a Map<String, Value>,
    what: &str,
) -> Result<&'a Map<String, Value>, Reject> {
    match body.get("properties") {
        Some(Value::Object(p)) => Ok(p),
        Some(other) => Err(h.error(
            400,
            "VALIDATION_ERROR",
            &format!("Invalid input JSON: `properties` must be an object, got {}", type_name(other)),
        )),
        None => Err(h.error(
            400,
            "VALIDATION_ERROR",
            &format!("Invalid input JSON on line 1, column 2: Cannot build {what}, some of required attributes are not set [properties]"),
        )),
    }
}

fn conflict(h: &HubSpot, existing: &CrmObject) -> Reject {
    h.error(
        409,
        "CONFLICT",
        &format!("Contact already exists. Existing ID: {}", existing.id),
    )
}

pub(crate) async fn create(
    State(h): State<Arc<HubSpot>>,
    Path(kind): Path<String>,
    body: Bytes,
) -> Reply {
    let kind = object_type(&h, &kind)?;
    let body = body_object(&h, &body)?;
    let input = properties_of(&h, &body, "SimplePublicObjectInputForCreate")?;
    let inline = match body.get("associations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => {
            return Err(h.error(
                400,
                "VALIDATION_ERROR",
                &format!(
                    "Invalid input JSON: `associations` must be an array, got {}",
                    type_name(other)
                ),
            ))
        }
    };
    h.with_state(|s| {
        let props = s
            .check(kind, input)
            .map_err(|bad| h.error(400, "VALIDATION_ERROR", &invalid_message(&bad)))?;
        if kind == ObjectType::Contacts {
            if let Some(existing) = props.get("email").and_then(|e| s.contact_by_email(e)) {
                return Err(conflict(&h, existing));
            }
        }
        // Inline associations: [{"to": {"id"}, "types": [{"associationCategory", "associationTypeId"}]}].
        let mut links = Vec::new();
        for (i, a) in inline.iter().enumerate() {
            let to_id = a.pointer("/to/id").map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let type_id = a.pointer("/types/0/associationTypeId").and_then(Value::as_u64);
            let target = [ObjectType::Contacts, ObjectType::Companies, ObjectType::Deals]
                .into_iter()
                .find(|t| default_association_type(kind, *t).map(u64::from) == type_id);
            match (to_id, target) {
                (Some(id), Some(t)) if s.get(t, &id).is_some() => links.push((t, id)),
                _ => {
                    return Err(h.error(
                        400,
                        "VALIDATION_ERROR",
                        &format!("associations[{i}] names no existing record with a default association type from {}", kind.name()),
                    ))
                }
            }
        }
        let o = s.insert(kind, props);
        for (t, id) in links {
            s.associations.push(Association {
                from_type: kind,
                from_id: o.id.clone(),
                to_type: t,
                to_id: id,
            });
        }
        Ok(json(201, o.to_json_all()))
    })
}

/// The properties a read asks for (`?properties=a,b`), or the type's defaults.
fn requested(pairs: &[(String, String)], kind: ObjectType) -> Vec<String> {
    let asked: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "properties")
        .flat_map(|(_, v)| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if asked.is_empty() {
        kind.default_properties()
            .iter()
            .map(|p| p.to_string())
            .collect()
    } else {
        asked
    }
}

pub(crate) async fn list(
    State(h): State<Arc<HubSpot>>,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let kind = object_type(&h, &kind)?;
    let pairs = query_pairs(q.as_deref());
    let props = requested(&pairs, kind);
    let limit = query_get(&pairs, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let after = query_get(&pairs, "after")
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    h.with_state(|s| {
        let all: Vec<&CrmObject> = s.objects.values().filter(|o| o.kind == kind).collect();
        let results: Vec<Value> = all
            .iter()
            .skip(after)
            .take(limit)
            .map(|o| o.to_json(&props))
            .collect();
        let mut out = json!({ "results": results });
        if after + limit < all.len() {
            out["paging"] = json!({"next": {"after": (after + limit).to_string()}});
        }
        Ok(json(200, out))
    })
}

pub(crate) async fn read(
    State(h): State<Arc<HubSpot>>,
    Path((kind, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Reply {
    let kind = object_type(&h, &kind)?;
    let pairs = query_pairs(q.as_deref());
    let props = requested(&pairs, kind);
    h.with_state(|s| {
        let Some(o) = s.get(kind, &id) else {
            return Err(not_found(&h, kind, &id));
        };
        let mut out = o.to_json(&props);
        let assoc: Vec<ObjectType> = pairs
            .iter()
            .filter(|(k, _)| k == "associations")
            .flat_map(|(_, v)| v.split(','))
            .filter_map(ObjectType::parse)
            .collect();
        if !assoc.is_empty() {
            let mut map = Map::new();
            for t in assoc {
                let results: Vec<Value> = s
                    .associated(kind, &id, t)
                    .into_iter()
                    .map(|i| json!({"id": i, "type": format!("{}_to_{}", kind.singular(), t.singular())}))
                    .collect();
                if !results.is_empty() {
                    map.insert(t.name().into(), json!({ "results": results }));
                }
            }
            out["associations"] = Value::Object(map);
        }
        Ok(json(200, out))
    })
}

pub(crate) async fn update(
    State(h): State<Arc<HubSpot>>,
    Path((kind, id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let kind = object_type(&h, &kind)?;
    let body = body_object(&h, &body)?;
    let input = properties_of(&h, &body, "SimplePublicObjectInput")?;
    h.with_state(|s| {
        if s.get(kind, &id).is_none() {
            return Err(not_found(&h, kind, &id));
        }
        let props = s
            .check(kind, input)
            .map_err(|bad| h.error(400, "VALIDATION_ERROR", &invalid_message(&bad)))?;
        if let Some(existing) = props.get("email").and_then(|e| s.contact_by_email(e)) {
            if existing.id != id {
                return Err(conflict(&h, existing));
            }
        }
        let Some(o) = s.get_mut(kind, &id) else {
            return Err(not_found(&h, kind, &id));
        };
        for (k, v) in props {
            o.properties.insert(k, v);
        }
        o.updated_at = now_rfc3339();
        Ok(json(200, o.to_json_all()))
    })
}

pub(crate) async fn archive(
    State(h): State<Arc<HubSpot>>,
    Path((kind, id)): Path<(String, String)>,
) -> Reply {
    let kind = object_type(&h, &kind)?;
    h.with_state(|s| {
        if let Some(n) = s.get(kind, &id).and_then(|o| o.id.parse::<u64>().ok()) {
            s.objects.remove(&n);
            s.associations.retain(|a| {
                !((a.from_type == kind && a.from_id == id) || (a.to_type == kind && a.to_id == id))
            });
        }
        // HubSpot answers 204 whether or not the record existed.
        Ok(empty(204))
    })
}

pub(crate) async fn associate_default(
    State(h): State<Arc<HubSpot>>,
    Path((from, from_id, to, to_id)): Path<(String, String, String, String)>,
) -> Reply {
    let from = object_type(&h, &from)?;
    let to = object_type(&h, &to)?;
    let Some(type_id) = default_association_type(from, to) else {
        return Err(h.error(
            400,
            "VALIDATION_ERROR",
            &format!(
                "There is no default association type from {} to {}",
                from.name(),
                to.name()
            ),
        ));
    };
    h.with_state(|s| {
        if s.get(from, &from_id).is_none() {
            return Err(not_found(&h, from, &from_id));
        }
        if s.get(to, &to_id).is_none() {
            return Err(not_found(&h, to, &to_id));
        }
        if !s.associated(from, &from_id, to).contains(&to_id) {
            s.associations.push(Association {
                from_type: from,
                from_id: from_id.clone(),
                to_type: to,
                to_id: to_id.clone(),
            });
        }
        let reverse = default_association_type(to, from).unwrap_or(type_id);
        let now = now_rfc3339();
        Ok(json(
            200,
            json!({
                "status": "COMPLETE",
                "results": [
                    {"from": {"id": from_id}, "to": {"id": to_id},
                     "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}},
                    {"from": {"id": to_id}, "to": {"id": from_id},
                     "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": reverse}}
                ],
                "startedAt": now,
                "completedAt": now,
            }),
        ))
    })
}

pub(crate) async fn list_associations(
    State(h): State<Arc<HubSpot>>,
    Path((from, from_id, to)): Path<(String, String, String)>,
) -> Reply {
    let from = object_type(&h, &from)?;
    let to = object_type(&h, &to)?;
    h.with_state(|s| {
        if s.get(from, &from_id).is_none() {
            return Err(not_found(&h, from, &from_id));
        }
        let type_id = default_association_type(from, to);
        let results: Vec<Value> = s
            .associated(from, &from_id, to)
            .into_iter()
            .map(|id| {
                json!({"toObjectId": id.parse::<u64>().unwrap_or(0),
                       "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": null}]})
            })
            .collect();
        Ok(json(200, json!({ "results": results })))
    })
}
