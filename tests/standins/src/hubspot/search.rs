//! CRM search: `POST /crm/v3/objects/{type}/search` with `filterGroups` (OR of groups, AND
//! of filters), `query`, `properties`, `limit` and `after`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{json, Map, Value};

use super::crm::{body_object, object_type};
use super::model::CrmObject;
use super::HubSpot;
use crate::reply::{json, type_name, Reject, Reply};

const OPERATORS: &[&str] = &[
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

/// A search filter, checked.
struct Filter {
    property: String,
    operator: String,
    value: Option<String>,
    values: Vec<String>,
    high: Option<String>,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_filters(h: &HubSpot, body: &Map<String, Value>) -> Result<Vec<Vec<Filter>>, Reject> {
    let bad = |m: String| h.error(400, "VALIDATION_ERROR", &m);
    let groups = match body.get("filterGroups") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(g)) => g,
        Some(other) => {
            return Err(bad(format!(
                "Invalid input JSON: `filterGroups` must be an array, got {}",
                type_name(other)
            )))
        }
    };
    if groups.len() > 5 {
        return Err(bad(format!(
            "Too many filter groups: {} (at most 5).",
            groups.len()
        )));
    }
    let mut out = Vec::new();
    let mut total = 0;
    for (gi, g) in groups.iter().enumerate() {
        let Some(Value::Array(filters)) = g.get("filters") else {
            return Err(bad(format!(
                "Invalid input JSON: filterGroups[{gi}].filters must be an array"
            )));
        };
        if filters.len() > 6 {
            return Err(bad(format!(
                "Too many filters in filterGroups[{gi}]: {} (at most 6).",
                filters.len()
            )));
        }
        total += filters.len();
        let mut group = Vec::new();
        for (fi, f) in filters.iter().enumerate() {
            let at = format!("filterGroups[{gi}].filters[{fi}]");
            let Some(property) = f.get("propertyName").and_then(Value::as_str) else {
                return Err(bad(format!(
                    "Invalid input JSON: {at}.propertyName is required"
                )));
            };
            let operator = match f.get("operator").and_then(Value::as_str) {
                Some(o) if OPERATORS.contains(&o) => o.to_string(),
                Some(o) => {
                    return Err(bad(format!(
                        "Invalid input JSON: {at}.operator `{o}` is not one of [{}]",
                        OPERATORS.join(", ")
                    )))
                }
                None => {
                    return Err(bad(format!(
                        "Invalid input JSON: {at}.operator is required"
                    )))
                }
            };
            let value = f.get("value").and_then(scalar);
            let values: Vec<String> = f
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(scalar).collect())
                .unwrap_or_default();
            let high = f.get("highValue").and_then(scalar);
            let needs_value = !matches!(
                operator.as_str(),
                "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "IN" | "NOT_IN"
            );
            if needs_value && value.is_none() {
                return Err(bad(format!("{at}: operator {operator} requires a `value`")));
            }
            if matches!(operator.as_str(), "IN" | "NOT_IN") && values.is_empty() {
                return Err(bad(format!("{at}: operator {operator} requires `values`")));
            }
            if operator == "BETWEEN" && high.is_none() {
                return Err(bad(format!(
                    "{at}: operator BETWEEN requires a `highValue`"
                )));
            }
            group.push(Filter {
                property: property.to_string(),
                operator,
                value,
                values,
                high,
            });
        }
        out.push(group);
    }
    if total > 18 {
        return Err(bad(format!("Too many filters: {total} (at most 18).")));
    }
    Ok(out)
}

fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()),
    }
}

fn matches(o: &CrmObject, f: &Filter) -> bool {
    use std::cmp::Ordering::*;
    let have = o.get(&f.property).filter(|v| !v.is_empty());
    let value = f.value.as_deref().unwrap_or("");
    let token = |v: &str| {
        let needle = value.trim_matches('*').to_ascii_lowercase();
        v.to_ascii_lowercase().contains(&needle)
    };
    match (f.operator.as_str(), have) {
        ("HAS_PROPERTY", h) => h.is_some(),
        ("NOT_HAS_PROPERTY", h) => h.is_none(),
        ("NEQ", None) | ("NOT_IN", None) | ("NOT_CONTAINS_TOKEN", None) => true,
        (_, None) => false,
        ("EQ", Some(v)) => compare(v, value) == Equal,
        ("NEQ", Some(v)) => compare(v, value) != Equal,
        ("LT", Some(v)) => compare(v, value) == Less,
        ("LTE", Some(v)) => compare(v, value) != Greater,
        ("GT", Some(v)) => compare(v, value) == Greater,
        ("GTE", Some(v)) => compare(v, value) != Less,
        ("BETWEEN", Some(v)) => {
            compare(v, value) != Less && compare(v, f.high.as_deref().unwrap_or("")) != Greater
        }
        ("IN", Some(v)) => f.values.iter().any(|x| compare(v, x) == Equal),
        ("NOT_IN", Some(v)) => !f.values.iter().any(|x| compare(v, x) == Equal),
        ("CONTAINS_TOKEN", Some(v)) => token(v),
        ("NOT_CONTAINS_TOKEN", Some(v)) => !token(v),
        _ => false,
    }
}

pub(crate) async fn search(
    State(h): State<Arc<HubSpot>>,
    Path(kind): Path<String>,
    body: Bytes,
) -> Reply {
    let kind = object_type(&h, &kind)?;
    let body = body_object(&h, &body)?;
    let groups = parse_filters(&h, &body)?;
    let limit = match body.get("limit") {
        None | Some(Value::Null) => 10,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|l| l <= 200) => {
            n.as_u64().unwrap_or(10) as usize
        }
        Some(other) => {
            return Err(h.error(
                400,
                "VALIDATION_ERROR",
                &format!("`limit` must be an integer between 0 and 200, got {other}"),
            ))
        }
    };
    let after = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) => scalar(v)
            .and_then(|a| a.parse::<usize>().ok())
            .ok_or_else(|| {
                h.error(
                    400,
                    "VALIDATION_ERROR",
                    &format!("`after` must be a paging cursor, got {v}"),
                )
            })?,
    };
    let props: Vec<String> = match body.get("properties") {
        Some(Value::Array(p)) if !p.is_empty() => p
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => kind
            .default_properties()
            .iter()
            .map(|p| p.to_string())
            .collect(),
    };
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    h.with_state(|s| {
        let mut props = props;
        for p in ["createdate", "hs_object_id"] {
            if !props.iter().any(|x| x == p) {
                props.push(p.into());
            }
        }
        let found: Vec<&CrmObject> = s
            .objects
            .values()
            .filter(|o| o.kind == kind)
            .filter(|o| groups.is_empty() || groups.iter().any(|g| g.iter().all(|f| matches(o, f))))
            .filter(|o| {
                query.as_deref().is_none_or(|q| {
                    o.properties
                        .values()
                        .any(|v| v.to_ascii_lowercase().contains(q))
                })
            })
            .collect();
        let results: Vec<Value> = found
            .iter()
            .skip(after)
            .take(limit)
            .map(|o| o.to_json(&props))
            .collect();
        let mut out = json!({"total": found.len(), "results": results});
        if after + limit < found.len() {
            out["paging"] = json!({"next": {"after": (after + limit).to_string()}});
        }
        Ok(json(200, out))
    })
}
