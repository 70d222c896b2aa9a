//! The table of agent types. Adding a type: write its module, add one line to
//! `agent_types!` below. The parser, the JSON Schema and the dispatch follow from it.

use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::build::pointer_segment;
use crate::{Agent, BuildContext, Invalid};

/// An agent type: its options and how to build an agent from them.
pub trait AgentType: Agent + Sized {
    /// The type's own options (without the common ones), documented for the schema.
    type Options: DeserializeOwned + JsonSchema;

    /// Builds the agent, compiling its templates; records problems in `cx`.
    fn build(options: Self::Options, cx: &mut BuildContext<'_>) -> Result<Self, Invalid>;
}

macro_rules! agent_types {
    ($($name:literal => $ty:ty),* $(,)?) => {
        /// Every agent type name, in table order.
        pub const TYPES: &[&str] = &[$($name),*];

        /// Builds an agent of type `kind` from its own options (the common ones removed).
        /// `None` when the type is unknown.
        pub fn build(kind: &str, options: Value, cx: &mut BuildContext<'_>) -> Option<Result<Arc<dyn Agent>, Invalid>> {
            match kind {
                $($name => Some(build_one::<$ty>(options, cx)),)*
                _ => None,
            }
        }

        /// The JSON Schema of type `kind`'s own options.
        pub fn options_schema(kind: &str, generator: &mut SchemaGenerator) -> Option<Schema> {
            match kind {
                $($name => Some(<<$ty as AgentType>::Options as JsonSchema>::json_schema(generator)),)*
                _ => None,
            }
        }
    };
}

agent_types! {
    "webhook" => crate::webhook::Webhook,
    "http_request" => crate::http_request::HttpRequest,
    "transform" => crate::transform::Transform,
    "trigger" => crate::trigger::Trigger,
    "action" => crate::action::Action,
    "delay" => crate::delay::Delay,
    "story" => crate::story::StoryAgent,
    "command" => crate::command::Command,
    "schedule" => crate::schedule::Schedule,
    "email" => crate::email::Email,
}

fn build_one<T: AgentType>(
    options: Value,
    cx: &mut BuildContext<'_>,
) -> Result<Arc<dyn Agent>, Invalid> {
    // Report unknown options first (all of them, with suggestions) and drop them, so that
    // the remaining options are still checked in the same pass.
    let mut options = options;
    let allowed = option_names::<T>();
    let mut unknown_seen = false;
    if let (Value::Object(map), Some(allowed)) = (&mut options, &allowed) {
        let unknown: Vec<String> = map
            .keys()
            .filter(|k| !allowed.contains(k))
            .cloned()
            .collect();
        for field in unknown {
            map.remove(&field);
            unknown_seen = true;
            let candidates = allowed
                .iter()
                .map(String::as_str)
                .chain(crate::COMMON_OPTION_NAMES.iter().copied());
            let path = format!("/{}", pointer_segment(&field));
            match best_match(&field, candidates) {
                Some(s) => cx.error_with_hint(
                    &path,
                    format!("unknown option `{field}`"),
                    format!("did you mean `{s}`?"),
                ),
                None => cx.error_with_hint(
                    &path,
                    format!("unknown option `{field}`"),
                    format!("this agent type takes: {}", allowed.join(", ")),
                ),
            }
        }
    }
    let parsed: T::Options = match serde_path_to_error::deserialize(&options) {
        Ok(o) => o,
        Err(e) => {
            let message = e.inner().to_string();
            let mut path = pointer_of(e.path());
            if path.is_empty() {
                // Internally tagged options (`mode: …`) lose the path of a bad value.
                path = option_quoted_in(&options, &message).unwrap_or_default();
            }
            if let Some(field) = unknown_field(&message) {
                if !path.ends_with(&format!("/{}", pointer_segment(field))) {
                    path.push('/');
                    path.push_str(&pointer_segment(field));
                }
                let expected = expected_fields(&message);
                let candidates = expected
                    .iter()
                    .map(String::as_str)
                    .chain(crate::COMMON_OPTION_NAMES.iter().copied());
                match best_match(field, candidates) {
                    Some(s) => cx.error_with_hint(
                        &path,
                        format!("unknown option `{field}`"),
                        format!("did you mean `{s}`?"),
                    ),
                    None => cx.error_with_hint(
                        &path,
                        format!("unknown option `{field}`"),
                        format!("this agent type takes: {}", expected.join(", ")),
                    ),
                }
            } else {
                cx.error(&path, message);
            }
            return Err(Invalid);
        }
    };
    let built = T::build(parsed, cx).map(|a| Arc::new(a) as Arc<dyn Agent>);
    if unknown_seen {
        return Err(Invalid);
    }
    built
}

/// The option names a type accepts, read from its schema (the union over `oneOf` branches),
/// or `None` when the schema does not list them.
fn option_names<T: AgentType>() -> Option<Vec<String>> {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = <T::Options as JsonSchema>::json_schema(&mut generator).to_value();
    let mut names: Vec<String> = Vec::new();
    let mut collect = |v: &Value| -> bool {
        match v.get("properties").and_then(Value::as_object) {
            Some(p) => {
                names.extend(p.keys().cloned());
                true
            }
            None => false,
        }
    };
    let complete = match schema.get("oneOf").and_then(Value::as_array) {
        Some(branches) => branches.iter().all(&mut collect),
        None => collect(&schema),
    };
    names.sort();
    names.dedup();
    complete.then_some(names)
}

/// The one top-level option whose value the error message quotes (`invalid duration "soon"`),
/// as a JSON pointer.
fn option_quoted_in(options: &Value, message: &str) -> Option<String> {
    let map = options.as_object()?;
    let mut quoted = map.iter().filter_map(|(k, v)| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        (message.contains(&format!("\"{text}\"")) || message.contains(&format!(" {text},")))
            .then(|| format!("/{}", pointer_segment(k)))
    });
    let first = quoted.next()?;
    quoted.next().is_none().then_some(first)
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&pointer_segment(key));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// The field named by serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The names listed in serde's "expected one of `a`, `b`" / "expected `a`" tail.
fn expected_fields(message: &str) -> Vec<String> {
    let Some((_, tail)) = message.split_once("expected") else {
        return Vec::new();
    };
    tail.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// The closest candidate to a misspelt name, if one is close enough to suggest.
pub fn best_match<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), c))
        .filter(|(score, _)| *score >= 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_serde_unknown_field_messages() {
        let m = "unknown field `metod`, expected one of `url`, `method`, `headers`";
        assert_eq!(unknown_field(m), Some("metod"));
        assert_eq!(expected_fields(m), vec!["url", "method", "headers"]);
        assert_eq!(
            best_match("metod", ["url", "method", "headers"]),
            Some("method")
        );
        assert_eq!(best_match("qqq", ["url", "method"]), None);
    }
}
