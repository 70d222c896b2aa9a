//! The in-process job queue: the fast path from a commit to a worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use switchyard_types::{EventId, JobId, RunId, Timestamp};
use tokio::sync::mpsc;

use crate::Lineage;

/// A job handed to a worker: which agent, which input, and (when known) the input's lineage
/// so the worker need not read it back from the store.
#[derive(Debug, Clone)]
pub struct JobMessage {
    /// The job.
    pub job_id: JobId,
    /// Its run.
    pub run_id: RunId,
    /// Story name.
    pub story: Arc<str>,
    /// Agent to run.
    pub agent: Arc<str>,
    /// The event delivered.
    pub input_event_id: EventId,
    /// Tries already made.
    pub attempts: u32,
    /// When the run started.
    pub run_started_at: Timestamp,
    /// The input event and its ancestors, when already in memory.
    pub lineage: Option<Arc<Lineage>>,
    /// Whether this job came from the timer (retries, delays).
    pub deferred: bool,
    /// Whether the agent asked to be woken and this is the wake.
    pub resumed: bool,
}

impl From<switchyard_store::QueuedJob> for JobMessage {
    /// A job read back from the store: its lineage is read again when it runs.
    fn from(j: switchyard_store::QueuedJob) -> Self {
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
}

/// Sender side; counts what is waiting.
pub struct Queue {
    tx: mpsc::UnboundedSender<JobMessage>,
    depth: Arc<AtomicUsize>,
}

/// Receiver side, owned by the worker loop.
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<JobMessage>,
    depth: Arc<AtomicUsize>,
}

impl Queue {
    /// A new queue. Its length is bounded by ingest backpressure (`max_queued`), not here.
    pub fn new() -> (Queue, Receiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicUsize::new(0));
        (
            Queue {
                tx,
                depth: Arc::clone(&depth),
            },
            Receiver { rx, depth },
        )
    }

    /// Hands a committed job to the workers.
    pub fn push(&self, job: JobMessage) {
        self.depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(job).is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Jobs waiting.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

impl Receiver {
    /// The next job.
    pub async fn recv(&mut self) -> Option<JobMessage> {
        let job = self.rx.recv().await?;
        self.depth.fetch_sub(1, Ordering::Relaxed);
        Some(job)
    }
}
