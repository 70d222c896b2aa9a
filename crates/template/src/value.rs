//! Bridging JSON payloads and minijinja values without copying whole payloads.
//!
//! A payload (`Arc<serde_json::Value>`) is exposed to templates as a [`JsonNode`]: the
//! shared root plus the path to a node inside it. Reading `inbound.body.name` walks
//! only that path; nothing else of the payload is converted.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};
use serde_json::Value as Json;

use crate::error::{Error, ErrorKind};

/// One step of a path into a JSON document.
#[derive(Debug, Clone)]
enum Seg {
    Key(Arc<str>),
    Index(usize),
}

/// An object or array inside a shared JSON document.
pub(crate) struct JsonNode {
    root: Arc<Json>,
    path: Box<[Seg]>,
}

static NULL: Json = Json::Null;

impl JsonNode {
    /// The JSON node this handle points at.
    pub(crate) fn get(&self) -> &Json {
        let mut cur: &Json = &self.root;
        for seg in self.path.iter() {
            let next = match seg {
                Seg::Key(k) => cur.get(&**k),
                Seg::Index(i) => cur.get(*i),
            };
            // The root is immutable and the path was valid when the node was made.
            cur = next.unwrap_or(&NULL);
        }
        cur
    }

    fn child(&self, seg: Seg, value: &Json) -> Value {
        match value {
            Json::Object(_) | Json::Array(_) => {
                let mut path = Vec::with_capacity(self.path.len() + 1);
                path.extend(self.path.iter().cloned());
                path.push(seg);
                Value::from_object(JsonNode {
                    root: self.root.clone(),
                    path: path.into_boxed_slice(),
                })
            }
            scalar => scalar_to_value(scalar),
        }
    }

    fn by_key(&self, key: &str) -> Option<Value> {
        let node = self.get().as_object()?;
        let (k, v) = node.get_key_value(key)?;
        Some(self.child(Seg::Key(Arc::from(k.as_str())), v))
    }

    fn by_index(&self, index: usize) -> Option<Value> {
        let v = self.get().as_array()?.get(index)?;
        Some(self.child(Seg::Index(index), v))
    }
}

