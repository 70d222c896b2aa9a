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
//! A worker runs the first child a job makes itself, right after acknowledging the job's
//! message (a chain of agents stays in one worker, without messages); the other children
//! are published. Messages carry their job's lineage when the publisher has it.
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

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use switchyard_broker::{Broker, JobEnvelope, LineageLink, Receivers};
use switchyard_types::JobId;

use crate::{Engine, JobMessage, Lineage};

tokio::task_local! {
    /// Set while a worker settles a job: the first job its outcome makes, kept to run in
    /// the same worker next instead of being published (see [`ScaleOut::publish`]).
    static RUN_NEXT_HERE: RefCell<Option<JobMessage>>;
}

/// Whether a job may run in the worker that made it, without a message: a fresh job that
/// runs at once (retries, delays and wakes wait as rows and go through the timer).
fn runs_here(j: &JobMessage) -> bool {
    !j.deferred && !j.resumed && j.attempts == 0
}

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
    /// Jobs whose publish was confirmed (and when), to be marked in the store.
    published: Mutex<VecDeque<(Instant, JobId)>>,
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
                published: Mutex::new(VecDeque::new()),
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
    ///
    /// In a worker settling a job, the first of them that runs at once is kept instead, and
    /// run by that worker next (a chain of agents stays in one worker: no message, no
    /// delivery, no acknowledgement for it). It is in the outbox like the others: should the
    /// worker stop before claiming it, the sweeper publishes it; after, its lease runs out
    /// and the sweeper takes it back.
    pub async fn publish(&self, jobs: &[JobMessage]) {
        if jobs.is_empty() {
            return;
        }
        let kept = RUN_NEXT_HERE
            .try_with(|slot| {
                let mut slot = slot.borrow_mut();
                if slot.is_some() {
                    return None;
                }
                let i = jobs.iter().position(runs_here)?;
                *slot = Some(jobs[i].clone());
                Some(i)
            })
            .ok()
            .flatten();
        let jobs: Vec<&JobMessage> = jobs
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != kept)
            .map(|(_, j)| j)
            .collect();
        if jobs.is_empty() {
            return;
        }
        let envelopes: Vec<JobEnvelope> = jobs.iter().map(|j| envelope(j)).collect();
        match self.broker.publish(&envelopes).await {
            Ok(()) => {
                let now = Instant::now();
                self.published
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(jobs.iter().map(|j| (now, j.job_id)));
            }
            Err(e) => {
                tracing::warn!(jobs = jobs.len(), error = %e, "could not publish jobs; they stay in the outbox and are published when RabbitMQ is back");
            }
        }
    }

    /// Confirmed jobs to mark: those confirmed at least `age` ago.
    fn take_published(&self, age: Duration) -> Vec<JobId> {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let ripe = published
            .iter()
            .position(|(at, _)| now.duration_since(*at) < age)
            .unwrap_or(published.len());
        published.drain(..ripe).map(|(_, id)| id).collect()
    }

    /// Leaves: publishes what is left to mark, gives up the coordinator lease, closes the
    /// connection (messages not acknowledged go back to the queue).
    pub async fn shutdown(&self, engine: &Engine) {
        engine.flush_published(Duration::ZERO).await;
        if self.is_coordinator() {
            if let Some(c) = engine.inner.store.coordination() {
                let _ = c.drop_lease(coordinator::LEASE_NAME, &self.owner).await;
            }
        }
        self.broker.close().await;
    }
}

/// The message for a job, with its lineage when it is in memory (so the worker need not
/// read it back from the store).
fn envelope(j: &JobMessage) -> JobEnvelope {
    let lineage = j.lineage.as_ref().map_or_else(Vec::new, |l| {
        l.iter()
            .map(|link| LineageLink {
                event_id: link.event_id,
                agent: Arc::clone(&link.agent),
                payload: Arc::clone(&link.payload),
            })
            .collect()
    });
    JobEnvelope {
        job_id: j.job_id,
        run_id: j.run_id,
        story: j.story.to_string(),
        agent: j.agent.to_string(),
        input_event_id: j.input_event_id,
        attempts: j.attempts,
        run_started_at: j.run_started_at,
        resumed: j.resumed,
        lineage,
    }
}

