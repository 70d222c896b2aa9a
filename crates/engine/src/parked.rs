//! Jobs whose outcome could not be recorded because the store was down. They wait here and
//! are dispatched again once the store answers, so an outage of the database loses no
//! acknowledged work and needs no restart. (Running a job again is safe: delivery is at
//! least once, and `finish_job` records a job only once.)

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::{Engine, JobMessage};

/// First wait before asking the store again; doubled up to `MAX_WAIT`.
const FIRST_WAIT: Duration = Duration::from_millis(200);
const MAX_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Parked {
    jobs: Mutex<Vec<JobMessage>>,
    notify: Notify,
}

impl Parked {
    /// Keeps `job` until the store is back.
    pub fn park(&self, job: JobMessage) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job);
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<JobMessage> {
        std::mem::take(&mut *self.jobs.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Engine {
    /// Waits for parked jobs, then for the store to answer, then dispatches them again.
    pub(crate) async fn run_parked(&self) {
        let cancel = self.inner.cancel.clone();
        let parked = &self.inner.parked;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = parked.notify.notified() => {}
            }
            let mut wait = FIRST_WAIT;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                if self.inner.store.ping().await.is_ok() {
                    break;
                }
                wait = (wait * 2).min(MAX_WAIT);
            }
            let jobs = parked.take();
            if !jobs.is_empty() {
                tracing::info!(
                    jobs = jobs.len(),
                    "the store answers again; running the jobs it could not record"
                );
                for job in jobs {
                    self.inner.queue.push(job);
                }
            }
        }
    }
}
