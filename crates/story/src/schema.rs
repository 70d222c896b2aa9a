//! The JSON Schema of story files, generated from the same types that parse them.

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};
use switchyard_agents::{registry, CommonOptions};

/// The JSON Schema (draft 2020-12) of a story file.
pub fn story_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let common = generator.subschema_for::<CommonOptions>();
    let mut common = common.to_value();
    // `subschema_for` may return a reference; resolve it to the definition.
    if let Some(r) = common.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/").to_string();
        if let Some(def) = generator.definitions().get(&name) {
            common = def.clone();
        }
    }
    let common_props = common
        .get("properties")
        .cloned()
        .unwrap_or_else(|| json!({}));

    let mut variants = Vec::new();
    for &kind in registry::TYPES {
        let Some(options) = registry::options_schema(kind, &mut generator) else {
            continue;
        };
        let options = options.to_value();
        let branches: Vec<Value> = match options.get("oneOf").and_then(Value::as_array) {
            Some(list) => list.clone(),
            None => vec![options.clone()],
        };
        for branch in branches {
            variants.push(merge(kind, &common_props, &branch, &options));
        }
    }
    let defs: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://switchyard.dev/schema/story.json",
        "title": "Switchyard story",
        "description": "A story: agents wired together by `from`. See SPEC section 3.",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "agents"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9-]+$", "description": "Unique story name."},
            "description": {"type": "string", "description": "What the story does."},
            "agents": {"type": "array", "items": {"oneOf": variants}, "description": "The agents."}
        },
        "$defs": defs,
    })
}

fn merge(kind: &str, common_props: &Value, branch: &Value, whole: &Value) -> Value {
    let mut props = common_props.as_object().cloned().unwrap_or_default();
    props.insert(
        "type".into(),
        json!({"const": kind, "description": "The agent type."}),
    );
    if let Some(p) = branch.get("properties").and_then(Value::as_object) {
        for (k, v) in p {
            props.insert(k.clone(), v.clone());
        }
    }
    let mut required = vec![json!("name"), json!("type")];
    if let Some(r) = branch.get("required").and_then(Value::as_array) {
        required.extend(r.iter().cloned());
    }
    let mut out = json!({
        "type": "object",
        "title": kind,
        "properties": props,
        "required": required,
        "additionalProperties": false,
    });
    let description = branch
        .get("description")
        .or_else(|| whole.get("description"));
    if let Some(d) = description {
        out["description"] = d.clone();
    }
    out
}
