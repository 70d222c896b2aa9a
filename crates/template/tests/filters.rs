//! Switchyard's filters and functions, one table per filter.

mod common;

use common::{err, ok};
use serde_json::{json, Value};
use switchyard_template::ErrorKind;

fn table(cases: &[(&str, Value)]) {
    for (source, want) in cases {
        assert_eq!(&ok(source), want, "{source:?}");
    }
}

fn failures(cases: &[(&str, ErrorKind)]) {
    for (source, kind) in cases {
        let e = err(source);
        assert_eq!(e.kind, *kind, "{source:?}: {e}");
    }
}

#[test]
fn json_filter() {
    table(&[
        (
            "{{ inbound.body.items[0] | json }}",
            json!(r#"{"id":1,"n":"x"}"#),
        ),
        ("{{ inbound.body.tags | json }}", json!(r#"["a","b","c"]"#)),
        ("{{ 'a\"b' | json }}", json!(r#""a\"b""#)),
        ("{{ inbound.body.count | json }}", json!("2")),
        ("{{ inbound.body.none | json }}", json!("null")),
        ("{{ {'k': [1, true]} | json }}", json!(r#"{"k":[1,true]}"#)),
        (
            "body={{ shape | json }}",
            json!(r#"body={"greeting":"hi","n":3}"#),
        ),
        // minijinja's own tojson stays available.
        ("{{ shape.n | tojson }}", json!("3")),
    ]);
    failures(&[("{{ nope | json }}", ErrorKind::Undefined)]);
    assert!(err("{{ nope | json }}").message.contains("`json`"));
}

#[test]
fn from_json_filter() {
    table(&[
        (r#"{{ ('{"a": [1, 2]}' | from_json).a[1] }}"#, json!(2)),
        (
            r#"{{ '{"a": {"b": null}}' | from_json }}"#,
            json!({"a": {"b": null}}),
        ),
        ("{{ '[1, 2.5, \"x\"]' | from_json }}", json!([1, 2.5, "x"])),
        ("{{ '3' | from_json }}", json!(3)),
        ("{{ 'true' | from_json }}", json!(true)),
        (
            "{{ inbound.body | json | from_json == inbound.body }}",
            json!(true),
        ),
        (
            "{{ (inbound.body | json | from_json).items[1].n }}",
            json!("y"),
        ),
    ]);
    failures(&[
        ("{{ 'not json' | from_json }}", ErrorKind::Filter),
        ("{{ '{\"a\":' | from_json }}", ErrorKind::Filter),
    ]);
    assert!(err("{{ 'nope' | from_json }}")
        .message
        .contains("invalid JSON"));
}

#[test]
fn base64_filters() {
    table(&[
        ("{{ 'hello' | b64encode }}", json!("aGVsbG8=")),
        ("{{ '' | b64encode }}", json!("")),
        ("{{ 'aGVsbG8=' | b64decode }}", json!("hello")),
        ("{{ 'aGVsbG8' | b64decode }}", json!("hello")),
        ("{{ 'héllo ✓' | b64encode | b64decode }}", json!("héllo ✓")),
        ("{{ inbound.body.count | b64encode }}", json!("Mg==")),
        (
            "{{ ('user:' ~ credential.token) | b64encode }}",
            json!("dXNlcjpzM2NyM3QtdDBrZW4="),
        ),
    ]);
    failures(&[
        ("{{ '!!!' | b64decode }}", ErrorKind::Filter),
        ("{{ 'aGVsbG8-' | b64decode }}", ErrorKind::Filter),
        // Valid base64 of a byte that is not UTF-8.
        ("{{ '/w==' | b64decode }}", ErrorKind::Filter),
    ]);
    assert!(err("{{ '!!!' | b64decode }}").message.contains("b64decode"));
}

#[test]
fn sha256_and_hmac_filters() {
    table(&[
        (
            "{{ 'abc' | sha256 }}",
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ),
        (
            "{{ '' | sha256 }}",
            json!("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ),
        (
            "{{ 'The quick brown fox jumps over the lazy dog' | hmac_sha256('key') }}",
            json!("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"),
        ),
        (
            "{{ 'The quick brown fox jumps over the lazy dog' | hmac_sha256(credential.key ~ 'ey') }}",
            json!("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"),
        ),
        (
            "sha256={{ '' | hmac_sha256('') }}",
            json!("sha256=b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"),
        ),
    ]);
    failures(&[
        ("{{ 'x' | hmac_sha256 }}", ErrorKind::Render),
        ("{{ nope | sha256 }}", ErrorKind::Undefined),
        ("{{ 'x' | hmac_sha256(nope) }}", ErrorKind::Undefined),
    ]);
}

#[test]
fn slugify_filter() {
    table(&[
        (
            "{{ 'Feature/ABC_12 x' | slugify }}",
            json!("feature-abc-12-x"),
        ),
        (
            "{{ inbound.body.text | slugify }}",
            json!("feature-abc-12-x"),
        ),
        ("{{ '--Hello,  World!--' | slugify }}", json!("hello-world")),
        ("{{ 'Ünïcode Café' | slugify }}", json!("unicode-cafe")),
        ("{{ '***' | slugify }}", json!("")),
    ]);
}

#[test]
fn jsonpath_filters() {
    table(&[
        ("{{ inbound.body | jsonpath('$.items[*].id') }}", json!(1)),
        (
            "{{ inbound.body | jsonpath_all('$.items[*].id') }}",
            json!([1, 2]),
        ),
        (
            "{{ inbound | jsonpath('$.body.items[1]') }}",
            json!({"id": 2, "n": "y"}),
        ),
        (
            "{{ (inbound | jsonpath('$.body.items[1]')).n }}",
            json!("y"),
        ),
        ("{{ inbound.body | jsonpath('$.nothing') }}", json!(null)),
        ("{{ inbound.body | jsonpath_all('$.nothing') }}", json!([])),
        (
            "{{ inbound.body | jsonpath_all('$.items[?@.id > 1].n') }}",
            json!(["y"]),
        ),
        ("{{ inbound | jsonpath_all('$..id') | sum }}", json!(3)),
        ("{{ inbound.body | jsonpath('$.tags[-1]') }}", json!("c")),
        ("{{ {'a': [5]} | jsonpath('$.a[0]') }}", json!(5)),
        (
            r#"{{ '{"x": {"y": 1}}' | from_json | jsonpath('$.x.y') }}"#,
            json!(1),
        ),
        (
            "{{ inbound.body | jsonpath('$.items[*].id') is none }}",
            json!(false),
        ),
    ]);
    failures(&[
        (
            "{{ inbound.body | jsonpath('$.items[') }}",
            ErrorKind::Filter,
        ),
        (
            "{{ inbound.body | jsonpath_all('items') }}",
            ErrorKind::Filter,
        ),
        ("{{ nope | jsonpath('$') }}", ErrorKind::Undefined),
    ]);
    assert!(err("{{ inbound.body | jsonpath('$.items[') }}")
        .message
        .contains("invalid JSONPath"));
}

#[test]
fn date_filter() {
    table(&[
        ("{{ now | date('%Y-%m-%d') }}", json!("2024-05-06")),
        ("{{ run.started_at | date('%H:%M:%S') }}", json!("07:08:09")),
        (
            "{{ 0 | date('%Y-%m-%dT%H:%M:%SZ') }}",
            json!("1970-01-01T00:00:00Z"),
        ),
        (
            "{{ 1700000000 | date('%Y-%m-%d %H:%M') }}",
            json!("2023-11-14 22:13"),
        ),
        ("{{ 1.5 | date('%S%.3f') }}", json!("01.500")),
        ("{{ '1700000000' | date('%Y') }}", json!("2023")),
        (
            "{{ '2024-01-02T03:04:05+02:00' | date('%H:%M %z') }}",
            json!("03:04 +0200"),
        ),
        (
            "{{ '2024-01-02T03:04:05Z' | date('%A %d %B') }}",
            json!("Tuesday 02 January"),
        ),
    ]);
    failures(&[
        ("{{ 'yesterday' | date('%Y') }}", ErrorKind::Filter),
        ("{{ now | date('%Q') }}", ErrorKind::Filter),
        ("{{ [1] | date('%Y') }}", ErrorKind::Filter),
        ("{{ 1e300 | date('%Y') }}", ErrorKind::Filter),
        ("{{ now | date }}", ErrorKind::Render),
    ]);
    assert!(err("{{ now | date('%Q') }}")
        .message
        .contains("invalid format"));
}

#[test]
fn merge_filter() {
    table(&[
        (
            "{{ inbound.body.empty | merge({'seen': true}) }}",
            json!({"seen": true}),
        ),
        (
            "{{ shape | merge({'n': 4, 'x': 1}) }}",
            json!({"greeting": "hi", "n": 4, "x": 1}),
        ),
        (
            "{{ {'a': 1} | merge(shape) }}",
            json!({"a": 1, "greeting": "hi", "n": 3}),
        ),
        ("{{ (shape | merge({'n': 9})).n }}", json!(9)),
        (
            "{{ shape | merge({}) | json }}",
            json!(r#"{"greeting":"hi","n":3}"#),
        ),
    ]);
    let merged = ok(r#"{{ inbound.body | merge({"seen": true}) }}"#);
    let obj = merged.as_object().expect("a JSON object");
    assert_eq!(obj.get("seen"), Some(&json!(true)));
    assert_eq!(obj.get("name"), Some(&json!("Ada")));
    assert_eq!(
        obj.get("items"),
        Some(&json!([{"id": 1, "n": "x"}, {"id": 2, "n": "y"}]))
    );
    assert_eq!(obj.len(), 10);
    failures(&[
        ("{{ shape | merge(1) }}", ErrorKind::Filter),
        ("{{ inbound.body.tags | merge({}) }}", ErrorKind::Filter),
        ("{{ shape | merge(nope) }}", ErrorKind::Undefined),
    ]);
}

#[test]
fn uuid_function() {
    let a = ok("{{ uuid() }}");
    let b = ok("{{ uuid() }}");
    let re =
        regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            .expect("regex");
    for v in [&a, &b] {
        assert!(re.is_match(v.as_str().expect("a string")), "{v}");
    }
    assert_ne!(a, b);
}
