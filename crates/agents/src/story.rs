//! `story`: starts a run of another story through its `entry` webhook agent. With
//! `wait: true` the result is the event of the child's `exit` agent; the wait is durable (the
//! execution is woken when the child emits or ends, or at `timeout`).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_template::TemplateValue;
use switchyard_types::Duration;

use crate::registry::AgentType;
use crate::{Agent, AgentError, BuildContext, ExecContext, Invalid, Outcome, SubRun};

/// Options of a `story` agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoryOptions {
    /// The story to run.
    pub story: String,
    /// The payload posted to its entry webhook (a template value).
    #[serde(default)]
    pub input: Option<Value>,
    /// The child's webhook agent that receives `input` (default `entry`).
    #[serde(default = "default_entry")]
    pub entry: String,
    /// Wait for the child's `exit` agent and emit its payload (default false: emit `{run_id}` at once).
    #[serde(default)]
    pub wait: bool,
    /// The child's agent whose event is the result (default `exit`).
    #[serde(default = "default_exit")]
    pub exit: String,
}

fn default_entry() -> String {
    "entry".into()
}
fn default_exit() -> String {
    "exit".into()
}

/// How long a waiting `story` agent waits when it sets no `timeout`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A built `story` agent.
#[derive(Debug)]
pub struct StoryAgent {
    story: String,
    input: Option<TemplateValue>,
    entry: String,
    wait: bool,
    exit: String,
    wait_for: Duration,
}

impl AgentType for StoryAgent {
    type Options = StoryOptions;

    fn build(o: StoryOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        if o.story.is_empty()
            || !o
                .story
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            cx.error("/story", format!("`{}` is not a story name", o.story));
        }
        let input = match &o.input {
            Some(v) => Some(cx.value("/input", v).ok_or(Invalid)?),
            None => None,
        };
        let wait_for = cx.timeout.unwrap_or(DEFAULT_WAIT);
        cx.finish_with(StoryAgent {
            story: o.story,
            input,
            entry: o.entry,
            wait: o.wait,
            exit: o.exit,
            wait_for,
        })
    }
}

#[async_trait]
impl Agent for StoryAgent {
    async fn execute(&self, cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        let input = match &self.input {
            Some(t) => t.render(cx.templates)?,
            None => (**cx.input).clone(),
        };
        // Idempotent per execution: on a wake or a retry this returns the same child run.
        let run = cx
            .host
            .start_story(
                &self.story,
                &self.entry,
                input,
                self.wait.then_some(self.exit.as_str()),
            )
            .await?;
        if !self.wait {
            return Ok(Outcome::Emit(vec![json!({"run_id": run})]));
        }
        match cx.host.sub_run(run, &self.exit).await? {
            SubRun::Emitted(v) => Ok(Outcome::Emit(vec![v])),
            SubRun::Ended(status) => Err(AgentError::permanent(
                "sub_story",
                format!(
                    "run {run} of story `{}` ended {} without an event from its `{}` agent",
                    self.story,
                    status.as_str(),
                    self.exit
                ),
            )),
            SubRun::Running if cx.resumed => Err(AgentError::permanent(
                "timeout",
                format!(
                    "run {run} of story `{}` gave no `{}` event within {}",
                    self.story, self.exit, self.wait_for
                ),
            )),
            SubRun::Running => {
                let until = switchyard_types::now()
                    + chrono::Duration::from_std(self.wait_for.std())
                        .unwrap_or(chrono::Duration::days(1));
                Ok(Outcome::Defer { until })
            }
        }
    }
}
