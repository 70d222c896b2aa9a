//! Pack action parameters, StackStorm style: a map of name to `{type, required, default,
//! enum, description, secret}`, and the typing and checking of values against it — at
//! validate time (literal `with:` values), when an action runs (rendered values, defaults
//! applied), and for an operator's `key=value` arguments.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::registry::best_match;

/// The type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A string.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list.
    Array,
    /// A mapping.
    Object,
}

impl ParamType {
    /// The type's name as written in action files.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
            ParamType::Object => "object",
        }
    }

    fn with_article(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Integer => "an integer",
            ParamType::Number => "a number",
            ParamType::Boolean => "a boolean (true or false)",
            ParamType::Array => "a list",
            ParamType::Object => "a mapping",
        }
    }

    /// The value in this type's canonical form when it has this type (`3.0` is the
    /// integer 3; a number or boolean given for a string is its text: ids are often
    /// numbers), else `None`.
    pub fn accept(self, v: &Value) -> Option<Value> {
        match (self, v) {
            (ParamType::String, Value::Number(n)) => Some(Value::String(n.to_string())),
            (ParamType::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
            (ParamType::String, Value::String(_))
            | (ParamType::Number, Value::Number(_))
            | (ParamType::Boolean, Value::Bool(_))
            | (ParamType::Array, Value::Array(_))
            | (ParamType::Object, Value::Object(_)) => Some(v.clone()),
            (ParamType::Integer, Value::Number(n)) => {
                if n.is_i64() || n.is_u64() {
                    Some(v.clone())
                } else {
                    let f = n.as_f64()?;
                    (f.fract() == 0.0 && f.abs() < 9.0e15).then(|| Value::from(f as i64))
                }
            }
            _ => None,
        }
    }

    /// Reads a value of this type from text (an operator's `key=value`, or a text template's
    /// output): numbers and booleans are parsed, lists and mappings are JSON (a list may
    /// also be comma-separated strings).
    pub fn parse_text(self, text: &str) -> Option<Value> {
        let t = text.trim();
        match self {
            ParamType::String => Some(Value::String(text.to_string())),
            ParamType::Integer => t.parse::<i64>().ok().map(Value::from),
            ParamType::Number => match t.parse::<i64>() {
                Ok(i) => Some(Value::from(i)),
                Err(_) => t
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number),
            },
            ParamType::Boolean => match t.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(Value::Bool(true)),
                "false" | "no" | "off" | "0" => Some(Value::Bool(false)),
                _ => None,
            },
            ParamType::Array if t.starts_with('[') => {
                serde_json::from_str(t).ok().filter(Value::is_array)
            }
            ParamType::Array if t.is_empty() => Some(Value::Array(Vec::new())),
            ParamType::Array => Some(Value::Array(
                t.split(',')
                    .map(|s| Value::String(s.trim().to_string()))
                    .collect(),
            )),
            ParamType::Object => serde_json::from_str(t).ok().filter(Value::is_object),
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parameter of an action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// `string`, `integer`, `number`, `boolean`, `array` or `object`.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// The action cannot run without it (unless it has a `default`).
    #[serde(default)]
    pub required: bool,
    /// The value used when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The only values allowed.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<Value>>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A secret: its value is redacted from the action's output and error messages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

impl ParamSpec {
    /// `name (integer, required): description` — how problems quote the schema.
    pub fn describe(&self, name: &str) -> String {
        let mut s = format!("{name} ({}", self.kind);
        if self.required {
            s.push_str(", required");
        }
        s.push(')');
        if let Some(d) = &self.description {
            s.push_str(": ");
            s.push_str(d.trim_end_matches('.'));
        }
        s
    }
}

/// An action's parameters, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parameters(Vec<(String, ParamSpec)>);

impl Parameters {
    /// Parameters from (name, spec) pairs in order.
    pub fn new(list: Vec<(String, ParamSpec)>) -> Self {
        Parameters(list)
    }

    /// Every parameter, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamSpec)> {
        self.0.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// One parameter.
    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn unknown(&self, name: &str, action: &str) -> ParamProblem {
        let hint = match best_match(name, self.names()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if self.is_empty() => format!("`{action}` takes no parameters"),
            None => format!("`{action}` takes: {}", self.names().join(", ")),
        };
        ParamProblem {
            param: name.to_string(),
            kind: ProblemKind::Unknown,
            message: format!("unknown parameter `{name}` for action `{action}`"),
            hint: Some(hint),
        }
    }

    fn missing(&self, name: &str, spec: &ParamSpec) -> ParamProblem {
        ParamProblem {
            param: name.to_string(),
            kind: ProblemKind::Missing,
            message: format!(
                "missing required parameter `{name}` — {}",
                spec.describe(name)
            ),
            hint: None,
        }
    }

    fn wrong_type(name: &str, spec: &ParamSpec, got: &Value) -> ParamProblem {
        ParamProblem {
            param: name.to_string(),
            kind: ProblemKind::Type,
            message: format!(
                "parameter `{name}` must be {}, got {} — {}",
                spec.kind.with_article(),
                short(got),
                spec.describe(name)
            ),
            hint: None,
        }
    }

    fn check_enum(name: &str, spec: &ParamSpec, v: &Value) -> Option<ParamProblem> {
        let choices = spec.choices.as_ref()?;
        if choices.contains(v) {
            return None;
        }
        let list: Vec<String> = choices.iter().map(short).collect();
        Some(ParamProblem {
            param: name.to_string(),
            kind: ProblemKind::Enum,
            message: format!(
                "parameter `{name}` must be one of {}, got {} — {}",
                list.join(", "),
                short(v),
                spec.describe(name)
            ),
            hint: None,
        })
    }

    /// Checks a story's literal `with:` at load time: unknown parameters, missing required
    /// ones, and the type and `enum` of every value that is not a template
    /// (`is_template` tells which are).
    pub fn check_literal(
        &self,
        action: &str,
        given: &Map<String, Value>,
        is_template: impl Fn(&Value) -> bool,
    ) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        for (name, v) in given {
            let Some(spec) = self.get(name) else {
                problems.push(self.unknown(name, action));
                continue;
            };
            if v.is_null() || is_template(v) {
                continue;
            }
            match spec.kind.accept(v) {
                None => problems.push(Self::wrong_type(name, spec, v)),
                Some(v) => problems.extend(Self::check_enum(name, spec, &v)),
            }
        }
        for (name, spec) in self.iter() {
            let given = given.get(name).is_some_and(|v| !v.is_null());
            if spec.required && spec.default.is_none() && !given {
                problems.push(self.missing(name, spec));
            }
        }
        problems
    }

    /// The parameters an action runs with: `given` checked (no unknown names, every
    /// required one present, types and `enum` respected) with defaults applied. A null
    /// counts as not given. Strings are read as numbers or booleans where the parameter
    /// says so (text templates render strings).
    pub fn resolve(
        &self,
        action: &str,
        mut given: Map<String, Value>,
    ) -> Result<Map<String, Value>, Vec<ParamProblem>> {
        let mut problems = Vec::new();
        for name in given.keys() {
            if self.get(name).is_none() {
                problems.push(self.unknown(name, action));
            }
        }
        let mut out = Map::new();
        for (name, spec) in self.iter() {
            let value = match given.remove(name) {
                Some(Value::Null) | None => spec.default.clone(),
                Some(v) => Some(v),
            };
            let Some(value) = value else {
                if spec.required {
                    problems.push(self.missing(name, spec));
                }
                continue;
            };
            let typed = spec.kind.accept(&value).or_else(|| match &value {
                Value::String(s) if spec.kind != ParamType::String => spec.kind.parse_text(s),
                _ => None,
            });
            match typed {
                None => problems.push(Self::wrong_type(name, spec, &value)),
                Some(v) => {
                    if let Some(p) = Self::check_enum(name, spec, &v) {
                        problems.push(p);
                    }
                    out.insert(name.to_string(), v);
                }
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// Types an operator's `key=value` arguments by the schema (`count=3` is the integer 3
    /// when `count` is an integer; lists and mappings are JSON), then checks them as
    /// [`Parameters::resolve`] does.
    pub fn from_args(
        &self,
        action: &str,
        args: &[(String, String)],
    ) -> Result<Map<String, Value>, Vec<ParamProblem>> {
        let mut problems = Vec::new();
        let mut given = Map::new();
        for (name, text) in args {
            let Some(spec) = self.get(name) else {
                problems.push(self.unknown(name, action));
                continue;
            };
            match spec.kind.parse_text(text) {
                Some(v) => {
                    given.insert(name.clone(), v);
                }
                None => problems.push(Self::wrong_type(
                    name,
                    spec,
                    &Value::String(text.to_string()),
                )),
            }
        }
        match self.resolve(action, given) {
            Ok(v) if problems.is_empty() => Ok(v),
            Ok(_) => Err(problems),
            Err(more) => {
                let fresh: Vec<ParamProblem> = more
                    .into_iter()
                    .filter(|p| !problems.iter().any(|q| q.param == p.param))
                    .collect();
                problems.extend(fresh);
                Err(problems)
            }
        }
    }

    /// The secret parameters' values in `params` (name, text), for redaction.
    pub fn secrets(&self, params: &Map<String, Value>) -> Vec<(String, String)> {
        self.iter()
            .filter(|(_, s)| s.secret)
            .filter_map(|(n, _)| {
                let text = match params.get(n)? {
                    Value::String(s) => s.clone(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((format!("params.{n}"), text))
            })
            .collect()
    }
}

/// What kind of problem a parameter has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Not a parameter of the action.
    Unknown,
    /// Required and not given.
    Missing,
    /// Not of the parameter's type.
    Type,
    /// Not one of the allowed values.
    Enum,
}

/// One problem with the parameters given to an action.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ParamProblem {
    /// The parameter concerned.
    pub param: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// What is wrong, with the parameter's schema description.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// A value for a message: JSON, cut short.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

impl Serialize for Parameters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, spec) in &self.0 {
            map.serialize_entry(name, spec)?;
        }
        map.end()
    }
}

impl JsonSchema for Parameters {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Parameters".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let spec = generator.subschema_for::<ParamSpec>();
        schemars::json_schema!({
            "type": "object",
            "description": "An action's parameters by name, in file order.",
            "additionalProperties": spec,
        })
    }
}

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde_json's map keeps insertion order in this workspace (preserve_order).
        let map = Map::<String, Value>::deserialize(d)?;
        let mut list = Vec::with_capacity(map.len());
        for (name, v) in map {
            let spec = ParamSpec::deserialize(v).map_err(serde::de::Error::custom)?;
            list.push((name, spec));
        }
        Ok(Parameters(list))
    }
}

#[cfg(test)]
mod tests;
