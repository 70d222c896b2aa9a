//! `schedule`: a source agent that emits `{scheduled_at, …payload}` on a cron expression.
//!
//! This module holds the options and the cron semantics; the engine fires the ticks (one
//! event per tick, recorded so that a restart neither repeats one nor, with `catch_up`,
//! skips one).
//!
//! Semantics are those of Vixie cron (the crontab of most Unix systems), with `croner`
//! underneath:
//! - 5 fields (`minute hour day-of-month month day-of-week`), or 6 with seconds first;
//! - numbers, `*`, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`; month and weekday
//!   names (`JAN`, `mon`); Sunday is 0 or 7;
//! - when both day-of-month and day-of-week are restricted, a day matches when **either**
//!   does; when either field starts with `*` (`*`, `*/2`), a day matches when both do;
//! - `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`, `@hourly`;
//! - extensions croner understands are accepted too: `L` (last day of the month, or last
//!   weekday `5L`), `W` (nearest weekday), `#` (`1#2`: second Monday), `?` (same as `*`).
//!
//! Times are wall-clock times in `timezone` (IANA name, default UTC). Across daylight saving
//! changes it behaves as Vixie cron does: a job at a fixed time (seconds, minute and hour each
//! one number) whose time falls in the hour skipped in spring runs at the first instant after
//! the gap, and runs once when autumn repeats its hour; a job with `*`, steps or lists in those
//! fields fires on every matching wall-clock time that exists, in both passes of a repeated
//! hour. (Vixie cron also counts lists and ranges such as `0,30 2 * * *` as fixed-time; here
//! they behave as interval jobs. croniter, the reference the tests compare with, differs in
//! these hours too: it fires fixed-time jobs twice when an hour repeats.)

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_template::{Context, TemplateValue};

use crate::registry::AgentType;
use crate::{Agent, AgentError, BuildContext, ExecContext, Invalid, Outcome, Source};

/// The fields of a 6-field expression (a 5-field one lacks the first), with what each takes.
const FIELD_NAMES: &[(&str, &str)] = &[
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, 0 and 7 are Sunday; L, #"),
];

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// Options of a `schedule` agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleOptions {
    /// A crontab expression: 5 fields (`*/15 9-17 * * MON-FRI`), or 6 with seconds first,
    /// or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    pub cron: String,
    /// The IANA time zone the expression is read in (`Europe/Berlin`; default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// An object merged into each event after `scheduled_at` (its strings are templates).
    #[serde(default)]
    pub payload: Option<Value>,
    /// After a restart, emit the ticks missed while the server was down (default false:
    /// they are skipped and the schedule resumes at the next tick).
    #[serde(default)]
    pub catch_up: bool,
}

/// A built `schedule` agent.
#[derive(Debug)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    timezone: Tz,
    payload: Option<TemplateValue>,
    catch_up: bool,
}

impl Schedule {
    /// Parses a cron expression with the semantics described in the module documentation.
    pub fn parse_cron(expression: &str) -> Result<Cron, String> {
        let trimmed = expression.trim();
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let pattern = if trimmed.starts_with('@') {
            if fields.len() != 1 {
                return Err(format!("`{trimmed}` has text after the @-name"));
            }
            let known = [
                "@yearly",
                "@annually",
                "@monthly",
                "@weekly",
                "@daily",
                "@hourly",
            ];
            if !known.iter().any(|k| k.eq_ignore_ascii_case(trimmed)) {
                return Err(format!(
                    "unknown schedule `{trimmed}`; the @-names are {}",
                    known.join(", ")
                ));
            }
            trimmed.to_string()
        } else {
            let (dom, dow) = match fields.len() {
                5 => (2, 4),
                6 => (3, 5),
                n => {
                    return Err(format!(
                        "a cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first; this one has {n}"
                    ))
                }
            };
            if fields[dow].starts_with('+') {
                return Err("`+` in the day-of-week field is not crontab syntax".into());
            }
            // Vixie cron: a day field starting with `*` makes the two day fields combine with
            // AND; croner only does that for a bare `*`, so `+` asks it to in the other cases.
            let starred = |f: &str| f.starts_with('*') && f != "*";
            let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
            if (starred(&fields[dom]) || starred(&fields[dow]))
                && fields[dom] != "*"
                && fields[dow] != "*"
            {
                fields[dow] = format!("+{}", fields[dow]);
            }
            fields.join(" ")
        };
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        parser.parse(&pattern).map_err(|e| {
            // Name the field at fault: parse each one alone, the others `*`.
            let skip = FIELD_NAMES.len().saturating_sub(fields.len());
            let names = FIELD_NAMES[skip..]
                .iter()
                .filter(|_| !trimmed.starts_with('@'));
            for (i, (field, (name, range))) in fields.iter().zip(names).enumerate() {
                let mut probe = vec!["*"; fields.len()];
                probe[i] = field;
                if parser.parse(&probe.join(" ")).is_err() {
                    return format!("the {name} field `{field}` is not valid (allowed: {range})");
                }
            }
            lowercase_first(&e.to_string())
        })
    }

