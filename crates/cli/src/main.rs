//! `switchyard`: the server, the worker and the operator CLI in one binary.

mod client;
mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Event-driven workflow automation: stories in git, agents that do the work.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, propagate_version = true)]
pub struct Cli {
    /// Server URL for the operator commands.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_URL",
        default_value = "http://127.0.0.1:8700"
    )]
    url: String,
    /// API token for the operator commands.
    #[arg(long, global = true, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON for machines instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything in one process: API, webhooks, scheduler, workers.
    Serve(commands::serve::ServeArgs),
    /// Run agents only, taking jobs from RabbitMQ (--amqp-url) with the PostgreSQL store
    /// (--database-url); start as many as you like.
    Worker(commands::worker::WorkerArgs),
    /// Apply the store's migrations (PostgreSQL with --database-url, else the SQLite store
    /// in --data). `serve` also applies them on start.
    Migrate(commands::migrate::MigrateArgs),
    /// Check stories (and packs): every problem as file:line:col; exit 1 on any error.
    Validate {
        /// Files or directories (default: ./stories).
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of story files.
    Schema,
    /// Emit the event a webhook agent would emit for a POST of this JSON body.
    Trigger {
        /// Story name.
        story: String,
        /// Webhook agent name.
        agent: String,
        /// The JSON body, or @FILE.
        #[arg(long, short)]
        data: Option<String>,
        /// Follow the run to its end; exit 1 if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// Stories the server has loaded.
    #[command(subcommand)]
    Story(commands::ops::StoryCommand),
    /// Runs: list them, show one as a tree of events.
    #[command(subcommand)]
    Runs(commands::ops::RunsCommand),
    /// Events: follow them live, show one, replay one.
    #[command(subcommand)]
    Events(commands::ops::EventsCommand),
    /// Shared values for templates (`resource.NAME`).
    #[command(subcommand)]
    Resource(commands::ops::ResourceCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let client = || client::Client::new(&cli.url, cli.token.as_deref());
    match cli.command {
        Command::Serve(args) => commands::serve::run(args).await,
        Command::Worker(args) => commands::worker::run(args).await,
        Command::Migrate(args) => commands::migrate::run(args, cli.json).await,
        Command::Validate { paths } => commands::validate::run(&paths, cli.json),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&switchyard_story::story_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Trigger {
            story,
            agent,
            data,
            wait,
        } => {
            commands::ops::trigger(&client()?, &story, &agent, data.as_deref(), wait, cli.json)
                .await
        }
        Command::Story(c) => commands::ops::story(&client()?, c, cli.json).await,
        Command::Runs(c) => commands::ops::runs(&client()?, c, cli.json).await,
        Command::Events(c) => commands::ops::events(&client()?, c, cli.json).await,
        Command::Resource(c) => commands::ops::resource(&client()?, c, cli.json).await,
    }
}
