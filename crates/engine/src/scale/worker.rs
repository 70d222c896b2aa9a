//! Workers of the scaled-out mode: take a message, claim its job (a lease), run it, commit
//! the outcome, then acknowledge. Also the dead-letter consumer, which records a failure for
//! every job whose message the broker gave up on.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use switchyard_agents::AgentError;
use switchyard_broker::Delivery;
use switchyard_store::Claim;
use tokio::sync::{mpsc, Semaphore};
use tracing::Instrument;

use super::{job_message, ScaleOut, RUN_NEXT_HERE};
use crate::{Engine, JobMessage};

/// Longest a message waits for another live worker's lease on its job before it is left to
/// the sweeper (far below RabbitMQ's 30 minute limit on unacknowledged messages).
const MAX_HOLD_WAIT: Duration = Duration::from_secs(600);
/// A message for a job due within this is held until then; one due later is dropped (the
/// timer publishes the job again when due).
const MAX_EARLY_WAIT: Duration = Duration::from_secs(10);
/// Pause before handing a message back, so a message no worker can run does not spin.
const REQUEUE_PAUSE: Duration = Duration::from_millis(500);

/// What to do with a message once its job is settled.
enum Settle {
    /// The outcome is committed (or there was nothing to do): acknowledge.
    Ack,
    /// Hand it back for another try (counts towards the delivery limit).
    Requeue,
    /// Shutting down: leave it unacknowledged; the broker delivers it again.
    Leave,
}

/// Why a job could not be claimed.
enum NoClaim {
    Settled(Settle),
    StoreDown,
}

