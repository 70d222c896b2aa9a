//! The one-at-a-time duties of the scaled-out mode, done by whichever process holds the
//! `coordinator` lease (a row in the store, renewed every two seconds): the timer that
//! publishes deferred jobs when they are due, the outbox sweeper, the scheduler and pruning.
//! When the holder dies, another process takes the lease once it runs out.

use std::sync::atomic::Ordering;
use std::time::Duration;

use switchyard_broker::JobEnvelope;
use switchyard_store::Sweep;

use super::envelope;
use crate::Engine;

/// The named lease of the coordinator.
pub(super) const LEASE_NAME: &str = "coordinator";
/// How long the coordinator lease lasts without renewal.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often it is renewed (and others try to take it), and the sweeper runs.
const TICK: Duration = Duration::from_secs(2);
/// How often the timer looks for deferred jobs that are due.
const TIMER_EVERY: Duration = Duration::from_millis(250);
/// A job committed this long ago without a confirmed publish is published by the sweeper.
const UNPUBLISHED_AFTER: Duration = Duration::from_secs(5);
/// A lease that ran out this long ago belongs to a dead worker: its job is taken back.
const EXPIRED_LEASE_AFTER: Duration = Duration::from_secs(1);
/// A job published this long ago, never taken, while the queue is empty: its message was
/// lost (a purged or deleted queue); published again.
const LOST_AFTER: Duration = Duration::from_secs(60);
/// Most jobs per sweep or timer pass.
const BATCH: usize = 1000;

impl Engine {
    /// Takes and keeps the coordinator lease when it can; sweeps while it holds it.
    pub(super) async fn run_coordination(&self) {
        let (Some(s), Some(c)) = (self.scale(), self.inner.store.coordination()) else {
            return;
        };
        let cancel = self.inner.cancel.clone();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Until when this process may act on its last successful renewal.
        let mut valid_until = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let was = s.is_coordinator();
            let renewed_at = tokio::time::Instant::now();
            let now = match c.hold_lease(LEASE_NAME, &s.owner, LEASE_TTL).await {
                Ok(true) => {
                    valid_until = renewed_at + LEASE_TTL - TICK - TICK / 2;
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot renew the coordinator lease");
                    was && tokio::time::Instant::now() < valid_until
                }
            };
            s.coordinator.store(now, Ordering::Relaxed);
            if now && !was {
                tracing::info!(owner = %s.owner, "this process now runs the timer, the scheduler and the outbox sweeper");
            } else if was && !now {
                tracing::info!(
                    "this process no longer coordinates (another process holds the lease)"
                );
            }
            if now && s.broker.is_connected() {
                self.sweep_once().await;
            }
        }
    }

    /// Publishes what the outbox holds: jobs never confirmed, jobs taken back from dead
    /// workers, messages the broker lost.
    async fn sweep_once(&self) {
        let (Some(s), Some(c)) = (self.scale(), self.inner.store.coordination()) else {
            return;
        };
        let lost_after = (s.broker.ready_messages() == Some(0)).then_some(LOST_AFTER);
        let jobs = match c
            .sweep(Sweep {
                unpublished_after: UNPUBLISHED_AFTER,
                expired_lease_after: EXPIRED_LEASE_AFTER,
                lost_after,
                limit: BATCH,
            })
            .await
        {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "the outbox sweep failed; trying again");
                return;
            }
        };
        if jobs.is_empty() {
            return;
        }
        let ids: Vec<_> = jobs.iter().map(|j| j.id).collect();
        let envelopes: Vec<JobEnvelope> = jobs.into_iter().map(|j| envelope(&j.into())).collect();
        tracing::info!(
            jobs = ids.len(),
            "publishing jobs from the outbox (never published, or taken back from a worker that stopped)"
        );
        metrics::counter!("switchyard_outbox_swept_total").increment(ids.len() as u64);
        if let Err(e) = s.broker.publish(&envelopes).await {
            tracing::warn!(error = %e, "could not publish swept jobs; they stay in the outbox");
            if let Err(e) = c.unmark_published(&ids).await {
                tracing::warn!(error = %e, "cannot put swept jobs back in the outbox; they are published again after {LOST_AFTER:?}");
            }
        }
    }

    /// The scaled-out timer: while this process coordinates, publishes deferred jobs (retries,
    /// delays, sub-story wakes) as they fall due. They wait as rows, never as messages.
    pub(super) async fn run_broker_timer(&self) {
        let (Some(s), Some(c)) = (self.scale(), self.inner.store.coordination()) else {
            return;
        };
        let cancel = self.inner.cancel.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(TIMER_EVERY) => {}
            }
            if !s.is_coordinator() || !s.broker.is_connected() {
                continue;
            }
            let due = match c.due_unpublished(switchyard_types::now(), BATCH).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read due deferred jobs");
                    continue;
                }
            };
            if due.is_empty() {
                continue;
            }
            let marks: Vec<_> = due.iter().map(|j| (j.id, j.due_at)).collect();
            let envelopes: Vec<JobEnvelope> =
                due.into_iter().map(|j| envelope(&j.into())).collect();
            match s.broker.publish(&envelopes).await {
                Ok(()) => {
                    if let Err(e) = c.mark_due_published(&marks).await {
                        tracing::debug!(error = %e, "cannot mark published deferred jobs; they may be published twice");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, jobs = marks.len(), "could not publish due jobs; trying again")
                }
            }
        }
    }
}
