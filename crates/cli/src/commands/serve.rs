//! `switchyard serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use switchyard_agents::{Services, ServicesConfig};
use switchyard_engine::{Engine, EngineConfig};
use switchyard_server::AppState;
use switchyard_store::sqlite::{Durability, SqliteConfig, SqliteStore};

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of story files (reloaded when it changes).
    #[arg(long, default_value = "./stories")]
    stories: PathBuf,
    /// Directory of action packs.
    #[arg(long, default_value = "./packs")]
    packs: PathBuf,
    /// Directory of the embedded SQLite store.
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8700")]
    listen: SocketAddr,
    /// PostgreSQL URL: use the scaled-out store instead of SQLite.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL")]
    database_url: Option<String>,
    /// RabbitMQ URL: use the scaled-out queue.
    #[arg(long, env = "SWITCHYARD_AMQP_URL")]
    amqp_url: Option<String>,
    /// Serve the API and webhooks without running agents.
    #[arg(long)]
    no_workers: bool,
    /// Agent executions at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Jobs waiting in memory before webhooks answer 503.
    #[arg(long, default_value_t = 50_000)]
    max_queued: usize,
    /// SQLite sync on commit: `full` survives power loss, `normal` only process crashes.
    #[arg(long, value_enum, default_value_t = SyncMode::Full)]
    sqlite_sync: SyncMode,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    security: super::serve_security::ServeSecurityArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SyncMode {
    Full,
    Normal,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up `tracing` (RUST_LOG, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    if args.database_url.is_some() || args.amqp_url.is_some() {
        bail!("the PostgreSQL and RabbitMQ backends are not available in this build yet; run without --database-url/--amqp-url to use the embedded store");
    }
    if !args.stories.is_dir() {
        bail!(
            "the stories directory {} does not exist (set --stories)",
            args.stories.display()
        );
    }
    let mut store_config = SqliteConfig::new(&args.data);
    store_config.durability = match args.sqlite_sync {
        SyncMode::Full => Durability::Full,
        SyncMode::Normal => Durability::Normal,
    };
    let store = SqliteStore::open(store_config)
        .with_context(|| format!("cannot open the store in {}", args.data.display()))?;
    let keyring = args.security.keyring(&store, &args.data).await?;
    let auth = super::serve_security::api_auth(&store, args.listen, &args.data).await?;
    let services = Services::new(ServicesConfig {
        network: args.security.network_policy()?,
        ..ServicesConfig::default()
    })
    .context("cannot build the HTTP client")?;
    let mut config = EngineConfig::new(&args.stories);
    config.keyring = Some(Arc::new(keyring));
    config.run_workers = !args.no_workers;
    config.concurrency = args.concurrency.max(1);
    config.max_queued = args.max_queued.max(1);
    let (engine, report) = Engine::start(config, Arc::new(store), services)
        .await
        .context("cannot start the engine")?;
    let stories = engine.catalog().stories().len();
    let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        tracing::warn!(
            errors,
            "some story files are invalid and were not loaded (run `switchyard validate`)"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        listen = %args.listen,
        stories,
        data = %args.data.display(),
        workers = !args.no_workers,
        "switchyard is serving: webhooks at http://{}/webhook/STORY/PATH",
        args.listen
    );
    let app = switchyard_server::app(AppState::new(engine.clone(), auth));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("shutting down");
    engine.shutdown(Duration::from_secs(10)).await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