    /// The first tick strictly after `after`, or `None` when there is none (a date that
    /// never comes, like `0 0 30 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone the expression is read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Whether ticks missed while the server was down are emitted after a restart.
    pub fn catch_up(&self) -> bool {
        self.catch_up
    }

    /// The event of the tick at `scheduled_at`: `{scheduled_at, …payload}` (payload rendered
    /// with `templates`; its keys win over `scheduled_at` only if it names it itself).
    pub fn event(
        &self,
        scheduled_at: DateTime<Utc>,
        templates: &Context,
    ) -> Result<Value, AgentError> {
        let mut out = Map::new();
        out.insert(
            "scheduled_at".into(),
            Value::String(scheduled_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        );
        if let Some(p) = &self.payload {
            match p.render(templates)? {
                Value::Object(m) => out.extend(m),
                Value::Null => {}
                other => {
                    return Err(AgentError::permanent(
                        "template",
                        format!("`payload` rendered to {other}, not an object"),
                    ))
                }
            }
        }
        Ok(Value::Object(out))
    }
}

impl AgentType for Schedule {
    type Options = ScheduleOptions;

    fn build(o: ScheduleOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        let cron = match Schedule::parse_cron(&o.cron) {
            Ok(c) => Some(c),
            Err(e) => {
                cx.error_with_hint(
                    "/cron",
                    format!("bad cron expression `{}`: {e}", o.cron),
                    "minute hour day-of-month month day-of-week, e.g. `*/15 9-17 * * MON-FRI`, or 6 fields with seconds first",
                );
                None
            }
        };
        let timezone = match o.timezone.as_deref().map(str::trim) {
            None => Some(Tz::UTC),
            Some(name) => match Tz::from_str(name) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    let hint = crate::registry::best_match(
                        name,
                        chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()),
                    )
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| {
                        "an IANA time zone name like `Europe/Berlin` or `UTC`".into()
                    });
                    cx.error_with_hint("/timezone", format!("unknown time zone `{name}`"), hint);
                    None
                }
            },
        };
        let payload = match &o.payload {
            None => None,
            Some(v @ Value::Object(_)) => cx.value("/payload", v),
            Some(_) => {
                cx.error(
                    "/payload",
                    "`payload` is an object; its keys are added to `scheduled_at`",
                );
                None
            }
        };
        let (Some(cron), Some(timezone)) = (cron, timezone) else {
            return Err(Invalid);
        };
        cx.finish_with(Schedule {
            expression: o.cron,
            cron,
            timezone,
            payload,
            catch_up: o.catch_up,
        })
    }
}

#[async_trait]
impl Agent for Schedule {
    fn source(&self) -> Option<Source<'_>> {
        Some(Source::Schedule(self))
    }

    async fn execute(&self, _cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        Err(AgentError::permanent(
            "invalid_story",
            "a schedule agent emits on its cron expression; it cannot take events from other agents",
        ))
    }
}

#[cfg(test)]
mod tests;
