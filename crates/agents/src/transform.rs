//! `transform`: reshapes events. Modes: `message` (emit a templated payload), `extract`
//! (pull values out with JSONPath or regular expressions) and `explode` (one event per element
//! of an array).

use std::collections::BTreeMap;

use async_trait::async_trait;
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use switchyard_template::{JsonPath, Template, TemplateValue};

use crate::registry::AgentType;
use crate::{Agent, AgentError, BuildContext, ExecContext, ImplodeResult, Invalid, Outcome};
use switchyard_types::Duration;

/// Options of a `transform` agent, by `mode`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformOptions {
    /// Emit `payload`, a JSON value whose strings are templates.
    Message {
        /// The payload to emit.
        payload: Value,
    },
    /// Emit an object with one key per entry of `extract`.
    Extract {
        /// `key: {jsonpath: EXPR, from: TEMPLATE}` or `key: {regex: RE, from: TEMPLATE}`.
        extract: BTreeMap<String, Extractor>,
    },
    /// Pass the first event per `key`, drop later ones until `within` has passed since it.
    Deduplicate {
        /// What makes two events the same (a template: `{{ inbound.body.email }}`).
        key: String,
        /// How long a key stays seen, counted from the first event.
        within: Duration,
    },
    /// Pass at most `limit` events per `per` (per `key`), drop the excess.
    Throttle {
        /// Events let through per period.
        limit: u32,
        /// The period (a sliding window).
        per: Duration,
        /// Separate budgets per key (a template); default one budget.
        #[serde(default)]
        key: Option<String>,
    },
    /// Gather events per `key`; emit `{items, count, complete}` when `size` arrived, or with
    /// `complete: false` when `max_wait` has passed since the first.
    Implode {
        /// Which group an event belongs to (a template).
        key: String,
        /// How many events complete a group (a template or a number).
        size: Value,
        /// The longest a group stays open.
        max_wait: Duration,
    },
    /// Emit one event `{item, index, count}` per element of an array.
    Explode {
        /// JSONPath to the array, evaluated on the incoming payload (`$.body.items` for a
        /// webhook event).
        path: String,
    },
}

/// How one value is extracted.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum Extractor {
    /// The first JSONPath match (or null); `from` defaults to the incoming event.
    JsonPath {
        /// A JSONPath expression: `$.body.items[0].id`.
        jsonpath: String,
        /// The value to search (a template; default `{{ event }}`).
        #[serde(default)]
        from: Option<String>,
        /// Emit every match as a list rather than the first.
        #[serde(default)]
        all: bool,
    },
    /// A regular expression over a string: the named groups as an object, else the first
    /// group, else the whole match (null when nothing matches).
    Regex {
        /// The regular expression (Rust `regex` syntax).
        regex: String,
        /// The text to search (a template).
        from: String,
    },
}

/// A built `transform` agent.
#[derive(Debug)]
pub enum Transform {
    /// `mode: message`.
    Message(TemplateValue),
    /// `mode: extract`.
    Extract(Vec<(String, BuiltExtractor)>),
    /// `mode: deduplicate`.
    Deduplicate {
        /// Key template.
        key: Template,
        /// Window.
        within: Duration,
    },
    /// `mode: throttle`.
    Throttle {
        /// Budget.
        limit: u32,
        /// Window.
        per: Duration,
        /// Key template.
        key: Option<Template>,
    },
    /// `mode: implode`.
    Implode {
        /// Key template.
        key: Template,
        /// Size template.
        size: TemplateValue,
        /// Longest wait.
        max_wait: Duration,
    },
    /// `mode: explode`.
    Explode(JsonPath),
}

/// A compiled extractor.
#[derive(Debug)]
pub enum BuiltExtractor {
    /// JSONPath over a value.
    JsonPath {
        /// The compiled path.
        path: JsonPath,
        /// Where to search (None: the incoming payload).
        from: Option<Template>,
        /// Emit all matches.
        all: bool,
    },
    /// Regex over text.
    Regex {
        /// The compiled expression.
        regex: Regex,
        /// Where to search.
        from: Template,
    },
}

impl AgentType for Transform {
    type Options = TransformOptions;