/// The lineage a message carries, when it carries its job's: links nearest first, the first
/// being the job's input event.
fn carried_lineage(e: &mut JobEnvelope) -> Option<Arc<Lineage>> {
    if e.lineage.first().map(|l| l.event_id) != Some(e.input_event_id) {
        return None;
    }
    let mut chain: Option<Arc<Lineage>> = None;
    for link in std::mem::take(&mut e.lineage).into_iter().rev() {
        chain = Some(Lineage::child(
            chain,
            link.event_id,
            link.agent,
            link.payload,
        ));
    }
    chain
}

/// The job of a message (its lineage, when not carried, is read from the store).
fn job_message(mut e: JobEnvelope) -> JobMessage {
    let lineage = carried_lineage(&mut e);
    JobMessage {
        job_id: e.job_id,
        run_id: e.run_id,
        story: e.story.into(),
        agent: e.agent.into(),
        input_event_id: e.input_event_id,
        attempts: e.attempts,
        run_started_at: e.run_started_at,
        lineage,
        deferred: false,
        resumed: e.resumed,
    }
}

/// How often confirmed publishes are marked in the store.
const MARK_EVERY: Duration = Duration::from_millis(250);
/// How long after its confirm a job is marked. Most jobs are claimed by then, and a claim
/// marks its job too: the mark then finds nothing to write (and no row to wait for). Well
/// below the sweeper's `UNPUBLISHED_AFTER`, so a job still waiting in the queue is marked
/// before the sweeper would publish it again.
const MARK_AFTER: Duration = Duration::from_secs(1);

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
            self.flush_published(MARK_AFTER).await;
        }
    }

    /// Marks the jobs confirmed at least `age` ago.
    async fn flush_published(&self, age: Duration) {
        let (Some(s), Some(c)) = (self.scale(), self.inner.store.coordination()) else {
            return;
        };
        let ids = s.take_published(age);
        if ids.is_empty() {
            return;
        }
        if let Err(e) = c.mark_published(&ids).await {
            tracing::debug!(error = %e, jobs = ids.len(), "cannot mark published jobs yet");
            let mut pending = s.published.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded: unmarked jobs are at worst published twice by the sweeper.
            if pending.len() < 100_000 {
                let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                for id in ids.into_iter().rev() {
                    pending.push_front((at, id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_types::{EventId, RunId};

    fn message(lineage: Option<Arc<Lineage>>, input: EventId) -> JobMessage {
        JobMessage {
            job_id: JobId::new(),
            run_id: RunId::new(),
            story: "s".into(),
            agent: "post".into(),
            input_event_id: input,
            attempts: 0,
            run_started_at: switchyard_types::now(),
            lineage,
            deferred: false,
            resumed: false,
        }
    }

    #[test]
    fn a_job_carries_its_lineage_to_the_worker() {
        let hook = Lineage::child(
            None,
            EventId::new(),
            "webhook".into(),
            Arc::new(serde_json::json!({"n": 1})),
        );
        let input = EventId::new();
        let transform = Lineage::child(
            Some(hook),
            input,
            "transform".into(),
            Arc::new(serde_json::json!({"n": 2})),
        );
        let sent = message(Some(transform), input);
        let body = serde_json::to_vec(&envelope(&sent)).unwrap();
        let got = job_message(serde_json::from_slice(&body).unwrap());
        let lineage = got.lineage.expect("carried");
        let links: Vec<(&str, i64)> = lineage
            .iter()
            .map(|l| (&*l.agent, l.payload["n"].as_i64().unwrap()))
            .collect();
        assert_eq!(links, [("transform", 2), ("webhook", 1)]);
        assert_eq!(lineage.event_id, input);
        assert_eq!(got.job_id, sent.job_id);
    }

    #[test]
    fn a_job_without_its_lineage_reads_it_from_the_store() {
        let got = job_message(envelope(&message(None, EventId::new())));
        assert!(got.lineage.is_none());
        // A lineage that is not the job's input event's is not trusted.
        let other = Lineage::child(None, EventId::new(), "x".into(), Arc::new(1.into()));
        let got = job_message(envelope(&message(Some(other), EventId::new())));
        assert!(got.lineage.is_none());
    }
}
