//! `switchyard worker`: runs agents, taking jobs from RabbitMQ, with the PostgreSQL store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use switchyard_server::auth::Auth;
use switchyard_server::AppState;

use super::scaled::QueueArgs;
use super::serve::{
    agent_setup, init_logging, install_metrics, open_postgres, shutdown_signal, LogFormat,
};

/// Options of `worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// PostgreSQL URL of the store every process shares.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(flatten)]
    queue: QueueArgs,
    /// Directory of story files (reloaded when it changes). Deploy the same stories to every
    /// worker and front end: a worker runs the version it has loaded, and hands back jobs of
    /// stories it does not have.
    #[arg(long, default_value = "./stories")]
    stories: PathBuf,
    /// Directory of action packs.
    #[arg(long, default_value = "./packs")]
    packs: PathBuf,
    /// Agent executions at once (also the number of jobs taken from RabbitMQ ahead).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Serve /healthz, /readyz and /metrics here (for health checks); off by default.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Let `command` agents run programs (refused otherwise).
    #[arg(long)]
    allow_commands: bool,
    /// File holding the front ends' master key, to decrypt credentials (never created by a
    /// worker). SWITCHYARD_MASTER_KEY, when set, is used instead.
    #[arg(long, value_name = "FILE")]
    master_key_file: Option<PathBuf>,
    #[command(flatten)]
    network: super::serve_security::NetworkArgs,
    /// Prune finished runs older than this, when this process coordinates (`0` keeps
    /// everything). Give every process the same value.
    #[arg(long, default_value = "30d")]
    retention: switchyard_types::Duration,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Runs the worker until Ctrl-C or SIGTERM.
pub async fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let metrics = install_metrics();
    let (Some(database_url), Some(amqp_url)) = (&args.database_url, &args.queue.amqp_url) else {
        bail!("a worker needs --database-url (PostgreSQL) and --amqp-url (RabbitMQ), or SWITCHYARD_DATABASE_URL and SWITCHYARD_AMQP_URL");
    };
    if !args.stories.is_dir() {
        bail!(
            "the stories directory {} does not exist (set --stories)",
            args.stories.display()
        );
    }
    let (store, store_name) = open_postgres(database_url).await?;
    let keyring =
        super::serve_security::worker_keyring(store.as_ref(), args.master_key_file.as_deref())
            .await?;
    let (services, mut config) = agent_setup(
        &args.stories,
        &args.packs,
        keyring,
        args.network.network_policy()?,
        args.allow_commands,
    )?;
    config.run_workers = true;
    config.concurrency = args.concurrency.max(1);
    config.retention = (!args.retention.std().is_zero()).then(|| args.retention.std());
    let (engine, report) =
        super::scaled::start_engine(&args.queue, amqp_url, config, store, services).await?;
    let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        tracing::warn!(
            errors,
            "some story files are invalid and were not loaded (run `switchyard validate`)"
        );
    }
    let state = AppState::new(engine.clone(), Arc::new(Auth::new(false, 0))).with_metrics(metrics);
    let closing = state.shutdown.clone();
    tracing::info!(
        stories = engine.catalog().stories().len(),
        store = %store_name,
        concurrency = args.concurrency,
        "switchyard worker is running agents"
    );
    match args.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            axum::serve(listener, switchyard_server::health_app(state))
                .with_graceful_shutdown(async move {
                    shutdown_signal().await;
                    closing.cancel();
                })
                .await
                .context("the health endpoint failed")?;
        }
        None => shutdown_signal().await,
    }
    tracing::info!("shutting down");
    engine.shutdown(Duration::from_secs(10)).await;
    Ok(ExitCode::SUCCESS)
}