impl Engine {
    /// Takes deliveries, at most `concurrency` at a time (the broker's prefetch bounds what
    /// this process holds).
    pub(super) async fn run_broker_workers(&self, mut rx: mpsc::Receiver<Delivery>) {
        let permits = Arc::new(Semaphore::new(self.inner.config.concurrency));
        let cancel = self.inner.cancel.clone();
        loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => break,
                p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let delivery = tokio::select! {
                _ = cancel.cancelled() => break,
                d = rx.recv() => match d { Some(d) => d, None => break },
            };
            let engine = self.clone();
            self.inner.tasks.spawn(async move {
                engine.handle_delivery(delivery).await;
                drop(permit);
            });
        }
    }

    async fn handle_delivery(&self, delivery: Delivery) {
        let Some(s) = self.scale() else { return };
        let job = match delivery.envelope() {
            Ok(e) => job_message(e),
            Err(e) => {
                tracing::warn!(error = %e, "rejecting a message that is not a job (dead-lettered)");
                let _ = delivery.reject().await;
                return;
            }
        };
        let span = tracing::info_span!("job", story = %job.story, agent = %job.agent, run_id = %job.run_id, job = %job.job_id);
        async {
            let (settle, next) = if self.has_agent(&job) {
                self.settle_keeping_next(s, job).await
            } else {
                // Another worker may have the story (a deploy in progress); if none has, the
                // broker dead-letters the message after its delivery limit.
                tracing::warn!("this worker has no such story or agent loaded; handing the job back (deploy the story to every worker)");
                metrics::counter!("switchyard_jobs_handed_back_total").increment(1);
                (Settle::Requeue, None)
            };
            self.answer(&delivery, settle).await;
            if let Some(next) = next {
                self.run_here(s, next).await;
            }
        }
        .instrument(span)
        .await;
    }

    /// Whether this worker has the story and agent of `job` loaded.
    fn has_agent(&self, job: &JobMessage) -> bool {
        self.catalog()
            .story(&job.story)
            .is_some_and(|st| st.by_name.contains_key(&*job.agent))
    }

    /// Settles `job`; also returns the job its outcome made that this worker runs next.
    async fn settle_keeping_next(
        &self,
        s: &ScaleOut,
        job: JobMessage,
    ) -> (Settle, Option<JobMessage>) {
        RUN_NEXT_HERE
            .scope(RefCell::new(None), async {
                let settle = self.settle(s, job, None).await;
                (settle, RUN_NEXT_HERE.with(|next| next.borrow_mut().take()))
            })
            .await
    }

    /// Runs a chain of jobs kept by this worker (each committed, none published), one after
    /// the other, under the permit of the delivery that started it. A job it cannot settle
    /// here is handed to the broker like any other.
    async fn run_here(&self, s: &ScaleOut, mut job: JobMessage) {
        loop {
            if !self.has_agent(&job) {
                s.publish(std::slice::from_ref(&job)).await;
                return;
            }
            metrics::counter!("switchyard_jobs_run_in_place_total").increment(1);
            let span = tracing::info_span!("job", story = %job.story, agent = %job.agent, run_id = %job.run_id, job = %job.job_id);
            let (settle, next) = self
                .settle_keeping_next(s, job.clone())
                .instrument(span)
                .await;
            match settle {
                Settle::Ack => {}
                // Failed here (or shutting down): the broker's delivery limit and
                // dead-lettering apply to it from now on.
                Settle::Requeue | Settle::Leave => s.publish(std::slice::from_ref(&job)).await,
            }
            match next {
                Some(n) => job = n,
                None => return,
            }
        }
    }

    async fn answer(&self, delivery: &Delivery, settle: Settle) {
        let result = match settle {
            Settle::Ack => delivery.ack().await,
            Settle::Requeue => {
                tokio::select! {
                    _ = self.inner.cancel.cancelled() => return,
                    _ = tokio::time::sleep(REQUEUE_PAUSE) => {}
                }
                delivery.requeue().await
            }
            Settle::Leave => return,
        };
        if let Err(e) = result {
            // The broker delivers it again; its job is recognised as finished then.
            tracing::debug!(error = %e, "could not answer a delivery");
        }
    }

    /// Claims, runs (or, with `forced`, fails) and records one job, waiting out outages of
    /// the store; one execution per job in this process.
    async fn settle(&self, s: &ScaleOut, job: JobMessage, forced: Option<AgentError>) -> Settle {
        let started = tokio::time::Instant::now();
        while !s.hold(job.job_id) {
            // A second message for a job running here: wait for that run to end.
            if started.elapsed() > MAX_HOLD_WAIT {
                return Settle::Ack;
            }
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return Settle::Leave,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        let id = job.job_id;
        let settle = self.settle_held(s, job, forced).await;
        s.unhold(id);
        settle
    }

    async fn settle_held(
        &self,
        s: &ScaleOut,
        mut job: JobMessage,
        forced: Option<AgentError>,
    ) -> Settle {
        let id = job.job_id;
        loop {
            let (attempts, resumed, rescues) = match self.claim(s, &job).await {
                Ok(c) => c,
                Err(NoClaim::Settled(settle)) => return settle,
                Err(NoClaim::StoreDown) => {
                    if !self.wait_for_store().await {
                        return Settle::Leave;
                    }
                    continue;
                }
            };
            job.attempts = attempts;
            job.resumed = resumed;
            let mut forced = forced.clone();
            if forced.is_none() && rescues >= s.max_rescues {
                metrics::counter!("switchyard_jobs_lost_worker_total").increment(1);
                tracing::error!(rescues, "the workers running this job stopped {rescues} times; failing it as lost_worker");
                forced = Some(AgentError::permanent(
                    "lost_worker",
                    format!(
                        "the worker running this job stopped (crashed or was killed) {rescues} times; \
                         not trying again: replay the event once the cause is fixed"
                    ),
                ));
            } else if rescues > 0 && forced.is_none() {
                metrics::counter!("switchyard_rescued_job_runs_total").increment(1);
                tracing::warn!(
                    rescues,
                    "running a job taken back from a worker that stopped"
                );
            }
            let run = AssertUnwindSafe(self.try_execute(job.clone(), forced))
                .catch_unwind()
                .await;
            let coord = self.inner.store.coordination();
            match run {
                Ok(Ok(())) => return Settle::Ack,
                Ok(Err(
                    e @ (switchyard_store::Error::Unavailable(_)
                    | switchyard_store::Error::Overloaded),
                )) => {
                    tracing::warn!(error = %e, "job could not be recorded; it runs again when the store is back");
                    if !self.wait_for_store().await {
                        return Settle::Leave;
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "job could not be recorded; handing it back");
                    if let Some(c) = coord {
                        let _ = c.release(&s.owner, id).await;
                    }
                    return Settle::Requeue;
                }
                Err(_) => {
                    tracing::error!("the job's execution panicked; handing it back (after {} deliveries it is dead-lettered)", s.broker.delivery_limit());
                    metrics::counter!("switchyard_job_panics_total").increment(1);
                    if let Some(c) = coord {
                        let _ = c.release(&s.owner, id).await;
                    }
                    return Settle::Requeue;
                }
            }
        }
    }

    /// Claims `job`, waiting while another live worker holds it or it is about to be due.
    async fn claim(&self, s: &ScaleOut, job: &JobMessage) -> Result<(u32, bool, u32), NoClaim> {
        let Some(coord) = self.inner.store.coordination() else {
            return Err(NoClaim::Settled(Settle::Requeue));
        };
        let started = tokio::time::Instant::now();
        loop {
            let wait = match coord.claim(job.job_id, job.run_id, &s.owner, s.lease).await {
                Ok(Claim::Taken {
                    attempts,
                    resumed,
                    rescues,
                }) => return Ok((attempts, resumed, rescues)),
                Ok(Claim::Done) => return Err(NoClaim::Settled(Settle::Ack)),
                Ok(Claim::NotDue { wait }) if wait > MAX_EARLY_WAIT => {
                    // Published before its time (a stale copy): the timer publishes it when due.
                    return Err(NoClaim::Settled(Settle::Ack));
                }
                Ok(Claim::NotDue { wait }) => wait,
                Ok(Claim::Held { wait }) => {
                    if started.elapsed() > MAX_HOLD_WAIT {
                        // Still running elsewhere: if that worker dies, the sweeper takes it back.
                        return Err(NoClaim::Settled(Settle::Ack));
                    }
                    wait
                }
                Err(
                    switchyard_store::Error::Unavailable(_) | switchyard_store::Error::Overloaded,
                ) => return Err(NoClaim::StoreDown),
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim the job");
                    return Err(NoClaim::Settled(Settle::Requeue));
                }
            };
            let wait = wait.clamp(Duration::from_millis(50), Duration::from_secs(2));
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return Err(NoClaim::Settled(Settle::Leave)),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Waits until the store answers (false when shutting down first). Meanwhile this worker
    /// holds its messages, so it takes no new ones: it pauses.
    async fn wait_for_store(&self) -> bool {
        let mut wait = Duration::from_millis(200);
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return false,
                _ = tokio::time::sleep(wait) => {}
            }
            if self.inner.store.ping().await.is_ok() {
                return true;
            }
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    /// Renews the leases of the jobs running here, every third of the lease.
    pub(super) async fn renew_leases(&self) {
        let (Some(s), Some(c)) = (self.scale(), self.inner.store.coordination()) else {
            return;
        };
        let cancel = self.inner.cancel.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(s.lease / 3) => {}
            }
            let held = s.held();
            if held.is_empty() {
                continue;
            }
            if let Err(e) = c.renew(&s.owner, &held, s.lease).await {
                tracing::warn!(error = %e, jobs = held.len(), "cannot renew job leases");
            }
        }
    }

    /// Records a failure (`dead_lettered`) for each job whose message the broker dead-lettered,
    /// so its run shows as failed and can be replayed.
    pub(super) async fn run_dead_letters(&self, mut rx: mpsc::Receiver<Delivery>) {
        let Some(s) = self.scale() else { return };
        let cancel = self.inner.cancel.clone();
        loop {
            let delivery = tokio::select! {
                _ = cancel.cancelled() => break,
                d = rx.recv() => match d { Some(d) => d, None => break },
            };
            metrics::counter!("switchyard_broker_dead_lettered_total").increment(1);
            let job = match delivery.envelope() {
                Ok(e) => job_message(e),
                Err(e) => {
                    tracing::error!(error = %e, "dropping a dead-lettered message that is not a job");
                    let _ = delivery.ack().await;
                    continue;
                }
            };
            let reason = delivery.death_reason.as_deref().unwrap_or("unknown");
            tracing::error!(story = %job.story, agent = %job.agent, run_id = %job.run_id, job = %job.job_id, reason, "RabbitMQ dead-lettered a job; failing it");
            let forced = AgentError::permanent(
                "dead_lettered",
                format!(
                    "RabbitMQ dead-lettered the job's message ({reason}) after {} deliveries: no worker \
                     could run it (is the story deployed to every worker?); replay the event once the cause is fixed",
                    s.broker.delivery_limit()
                ),
            );
            let settle = self.settle(s, job, Some(forced)).await;
            self.answer(&delivery, settle).await;
        }
    }
}
