//! The timer: runs deferred jobs (retries, delays) when they are due.
//!
//! Deferred jobs live in the store. The timer reads those due within a short horizon into a
//! heap, and dispatches them at their time, so pending delays cost store rows, not memory.
//! A job rescheduled inside the window already read — or inside the window a poll is reading
//! right now, whose query may have run before the job's commit — is pushed directly.

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

/// A keyset position in the deferred jobs: (due time, job id).
type Position = (Timestamp, JobId);

/// What one poll read: the jobs, and the position it read up to.
struct PollRead {
    after: Option<Position>,
    jobs: Vec<(Timestamp, JobMessage)>,
}

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
    loaded_until: Option<Position>,
    /// The due time up to which the poll in progress reads (its query may not see a job
    /// committed while it runs, so such a job is pushed directly).
    polling_until: Option<Timestamp>,
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
        let read = s.loaded_until.is_some_and(|pos| (due, job.job_id) <= pos);
        let being_read = s.polling_until.is_some_and(|until| due <= until);
        if read || being_read {
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

    /// A poll starts reading jobs due up to `until`: returns the keyset position to read after.
    fn begin_poll(&self, until: Timestamp) -> Option<Position> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.polling_until = Some(until);
        s.loaded_until
    }

    /// A poll has read `jobs` up to keyset position `after` (or failed: `None`).
    fn end_poll(&self, read: Option<PollRead>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.polling_until = None;
        if let Some(PollRead { after, jobs }) = read {
            for (due, job) in jobs {
                s.push(due, job);
            }
            s.loaded_until = after.max(s.loaded_until);
        }
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
        let timer = &self.inner.timer;
        let mut after = timer.begin_poll(until);
        match self.read_deferred(&mut after, until).await {
            Ok(jobs) => {
                timer.end_poll(Some(PollRead { after, jobs }));
                Ok(())
            }
            Err(e) => {
                timer.end_poll(None);
                Err(e)
            }
        }
    }

    /// Reads deferred jobs due up to `until` after keyset position `after` (moved along).
    async fn read_deferred(
        &self,
        after: &mut Option<Position>,
        until: Timestamp,
    ) -> Result<Vec<(Timestamp, JobMessage)>, switchyard_store::Error> {
        let mut loaded = 0usize;
        let mut jobs = Vec::new();
        loop {
            let page = self
                .inner
                .store
                .queued_jobs(true, *after, Some(until), 1000)
                .await?;
            let full = page.len() == 1000;
            for j in page {
                let due_at = j.due_at;
                *after = Some((due_at, j.id));
                let message = JobMessage {
                    deferred: true,
                    ..j.into()
                };
                jobs.push((due_at, message));
            }
            loaded += 1000;
            if !full || loaded >= MAX_LOADED {
                if !full {
                    *after = Some((until, MAX_JOB));
                }
                return Ok(jobs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_types::{EventId, RunId};

    fn job() -> JobMessage {
        JobMessage {
            job_id: JobId::new(),
            run_id: RunId::new(),
            story: "s".into(),
            agent: "a".into(),
            input_event_id: EventId::new(),
            attempts: 0,
            run_started_at: switchyard_types::now(),
            lineage: None,
            deferred: true,
            resumed: false,
        }
    }

    fn secs(n: i64) -> Timestamp {
        switchyard_types::now() + chrono::Duration::seconds(n)
    }

    #[test]
    fn a_job_due_beyond_what_was_read_is_left_to_the_poll() {
        let timer = Timer::default();
        timer.schedule_committed(secs(1), job());
        assert_eq!(
            timer.held(),
            0,
            "no window read yet: the next poll reads it"
        );
        timer.end_poll(Some(PollRead {
            after: Some((secs(2), MAX_JOB)),
            jobs: Vec::new(),
        }));
        timer.schedule_committed(secs(60), job());
        assert_eq!(
            timer.held(),
            0,
            "beyond the window read: the poll that reaches it reads it"
        );
        timer.schedule_committed(secs(1), job());
        assert_eq!(timer.held(), 1, "inside the window read: taken directly");
    }

    /// A job committed while a poll's query runs may be missing from what the query returns,
    /// and the poll then moves its position past it: it must be taken directly.
    #[test]
    fn a_job_committed_while_a_poll_reads_its_window_is_taken_directly() {
        let timer = Timer::default();
        let until = secs(2);
        assert_eq!(timer.begin_poll(until), None);
        timer.schedule_committed(secs(1), job());
        assert_eq!(timer.held(), 1);
        timer.end_poll(Some(PollRead {
            after: Some((until, MAX_JOB)),
            jobs: Vec::new(),
        }));
        assert_eq!(timer.held(), 1);
        // After the poll, the window it read counts as read.
        timer.schedule_committed(secs(1), job());
        assert_eq!(timer.held(), 2);
        // A failed poll reads nothing and leaves the position where it was.
        let position = timer.begin_poll(secs(4));
        timer.end_poll(None);
        assert_eq!(timer.begin_poll(secs(4)), position);
    }
}
