//! What the engine provides to agents beyond HTTP: durable per-agent state and runs of other
//! stories. Implemented by the engine over its store; a test can provide its own.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use switchyard_types::{RunId, RunStatus};

use crate::AgentError;

/// What adding an event to an `implode` group did.
#[derive(Debug, Clone, PartialEq)]
pub enum ImplodeResult {
    /// The group is complete: every item in arrival order.
    Complete(Vec<Value>),
    /// The group is open; `opened` when this event started it.
    Pending {
        /// This event opened the group (and should wake at `max_wait` to flush it).
        opened: bool,
    },
}

/// Where a sub-story's run stands, for a waiting `story` agent.
#[derive(Debug, Clone, PartialEq)]
pub enum SubRun {
    /// Its exit agent emitted this payload.
    Emitted(Value),
    /// It ended without an event from its exit agent.
    Ended(RunStatus),
    /// Still running.
    Running,
}

/// Engine services for agents, scoped to one execution (its story, agent and job).
#[async_trait]
pub trait Host: Send + Sync {
    /// Lets the event through when fewer than `limit` events passed for `key` within the
    /// last `window` (deduplicate: limit 1). Idempotent per execution.
    async fn admit(&self, key: &str, window: Duration, limit: u32) -> Result<bool, AgentError>;
    /// Adds the incoming payload to the `key` group of size `size`.
    async fn implode_add(
        &self,
        key: &str,
        item: &Value,
        size: usize,
    ) -> Result<ImplodeResult, AgentError>;
    /// Closes the group holding this execution's item, if still open: its items.
    async fn implode_flush(&self, key: &str) -> Result<Option<Vec<Value>>, AgentError>;
    /// Starts a run of `story` through its webhook agent `entry` with `input` as the body;
    /// idempotent per execution (a retry gets the same run). With `wait_for`, this
    /// execution is woken when that agent of the child emits or the child run ends.
    async fn start_story(
        &self,
        story: &str,
        entry: &str,
        input: Value,
        wait_for: Option<&str>,
    ) -> Result<RunId, AgentError>;
    /// Where a child run stands with respect to its `exit` agent.
    async fn sub_run(&self, run: RunId, exit: &str) -> Result<SubRun, AgentError>;
}

/// A host with no state and no other stories (for tests of stateless agents).
#[derive(Debug, Default)]
pub struct NoHost;

#[async_trait]
impl Host for NoHost {
    async fn admit(&self, _: &str, _: Duration, _: u32) -> Result<bool, AgentError> {
        Err(AgentError::permanent(
            "unsupported",
            "no state store in this context",
        ))
    }
    async fn implode_add(&self, _: &str, _: &Value, _: usize) -> Result<ImplodeResult, AgentError> {
        Err(AgentError::permanent(
            "unsupported",
            "no state store in this context",
        ))
    }
    async fn implode_flush(&self, _: &str) -> Result<Option<Vec<Value>>, AgentError> {
        Err(AgentError::permanent(
            "unsupported",
            "no state store in this context",
        ))
    }
    async fn start_story(
        &self,
        _: &str,
        _: &str,
        _: Value,
        _: Option<&str>,
    ) -> Result<RunId, AgentError> {
        Err(AgentError::permanent(
            "unsupported",
            "no other stories in this context",
        ))
    }
    async fn sub_run(&self, _: RunId, _: &str) -> Result<SubRun, AgentError> {
        Err(AgentError::permanent(
            "unsupported",
            "no other stories in this context",
        ))
    }
}
