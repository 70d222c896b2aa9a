//! Source events in: store the event, its run and its first jobs, then dispatch.

use std::sync::Arc;

use serde_json::Value;
use switchyard_store::{NewEvent, NewJob, StartRun, Started};
use switchyard_story::Story;
use switchyard_types::{EventId, EventKind, RunId};

use crate::{Engine, JobMessage, Lineage};

/// A stored source event.
#[derive(Debug, Clone, Copy)]
pub struct Ingested {
    /// The event.
    pub event_id: EventId,
    /// The run it started.
    pub run_id: RunId,
    /// A repeated delivery (idempotency key seen before): nothing new was stored.
    pub duplicate: bool,
}

/// Why a source event was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Too many jobs are waiting: try again later.
    #[error("overloaded: {0} jobs are waiting; try again later")]
    Overloaded(usize),
    /// The payload is over the event size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The store failed.
    #[error(transparent)]
    Store(switchyard_store::Error),
    /// The story is switched off.
    #[error("story `{0}` is disabled; enable it with `switchyard story enable {0}`")]
    Disabled(String),
    /// The payload could not be serialized.
    #[error("payload is not valid JSON: {0}")]
    Payload(String),
    /// The job queue (RabbitMQ) cannot be reached: try again later.
    #[error("the job queue is unavailable: {0}")]
    QueueUnavailable(String),
}

impl Engine {
    /// Stores a source event for `story`'s agent `agent_index`, starting a run; durable when
    /// it returns. Downstream jobs are dispatched after the commit.
    pub async fn ingest(
        &self,
        story: &Arc<Story>,
        agent_index: usize,
        payload: Value,
        idempotency_key: Option<String>,
        started_by: Option<String>,
    ) -> Result<Ingested, IngestError> {
        self.ingest_with(
            story,
            agent_index,
            payload,
            idempotency_key,
            started_by,
            None,
        )
        .await
    }

    /// [`Engine::ingest`] for a run that a waiting `story` agent's job follows.
    pub(crate) async fn ingest_with(
        &self,
        story: &Arc<Story>,
        agent_index: usize,
        payload: Value,
        idempotency_key: Option<String>,
        started_by: Option<String>,
        parent: Option<switchyard_store::ParentLink>,
    ) -> Result<Ingested, IngestError> {
        if !self.is_enabled(&story.name) {
            return Err(IngestError::Disabled(story.name.to_string()));
        }
        let depth = self.queued();
        if depth >= self.inner.config.max_queued {
            return Err(IngestError::Overloaded(depth));
        }
        // Scaled out: with RabbitMQ away, refuse rather than store work nobody can be told of
        // (what is stored while it is up but not yet published, the sweeper publishes later).
        if let Err(e) = self.queue_status() {
            return Err(IngestError::QueueUnavailable(e));
        }
        let def = &story.agents[agent_index];
        let json: Arc<str> = serde_json::to_string(&payload)
            .map_err(|e| IngestError::Payload(e.to_string()))?
            .into();
        let now = switchyard_types::now();
        let event_id = EventId::new();
        let run_id = RunId::new();
        let event = NewEvent {
            id: event_id,
            story: Arc::clone(&story.name),
            agent: Arc::clone(&def.name),
            run_id,
            parent_id: None,
            kind: EventKind::Event,
            created_at: now,
            json,
        };
        let jobs: Vec<NewJob> = def
            .downstream
            .iter()
            .map(|&d| NewJob {
                id: switchyard_types::JobId::new(),
                run_id,
                story: Arc::clone(&story.name),
                agent: Arc::clone(&story.agents[d].name),
                input_event_id: event_id,
                created_at: now,
                due_at: now,
                deferred: false,
            })
            .collect();
        let start = StartRun {
            run_id,
            event,
            jobs: jobs.clone(),
            idempotency_key,
            started_by,
            parent,
        };
        // Commit and dispatch run in their own task: if the caller goes away (a client closes
        // its connection), a committed event must still reach the queue.
        let engine = self.clone();
        let agent = Arc::clone(&def.name);
        let task = tokio::spawn(async move {
            match engine.inner.store.start_run(start).await {
                Ok(Started::New) => {}
                Ok(Started::Duplicate { event_id, run_id }) => {
                    return Ok(Ingested {
                        event_id,
                        run_id,
                        duplicate: true,
                    })
                }
                Err(switchyard_store::Error::TooLarge { size, limit }) => {
                    return Err(IngestError::TooLarge(format!(
                        "the event is {size} bytes, over the limit of {limit} bytes"
                    )))
                }
                Err(e) => return Err(IngestError::Store(e)),
            }
            if !jobs.is_empty() {
                let lineage = Lineage::child(None, event_id, agent, Arc::new(payload));
                let mut next = Vec::with_capacity(jobs.len());
                for job in jobs {
                    next.push(JobMessage {
                        job_id: job.id,
                        run_id,
                        story: job.story,
                        agent: job.agent,
                        input_event_id: event_id,
                        attempts: 0,
                        run_started_at: now,
                        lineage: Some(Arc::clone(&lineage)),
                        deferred: false,
                        resumed: false,
                    });
                }
                engine.dispatch(next).await;
            }
            Ok(Ingested {
                event_id,
                run_id,
                duplicate: false,
            })
        });
        task.await.map_err(|e| {
            IngestError::Store(switchyard_store::Error::Unavailable(format!(
                "ingest task failed: {e}"
            )))
        })?
    }
}

