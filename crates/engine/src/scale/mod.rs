//! The scaled-out mode: any number of processes (`serve --no-workers` front ends, `worker`s)
//! share one PostgreSQL store and pass jobs over RabbitMQ.
//!
//! ```text
//! ingest / finish ─commit─► PostgreSQL (jobs: the outbox) ─publish+confirm─► RabbitMQ ─► worker
//!        ▲                        ▲   ▲                                                   │
//!        │    sweeper (one process): publishes what was never confirmed,                 │
//!        │    takes back jobs whose worker's lease ran out                                │
//!        │    timer (one process): publishes deferred jobs when due                       │
//!        └──────── children ◄── finish_job (commit) ◄── claim (lease) ◄──────────────────┘
//!                                                          then ack
//! ```
//!
//! Invariants: the store is the truth and the outbox — a job is committed before its message
//! is published, and its message is acknowledged only after its outcome is committed, so a
//! crash anywhere loses nothing and at worst runs a job twice (`finish_job` records it once).
//! Long waits (retries, delays, sub-story waits) are rows, never unacknowledged messages. A
//! worker takes a job with a lease (renewed while it runs); a redelivered message whose lease
//! is held by a live worker waits for it, and one whose worker died is taken back (a rescue);
//! after `max_rescues` the job fails as `lost_worker`. A message the broker dead-letters
//! (handed back `x-delivery-limit` times) fails its job as `dead_lettered`.

mod coordinator;
mod worker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use switchyard_broker::{Broker, JobEnvelope, Receivers};
use switchyard_types::JobId;

use crate::{Engine, JobMessage};

/// Settings of the scaled-out mode.
pub struct ScaleOutConfig {
    /// The RabbitMQ connection (started by the caller, with the consumers this process wants).
    pub broker: Broker,
    /// Its deliveries.
    pub receivers: Receivers,
    /// How long a worker's hold on a job lasts without renewal (renewed every third of it):
    /// how soon a job of a worker that died is taken back.
    pub lease: Duration,
    /// Times a job may be taken back from workers that died before it fails as
    /// `lost_worker`.
    pub max_rescues: u32,
}

impl ScaleOutConfig {
    /// Defaults: a 30 s lease, 3 rescues.
    pub fn new(broker: Broker, receivers: Receivers) -> Self {
        ScaleOutConfig {
            broker,
            receivers,
            lease: Duration::from_secs(30),
            max_rescues: 3,
        }
    }
}

/// The scaled-out state of an engine.
pub(crate) struct ScaleOut {
    pub broker: Broker,
    /// This process, as lease owner: `host/pid/random`.
    pub owner: String,
    pub lease: Duration,
    pub max_rescues: u32,
    /// Jobs this process holds a lease on (renewed together).
    held: Mutex<HashSet<JobId>>,
    /// Jobs whose publish was confirmed, to be marked in the store.
    published: Mutex<Vec<JobId>>,
    coordinator: AtomicBool,
}

impl ScaleOut {
    pub fn new(c: ScaleOutConfig) -> (ScaleOut, Receivers) {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let owner = format!(
            "{host}/{}/{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        (
            ScaleOut {
                broker: c.broker,
                owner,
                lease: c.lease.max(Duration::from_millis(300)),
                max_rescues: c.max_rescues.max(1),
                held: Mutex::new(HashSet::new()),
                published: Mutex::new(Vec::new()),
                coordinator: AtomicBool::new(false),
            },
            c.receivers,
        )
    }

    pub fn is_coordinator(&self) -> bool {
        self.coordinator.load(Ordering::Relaxed)
    }