    fn build(o: TransformOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        match o {
            TransformOptions::Message { payload } => {
                let t = cx.value("/payload", &payload).ok_or(Invalid)?;
                cx.finish_with(Transform::Message(t))
            }
            TransformOptions::Extract { extract } => {
                let mut out = Vec::with_capacity(extract.len());
                for (key, ex) in extract {
                    let base = format!("/extract/{key}");
                    match ex {
                        Extractor::JsonPath {
                            jsonpath,
                            from,
                            all,
                        } => {
                            let path = match JsonPath::parse(&jsonpath) {
                                Ok(p) => Some(p),
                                Err(e) => {
                                    cx.error(
                                        &format!("{base}/jsonpath"),
                                        format!("bad JSONPath: {e}"),
                                    );
                                    None
                                }
                            };
                            let from = from.and_then(|f| cx.template(&format!("{base}/from"), &f));
                            if let Some(path) = path {
                                out.push((key, BuiltExtractor::JsonPath { path, from, all }));
                            }
                        }
                        Extractor::Regex { regex, from } => {
                            let re = match Regex::new(&regex) {
                                Ok(r) => Some(r),
                                Err(e) => {
                                    cx.error(
                                        &format!("{base}/regex"),
                                        format!("bad regular expression: {e}"),
                                    );
                                    None
                                }
                            };
                            let from = cx.template(&format!("{base}/from"), &from);
                            if let (Some(regex), Some(from)) = (re, from) {
                                out.push((key, BuiltExtractor::Regex { regex, from }));
                            }
                        }
                    }
                }
                cx.finish_with(Transform::Extract(out))
            }
            TransformOptions::Deduplicate { key, within } => {
                let key = cx.template("/key", &key).ok_or(Invalid)?;
                cx.finish_with(Transform::Deduplicate { key, within })
            }
            TransformOptions::Throttle { limit, per, key } => {
                if limit == 0 {
                    cx.error("/limit", "`limit` must be at least 1");
                }
                if per.std().is_zero() {
                    cx.error("/per", "`per` must be longer than 0");
                }
                let key = match key {
                    Some(k) => Some(cx.template("/key", &k).ok_or(Invalid)?),
                    None => None,
                };
                cx.finish_with(Transform::Throttle { limit, per, key })
            }
            TransformOptions::Implode {
                key,
                size,
                max_wait,
            } => {
                if let Some(n) = size.as_i64() {
                    if n < 1 {
                        cx.error("/size", "`size` must be at least 1");
                    }
                } else if !size.is_string() {
                    cx.error("/size", "`size` must be a number or a template");
                }
                let key = cx.template("/key", &key).ok_or(Invalid)?;
                let size = cx.value("/size", &size).ok_or(Invalid)?;
                cx.finish_with(Transform::Implode {
                    key,
                    size,
                    max_wait,
                })
            }
            TransformOptions::Explode { path } => match JsonPath::parse(&path) {
                Ok(p) => cx.finish_with(Transform::Explode(p)),
                Err(e) => {
                    cx.error_with_hint(
                        "/path",
                        format!("bad JSONPath: {e}"),
                        "the path to an array in the incoming event, like `$.body.items`",
                    );
                    Err(Invalid)
                }
            },
        }
    }
}

#[async_trait]
impl Agent for Transform {
    async fn execute(&self, cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        match self {
            Transform::Message(payload) => Ok(Outcome::Emit(vec![payload.render(cx.templates)?])),
            Transform::Extract(extractors) => {
                let mut out = Map::with_capacity(extractors.len());
                for (key, ex) in extractors {
                    let value = match ex {
                        BuiltExtractor::JsonPath { path, from, all } => {
                            let rendered;
                            let source: &Value = match from {
                                Some(t) => {
                                    rendered = t.render(cx.templates)?;
                                    &rendered
                                }
                                None => cx.input,
                            };
                            if *all {
                                Value::Array(path.query(source).into_iter().cloned().collect())
                            } else {
                                path.first(source).unwrap_or(Value::Null)
                            }
                        }
                        BuiltExtractor::Regex { regex, from } => {
                            let text = from.render_string(cx.templates)?;
                            regex_extract(regex, &text)
                        }
                    };
                    out.insert(key.clone(), value);
                }
                Ok(Outcome::Emit(vec![Value::Object(out)]))
            }
            Transform::Deduplicate { key, within } => {
                let k = key.render_string(cx.templates)?;
                let first = cx.host.admit(&k, within.std(), 1).await?;
                Ok(if first {
                    Outcome::Emit(vec![(**cx.input).clone()])
                } else {
                    Outcome::Skip
                })
            }
            Transform::Throttle { limit, per, key } => {
                let k = match key {
                    Some(t) => t.render_string(cx.templates)?,
                    None => String::new(),
                };
                let pass = cx.host.admit(&k, per.std(), *limit).await?;
                Ok(if pass {
                    Outcome::Emit(vec![(**cx.input).clone()])
                } else {
                    Outcome::Skip
                })
            }
            Transform::Implode {
                key,
                size,
                max_wait,
            } => {
                let k = key.render_string(cx.templates)?;
                if cx.resumed {
                    return Ok(match cx.host.implode_flush(&k).await? {
                        Some(items) => Outcome::Emit(vec![group(items, false)]),
                        None => Outcome::Skip,
                    });
                }
                let n = match size.render(cx.templates)? {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    AgentError::permanent(
                        "invalid_size",
                        "`size` did not render to a whole number of at least 1",
                    )
                })?;
                match cx.host.implode_add(&k, cx.input, n as usize).await? {
                    ImplodeResult::Complete(items) => Ok(Outcome::Emit(vec![group(items, true)])),
                    ImplodeResult::Pending { opened: true } => Ok(Outcome::Defer {
                        until: switchyard_types::now()
                            + chrono::Duration::from_std(max_wait.std())
                                .unwrap_or(chrono::Duration::days(1)),
                    }),
                    ImplodeResult::Pending { opened: false } => Ok(Outcome::Skip),
                }
            }
            Transform::Explode(path) => explode(path, cx.input).map(Outcome::Emit),
        }
    }
}

