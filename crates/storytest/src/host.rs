//! The engine services a story test gives its agents: `deduplicate`, `throttle` and
//! `implode` keep their state in memory for the length of one case, measured against the
//! case's clock; other stories are never started (a `story` agent needs a canned response).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use switchyard_agents::{AgentError, Host, ImplodeResult, SubRun};
use switchyard_types::{JobId, RunId, Timestamp};

/// One case's agent state, shared by its executions.
#[derive(Debug, Default)]
pub(crate) struct State {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Times events passed, by (agent, key).
    admitted: HashMap<(String, String), Vec<Timestamp>>,
    /// What each execution was told (admission is idempotent per execution).
    decisions: HashMap<JobId, bool>,
    /// Open implode groups by (agent, key).
    groups: HashMap<(String, String), Group>,
    /// The items of closed groups, by the execution that closed them.
    closed: HashMap<JobId, Vec<Value>>,
    next_group: u64,
}

/// An open implode group: its id and its members (execution, item) in arrival order.
type Group = (u64, Vec<(JobId, Value)>);

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave it half-written in a way that matters
        // to a test that is failing anyway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The host of one execution in a case.
pub(crate) struct TestHost<'a> {
    pub state: &'a State,
    pub agent: &'a str,
    pub job: JobId,
    /// The case's clock at this execution.
    pub now: Timestamp,
}

fn unsupported() -> AgentError {
    AgentError::permanent(
        "unsupported",
        "a story test does not start other stories: give the `story` agent's result under `responses`",
    )
}

#[async_trait]
impl Host for TestHost<'_> {
    async fn admit(&self, key: &str, window: Duration, limit: u32) -> Result<bool, AgentError> {
        let mut s = self.state.lock();
        if let Some(&d) = s.decisions.get(&self.job) {
            return Ok(d);
        }
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let since = self
            .now
            .checked_sub_signed(window)
            .unwrap_or(Timestamp::MIN_UTC);
        let times = s
            .admitted
            .entry((self.agent.to_string(), key.to_string()))
            .or_default();
        times.retain(|t| *t > since);
        let pass = times.len() < limit as usize;
        if pass {
            times.push(self.now);
        }
        s.decisions.insert(self.job, pass);
        Ok(pass)
    }

    async fn implode_add(
        &self,
        key: &str,
        item: &Value,
        size: usize,
    ) -> Result<ImplodeResult, AgentError> {
        let mut s = self.state.lock();
        if let Some(items) = s.closed.get(&self.job) {
            return Ok(ImplodeResult::Complete(items.clone()));
        }
        let id = s.next_group;
        let k = (self.agent.to_string(), key.to_string());
        let (group, members) = s.groups.entry(k.clone()).or_insert((id, Vec::new()));
        let opened_new = *group == id;
        if !members.iter().any(|(j, _)| *j == self.job) {
            members.push((self.job, item.clone()));
        }
        let opened = members.first().is_some_and(|(j, _)| *j == self.job);
        let complete = members.len() >= size.max(1);
        if opened_new {
            s.next_group += 1;
        }
        if !complete {
            return Ok(ImplodeResult::Pending { opened });
        }
        let (_, members) = s.groups.remove(&k).unwrap_or_default();
        let items: Vec<Value> = members.into_iter().map(|(_, v)| v).collect();
        s.closed.insert(self.job, items.clone());
        Ok(ImplodeResult::Complete(items))
    }

    async fn implode_flush(&self, key: &str) -> Result<Option<Vec<Value>>, AgentError> {
        let mut s = self.state.lock();
        if let Some(items) = s.closed.get(&self.job) {
            return Ok(Some(items.clone()));
        }
        let k = (self.agent.to_string(), key.to_string());
        let mine = s
            .groups
            .get(&k)
            .is_some_and(|(_, m)| m.iter().any(|(j, _)| *j == self.job));
        if !mine {
            // The group holding this execution's item was completed by another event.
            return Ok(None);
        }
        let (_, members) = s.groups.remove(&k).unwrap_or_default();
        let items: Vec<Value> = members.into_iter().map(|(_, v)| v).collect();
        s.closed.insert(self.job, items.clone());
        Ok(Some(items))
    }

    async fn start_story(
        &self,
        _: &str,
        _: &str,
        _: Value,
        _: Option<&str>,
    ) -> Result<RunId, AgentError> {
        Err(unsupported())
    }

    async fn sub_run(&self, _: RunId, _: &str) -> Result<SubRun, AgentError> {
        Err(unsupported())
    }
}