    /// Marks `job` as run by this process; false when it already is (a second message for
    /// a job running here).
    fn hold(&self, job: JobId) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job)
    }

    fn unhold(&self, job: JobId) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job);
    }

    fn held(&self) -> Vec<JobId> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Publishes committed jobs. A failure is logged: the jobs stay in the store's outbox and
    /// the sweeper publishes them later.
    pub async fn publish(&self, jobs: &[JobMessage]) {
        if jobs.is_empty() {
            return;
        }
        let envelopes: Vec<JobEnvelope> = jobs.iter().map(envelope).collect();
        match self.broker.publish(&envelopes).await {
            Ok(()) => self
                .published
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(jobs.iter().map(|j| j.job_id)),
            Err(e) => {
                tracing::warn!(jobs = jobs.len(), error = %e, "could not publish jobs; they stay in the outbox and are published when RabbitMQ is back");
            }
        }
    }

    fn take_published(&self) -> Vec<JobId> {
        std::mem::take(&mut *self.published.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Leaves: publishes what is left to mark, gives up the coordinator lease, closes the
    /// connection (messages not acknowledged go back to the queue).
    pub async fn shutdown(&self, engine: &Engine) {
        engine.flush_published().await;
        if self.is_coordinator() {
            if let Some(c) = engine.inner.store.coordination() {
                let _ = c.drop_lease(coordinator::LEASE_NAME, &self.owner).await;
            }
        }
        self.broker.close().await;
    }
}

/// The message for a job.
fn envelope(j: &JobMessage) -> JobEnvelope {
    JobEnvelope {
        job_id: j.job_id,
        run_id: j.run_id,
        story: j.story.to_string(),
        agent: j.agent.to_string(),
        input_event_id: j.input_event_id,
        attempts: j.attempts,
        run_started_at: j.run_started_at,
        resumed: j.resumed,
    }
}

/// The job of a message (its lineage is read from the store).
fn job_message(e: JobEnvelope) -> JobMessage {
    JobMessage {
        job_id: e.job_id,
        run_id: e.run_id,
        story: e.story.into(),
        agent: e.agent.into(),
        input_event_id: e.input_event_id,
        attempts: e.attempts,
        run_started_at: e.run_started_at,
        lineage: None,
        deferred: false,
        resumed: e.resumed,
    }
}

/// A stored queued job as a message.
fn queued_message(j: switchyard_store::QueuedJob) -> JobMessage {
    JobMessage {
        job_id: j.id,
        run_id: j.run_id,
        story: j.story.into(),
        agent: j.agent.into(),
        input_event_id: j.input_event_id,
        attempts: j.attempts,
        run_started_at: j.run_started_at,
        lineage: None,
        deferred: false,
        resumed: j.resumed,
    }
}

/// How often confirmed publishes are marked in the store.
const MARK_EVERY: Duration = Duration::from_millis(250);

impl Engine {
    /// Starts the scaled-out tasks: workers (when this process runs agents) with their lease
    /// renewals, the dead-letter consumer, the publish marker, and the coordinator's duties.
    pub(crate) fn spawn_scaled(&self, receivers: Receivers) {
        let Receivers { jobs, dead_letters } = receivers;
        let tasks = &self.inner.tasks;
        if self.inner.config.run_workers {
            let e = self.clone();
            tasks.spawn(async move { e.run_broker_workers(jobs).await });
            let e = self.clone();
            tasks.spawn(async move { e.renew_leases().await });
        }
        let e = self.clone();
        tasks.spawn(async move { e.run_dead_letters(dead_letters).await });
        let e = self.clone();
        tasks.spawn(async move { e.run_publish_marker().await });
        let e = self.clone();
        tasks.spawn(async move { e.run_coordination().await });
        let e = self.clone();
        tasks.spawn(async move { e.run_broker_timer().await });
        let e = self.clone();
        tasks.spawn(async move { e.run_scheduler().await });
    }

    fn scale(&self) -> Option<&ScaleOut> {
        self.inner.scale.as_ref()
    }

    /// Marks confirmed publishes in the store, a batch every `MARK_EVERY`, so the sweeper
    /// leaves them alone.
    async fn run_publish_marker(&self) {
        let cancel = self.inner.cancel.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(MARK_EVERY) => {}
            }
            self.flush_published().await;
        }
    }

    async fn flush_published(&self) {
        let (Some(s), Some(c)) = (self.scale(), self.inner.store.coordination()) else {
            return;
        };
        let ids = s.take_published();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = c.mark_published(&ids).await {
            tracing::debug!(error = %e, jobs = ids.len(), "cannot mark published jobs yet");
            let mut pending = s.published.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded: unmarked jobs are at worst published twice by the sweeper.
            if pending.len() < 100_000 {
                pending.extend(ids);
            }
        }
    }
}
