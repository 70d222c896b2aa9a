//! YAML → JSON with the position of every value and key.
//!
//! Stories are parsed with `saphyr` (a maintained YAML 1.2 parser with markers) into a
//! `serde_json::Value` plus a [`SpanMap`] from JSON pointer to line and column, so that every
//! later check — serde deserialization, semantic validation, template compilation — can point
//! at the exact place in the file.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// Where each value (and each mapping key) of a document sits in its source.
#[derive(Clone, Debug, Default)]
pub struct SpanMap {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl SpanMap {
    /// The position of the value at a JSON pointer (`/agents/0/url`); falls back to the
    /// nearest enclosing value that has one.
    pub fn value(&self, pointer: &str) -> Position {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Position { line: 1, column: 1 },
            }
        }
    }

    /// The position of the key of the entry at a JSON pointer, or of its value when unknown.
    pub fn key(&self, pointer: &str) -> Position {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }
}

/// A YAML document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// Where.
    pub position: Position,
    /// What.
    pub message: String,
}

/// Parses one YAML document into JSON plus positions. An empty document is `null`.
pub fn parse(source: &str) -> Result<(Value, SpanMap), YamlError> {
    let docs = MarkedYaml::load_from_str(source).map_err(|e| YamlError {
        position: Position {
            line: e.marker().line(),
            column: e.marker().col() + 1,
        },
        message: format!("YAML syntax error: {}", e.info()),
    })?;
    let mut spans = SpanMap::default();
    let Some(doc) = docs.first() else {
        return Ok((Value::Null, spans));
    };
    if docs.len() > 1 {
        let second = &docs[1];
        return Err(YamlError {
            position: position(second),
            message: "a story file holds one YAML document; found a second one (`---`)".into(),
        });
    }
    let mut pointer = String::new();
    let value = convert(doc, &mut pointer, &mut spans)?;
    Ok((value, spans))
}

fn position(node: &MarkedYaml<'_>) -> Position {
    Position {
        line: node.span.start.line(),
        column: node.span.start.col() + 1,
    }
}

fn convert(
    node: &MarkedYaml<'_>,
    pointer: &mut String,
    spans: &mut SpanMap,
) -> Result<Value, YamlError> {
    spans.values.insert(pointer.clone(), position(node));
    let err = |message: String| YamlError {
        position: position(node),
        message,
    };
    Ok(match &node.data {
        YamlData::Value(scalar) => scalar_to_json(scalar).ok_or_else(|| {
            err("a number that is not finite (.nan/.inf) cannot be used here".into())
        })?,
        YamlData::Representation(text, _, _) => Value::String(text.to_string()),
        YamlData::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                out.push(convert(item, pointer, spans)?);
                pointer.truncate(len);
            }
            Value::Array(out)
        }
        YamlData::Mapping(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map.iter() {
                let key_text = match &key.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(Scalar::Integer(i)) => i.to_string(),
                    YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                    YamlData::Value(Scalar::Null) => "null".to_string(),
                    YamlData::Representation(text, _, _) => text.to_string(),
                    _ => {
                        return Err(YamlError {
                            position: position(key),
                            message: "mapping keys must be plain strings".into(),
                        })
                    }
                };
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key_text.replace('~', "~0").replace('/', "~1"));
                spans.keys.insert(pointer.clone(), position(key));
                let v = convert(value, pointer, spans)?;
                pointer.truncate(len);
                out.insert(key_text, v);
            }
            Value::Object(out)
        }
        YamlData::Tagged(_, inner) => convert(inner, pointer, spans)?,
        YamlData::Alias(_) => {
            return Err(err(
                "YAML aliases (*name) are not supported in stories; repeat the value".into(),
            ))
        }
        YamlData::BadValue => return Err(err("this value could not be read".into())),
    })
}

fn scalar_to_json(scalar: &Scalar<'_>) -> Option<Value> {
    Some(match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Value::Number(Number::from_f64(f.into_inner())?),
        Scalar::String(s) => Value::String(s.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_and_records_positions() {
        let src = "name: hello\nagents:\n  - name: a\n    n: 3\n    f: 1.5\n    ok: true\n    nothing: ~\n";
        let (v, spans) = parse(src).unwrap();
        assert_eq!(v["agents"][0]["n"], 3);
        assert_eq!(v["agents"][0]["f"], 1.5);
        assert_eq!(v["agents"][0]["ok"], true);
        assert!(v["agents"][0]["nothing"].is_null());
        assert_eq!(spans.value("/agents/0/n"), Position { line: 4, column: 8 });
        assert_eq!(spans.key("/agents/0/n"), Position { line: 4, column: 5 });
        assert_eq!(
            spans.value("/agents/0/n/deeper"),
            Position { line: 4, column: 8 }
        );
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let e = parse("name: a\nagents:\n  - name: [unclosed\n").unwrap_err();
        assert!(e.message.contains("YAML syntax error"), "{}", e.message);
        assert!(e.position.line >= 3, "{:?}", e.position);
    }

    #[test]
    fn refuses_duplicate_keys() {
        let e = parse("name: a\nname: b\n").unwrap_err();
        assert!(e.message.contains("duplicated key"), "{}", e.message);
        assert_eq!(e.position.line, 2);
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let (v, _) = parse("a: '100'\nb: 100\n").unwrap();
        assert_eq!(v["a"], "100");
        assert_eq!(v["b"], 100);
    }
}
