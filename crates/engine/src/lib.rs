//! The engine: takes source events in, runs agents on them, records everything.
//!
//! ```text
//! webhook/trigger ──ingest()──► store.start_run (group commit) ──► dispatch queue ──► worker
//!                                                                       ▲               │
//!                                      timer (retries, delays) ─────────┘   execute agent│
//!                                                                                       ▼
//!                                   dispatch children ◄── store.finish_job (events + jobs, atomically)
//! ```
//!
//! Architecture invariants: the store is the truth — a job runs only after it is committed,
//! and its output is committed (with its children's jobs) before the children are
//! dispatched; the in-memory queue is only a fast path, rebuilt from the store on start.

mod actions;
mod catalog;
mod credentials;
mod execute;
mod host;
mod ingest;
mod lineage;
mod lookup;
mod master_key;
mod parked;
mod queue;
mod scale;
mod schedule;
mod timer;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use actions::ActionRunError;
use arc_swap::ArcSwap;
pub use catalog::{Catalog, ReloadReport};
use credentials::CredentialCache;
pub use credentials::{CredentialError, CredentialInfo, Rotated, MAX_CREDENTIAL_BYTES};
pub use ingest::{IngestError, Ingested, ReplayError, Replayed};
pub use lineage::Lineage;
use lookup::ResourceCache;
pub use master_key::{load_master_key, KeySource, Keyring, LoadedKey, MasterKey};
pub use queue::JobMessage;
pub use scale::ScaleOutConfig;
use switchyard_agents::Services;
use switchyard_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Rows (runs, events, jobs, expired keys and marks) one retention pruning write deletes at
/// most: the writer is held for the whole write, so this bounds what ingest waits behind it.
pub const PRUNE_BATCH_ROWS: usize = 256;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Directory of story files.
    pub stories_dir: PathBuf,
    /// Directory of action packs (none: no packs).
    pub packs_dir: Option<PathBuf>,
    /// Run agents in this process (false for `serve --no-workers`).
    pub run_workers: bool,
    /// Agent executions at once.
    pub concurrency: usize,
    /// Jobs waiting in memory before webhooks are refused with 503 (backpressure).
    pub max_queued: usize,
    /// Watch the stories directory and reload on change.
    pub watch: bool,
    /// Default time limit of one try.
    pub default_timeout: Duration,
    /// The master key of credentials (`None`: credentials are off).
    pub keyring: Option<Arc<Keyring>>,
    /// Prune finished runs older than this (None: keep everything).
    pub retention: Option<Duration>,
}

