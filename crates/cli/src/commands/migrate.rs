//! `switchyard migrate`: applies the store's migrations.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use switchyard_store::postgres;
use switchyard_store::sqlite::{SqliteConfig, SqliteStore};

use super::serve::redact_url;

/// Options of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// PostgreSQL URL to migrate.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Directory of the embedded SQLite store to migrate, when no --database-url is given.
    #[arg(long, default_value = "./data")]
    data: PathBuf,
}

/// Applies the migrations (PostgreSQL: those of `migrations/postgres/`, compiled in; the
/// embedded store migrates itself when opened).
pub async fn run(args: MigrateArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    let (database, applied) = match &args.database_url {
        Some(url) => {
            let shown = redact_url(url);
            let applied = postgres::migrate(url)
                .await
                .with_context(|| format!("cannot migrate {shown}"))?;
            (shown, applied)
        }
        None => {
            SqliteStore::open(SqliteConfig::new(&args.data))
                .with_context(|| format!("cannot open the store in {}", args.data.display()))?;
            (args.data.display().to_string(), Vec::new())
        }
    };
    if as_json {
        println!("{}", json!({"database": database, "applied": applied}));
    } else if applied.is_empty() {
        println!("{database}: up to date");
    } else {
        for m in &applied {
            println!("{database}: applied {m}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
