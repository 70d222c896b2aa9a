use serde_json::json;

use super::*;

fn params() -> Parameters {
    serde_json::from_value(json!({
        "name": {"type": "string", "required": true, "description": "Droplet name."},
        "count": {"type": "integer", "default": 1, "description": "How many"},
        "size": {"type": "string", "enum": ["s-1vcpu-1gb", "s-2vcpu-2gb"], "default": "s-1vcpu-1gb"},
        "tags": {"type": "array"},
        "monitoring": {"type": "boolean"},
        "ratio": {"type": "number"},
        "meta": {"type": "object"},
        "password": {"type": "string", "secret": true}
    }))
    .unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn keeps_file_order_and_round_trips() {
    let p = params();
    let names: Vec<&str> = p.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "name",
            "count",
            "size",
            "tags",
            "monitoring",
            "ratio",
            "meta",
            "password"
        ]
    );
    let again: Parameters = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
    assert_eq!(again, p);
}

#[test]
fn resolve_applies_defaults_and_reads_strings_by_type() {
    let got = params()
        .resolve(
            "do.create",
            obj(json!({"name": "web", "count": "3", "monitoring": "true", "ratio": 2, "tags": null})),
        )
        .unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"name": "web", "count": 3, "size": "s-1vcpu-1gb", "monitoring": true, "ratio": 2})
    );
}

#[test]
fn resolve_reports_every_problem_with_the_schema_description() {
    let problems = params()
        .resolve(
            "do.create",
            obj(json!({"count": "three", "size": "huge", "nmae": "x"})),
        )
        .unwrap_err();
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "unknown parameter `nmae` for action `do.create` (did you mean `name`?)",
            "missing required parameter `name` — name (string, required): Droplet name",
            "parameter `count` must be an integer, got \"three\" — count (integer): How many",
            "parameter `size` must be one of \"s-1vcpu-1gb\", \"s-2vcpu-2gb\", got \"huge\" — size (string)",
        ]
    );
}

#[test]
fn operator_arguments_are_typed_by_the_schema() {
    let args = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let got = params()
        .from_args(
            "do.create",
            &args(&[
                ("name", "42"),
                ("count", "3"),
                ("tags", "web,trial"),
                ("meta", r#"{"a": [1]}"#),
                ("ratio", "0.5"),
            ]),
        )
        .unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"name": "42", "count": 3, "size": "s-1vcpu-1gb", "tags": ["web", "trial"], "ratio": 0.5, "meta": {"a": [1]}})
    );
    let json_list = params()
        .from_args("do.create", &args(&[("name", "a"), ("tags", "[1, 2]")]))
        .unwrap();
    assert_eq!(json_list["tags"], json!([1, 2]));

    let problems = params()
        .from_args("do.create", &args(&[("count", "3.5"), ("meta", "nope")]))
        .unwrap_err();
    let kinds: Vec<(&str, ProblemKind)> = problems
        .iter()
        .map(|p| (p.param.as_str(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("count", ProblemKind::Type),
            ("meta", ProblemKind::Type),
            ("name", ProblemKind::Missing)
        ]
    );
}

#[test]
fn literal_checks_skip_templates() {
    let p = params();
    let is_template = |v: &Value| v.as_str().is_some_and(|s| s.contains("{{"));
    let problems = p.check_literal(
        "do.create",
        &obj(json!({"name": "{{ shape.name }}", "count": "{{ shape.n }}", "monitoring": "yes"})),
        is_template,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].param, "monitoring");
    let problems = p.check_literal("do.create", &obj(json!({})), is_template);
    assert_eq!(problems[0].kind, ProblemKind::Missing);
}

#[test]
fn integers_accept_whole_floats_only() {
    assert_eq!(ParamType::Integer.accept(&json!(3.0)), Some(json!(3)));
    assert_eq!(ParamType::Integer.accept(&json!(3.5)), None);
    assert_eq!(ParamType::Number.accept(&json!(3)), Some(json!(3)));
    assert_eq!(ParamType::Boolean.parse_text("maybe"), None);
    assert_eq!(
        ParamType::String.accept(&json!(12345)),
        Some(json!("12345"))
    );
    assert_eq!(ParamType::String.accept(&json!([1])), None);
}

#[test]
fn secrets_are_listed_for_redaction() {
    let p = params();
    let s = p.secrets(&obj(json!({"name": "a", "password": "hunter22"})));
    assert_eq!(
        s,
        vec![("params.password".to_string(), "hunter22".to_string())]
    );
}