/// Why an event could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No such event.
    #[error("event {0} not found")]
    NotFound(EventId),
    /// Its story or agent is no longer loaded.
    #[error("{0}")]
    Gone(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] switchyard_store::Error),
}

/// What a replay did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    /// The run the new deliveries belong to.
    pub run_id: RunId,
    /// The new jobs, one per receiving agent.
    pub jobs: Vec<switchyard_types::JobId>,
}

impl Engine {
    /// Re-delivers a stored event to the agents downstream of its emitter (error events to
    /// the agents that listen for its errors). The run becomes `running` again.
    pub async fn replay(&self, event_id: EventId) -> Result<Replayed, ReplayError> {
        let event = self
            .inner
            .store
            .event(event_id)
            .await?
            .ok_or(ReplayError::NotFound(event_id))?;
        let catalog = self.catalog();
        let story = catalog.story(&event.story).cloned().ok_or_else(|| {
            ReplayError::Gone(format!("story `{}` is no longer loaded", event.story))
        })?;
        let def = story.agent(&event.agent).ok_or_else(|| {
            ReplayError::Gone(format!(
                "agent `{}` is no longer in story `{}`",
                event.agent, event.story
            ))
        })?;
        let receivers = match event.kind {
            EventKind::Event => &def.downstream,
            EventKind::Error => &def.error_downstream,
        };
        let now = switchyard_types::now();
        let jobs: Vec<NewJob> = receivers
            .iter()
            .map(|&r| NewJob {
                id: switchyard_types::JobId::new(),
                run_id: event.run_id,
                story: Arc::clone(&story.name),
                agent: Arc::clone(&story.agents[r].name),
                input_event_id: event.id,
                created_at: now,
                due_at: now,
                deferred: false,
            })
            .collect();
        let run = self.inner.store.run(event.run_id).await?;
        let run_started_at = run.map_or(now, |r| r.started_at);
        let ids = jobs.iter().map(|j| j.id).collect();
        // As for ingest: once committed, the jobs must be queued even if the caller goes away.
        let engine = self.clone();
        let run_id = event.run_id;
        tokio::spawn(async move {
            engine.inner.store.replay(run_id, jobs.clone()).await?;
            let mut next = Vec::with_capacity(jobs.len());
            for j in jobs {
                next.push(JobMessage {
                    job_id: j.id,
                    run_id: j.run_id,
                    story: j.story,
                    agent: j.agent,
                    input_event_id: j.input_event_id,
                    attempts: 0,
                    run_started_at,
                    lineage: None,
                    deferred: false,
                    resumed: false,
                });
            }
            engine.dispatch(next).await;
            Ok::<(), switchyard_store::Error>(())
        })
        .await
        .map_err(|e| switchyard_store::Error::Unavailable(format!("replay task failed: {e}")))??;
        Ok(Replayed {
            run_id: event.run_id,
            jobs: ids,
        })
    }
}
