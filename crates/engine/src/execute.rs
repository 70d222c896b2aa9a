//! Workers: take a job, run its agent, record the outcome with its children, dispatch them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_agents::{AgentError, ExecContext, Outcome};
use switchyard_store::{FinishJob, Finished, NewEvent, NewJob, Reschedule, StateScope};
use switchyard_story::{AgentDef, Story};
use switchyard_template::{redact, redact_str, Context};
use switchyard_types::{EventId, EventKind, JobId, JobState, Timestamp};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::host::EngineHost;
use crate::queue::Receiver;
use crate::{Engine, JobMessage, Lineage};

/// Deepest lineage read back from the store for a job's templates.
const MAX_LINEAGE: usize = 1000;

impl Engine {
    /// Re-dispatches every job that was queued when the process last stopped.
    pub(crate) async fn recover(&self) -> Result<(), switchyard_store::Error> {
        let mut after = None;
        let mut count = 0usize;
        loop {
            let page = self
                .inner
                .store
                .queued_jobs(false, after, None, 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.due_at, last.id));
            for j in page {
                count += 1;
                self.inner.queue.push(j.into());
            }
        }
        if count > 0 {
            tracing::info!(jobs = count, "recovered unfinished jobs from the store");
        }
        Ok(())
    }

    pub(crate) async fn run_workers(&self, mut receiver: Receiver) {
        let permits = Arc::new(Semaphore::new(self.inner.config.concurrency));
        let cancel = self.inner.cancel.clone();
        loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => break,
                p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let job = tokio::select! {
                _ = cancel.cancelled() => break,
                j = receiver.recv() => match j { Some(j) => j, None => break },
            };
            let engine = self.clone();
            let span = tracing::info_span!("job", story = %job.story, agent = %job.agent, run_id = %job.run_id, event_id = %job.input_event_id);
            self.inner.tasks.spawn(
                async move {
                    engine.execute(job).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }

    /// Hands a waiting job that the store has just woken (made due now) to the workers.
    pub(crate) async fn dispatch_woken(&self, job: JobId) -> Result<(), switchyard_store::Error> {
        if let Some(message) = self.woken_message(job).await? {
            self.dispatch(vec![message]).await;
        }
        Ok(())
    }

    /// The message that resumes a woken waiting job, if the job is still there.
    async fn woken_message(
        &self,
        job: JobId,
    ) -> Result<Option<JobMessage>, switchyard_store::Error> {
        Ok(self.inner.store.job(job).await?.map(|p| JobMessage {
            job_id: p.id,
            run_id: p.run_id,
            story: p.story.into(),
            agent: p.agent.into(),
            input_event_id: p.input_event_id,
            attempts: p.attempts,
            run_started_at: p.run_started_at,
            lineage: None,
            deferred: true,
            resumed: true,
        }))
    }

    /// Runs one job to its recorded end (or to its rescheduling).
    pub(crate) async fn execute(&self, job: JobMessage) {
        let job_id = job.job_id;
        let deferred = job.deferred;
        let again = job.clone();
        match self.try_execute(job, None).await {
            Ok(()) => {}
            Err(
                e @ (switchyard_store::Error::Unavailable(_) | switchyard_store::Error::Overloaded),
            ) => {
                tracing::warn!(job = %job_id, error = %e, "job could not be recorded; it will run again when the store is back");
                self.inner.parked.park(again);
            }
            Err(e) => {
                tracing::error!(job = %job_id, error = %e, "job could not be recorded; it will run again after a restart");
            }
        }
        if deferred {
            self.inner.timer.done(job_id);
        }
    }

    /// Runs `job`'s agent and records the outcome; with `forced`, records that failure instead
    /// of running the agent (a job dead-lettered by the broker, or one whose workers keep
    /// dying).
    pub(crate) async fn try_execute(
        &self,
        job: JobMessage,
        forced: Option<AgentError>,
    ) -> Result<(), switchyard_store::Error> {
        if job.deferred && forced.is_none() {
            // A timer entry can outlive its job (finished meanwhile) or its due time (moved).
            match self.inner.store.job(job.job_id).await? {
                None => return Ok(()),
                Some(current)
                    if current.due_at
                        > switchyard_types::now() + chrono::Duration::milliseconds(50) =>
                {
                    self.inner.timer.schedule_committed(current.due_at, job);
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        let catalog = self.catalog();
        let started_at = switchyard_types::now();
        let attempt = job.attempts + 1;
        let Some((story, index)) = catalog
            .story(&job.story)
            .and_then(|s| s.by_name.get(&*job.agent).map(|&i| (Arc::clone(s), i)))
        else {
            let message = match &forced {
                Some(e) => format!("{} ({})", e.message, e.kind),
                None => format!(
                    "agent `{}` of story `{}` is no longer loaded",
                    job.agent, job.story
                ),
            };
            return self
                .fail_unrunnable(&job, attempt, started_at, message)
                .await;
        };
        let def = &story.agents[index];
        let lineage = match &job.lineage {
            Some(l) => Arc::clone(l),
            None => match Lineage::from_events(
                self.inner
                    .store
                    .lineage(job.input_event_id, MAX_LINEAGE)
                    .await?,
            ) {
                Some(l) => l,
                None => {
                    let message = "the input event is no longer stored".to_string();
                    return self
                        .fail_unrunnable(&job, attempt, started_at, message)
                        .await;
                }
            },
        };
        let templates = self.job_context(&story, &job, &lineage, started_at);

        let clock = std::time::Instant::now();
        let result = match forced {
            Some(e) => Err(e),
            None => {
                self.run_agent(def, &templates, &lineage, &job, attempt)
                    .await
            }
        };
        let outcome = match &result {
            Ok(Outcome::Emit(_)) => "succeeded",
            Ok(Outcome::Skip) => "skipped",
            Ok(Outcome::Defer { .. }) => "deferred",
            Err(e) if e.retryable && attempt < def.retry.attempts => "retrying",
            Err(_) => "failed",
        };
        metrics::counter!("switchyard_agent_executions_total", "type" => def.kind.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("switchyard_agent_execution_seconds", "type" => def.kind.clone())
            .record(clock.elapsed().as_secs_f64());
        if outcome == "retrying" {
            metrics::counter!("switchyard_agent_retries_total", "type" => def.kind.clone())
                .increment(1);
        }
        let secrets = templates.credentials_used();
        match result {
            Ok(Outcome::Defer { until }) => {
                self.inner
                    .store
                    .reschedule(Reschedule {
                        job_id: job.job_id,
                        attempts: job.attempts,
                        due_at: until,
                        started_at: Some(started_at),
                        error: None,
                        resume: true,
                    })
                    .await?;
                if self.inner.scale.is_none() {
                    let mut next = job.clone();
                    next.deferred = true;
                    next.resumed = true;
                    self.inner.timer.schedule_committed(until, next);
                }
                Ok(())
            }
            Ok(Outcome::Skip) => {
                self.finish(
                    &job,
                    Some(&lineage),
                    JobState::Skipped,
                    attempt,
                    started_at,
                    None,
                    Vec::new(),
                    Vec::new(),
                    None,
                )
                .await
            }
            Ok(Outcome::Emit(mut values)) => {
                if !secrets.is_empty() {
                    for v in &mut values {
                        redact(v, &secrets);
                    }
                }
                let (events, jobs) =
                    self.children(&story, def, &job, values, EventKind::Event, &def.downstream)?;
                self.finish(
                    &job,
                    Some(&lineage),
                    JobState::Succeeded,
                    attempt,
                    started_at,
                    None,
                    events,
                    jobs,
                    None,
                )
                .await
            }
            Err(mut e) => {
                if !secrets.is_empty() {
                    e.message = redact_str(&e.message, &secrets);
                }
                if e.retryable && attempt < def.retry.attempts {
                    let wait = def.retry.backoff_before(attempt + 1, rand::random::<f64>());
                    let wait = e
                        .retry_after
                        .map_or(wait, |ra| ra.max(wait))
                        .min(Duration::from_secs(24 * 3600));
                    let due_at = started_at + chrono::Duration::from_std(wait).unwrap_or_default();
                    tracing::info!(story = %job.story, agent = %job.agent, run_id = %job.run_id, attempt, wait_ms = wait.as_millis() as u64, error = %e.message, "agent failed; will retry");
                    self.inner
                        .store
                        .reschedule(Reschedule {
                            job_id: job.job_id,
                            attempts: attempt,
                            due_at,
                            started_at: Some(started_at),
                            error: Some(e.message.clone()),
                            resume: false,
                        })
                        .await?;
                    if self.inner.scale.is_none() {
                        let mut next = job.clone();
                        next.attempts = attempt;
                        next.deferred = true;
                        next.resumed = false;
                        self.inner.timer.schedule_committed(due_at, next);
                    }
                    return Ok(());
                }
                tracing::warn!(story = %job.story, agent = %job.agent, run_id = %job.run_id, attempts = attempt, kind = e.kind, error = %e.message, "agent failed");
                let mut input = (*lineage.payload).clone();
                if !secrets.is_empty() {
                    redact(&mut input, &secrets);
                }
                let payload = json!({
                    "error": {"kind": e.kind, "message": e.message, "attempts": attempt},
                    "input": input,
                });
                let (events, jobs) = self.children(
                    &story,
                    def,
                    &job,
                    vec![payload],
                    EventKind::Error,
                    &def.error_downstream,
                )?;
                let unhandled = def
                    .error_downstream
                    .is_empty()
                    .then(|| format!("{}: {}", def.name, e.message));
                self.finish(
                    &job,
                    Some(&lineage),
                    JobState::Failed,
                    attempt,
                    started_at,
                    Some(e.message),
                    events,
                    jobs,
                    unhandled,
                )
                .await
            }
        }
    }

    async fn run_agent(
        &self,
        def: &AgentDef,
        templates: &Context,
        lineage: &Arc<Lineage>,
        job: &JobMessage,
        attempt: u32,
    ) -> Result<Outcome, AgentError> {
        if let Some(cond) = &def.condition {
            if !cond.eval(templates)? {
                return Ok(Outcome::Skip);
            }
        }
        let host = EngineHost {
            engine: self,
            scope: StateScope {
                story: Arc::clone(&job.story),
                agent: Arc::clone(&job.agent),
            },
            job_id: job.job_id,
        };
        let cx = ExecContext {
            templates,
            input: &lineage.payload,
            services: &self.inner.services,
            job_id: job.job_id,
            attempt,
            story: &job.story,
            agent: &job.agent,
            resumed: job.resumed,
            host: &host,
        };
        let limit = def
            .timeout
            .map_or(self.inner.config.default_timeout, |t| t.std());
        match tokio::time::timeout(limit, def.agent.execute(&cx)).await {
            Ok(r) => r,
            Err(_) => Err(AgentError::transient(
                "timeout",
                format!("no result within {}", switchyard_types::Duration(limit)),
            )),
        }
    }

    fn job_context(
        &self,
        story: &Story,
        job: &JobMessage,
        lineage: &Arc<Lineage>,
        now: Timestamp,
    ) -> Context {
        let mut b = self.template_context();
        for link in lineage.iter() {
            if story.by_name.contains_key(&*link.agent) {
                b = b.agent(&link.agent, Arc::clone(&link.payload));
            }
        }
        b.event(Arc::clone(&lineage.payload))
            .run(&job.run_id.to_string(), &job.story, job.run_started_at)
            .now(now)
            .build()
    }

    #[allow(clippy::type_complexity)]
    fn children(
        &self,
        story: &Story,
        def: &AgentDef,
        job: &JobMessage,
        values: Vec<Value>,
        kind: EventKind,
        receivers: &[usize],
    ) -> Result<(Vec<(NewEvent, Arc<Value>)>, Vec<NewJob>), switchyard_store::Error> {
        let now = switchyard_types::now();
        let mut events = Vec::with_capacity(values.len());
        let mut jobs = Vec::with_capacity(values.len() * receivers.len());
        for value in values {
            let json: Arc<str> = serde_json::to_string(&value)
                .map_err(|e| switchyard_store::Error::Corrupt(e.to_string()))?
                .into();
            let id = EventId::new();
            for &r in receivers {
                jobs.push(NewJob {
                    id: JobId::new(),
                    run_id: job.run_id,
                    story: Arc::clone(&story.name),
                    agent: Arc::clone(&story.agents[r].name),
                    input_event_id: id,
                    created_at: now,
                    due_at: now,
                    deferred: false,
                });
            }
            events.push((
                NewEvent {
                    id,
                    story: Arc::clone(&story.name),
                    agent: Arc::clone(&def.name),
                    run_id: job.run_id,
                    parent_id: Some(job.input_event_id),
                    kind,
                    created_at: now,
                    json,
                },
                Arc::new(value),
            ));
        }
        Ok((events, jobs))
    }

    /// Fails a job whose agent cannot run at all (its story or input is gone): no events,
    /// no children, and the run is marked failed with the reason.
    async fn fail_unrunnable(
        &self,
        job: &JobMessage,
        attempt: u32,
        started_at: Timestamp,
        message: String,
    ) -> Result<(), switchyard_store::Error> {
        self.finish(
            job,
            None,
            JobState::Failed,
            attempt,
            started_at,
            Some(message.clone()),
            Vec::new(),
            Vec::new(),
            Some(message),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        job: &JobMessage,
        lineage: Option<&Arc<Lineage>>,
        state: JobState,
        attempts: u32,
        started_at: Timestamp,
        error: Option<String>,
        events: Vec<(NewEvent, Arc<Value>)>,
        jobs: Vec<NewJob>,
        unhandled_failure: Option<String>,
    ) -> Result<(), switchyard_store::Error> {
        let (new_events, payloads): (Vec<NewEvent>, Vec<Arc<Value>>) = events.into_iter().unzip();
        let finish = FinishJob {
            job_id: job.job_id,
            run_id: job.run_id,
            state,
            attempts,
            started_at,
            finished_at: switchyard_types::now(),
            error,
            events: new_events.clone(),
            jobs: jobs.clone(),
            unhandled_failure,
        };
        let outcome = match self.inner.store.finish_job(finish).await {
            Err(switchyard_store::Error::TooLarge { size, limit }) => {
                // Record the failure instead of the oversized output.
                let message = format!(
                    "agent output is {size} bytes, over the event size limit of {limit} bytes"
                );
                let fail = FinishJob {
                    job_id: job.job_id,
                    run_id: job.run_id,
                    state: JobState::Failed,
                    attempts,
                    started_at,
                    finished_at: switchyard_types::now(),
                    error: Some(message.clone()),
                    events: Vec::new(),
                    jobs: Vec::new(),
                    unhandled_failure: Some(format!("{}: {message}", job.agent)),
                };
                self.inner.store.finish_job(fail).await?;
                return Ok(());
            }
            other => other?,
        };
        let Finished::Applied { run_ended, woke } = outcome else {
            return Ok(());
        };
        let mut next = Vec::with_capacity(jobs.len() + 1);
        if let Some(parent) = woke {
            if let Some(message) = self.woken_message(parent).await? {
                next.push(message);
            }
        }
        if let Some(status) = run_ended {
            tracing::debug!(run_id = %job.run_id, story = %job.story, status = status.as_str(), "run ended");
        }
        let parent = lineage.cloned();
        let mut links: Vec<(EventId, Arc<Lineage>)> = Vec::with_capacity(new_events.len());
        for (e, payload) in new_events.iter().zip(payloads) {
            links.push((
                e.id,
                Lineage::child(parent.clone(), e.id, Arc::clone(&e.agent), payload),
            ));
        }
        for j in jobs {
            let link = links
                .iter()
                .find(|(id, _)| *id == j.input_event_id)
                .map(|(_, l)| Arc::clone(l));
            next.push(JobMessage {
                job_id: j.id,
                run_id: j.run_id,
                story: j.story,
                agent: j.agent,
                input_event_id: j.input_event_id,
                attempts: 0,
                run_started_at: job.run_started_at,
                lineage: link,
                deferred: false,
                resumed: false,
            });
        }
        self.dispatch(next).await;
        Ok(())
    }
}
