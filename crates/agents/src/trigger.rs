//! `trigger`: passes the incoming event on when its rules hold (a pure branch). The common
//! `if` option does the same with one expression; `rules` is sugar for simple comparisons.

use async_trait::async_trait;
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use switchyard_template::{ErrorKind, Template, TemplateValue};

use crate::registry::AgentType;
use crate::{Agent, AgentError, BuildContext, ExecContext, Invalid, Outcome};

/// Options of a `trigger` agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerOptions {
    /// Comparisons; the event passes when all (or any, see `match`) hold.
    #[serde(default)]
    pub rules: Vec<RuleOptions>,
    /// `all` (default) or `any`.
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
}

/// Whether all rules or any rule must hold.
#[derive(Debug, Default, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Every rule must hold.
    #[default]
    All,
    /// One rule is enough.
    Any,
}

/// One comparison: `value OP expected`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleOptions {
    /// The value to test (a template: `{{ inbound.body.ref }}`).
    pub value: String,
    /// The comparison.
    pub op: Op,
    /// What to compare with (a template or JSON value; not needed for `exists`).
    #[serde(default)]
    pub expected: Option<Value>,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less or equal.
    #[serde(rename = "<=")]
    Le,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater or equal.
    #[serde(rename = ">=")]
    Ge,
    /// `value` is an element of the list `expected` (or a substring of the string).
    #[serde(rename = "in")]
    In,
    /// `value` (list, string or object) contains `expected`.
    #[serde(rename = "contains")]
    Contains,
    /// `value` matches the regular expression `expected`.
    #[serde(rename = "regex")]
    Regex,
    /// `value` is defined and not null.
    #[serde(rename = "exists")]
    Exists,
}

/// A built `trigger` agent.
#[derive(Debug)]
pub struct Trigger {
    rules: Vec<Rule>,
    match_mode: MatchMode,
}

#[derive(Debug)]
struct Rule {
    value: Template,
    op: Op,
    expected: Expected,
}

#[derive(Debug)]
enum Expected {
    None,
    Value(TemplateValue),
    Regex(Regex),
}

impl AgentType for Trigger {
    type Options = TriggerOptions;

    fn build(o: TriggerOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        let mut rules = Vec::with_capacity(o.rules.len());
        for (i, r) in o.rules.into_iter().enumerate() {
            let base = format!("/rules/{i}");
            let value = cx.template(&format!("{base}/value"), &r.value);
            let expected = match (r.op, r.expected) {
                (Op::Exists, _) => Expected::None,
                (_, None) => {
                    cx.error(&base, format!("rule {i} needs `expected` for its `op`"));
                    Expected::None
                }
                (Op::Regex, Some(Value::String(re))) if !re.contains("{{") => match Regex::new(&re)
                {
                    Ok(re) => Expected::Regex(re),
                    Err(e) => {
                        cx.error(
                            &format!("{base}/expected"),
                            format!("bad regular expression: {e}"),
                        );
                        Expected::None
                    }
                },
                (_, Some(v)) => cx
                    .value(&format!("{base}/expected"), &v)
                    .map_or(Expected::None, Expected::Value),
            };
            if let Some(value) = value {
                rules.push(Rule {
                    value,
                    op: r.op,
                    expected,
                });
            }
        }
        cx.finish_with(Trigger {
            rules,
            match_mode: o.match_mode,
        })
    }
}

#[async_trait]
impl Agent for Trigger {
    async fn execute(&self, cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        let mut results = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            results.push(rule.holds(cx)?);
        }
        let pass = match self.match_mode {
            MatchMode::All => results.iter().all(|r| *r),
            MatchMode::Any => results.is_empty() || results.iter().any(|r| *r),
        };
        if pass {
            Ok(Outcome::Emit(vec![(**cx.input).clone()]))
        } else {
            Ok(Outcome::Skip)
        }
    }
}

impl Rule {
    fn holds(&self, cx: &ExecContext<'_>) -> Result<bool, AgentError> {
        let value = match self.value.render(cx.templates) {
            Ok(v) => v,
            Err(e) if self.op == Op::Exists && e.kind == ErrorKind::Undefined => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let expected = match &self.expected {
            Expected::None => Value::Null,
            Expected::Value(t) => t.render(cx.templates)?,
            Expected::Regex(re) => return Ok(value.as_str().is_some_and(|s| re.is_match(s))),
        };
        compare(&value, self.op, &expected)
    }
}

/// Applies `op`; numbers compare numerically, strings lexically; a number-like string is
/// compared as a number with a number.
pub fn compare(value: &Value, op: Op, expected: &Value) -> Result<bool, AgentError> {
    use std::cmp::Ordering;
    let order = || -> Option<Ordering> {
        match (as_number(value), as_number(expected)) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => match (value, expected) {
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => None,
            },
        }
    };
    Ok(match op {
        Op::Eq => value == expected || order() == Some(Ordering::Equal),
        Op::Ne => !(value == expected || order() == Some(Ordering::Equal)),
        Op::Lt => order() == Some(Ordering::Less),
        Op::Le => matches!(order(), Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => order() == Some(Ordering::Greater),
        Op::Ge => matches!(order(), Some(Ordering::Greater | Ordering::Equal)),
        Op::In => contains(expected, value),
        Op::Contains => contains(value, expected),
        Op::Exists => !value.is_null(),
        Op::Regex => {
            let pattern = expected
                .as_str()
                .ok_or_else(|| AgentError::permanent("rule", "`regex` needs a string pattern"))?;
            let re = Regex::new(pattern).map_err(|e| {
                AgentError::permanent("rule", format!("bad regular expression: {e}"))
            })?;
            value.as_str().is_some_and(|s| re.is_match(s))
        }
    })
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match haystack {
        Value::Array(items) => items.contains(needle),
        Value::String(s) => needle.as_str().is_some_and(|n| s.contains(n)),
        Value::Object(m) => needle.as_str().is_some_and(|k| m.contains_key(k)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparisons() {
        let cases = [
            (json!(3), Op::Eq, json!(3), true),
            (json!("3"), Op::Eq, json!(3), true),
            (json!("a"), Op::Ne, json!("b"), true),
            (json!(2), Op::Lt, json!(10), true),
            (json!("2"), Op::Lt, json!("10"), true),
            (json!("b"), Op::Gt, json!("a"), true),
            (json!(5), Op::Ge, json!(5), true),
            (json!(5), Op::Le, json!(4), false),
            (json!("qa"), Op::In, json!(["qa", "prod"]), true),
            (json!("dev"), Op::In, json!(["qa", "prod"]), false),
            (json!(["a", "b"]), Op::Contains, json!("b"), true),
            (
                json!("feature-no-infra"),
                Op::Contains,
                json!("-no-infra"),
                true,
            ),
            (json!({"k": 1}), Op::Contains, json!("k"), true),
            (json!("main"), Op::Regex, json!("^ma"), true),
            (json!(null), Op::Exists, json!(null), false),
            (json!({"a": 1}), Op::Lt, json!(2), false),
        ];
        for (v, op, e, want) in cases {
            assert_eq!(compare(&v, op, &e).unwrap(), want, "{v} {op:?} {e}");
        }
    }
}
