//! The exported JSONPath type.

use serde_json::json;
use switchyard_template::{ErrorKind, JsonPath};

#[test]
fn first_and_all_matches() {
    let doc = json!({
        "body": {
            "items": [{"id": 1, "tags": ["x"]}, {"id": 2, "tags": []}, {"id": 3}],
            "name": "n"
        }
    });
    let cases = [
        ("$.body.items[*].id", vec![json!(1), json!(2), json!(3)]),
        ("$.body.name", vec![json!("n")]),
        ("$.body.items[0]", vec![json!({"id": 1, "tags": ["x"]})]),
        ("$.body.items[-1].id", vec![json!(3)]),
        ("$.body.items[?@.id >= 2].id", vec![json!(2), json!(3)]),
        ("$..tags[*]", vec![json!("x")]),
        ("$.body.missing", vec![]),
        ("$.body.items[9]", vec![]),
        ("$", vec![doc.clone()]),
    ];
    for (expr, want) in cases {
        let p = JsonPath::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(p.source(), expr);
        let got: Vec<_> = p.query(&doc).into_iter().cloned().collect();
        assert_eq!(got, want, "{expr}");
        assert_eq!(p.first(&doc), want.first().cloned(), "{expr}");
    }
}

#[test]
fn parsed_once_queried_many_times() {
    let p = JsonPath::parse("$.body.items").expect("parses");
    for n in 0..3 {
        let doc = json!({"body": {"items": vec![n; n]}});
        assert_eq!(p.first(&doc), Some(json!(vec![n; n])));
    }
    let q = p.clone();
    let h = std::thread::spawn(move || q.query(&json!({"body": {"items": 1}})).len());
    assert_eq!(h.join().expect("thread"), 1);
}

#[test]
fn invalid_expressions_are_syntax_errors() {
    for expr in ["", "$.a[", "a.b", "$..", "$[?(@.a >)]", "$.a]["] {
        let e = JsonPath::parse(expr).expect_err(expr);
        assert_eq!(e.kind, ErrorKind::Syntax, "{expr}");
        assert!(e.message.contains("invalid JSONPath"), "{expr}: {e}");
        assert!(!e.message.contains('\n'), "one line: {e}");
    }
    let e = JsonPath::parse("body.items").expect_err("no $");
    assert!(e.message.contains("starts with `$`"), "{e}");
}
