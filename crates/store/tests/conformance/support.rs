//! Builders of store writes for the conformance cases.

#![allow(dead_code)]

use std::sync::Arc;

use switchyard_store::{FinishJob, NewEvent, NewJob, ParentLink, StartRun};
use switchyard_types::{EventId, EventKind, JobId, JobState, RunId, Timestamp};

/// A payload `{"n": n}` as JSON text.
pub fn payload(n: i64) -> Arc<str> {
    format!("{{\"n\":{n}}}").into()
}

/// An event of `agent` in `run`.
pub fn event(story: &str, agent: &str, run: RunId, parent: Option<EventId>, n: i64) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        story: story.into(),
        agent: agent.into(),
        run_id: run,
        parent_id: parent,
        kind: EventKind::Event,
        created_at: switchyard_types::now(),
        json: payload(n),
    }
}

/// A job delivering `input` to `agent`, due now (or at `due`, deferred).
pub fn job(story: &str, agent: &str, run: RunId, input: EventId, due: Option<Timestamp>) -> NewJob {
    let now = switchyard_types::now();
    NewJob {
        id: JobId::new(),
        run_id: run,
        story: story.into(),
        agent: agent.into(),
        input_event_id: input,
        created_at: now,
        due_at: due.unwrap_or(now),
        deferred: due.is_some(),
    }
}

/// A run start of `story` whose source event goes to `agents`.
pub fn start(story: &str, agents: &[&str]) -> StartRun {
    let run = RunId::new();
    let ev = event(story, "inbound", run, None, 0);
    let jobs = agents
        .iter()
        .map(|a| job(story, a, run, ev.id, None))
        .collect();
    StartRun {
        run_id: run,
        event: ev,
        jobs,
        idempotency_key: None,
        started_by: Some("webhook".into()),
        parent: None,
    }
}

/// Like [`start`], started by a waiting `story` agent's job.
pub fn start_child(story: &str, agents: &[&str], parent: JobId, exit: &str) -> StartRun {
    let mut s = start(story, agents);
    s.parent = Some(ParentLink {
        job_id: parent,
        exit_agent: exit.to_string(),
    });
    s
}

/// A successful finish of `job` emitting `events` that cause `jobs`.
pub fn finish(job: &NewJob, events: Vec<NewEvent>, jobs: Vec<NewJob>) -> FinishJob {
    let now = switchyard_types::now();
    FinishJob {
        job_id: job.id,
        run_id: job.run_id,
        state: if events.is_empty() {
            JobState::Skipped
        } else {
            JobState::Succeeded
        },
        attempts: 1,
        started_at: now,
        finished_at: now,
        error: None,
        events,
        jobs,
        unhandled_failure: None,
    }
}

/// A finish of `job` emitting one event of its agent, with a job for each of `next`.
pub fn emit(job: &NewJob, n: i64, next: &[&str]) -> (FinishJob, NewEvent, Vec<NewJob>) {
    let ev = event(
        &job.story,
        &job.agent,
        job.run_id,
        Some(job.input_event_id),
        n,
    );
    let jobs: Vec<NewJob> = next
        .iter()
        .map(|a| self::job(&job.story, a, job.run_id, ev.id, None))
        .collect();
    (finish(job, vec![ev.clone()], jobs.clone()), ev, jobs)
}