fn group(items: Vec<Value>, complete: bool) -> Value {
    let count = items.len();
    serde_json::json!({"items": items, "count": count, "complete": complete})
}

/// `{item, index, count}` for each element of the array at `path`.
fn explode(path: &JsonPath, input: &Value) -> Result<Vec<Value>, AgentError> {
    let found = path.query(input);
    let array = match found.as_slice() {
        [Value::Array(items)] => items,
        [] => {
            return Err(AgentError::permanent(
                "explode",
                format!("`{}` matches nothing in the incoming event", path.source()),
            ))
        }
        [other] => {
            return Err(AgentError::permanent(
                "explode",
                format!("`{}` is {}, not an array", path.source(), json_type(other)),
            ))
        }
        many => {
            return Err(AgentError::permanent(
                "explode",
                format!(
                    "`{}` matches {} values, not one array (use a path to the array itself)",
                    path.source(),
                    many.len()
                ),
            ))
        }
    };
    let count = array.len();
    Ok(array
        .iter()
        .enumerate()
        .map(|(index, item)| json!({"item": item, "index": index, "count": count}))
        .collect())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Named groups as an object, else the first group, else the whole match; null if none.
fn regex_extract(regex: &Regex, text: &str) -> Value {
    let Some(caps) = regex.captures(text) else {
        return Value::Null;
    };
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    if !names.is_empty() {
        let mut m = Map::new();
        for name in names {
            let v = caps
                .name(name)
                .map_or(Value::Null, |c| Value::String(c.as_str().to_string()));
            m.insert(name.to_string(), v);
        }
        return Value::Object(m);
    }
    let group = if regex.captures_len() > 1 {
        caps.get(1)
    } else {
        caps.get(0)
    };
    group.map_or(Value::Null, |g| Value::String(g.as_str().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn regex_extraction_shapes() {
        let named = Regex::new(r"deploy (?P<app>\w+) to (?P<env>\w+)").unwrap();
        assert_eq!(
            regex_extract(&named, "deploy web to qa"),
            json!({"app": "web", "env": "qa"})
        );
        let group = Regex::new(r"id=(\d+)").unwrap();
        assert_eq!(regex_extract(&group, "x id=42 y"), json!("42"));
        let whole = Regex::new(r"\d+").unwrap();
        assert_eq!(regex_extract(&whole, "abc 7"), json!("7"));
        assert_eq!(regex_extract(&whole, "none"), Value::Null);
    }

    #[test]
    fn explode_emits_item_index_count_and_refuses_non_arrays() {
        let path = JsonPath::parse("$.body.items").unwrap();
        let input = json!({"body": {"items": ["a", {"b": 1}, 3]}});
        assert_eq!(
            explode(&path, &input).unwrap(),
            vec![
                json!({"item": "a", "index": 0, "count": 3}),
                json!({"item": {"b": 1}, "index": 1, "count": 3}),
                json!({"item": 3, "index": 2, "count": 3}),
            ]
        );
        assert_eq!(
            explode(&path, &json!({"body": {"items": []}})).unwrap(),
            Vec::<Value>::new()
        );
        let e = explode(&path, &json!({"body": {"items": {"a": 1}}})).unwrap_err();
        assert_eq!(e.kind, "explode");
        assert_eq!(e.message, "`$.body.items` is an object, not an array");
        let e = explode(&path, &json!({"body": {}})).unwrap_err();
        assert!(e.message.contains("matches nothing"), "{}", e.message);
        let all = JsonPath::parse("$.body.items[*]").unwrap();
        let e = explode(&all, &input).unwrap_err();
        assert!(e.message.contains("matches 3 values"), "{}", e.message);
    }
}
