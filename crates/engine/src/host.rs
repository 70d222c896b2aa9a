//! The engine's [`Host`] for agents: per-agent state in the store, and runs of other stories.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use switchyard_agents::{AgentError, Host, ImplodeResult, Source, SubRun};
use switchyard_store::{ImplodeAdd, ParentLink, StateScope};
use switchyard_types::{JobId, RunId, RunStatus};

use crate::{Engine, IngestError};

/// Host for one execution: its story, agent and job.
pub struct EngineHost<'a> {
    pub engine: &'a Engine,
    pub scope: StateScope,
    pub job_id: JobId,
}

fn store_error(e: switchyard_store::Error) -> AgentError {
    match e {
        switchyard_store::Error::TooLarge { .. } => {
            AgentError::permanent("too_large", e.to_string())
        }
        other => AgentError::transient("store", other.to_string()),
    }
}

fn parse_items(items: Vec<String>) -> Result<Vec<Value>, AgentError> {
    items
        .iter()
        .map(|i| {
            serde_json::from_str(i).map_err(|e| {
                AgentError::permanent("store", format!("stored item is not JSON: {e}"))
            })
        })
        .collect()
}

#[async_trait]
impl Host for EngineHost<'_> {
    async fn admit(&self, key: &str, window: Duration, limit: u32) -> Result<bool, AgentError> {
        self.engine
            .inner
            .store
            .admit(
                &self.scope,
                key,
                self.job_id,
                switchyard_types::now(),
                window,
                limit,
            )
            .await
            .map_err(store_error)
    }

    async fn implode_add(
        &self,
        key: &str,
        item: &Value,
        size: usize,
    ) -> Result<ImplodeResult, AgentError> {
        let text: Arc<str> = serde_json::to_string(item)
            .map_err(|e| AgentError::permanent("invalid_output", e.to_string()))?
            .into();
        match self
            .engine
            .inner
            .store
            .implode_add(
                &self.scope,
                key,
                self.job_id,
                switchyard_types::now(),
                text,
                size,
            )
            .await
            .map_err(store_error)?
        {
            ImplodeAdd::Complete { items, woke } => {
                if let Some(opener) = woke {
                    // Not fatal if it fails: the opener then ends at `max_wait` as before.
                    if let Err(e) = self.engine.dispatch_woken(opener).await {
                        tracing::warn!(job = %opener, error = %e, "could not dispatch the woken opener of an implode group");
                    }
                }
                Ok(ImplodeResult::Complete(parse_items(items)?))
            }
            ImplodeAdd::Pending { opened } => Ok(ImplodeResult::Pending { opened }),
        }
    }

    async fn implode_flush(&self, key: &str) -> Result<Option<Vec<Value>>, AgentError> {
        match self
            .engine
            .inner
            .store
            .implode_flush(&self.scope, key, self.job_id)
            .await
            .map_err(store_error)?
        {
            Some(items) => Ok(Some(parse_items(items)?)),
            None => Ok(None),
        }
    }

    async fn start_story(
        &self,
        story: &str,
        entry: &str,
        input: Value,
        wait_for: Option<&str>,
    ) -> Result<RunId, AgentError> {
        let catalog = self.engine.catalog();
        let child = catalog.story(story).cloned().ok_or_else(|| {
            AgentError::permanent(
                "unknown_story",
                format!("no story named `{story}` is loaded"),
            )
        })?;
        let index = *child.by_name.get(entry).ok_or_else(|| {
            AgentError::permanent(
                "unknown_agent",
                format!("story `{story}` has no agent `{entry}`"),
            )
        })?;
        let Some(Source::Webhook(_)) = child.agents[index].agent.source() else {
            return Err(AgentError::permanent(
                "unknown_agent",
                format!("agent `{entry}` of story `{story}` is not a webhook agent"),
            ));
        };
        if let Some(exit) = wait_for {
            if child.agent(exit).is_none() {
                return Err(AgentError::permanent(
                    "unknown_agent",
                    format!("story `{story}` has no exit agent `{exit}`"),
                ));
            }
        }
        let path = child
            .webhooks
            .iter()
            .find(|(_, &i)| i == index)
            .map(|(p, _)| p.clone())
            .unwrap_or_default();
        let payload =
            json!({"method": "POST", "path": path, "headers": {}, "query": {}, "body": input});
        let parent = wait_for.map(|exit| ParentLink {
            job_id: self.job_id,
            exit_agent: exit.to_string(),
        });
        let ingested = self
            .engine
            .ingest_with(
                &child,
                index,
                payload,
                Some(format!("story-agent:{}", self.job_id)),
                Some(format!("story:{}", self.scope.story)),
                parent,
            )
            .await
            .map_err(|e| match e {
                IngestError::Overloaded(_)
                | IngestError::Store(_)
                | IngestError::QueueUnavailable(_) => {
                    AgentError::transient("sub_story", e.to_string())
                }
                other => AgentError::permanent("sub_story", other.to_string()),
            })?;
        Ok(ingested.run_id)
    }

    async fn sub_run(&self, run: RunId, exit: &str) -> Result<SubRun, AgentError> {
        let store = &self.engine.inner.store;
        if let Some(e) = store.latest_event(run, exit).await.map_err(store_error)? {
            return Ok(SubRun::Emitted((*e.payload).clone()));
        }
        match store.run(run).await.map_err(store_error)? {
            Some(r) if r.status != RunStatus::Running => Ok(SubRun::Ended(r.status)),
            Some(_) => Ok(SubRun::Running),
            None => Err(AgentError::permanent(
                "sub_story",
                format!("run {run} no longer exists"),
            )),
        }
    }
}
