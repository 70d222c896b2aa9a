//! Unit tests of `http_request`'s helpers.
use super::*;

/// The body before `render_with`: render to a `Value` (a deep copy), then serialize.
fn old_body(
    v: &TemplateValue,
    t: &switchyard_template::Context,
) -> Option<(Vec<u8>, &'static str)> {
    match v.render(t).expect("renders") {
        Value::Null => None,
        Value::String(s) => Some((s.into_bytes(), "text/plain; charset=utf-8")),
        other => Some((
            serde_json::to_vec(&other).expect("json"),
            "application/json",
        )),
    }
}

#[test]
fn json_bodies_are_byte_identical_to_rendering_a_copy_first() {
    let payload = serde_json::json!({
        "order": {"id": 7, "items": [{"sku": "a", "qty": 2}, {"sku": "b", "price": 1.25}]},
        "note": "x\"y\u{e9}", "none": null, "zeta": true, "alpha": [],
    });
    let t = switchyard_template::ContextBuilder::new()
        .agent("shape", std::sync::Arc::new(payload))
        .build();
    let mut c = switchyard_template::Compiler::new(switchyard_template::Limits::default());
    let bodies: Vec<TemplateValue> = [
        serde_json::json!("{{ shape }}"),
        serde_json::json!("{{ shape.order }}"),
        serde_json::json!("{{ shape.note }}"),
        serde_json::json!("{{ shape.none }}"),
        serde_json::json!("{{ shape | merge({\"at\": 1}) }}"),
        serde_json::json!({"wrapped": "{{ shape }}"}),
        serde_json::json!("text {{ shape.order.id }}"),
    ]
    .iter()
    .map(|b| c.value(b).expect("compiles"))
    .collect();
    c.finish();
    for v in &bodies {
        let new = v
            .render_with(&t, json_body)
            .expect("renders")
            .expect("body");
        assert_eq!(new, old_body(v, &t));
    }
}

#[test]
fn retry_after_in_seconds_and_dates() {
    assert_eq!(
        parse_retry_after(&HeaderValue::from_static("7")),
        Some(Duration::from_secs(7))
    );
    let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
    assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
    assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
}
