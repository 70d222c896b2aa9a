//! `switchyard serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use switchyard_agents::ssrf::NetworkPolicy;
use switchyard_agents::{Services, ServicesConfig};
use switchyard_engine::{Engine, EngineConfig, Keyring};
use switchyard_server::AppState;
use switchyard_store::postgres::{PgConfig, PgStore};
use switchyard_store::sqlite::{Durability, SqliteConfig, SqliteStore};
use switchyard_store::Store;

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of story files (reloaded when it changes).
    #[arg(long, default_value = "./stories")]
    stories: PathBuf,
    /// Directory of action packs (reloaded when it changes).
    #[arg(long, default_value = "./packs")]
    packs: PathBuf,
    /// Directory of the embedded SQLite store (unused with --database-url).
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8700")]
    listen: SocketAddr,
    /// PostgreSQL URL (`postgres://user:password@host:5432/db`): use the scaled-out store
    /// instead of SQLite. Migrations are applied on start.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(flatten)]
    queue: super::scaled::QueueArgs,
    /// Serve the API and webhooks without running agents (with --amqp-url: `worker`
    /// processes run them).
    #[arg(long)]
    no_workers: bool,
    /// Let `command` agents run programs (refused otherwise). Commands run as the server's
    /// user with only PATH, HOME and LANG from its environment, plus the agent's `env`.
    #[arg(long)]
    allow_commands: bool,
    /// Agent executions at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Jobs waiting in memory before webhooks answer 503.
    #[arg(long, default_value_t = 50_000)]
    max_queued: usize,
    /// SQLite sync on commit: `full` survives power loss, `normal` only process crashes.
    #[arg(long, value_enum, default_value_t = SyncMode::Full)]
    sqlite_sync: SyncMode,
    /// Prune finished runs older than this (`0` keeps everything).
    #[arg(long, default_value = "30d")]
    retention: switchyard_types::Duration,
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
    // Before anything records a metric (the broker's connection gauge, for one).
    let metrics = install_metrics();
    if args.queue.amqp_url.is_some() && args.database_url.is_none() {
        bail!("--amqp-url needs --database-url: scaled out, every process shares one PostgreSQL store (the embedded SQLite store belongs to one process)");
    }
    if args.no_workers && args.queue.amqp_url.is_none() {
        tracing::warn!(
            "--no-workers without --amqp-url: nothing will run the agents of this server's jobs"
        );
    }
    if !args.stories.is_dir() {
        bail!(
            "the stories directory {} does not exist (set --stories)",
            args.stories.display()
        );
    }
    let (store, store_name): (Arc<dyn Store>, String) = match &args.database_url {
        Some(url) => open_postgres(url).await?,
        None => {
            let mut store_config = SqliteConfig::new(&args.data);
            store_config.durability = match args.sqlite_sync {
                SyncMode::Full => Durability::Full,
                SyncMode::Normal => Durability::Normal,
            };
            let store = SqliteStore::open(store_config)
                .with_context(|| format!("cannot open the store in {}", args.data.display()))?;
            (Arc::new(store), args.data.display().to_string())
        }
    };
    let keyring = args.security.keyring(store.as_ref(), &args.data).await?;
    let store_hint = match &args.database_url {
        Some(_) => "--database-url URL".to_string(),
        None => format!("--data {}", args.data.display()),
    };
    let auth = super::serve_security::api_auth(store.as_ref(), args.listen, &store_hint).await?;
    let (services, mut config) = agent_setup(
        &args.stories,
        &args.packs,
        keyring,
        args.security.network_policy()?,
        args.allow_commands,
    )?;
    config.run_workers = !args.no_workers;
    config.concurrency = args.concurrency.max(1);
    config.max_queued = args.max_queued.max(1);
    config.retention = if args.retention.std().is_zero() {
        tracing::warn!(
            "--retention 0: history is kept forever and the store will grow without bound"
        );
        None
    } else {
        Some(args.retention.std())
    };
    let (engine, report) = match &args.queue.amqp_url {
        Some(url) => super::scaled::start_engine(&args.queue, url, config, store, services).await?,
        None => Engine::start(config, store, services)
            .await
            .context("cannot start the engine")?,
    };
    let stories = engine.catalog().stories().len();
    let actions = engine.catalog().packs().actions.len();
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
        actions,
        store = %store_name,
        workers = !args.no_workers,
        "switchyard is serving: webhooks at http://{}/webhook/STORY/PATH",
        args.listen
    );
    let state = AppState::new(engine.clone(), auth).with_metrics(metrics);
    let closing = state.shutdown.clone();
    super::serve_security::watch_tokens(
        Arc::clone(&state.auth),
        Arc::clone(engine.store()),
        closing.clone().cancelled_owned(),
    );
    let app = switchyard_server::app(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            closing.cancel();
        })
        .await
        .context("the HTTP server failed")?;
    tracing::info!("shutting down");
    engine.shutdown(Duration::from_secs(10)).await;
    Ok(ExitCode::SUCCESS)
}

/// Opens (and migrates) the PostgreSQL store; with the URL to show (password hidden).
pub async fn open_postgres(url: &str) -> anyhow::Result<(Arc<dyn Store>, String)> {
    let shown = redact_url(url);
    let store = PgStore::connect(PgConfig::new(url))
        .await
        .with_context(|| format!("cannot open the PostgreSQL store at {shown}"))?;
    Ok((Arc::new(store), shown))
}

/// Installs the Prometheus recorder (`None`, with a warning, if it cannot be).
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ])
        .and_then(|b| b.install_recorder())
        .map_err(|e| tracing::warn!(error = %e, "metrics are disabled"))
        .ok()?;
    // The recorder keeps every histogram sample until it is folded into the buckets, which
    // happens on a scrape or on upkeep: without upkeep a server nobody scrapes would grow
    // by every sample it records. Upkeep every 5 s, as the exporter's own listener does.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_UPKEEP);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

/// How often histogram samples are folded into their buckets when nobody scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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

/// `url` with its password replaced by `***`, for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

/// What `serve` and `worker` both need to run agents: the services agents use (one pooled
/// HTTP client under the network policy) and an engine configuration for the stories and packs.
pub(super) fn agent_setup(
    stories: &Path,
    packs: &Path,
    keyring: Keyring,
    network: NetworkPolicy,
    allow_commands: bool,
) -> anyhow::Result<(Services, EngineConfig)> {
    let services = Services::new(ServicesConfig {
        network,
        allow_commands,
        ..ServicesConfig::default()
    })
    .context("cannot build the HTTP client")?;
    if allow_commands {
        tracing::warn!("command agents are allowed: stories can run programs as this user");
    }
    let mut config = EngineConfig::new(stories);
    config.keyring = Some(Arc::new(keyring));
    if packs.is_dir() {
        config.packs_dir = Some(packs.to_path_buf());
    } else {
        tracing::info!(packs = %packs.display(), "no packs directory: no actions are loaded");
    }
    Ok((services, config))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://sy:s3cret@db:5432/switchyard"),
            "postgres://sy:***@db:5432/switchyard"
        );
        assert_eq!(
            redact_url("postgres://sy@db/switchyard"),
            "postgres://sy@db/switchyard"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