impl fmt::Debug for JsonNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl Object for JsonNode {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.get() {
            Json::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match self.get() {
            Json::Object(_) => self.by_key(key.as_str()?),
            Json::Array(_) => self.by_index(key.as_usize()?),
            _ => None,
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.by_key(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.get() {
            Json::Object(map) => {
                Enumerator::Values(map.keys().map(|k| Value::from(k.as_str())).collect())
            }
            Json::Array(items) => Enumerator::Seq(items.len()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.get() {
            Json::Object(map) => Some(map.len()),
            Json::Array(items) => Some(items.len()),
            _ => Some(0),
        }
    }

    fn is_true(self: &Arc<Self>) -> bool {
        match self.get() {
            Json::Object(map) => !map.is_empty(),
            Json::Array(items) => !items.is_empty(),
            _ => false,
        }
    }
}

/// Converts a JSON scalar to a minijinja value (objects and arrays become null here).
fn scalar_to_value(value: &Json) -> Value {
    match value {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Object(_) | Json::Array(_) => Value::from(()),
    }
}

/// Exposes a shared JSON document to templates, lazily.
pub(crate) fn json_to_value(root: Arc<Json>) -> Value {
    match &*root {
        Json::Object(_) | Json::Array(_) => Value::from_object(JsonNode {
            root,
            path: Box::new([]),
        }),
        scalar => scalar_to_value(scalar),
    }
}

/// Exposes an owned JSON value to templates.
pub(crate) fn owned_json_to_value(value: Json) -> Value {
    match value {
        Json::Object(_) | Json::Array(_) => json_to_value(Arc::new(value)),
        scalar => scalar_to_value(&scalar),
    }
}

/// Calls `f` with the JSON form of a minijinja value, borrowing when the value is a
/// payload node (no copy) and converting otherwise.
pub(crate) fn with_json<R>(value: &Value, f: impl FnOnce(&Json) -> R) -> Result<R, Error> {
    if let Some(node) = value.downcast_object_ref::<JsonNode>() {
        return Ok(f(node.get()));
    }
    let json = value_to_json(value)?;
    Ok(f(&json))
}

/// Converts a minijinja value to JSON: undefined and none become null.
pub(crate) fn value_to_json(value: &Value) -> Result<Json, Error> {
    if let Some(node) = value.downcast_object_ref::<JsonNode>() {
        return Ok(node.get().clone());
    }
    if value.is_undefined() || value.is_none() {
        return Ok(Json::Null);
    }
    if let Some(s) = value.as_str() {
        return Ok(Json::String(s.to_string()));
    }
    // Maps and lists a template built (`merge`, literals) are walked here, so the payload
    // nodes inside them are copied as JSON at once instead of node by node through
    // minijinja's object protocol, which allocates a handle for every nested object.
    match value.kind() {
        ValueKind::Map => {
            if let Some(map) = map_to_json(value)? {
                return Ok(Json::Object(map));
            }
        }
        ValueKind::Seq => {
            if let Ok(items) = value.try_iter() {
                return items
                    .map(|item| value_to_json(&item))
                    .collect::<Result<_, _>>()
                    .map(Json::Array);
            }
        }
        _ => {}
    }
    serde_json::to_value(value).map_err(|e| {
        Error::new(
            ErrorKind::Render,
            format!("cannot convert {} to JSON: {e}", value.kind()),
        )
    })
}

/// A map with string keys as a JSON object; `None` when a key is not a string (then
/// serde's rules for map keys apply).
fn map_to_json(value: &Value) -> Result<Option<serde_json::Map<String, Json>>, Error> {
    let Ok(keys) = value.try_iter() else {
        return Ok(None);
    };
    let mut map = serde_json::Map::with_capacity(value.len().unwrap_or(0));
    for key in keys {
        let Some(k) = key.as_str() else {
            return Ok(None);
        };
        let item = value
            .get_item(&key)
            .map_err(|e| Error::new(ErrorKind::Render, e.to_string()))?;
        map.insert(k.to_owned(), value_to_json(&item)?);
    }
    Ok(Some(map))
}

/// Strings as-is; numbers and booleans plain; null as ""; arrays and objects as compact JSON.
pub(crate) fn json_to_string(value: Json) -> String {
    match value {
        Json::String(s) => s,
        Json::Null => String::new(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The text form of a minijinja value used by string filters (`sha256`, `b64encode`):
/// strings as-is, bytes as bytes, everything else as compact JSON.
pub(crate) fn value_bytes(value: &Value) -> Result<Vec<u8>, Error> {
    if let Some(s) = value.as_str() {
        return Ok(s.as_bytes().to_vec());
    }
    if let Some(b) = value.as_bytes() {
        return Ok(b.to_vec());
    }
    Ok(json_to_string(value_to_json(value)?).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_maps_and_lists_with_payload_nodes_convert_to_json() {
        let root = Arc::new(json!({"b": 1, "a": {"x": [1, 2]}, "list": [{"y": null}]}));
        let node = json_to_value(root);
        // As `merge` builds it: the payload's entries, then new ones.
        let mut pairs: Vec<(Value, Value)> = ["b", "a", "list"]
            .into_iter()
            .map(|k| (Value::from(k), node.get_attr(k).expect("attr")))
            .collect();
        pairs.push((Value::from("seen"), Value::from(true)));
        pairs.push((Value::from("none"), Value::from(())));
        let built = Value::from_iter(pairs);
        let json = value_to_json(&built).expect("json");
        assert_eq!(
            json,
            json!({"b": 1, "a": {"x": [1, 2]}, "list": [{"y": null}], "seen": true, "none": null})
        );
        // Exactly what serializing the minijinja value gives, key order included.
        let serialized = serde_json::to_value(&built).expect("serialize");
        let keys =
            |v: &Json| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
        assert_eq!(json, serialized);
        assert_eq!(keys(&json), keys(&serialized));
        let seq = Value::from(vec![node.get_attr("a").expect("a"), Value::from("s")]);
        assert_eq!(
            value_to_json(&seq).expect("json"),
            json!([{"x": [1, 2]}, "s"])
        );
        // Non-string keys follow serde's rules (numbers become strings).
        let numbered = Value::from_iter([(Value::from(1), Value::from("one"))]);
        assert_eq!(value_to_json(&numbered).expect("json"), json!({"1": "one"}));
    }

    #[test]
    fn nodes_walk_lazily_and_convert_back() {
        let root = Arc::new(json!({"a": {"b": [1, {"c": "x"}]}, "n": 2.5}));
        let v = json_to_value(root);
        let a = v.get_attr("a").expect("a");
        let b = a.get_attr("b").expect("b");
        assert_eq!(b.len(), Some(2));
        let c = b
            .get_item_by_index(1)
            .and_then(|x| x.get_attr("c"))
            .expect("c");
        assert_eq!(c.as_str(), Some("x"));
        assert_eq!(value_to_json(&b).expect("json"), json!([1, {"c": "x"}]));
        assert_eq!(
            value_to_json(&v.get_attr("n").expect("n")).expect("json"),
            json!(2.5)
        );
        assert!(v.get_attr("missing").expect("lookup").is_undefined());
    }

    #[test]
    fn strings_of_values() {
        assert_eq!(json_to_string(json!("x")), "x");
        assert_eq!(json_to_string(json!(null)), "");
        assert_eq!(json_to_string(json!(true)), "true");
        assert_eq!(json_to_string(json!(1.5)), "1.5");
        assert_eq!(json_to_string(json!({"a": [1]})), r#"{"a":[1]}"#);
    }
}
