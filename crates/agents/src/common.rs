//! The options every agent takes, whatever its type.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use switchyard_types::Duration;

/// Option names every agent accepts (besides its type's own).
pub const COMMON_OPTION_NAMES: &[&str] = &[
    "name",
    "type",
    "from",
    "description",
    "if",
    "retry",
    "timeout",
];

/// Names agents may not take: they are the template's own variables.
pub const RESERVED_NAMES: &[&str] = &["event", "run", "credential", "resource", "now", "params"];

/// The options every agent takes.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommonOptions {
    /// Unique in the story; lower case, digits and `_`, starting with a letter. Templates
    /// downstream read this agent's latest event as `{{ NAME }}`.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub name: String,
    /// The agent type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The upstream agents whose events this agent receives: one name or a list.
    /// `AGENT.error` receives the error events of AGENT.
    #[serde(default, deserialize_with = "one_or_many")]
    #[schemars(with = "OneOrMany")]
    pub from: Vec<FromRef>,
    /// What the agent is for.
    #[serde(default)]
    pub description: Option<String>,
    /// A template expression (no braces); when false the agent does nothing for that event.
    #[serde(default, rename = "if")]
    pub condition: Option<String>,
    /// How often to try, and how long to wait between tries.
    #[serde(default)]
    pub retry: RetryOptions,
    /// How long one try may take before it fails as `timeout`.
    #[serde(default)]
    pub timeout: Option<Duration>,
}

/// `retry`: total tries including the first, with exponential backoff and jitter.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetryOptions {
    /// Total tries, including the first (default 1: no retry).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub attempts: u32,
    /// The first wait (default 1s); each further wait doubles, with jitter.
    #[serde(default = "default_backoff")]
    pub backoff: Duration,
    /// The longest wait (default 5m).
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
}

fn one() -> u32 {
    1
}
fn default_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            attempts: 1,
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

impl RetryOptions {
    /// The wait before try number `next_attempt` (2 for the first retry): exponential,
    /// capped, with "equal jitter" (half fixed, half random) given a random `unit` in [0, 1).
    pub fn backoff_before(&self, next_attempt: u32, unit: f64) -> std::time::Duration {
        let exp = next_attempt.saturating_sub(2).min(30);
        let base = self.backoff.std().saturating_mul(1u32 << exp);
        let capped = base.min(self.max_backoff.std());
        let half = capped / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// An entry of `from`: an agent, or an agent's error events (`AGENT.error`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct FromRef {
    /// The upstream agent.
    pub agent: String,
    /// Whether this receives its error events rather than its ordinary ones.
    pub errors: bool,
}

impl FromRef {
    /// Parses `agent` or `agent.error`.
    pub fn parse(s: &str) -> FromRef {
        match s.strip_suffix(".error") {
            Some(agent) => FromRef {
                agent: agent.to_string(),
                errors: true,
            },
            None => FromRef {
                agent: s.to_string(),
                errors: false,
            },
        }
    }
}

impl fmt::Display for FromRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors {
            write!(f, "{}.error", self.agent)
        } else {
            f.write_str(&self.agent)
        }
    }
}

impl From<FromRef> for String {
    fn from(r: FromRef) -> String {
        r.to_string()
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum OneOrMany {
    /// One upstream agent.
    One(String),
    /// Several upstream agents.
    Many(Vec<String>),
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FromRef>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![FromRef::parse(&s)],
        OneOrMany::Many(v) => v.iter().map(|s| FromRef::parse(s)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let r = RetryOptions {
            attempts: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
        };
        let ms = |a, u| r.backoff_before(a, u).as_millis();
        assert_eq!(ms(2, 0.0), 500);
        assert_eq!(ms(2, 1.0), 1000);
        assert_eq!(ms(3, 1.0), 2000);
        assert_eq!(ms(4, 1.0), 4000);
        assert_eq!(ms(5, 1.0), 5000);
        assert_eq!(ms(9, 0.0), 2500);
    }

    #[test]
    fn from_accepts_one_or_many_and_error_refs() {
        let c: CommonOptions = serde_json::from_value(
            serde_json::json!({"name": "a", "type": "t", "from": "x.error"}),
        )
        .unwrap();
        assert_eq!(
            c.from,
            vec![FromRef {
                agent: "x".into(),
                errors: true
            }]
        );
        let c: CommonOptions = serde_json::from_value(
            serde_json::json!({"name": "a", "type": "t", "from": ["x", "y"]}),
        )
        .unwrap();
        assert_eq!(c.from.len(), 2);
    }
}
