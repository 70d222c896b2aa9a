//! Partial matching of expected events: an expected mapping's keys must match (extra keys in
//! the event are ignored), lists match element by element, scalars are equal (numbers by
//! value: 3 matches 3.0).

use serde_json::Value;

/// One field that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Where: `body.items[0].id` (empty for the whole event).
    pub field: String,
    /// What the test expects.
    pub expected: Value,
    /// What the agent emitted (`None`: the field is missing).
    pub got: Option<Value>,
}

/// Every field where `got` does not match `expected`.
pub fn mismatches(expected: &Value, got: &Value) -> Vec<Mismatch> {
    let mut out = Vec::new();
    walk(expected, Some(got), &mut String::new(), &mut out);
    out
}

fn walk(expected: &Value, got: Option<&Value>, path: &mut String, out: &mut Vec<Mismatch>) {
    let Some(got) = got else {
        out.push(Mismatch {
            field: path.clone(),
            expected: expected.clone(),
            got: None,
        });
        return;
    };
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            for (k, ev) in e {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(ev, g.get(k), path, out);
                path.truncate(len);
            }
        }
        (Value::Array(e), Value::Array(g)) if e.len() == g.len() => {
            for (i, (ev, gv)) in e.iter().zip(g).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(ev, Some(gv), path, out);
                path.truncate(len);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (e, g) if e == g => {}
        (e, g) => out.push(Mismatch {
            field: path.clone(),
            expected: e.clone(),
            got: Some(g.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn extra_keys_are_ignored_and_differences_are_located() {
        let got = json!({"status": 201, "body": {"n": 4, "items": [{"id": 1}, {"id": 2}], "x": 1}});
        assert!(mismatches(
            &json!({"status": 201.0, "body": {"items": [{}, {"id": 2}]}}),
            &got
        )
        .is_empty());
        let m = mismatches(
            &json!({"body": {"n": 3, "items": [{"id": 1}, {"id": 3}], "missing": true}}),
            &got,
        );
        let fields: Vec<&str> = m.iter().map(|m| m.field.as_str()).collect();
        assert_eq!(fields, ["body.n", "body.items[1].id", "body.missing"]);
        assert_eq!(m[0].got, Some(json!(4)));
        assert_eq!(m[2].got, None);
    }

    #[test]
    fn lists_of_another_length_and_other_types_differ_as_a_whole() {
        let m = mismatches(&json!({"a": [1]}), &json!({"a": [1, 2]}));
        assert_eq!(m[0].field, "a");
        let m = mismatches(&json!("x"), &json!({"x": 1}));
        assert_eq!(m[0].field, "");
    }
}
