//! The timer: runs deferred jobs (retries, delays) when they are due.
//!
//! Deferred jobs live in the store. The timer reads those due within a short horizon into a
//! heap, and dispatches them at their time, so pending delays cost store rows, not memory.
//! A job rescheduled inside the window already read is pushed directly.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use switchyard_types::{JobId, Timestamp};
use tokio::sync::Notify;

use crate::{Engine, JobMessage};

/// How far ahead the timer reads deferred jobs.
const HORIZON: Duration = Duration::from_secs(2);
/// The largest job id: a keyset position after every job due at the same time.
const MAX_JOB: JobId = JobId::MAX;
/// Most deferred jobs read per poll.
const MAX_LOADED: usize = 10_000;

#[derive(Default)]
pub struct Timer {
    state: Mutex<TimerState>,
    notify: Notify,
}

#[derive(Default)]
struct TimerState {
    heap: BinaryHeap<Reverse<(Timestamp, JobId)>>,
    entries: HashMap<JobId, JobMessage>,
    dispatched: HashSet<JobId>,
    /// Keyset position up to which deferred jobs have been read from the store.
    loaded_until: Option<(Timestamp, JobId)>,
}

impl TimerState {
    fn push(&mut self, due: Timestamp, job: JobMessage) {
        self.heap.push(Reverse((due, job.job_id)));
        self.entries.insert(job.job_id, job);
    }
}

impl Timer {
    /// A deferred job was committed with `due`: take it directly if the window that would
    /// contain it has already been read.
    pub fn schedule_committed(&self, due: Timestamp, job: JobMessage) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.loaded_until.is_some_and(|pos| (due, job.job_id) <= pos) {
            s.push(due, job);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// A deferred job has finished (or been rescheduled): it may be dispatched again.
    pub fn done(&self, id: JobId) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.dispatched.remove(&id);
    }

    /// Deferred jobs held in memory.
    pub fn held(&self) -> usize {
        self.state.lock().map(|s| s.entries.len()).unwrap_or(0)
    }
}

impl Engine {
    pub(crate) async fn run_timer(&self) {
        let cancel = self.inner.cancel.clone();
        let timer = &self.inner.timer;
        let mut next_poll = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_poll {
                match self.poll_deferred().await {
                    Ok(()) => next_poll = tokio::time::Instant::now() + HORIZON / 2,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read deferred jobs; retrying");
                        next_poll = tokio::time::Instant::now() + Duration::from_secs(1);
                    }
                }
            }
            // Dispatch what is due.
            let now = switchyard_types::now();
            let mut wake_in = next_poll.saturating_duration_since(tokio::time::Instant::now());
            {
                let mut s = timer.state.lock().unwrap_or_else(|e| e.into_inner());
                while let Some(Reverse((due, id))) = s.heap.peek().copied() {
                    if due > now {
                        let until = (due - now).to_std().unwrap_or_default();
                        wake_in = wake_in.min(until);
                        break;
                    }
                    s.heap.pop();
                    if let Some(job) = s.entries.remove(&id) {
                        if s.dispatched.insert(id) {
                            self.inner.queue.push(job);
                        }
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = timer.notify.notified() => {}
                _ = tokio::time::sleep(wake_in) => {}
            }
        }
    }

    async fn poll_deferred(&self) -> Result<(), switchyard_store::Error> {
        let until =
            switchyard_types::now() + chrono::Duration::from_std(HORIZON).unwrap_or_default();
        let start = {
            let s = self
                .inner
                .timer
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            s.loaded_until
        };
        let mut after = start;
        let mut loaded = 0usize;
        let mut jobs = Vec::new();
        loop {
            let page = self
                .inner
                .store
                .queued_jobs(true, after, Some(until), 1000)
                .await?;
            let full = page.len() == 1000;
            for j in page {
                after = Some((j.due_at, j.id));
                jobs.push(j);
            }
            loaded += 1000;
            if !full || loaded >= MAX_LOADED {
                if !full {
                    after = Some((until, MAX_JOB));
                }
                break;
            }
        }
        let mut s = self
            .inner
            .timer
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for j in jobs {
            let due = j.due_at;
            s.push(
                due,
                JobMessage {
                    job_id: j.id,
                    run_id: j.run_id,
                    story: j.story.into(),
                    agent: j.agent.into(),
                    input_event_id: j.input_event_id,
                    attempts: j.attempts,
                    run_started_at: j.run_started_at,
                    lineage: None,
                    deferred: true,
                    resumed: j.resumed,
                },
            );
        }
        s.loaded_until = after.max(s.loaded_until);
        Ok(())
    }
}
