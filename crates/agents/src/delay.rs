//! `delay`: re-emits the incoming event after `for` or at `until`. Durable: the wait is a
//! deferred job in the store, so it survives restarts and holds no task or memory.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use switchyard_template::Template;
use switchyard_types::{Duration, Timestamp};

use crate::registry::AgentType;
use crate::{Agent, AgentError, BuildContext, ExecContext, Invalid, Outcome};

/// Options of a `delay` agent: exactly one of `for` and `until`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayOptions {
    /// How long to wait: a duration (`30s`, `5m`, `24h`), may be a template.
    #[serde(default, rename = "for")]
    pub wait_for: Option<String>,
    /// When to re-emit: an RFC 3339 time (a template, e.g. `{{ inbound.body.at }}`).
    #[serde(default)]
    pub until: Option<String>,
}

/// A built `delay` agent.
#[derive(Debug)]
pub enum Delay {
    /// Wait this long.
    For(Template),
    /// Wait until this time.
    Until(Template),
}

impl AgentType for Delay {
    type Options = DelayOptions;

    fn build(o: DelayOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        match (o.wait_for, o.until) {
            (Some(f), None) => {
                let t = cx.template("/for", &f).ok_or(Invalid)?;
                if t.is_literal() {
                    if let Err(e) = Duration::parse(&f) {
                        cx.error("/for", e.to_string());
                    }
                }
                cx.finish_with(Delay::For(t))
            }
            (None, Some(u)) => {
                let t = cx.template("/until", &u).ok_or(Invalid)?;
                if t.is_literal() && chrono::DateTime::parse_from_rfc3339(&u).is_err() {
                    cx.error(
                        "/until",
                        format!("`{u}` is not an RFC 3339 time (e.g. 2026-01-31T09:00:00Z)"),
                    );
                }
                cx.finish_with(Delay::Until(t))
            }
            (Some(_), Some(_)) => {
                cx.error("/until", "give either `for` or `until`, not both");
                Err(Invalid)
            }
            (None, None) => {
                cx.error_with_hint(
                    "",
                    "a delay needs `for` or `until`",
                    "e.g. `for: 5m` or `until: \"{{ inbound.body.at }}\"`",
                );
                Err(Invalid)
            }
        }
    }
}

#[async_trait]
impl Agent for Delay {
    async fn execute(&self, cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        if cx.resumed {
            return Ok(Outcome::Emit(vec![(**cx.input).clone()]));
        }
        let now = switchyard_types::now();
        let until: Timestamp = match self {
            Delay::For(t) => {
                let text = t.render_string(cx.templates)?;
                let d = Duration::parse(&text)
                    .map_err(|e| AgentError::permanent("invalid_duration", e.to_string()))?;
                now + chrono::Duration::from_std(d.std()).map_err(|_| {
                    AgentError::permanent("invalid_duration", format!("`{text}` is too long"))
                })?
            }
            Delay::Until(t) => {
                let text = t.render_string(cx.templates)?;
                chrono::DateTime::parse_from_rfc3339(text.trim())
                    .map_err(|e| {
                        AgentError::permanent(
                            "invalid_time",
                            format!("`{text}` is not an RFC 3339 time: {e}"),
                        )
                    })?
                    .with_timezone(&chrono::Utc)
            }
        };
        if until <= now {
            return Ok(Outcome::Emit(vec![(**cx.input).clone()]));
        }
        Ok(Outcome::Defer { until })
    }
}
