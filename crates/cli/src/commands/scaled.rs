//! What `serve --amqp-url` and `worker` share: the RabbitMQ options and starting the engine
//! scaled out.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use switchyard_agents::Services;
use switchyard_broker::{Broker, BrokerConfig};
use switchyard_engine::{Engine, EngineConfig, ReloadReport, ScaleOutConfig};
use switchyard_store::Store;

use super::serve::redact_url;

/// RabbitMQ options.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// RabbitMQ URL (`amqp://user:password@host:5672/%2f`, `amqps://` for TLS): jobs travel
    /// over RabbitMQ between this and other processes. Needs --database-url.
    #[arg(long, env = "SWITCHYARD_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// Name of the jobs queue (its dead letters go to NAME.dlx and NAME.dead). Every process of
    /// one installation must use the same.
    #[arg(long, env = "SWITCHYARD_AMQP_QUEUE", default_value = "switchyard.jobs")]
    pub amqp_queue: String,
    /// Deliveries of one job message before RabbitMQ dead-letters it (and its run fails as
    /// `dead_lettered`). Fixed when the queue is first declared.
    #[arg(long, default_value_t = 5)]
    pub delivery_limit: u32,
    /// A worker's hold on a job it runs, renewed every third of it: how soon the jobs of a
    /// worker that died are taken back.
    #[arg(long, default_value = "30s")]
    pub lease: switchyard_types::Duration,
    /// How often a job may be taken back from workers that died running it before it fails
    /// as `lost_worker`.
    #[arg(long, default_value_t = 3)]
    pub max_rescues: u32,
}

/// Connects to RabbitMQ (waiting up to 30 s for it) and starts the engine scaled out.
pub async fn start_engine(
    queue: &QueueArgs,
    url: &str,
    config: EngineConfig,
    store: Arc<dyn Store>,
    services: Services,
) -> anyhow::Result<(Engine, ReloadReport)> {
    if store.coordination().is_none() {
        bail!("--amqp-url needs the PostgreSQL store: give --database-url too (the embedded SQLite store cannot be shared by several processes)");
    }
    let mut broker_config = BrokerConfig::new(url);
    broker_config.queue = queue.amqp_queue.clone();
    broker_config.delivery_limit = queue.delivery_limit.max(1);
    broker_config.prefetch = u16::try_from(config.concurrency.clamp(1, 65_535)).unwrap_or(256);
    broker_config.consume_jobs = config.run_workers;
    broker_config.consume_dead_letters = true;
    let shown = redact_url(url);
    let (broker, receivers) =
        Broker::start(broker_config).with_context(|| format!("cannot use RabbitMQ at {shown}"))?;
    broker
        .wait_connected(Duration::from_secs(30))
        .await
        .with_context(|| format!("cannot connect to RabbitMQ at {shown}"))?;
    let mut scale = ScaleOutConfig::new(broker, receivers);
    scale.lease = queue.lease.std();
    scale.max_rescues = queue.max_rescues.max(1);
    tracing::info!(rabbitmq = %shown, queue = %queue.amqp_queue, "jobs travel over RabbitMQ");
    Engine::start_scaled(config, store, services, scale)
        .await
        .context("cannot start the engine")
}