impl EngineConfig {
    /// Defaults for a stories directory.
    pub fn new(stories_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            stories_dir: stories_dir.into(),
            packs_dir: None,
            run_workers: true,
            concurrency: 256,
            max_queued: 50_000,
            watch: true,
            default_timeout: Duration::from_secs(30),
            keyring: None,
            retention: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    store: Arc<dyn Store>,
    catalog: ArcSwap<Catalog>,
    reload_lock: std::sync::Mutex<()>,
    services: Services,
    resources: Arc<ResourceCache>,
    credentials: Arc<CredentialCache>,
    disabled: ArcSwap<std::collections::HashSet<String>>,
    queue: queue::Queue,
    /// The scaled-out mode (RabbitMQ between processes); `None` when embedded.
    scale: Option<scale::ScaleOut>,
    parked: parked::Parked,
    timer: timer::Timer,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Engine {
    /// Loads the stories and the credentials, recovers unfinished work from the store, and
    /// starts the workers, the timer and (if configured) the stories watcher.
    pub async fn start(
        config: EngineConfig,
        store: Arc<dyn Store>,
        services: Services,
    ) -> Result<(Engine, ReloadReport), switchyard_store::Error> {
        Engine::start_inner(config, store, services, None).await
    }

    /// Like [`Engine::start`], scaled out: jobs travel over RabbitMQ between this and other
    /// processes sharing the store (which must coordinate: PostgreSQL). With
    /// `config.run_workers` this process runs agents too; every process takes its turn at the
    /// one-at-a-time duties (timer, scheduler, sweeper).
    pub async fn start_scaled(
        config: EngineConfig,
        store: Arc<dyn Store>,
        services: Services,
        scale: ScaleOutConfig,
    ) -> Result<(Engine, ReloadReport), switchyard_store::Error> {
        if store.coordination().is_none() {
            return Err(switchyard_store::Error::Unavailable(
                "the RabbitMQ queue needs the PostgreSQL store (--database-url)".into(),
            ));
        }
        Engine::start_inner(config, store, services, Some(scale)).await
    }

    async fn start_inner(
        config: EngineConfig,
        store: Arc<dyn Store>,
        mut services: Services,
        scale: Option<ScaleOutConfig>,
    ) -> Result<(Engine, ReloadReport), switchyard_store::Error> {
        let resources = Arc::new(ResourceCache::default());
        resources.refresh(store.as_ref()).await?;
        let credentials = Arc::new(CredentialCache::new(config.keyring.clone()));
        credentials
            .refresh(store.as_ref())
            .await
            .map_err(|e| match e {
                CredentialError::Store(e) => e,
                other => switchyard_store::Error::Corrupt(other.to_string()),
            })?;
        services.credential_hosts =
            Some(Arc::clone(&credentials) as Arc<dyn switchyard_agents::CredentialHosts>);
        let (queue, receiver) = queue::Queue::new();
        let (scale, broker_receivers) = match scale {
            Some(c) => {
                let (s, r) = scale::ScaleOut::new(c);
                (Some(s), Some(r))
            }
            None => (None, None),
        };
        let engine = Engine {
            inner: Arc::new(Inner {
                config: config.clone(),
                store,
                catalog: ArcSwap::from_pointee(Catalog::default()),
                reload_lock: std::sync::Mutex::new(()),
                services,
                resources,
                credentials,
                disabled: ArcSwap::from_pointee(Default::default()),
                queue,
                scale,
                parked: parked::Parked::default(),
                timer: timer::Timer::default(),
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        };
        engine.refresh_disabled().await?;
        let report = engine.reload();
        let e = engine.clone();
        engine
            .inner
            .tasks
            .spawn(async move { e.run_housekeeping().await });
        if let Some(receivers) = broker_receivers {
            engine.spawn_scaled(receivers);
        } else if config.run_workers {
            engine.recover().await?;
            let e = engine.clone();
            engine
                .inner
                .tasks
                .spawn(async move { e.run_workers(receiver).await });
            let e = engine.clone();
            engine.inner.tasks.spawn(async move { e.run_timer().await });
            let e = engine.clone();
            engine
                .inner
                .tasks
                .spawn(async move { e.run_scheduler().await });
            let e = engine.clone();
            engine
                .inner
                .tasks
                .spawn(async move { e.run_parked().await });
        }
        if config.watch {
            watch::spawn(engine.clone());
        }
        Ok((engine, report))
    }

    /// The stories now loaded.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.load_full()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Jobs waiting for a worker: in memory, or (scaled out) ready in RabbitMQ's queue at
    /// the last look.
    pub fn queued(&self) -> usize {
        match &self.inner.scale {
            None => self.inner.queue.depth(),
            Some(s) => s
                .broker
                .ready_messages()
                .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }

    /// Whether the job queue can take work: always when embedded; scaled out, whether
    /// RabbitMQ is connected (else why not).
    pub fn queue_status(&self) -> Result<(), String> {
        match &self.inner.scale {
            None => Ok(()),
            Some(s) => s.broker.status(),
        }
    }

    /// Whether jobs travel over RabbitMQ.
    pub fn is_scaled_out(&self) -> bool {
        self.inner.scale.is_some()
    }

    /// Whether this process does the one-at-a-time duties now (always when embedded).
    pub fn is_coordinator(&self) -> bool {
        self.inner.scale.as_ref().is_none_or(|s| s.is_coordinator())
    }

    /// Hands committed jobs to the workers: the in-process queue, or RabbitMQ (a job whose
    /// publish fails stays in the store's outbox for the sweeper).
    pub(crate) async fn dispatch(&self, jobs: Vec<JobMessage>) {
        match &self.inner.scale {
            None => {
                for job in jobs {
                    self.inner.queue.push(job);
                }
            }
            Some(s) => s.publish(&jobs).await,
        }
    }

    /// Whether a story takes events (operators can switch stories off).
    pub fn is_enabled(&self, story: &str) -> bool {
        !self.inner.disabled.load().contains(story)
    }

    /// Switches a story on or off; persisted, and effective at once in this process.
    pub async fn set_enabled(
        &self,
        story: &str,
        enabled: bool,
    ) -> Result<(), switchyard_store::Error> {
        self.inner.store.set_story_enabled(story, enabled).await?;
        self.refresh_disabled().await
    }

    async fn refresh_disabled(&self) -> Result<(), switchyard_store::Error> {
        let disabled = self.inner.store.disabled_stories().await?;
        self.inner
            .disabled
            .store(Arc::new(disabled.into_iter().collect()));
        Ok(())
    }

    /// Background upkeep: re-read settings other processes may change, and prune history
    /// older than the retention period in small batches.
    async fn run_housekeeping(&self) {
        let cancel = self.inner.cancel.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_prune: Option<tokio::time::Instant> = None;
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            ticks += 1;
            // Scaled out, other processes change settings, resources and credentials: every
            // process re-reads them every 2 s (embedded, only story settings, every 5 s).
            let scaled = self.inner.scale.is_some();
            if ticks.is_multiple_of(if scaled { 2 } else { 5 }) {
                if let Err(e) = self.refresh_disabled().await {
                    tracing::warn!(error = %e, "could not refresh story settings");
                }
                if scaled {
                    if let Err(e) = self
                        .inner
                        .resources
                        .refresh(self.inner.store.as_ref())
                        .await
                    {
                        tracing::warn!(error = %e, "could not refresh resources");
                    }
                    // Credentials set on another process (a front end) reach this one.
                    if let Err(e) = self
                        .inner
                        .credentials
                        .refresh(self.inner.store.as_ref())
                        .await
                    {
                        tracing::warn!(error = %e, "could not refresh credentials (after a key rotation, restart every process with the new master key)");
                    }
                }
            }
            let Some(retention) = self.inner.config.retention else {
                continue;
            };
            // Scaled out, one process prunes (the coordinator).
            if !self.is_coordinator() {
                continue;
            }
            // Prune about four times per retention period, at most once a minute.
            let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
            if last_prune.is_some_and(|t| t.elapsed() < every) {
                continue;
            }
            last_prune = Some(tokio::time::Instant::now());
            let cutoff = switchyard_types::now()
                - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
            self.prune_until(cutoff, &cancel).await;
        }
    }

    /// Prunes in short batches of at most [`PRUNE_BATCH_ROWS`] rows, each one write of the
    /// single writer, pausing after each for twice as long as it took: pruning gets at most
    /// about a third of the writer, and ingest waits behind at most one short batch.
    async fn prune_until(&self, cutoff: switchyard_types::Timestamp, cancel: &CancellationToken) {
        let mut total = switchyard_store::Pruned::default();
        let mut batches = 0u64;
        let mut longest = Duration::ZERO;
        loop {
            let started = tokio::time::Instant::now();
            let result = self.inner.store.prune(cutoff, PRUNE_BATCH_ROWS).await;
            let took = started.elapsed();
            metrics::histogram!("switchyard_prune_batch_seconds").record(took.as_secs_f64());
            match result {
                Ok(p) => {
                    batches += 1;
                    longest = longest.max(took);
                    total.runs += p.runs;
                    total.events += p.events;
                    total.jobs += p.jobs;
                    total.expired += p.expired;
                    metrics::counter!("switchyard_pruned_runs_total").increment(p.runs as u64);
                    tracing::debug!(
                        runs = p.runs,
                        rows = p.rows(),
                        took_ms = took.as_secs_f64() * 1e3,
                        "pruned one batch"
                    );
                    if !p.more || cancel.is_cancelled() {
                        break;
                    }
                    let pause = (took * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention pruning failed; will retry");
                    break;
                }
            }
        }
        if total.rows() > 0 {
            tracing::info!(
                runs = total.runs,
                events = total.events,
                jobs = total.jobs,
                expired = total.expired,
                batches,
                longest_batch_ms = longest.as_secs_f64() * 1e3,
                "pruned history older than the retention period"
            );
        }
    }

    /// Deferred jobs (retries, delays) held in memory because they are due soon.
    pub fn deferred_held(&self) -> usize {
        self.inner.timer.held()
    }

    /// Reloads the stories directory now.
    pub fn reload(&self) -> ReloadReport {
        let _guard = self
            .inner
            .reload_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let current = self.inner.catalog.load();
        let (next, report) = current.reload_with(
            &self.inner.config.stories_dir,
            self.inner.config.packs_dir.as_deref(),
        );
        for d in &report.diagnostics {
            if d.is_error() {
                tracing::error!("{d}");
            } else {
                tracing::warn!("{d}");
            }
        }
        if !report.packs_loaded.is_empty() {
            tracing::info!(packs = ?report.packs_loaded, actions = next.packs().actions.len(), "packs loaded");
        }
        if !report.loaded.is_empty() || !report.removed.is_empty() {
            tracing::info!(loaded = ?report.loaded, removed = ?report.removed, "stories reloaded");
        }
        self.inner.catalog.store(Arc::new(next));
        report
    }

    /// Sets a shared value and makes it visible to templates at once.
    pub async fn set_resource(
        &self,
        name: &str,
        value: &str,
    ) -> Result<(), switchyard_store::Error> {
        self.inner.store.set_resource(name, value).await?;
        self.inner
            .resources
            .refresh(self.inner.store.as_ref())
            .await
    }

    /// Removes a shared value.
    pub async fn delete_resource(&self, name: &str) -> Result<bool, switchyard_store::Error> {
        let existed = self.inner.store.delete_resource(name).await?;
        self.inner
            .resources
            .refresh(self.inner.store.as_ref())
            .await?;
        Ok(existed)
    }

    /// A template context for rendering outside an agent execution (webhook responses and
    /// secrets): resources and credentials, plus what the caller adds.
    pub fn template_context(&self) -> switchyard_template::ContextBuilder {
        switchyard_template::ContextBuilder::new()
            .resources(Arc::clone(&self.inner.resources) as Arc<dyn switchyard_template::Lookup>)
            .credentials(Arc::clone(&self.inner.credentials) as Arc<dyn switchyard_template::Lookup>)
    }

    /// Stops taking work and waits (up to `grace`) for running executions to finish.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown grace period over; unfinished jobs will run again at the next start"
            );
        }
        if let Some(s) = &self.inner.scale {
            s.shutdown(self).await;
        }
    }

    /// Cancelled when the engine shuts down.
    pub fn cancelled(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }
}
