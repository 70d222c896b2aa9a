//! `switchyard`: the server, the worker and the operator CLI in one binary.

mod client;
mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc as the global allocator (the default `jemalloc` feature): ~30 % less CPU per
/// end-to-end run than glibc's malloc at c=50 (bench/PROFILE.md, session 5).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, chosen for footprint (idle RSS ≤ 20 MiB): two arenas instead of
/// eight per CPU, one background thread that returns freed pages within about a second
/// (so the memory of a burst does not stay resident while the server is quiet), no
/// lingering "muzzy" pages. `_RJEM_MALLOC_CONF` in the environment overrides them.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 95] =
    b"background_thread:true,max_background_threads:1,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// With jemalloc serving Rust, glibc's malloc serves only the C libraries: SQLite's page
/// caches above all. Left to itself glibc gives each SQLite thread an arena of its own, and
/// what a burst leaves in those arenas stays resident even after the store's idle
/// `malloc_trim` (100k webhooks into one-hour delays: +12 MiB in three arenas). In one
/// arena the idle trim gives it back (+2.4 MiB; bench/PROFILE.md, session 6). SQLite's
/// threads allocate rarely enough that sharing one arena costs nothing measurable.
#[cfg(all(feature = "jemalloc", target_os = "linux", target_env = "gnu"))]
fn one_glibc_arena() {
    // SAFETY: mallopt only sets a glibc tunable; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(feature = "jemalloc", target_os = "linux", target_env = "gnu")))]
fn one_glibc_arena() {}

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
    /// Check stories and packs: every problem as file:line:col; exit 1 on any error.
    Validate {
        /// Story files, story directories, packs or pack directories (default: ./stories
        /// and ./packs).
        paths: Vec<PathBuf>,
        /// The packs that stories' `action` agents use, unless packs are among the paths.
        #[arg(long, default_value = "packs")]
        packs: PathBuf,
    },
    /// Run story tests (`*.test.yaml`) in-process: no network, no server; exit 1 on any
    /// failure.
    Test {
        /// Test files or directories (default: ./stories).
        paths: Vec<PathBuf>,
        /// The packs that stories' `action` agents use.
        #[arg(long, default_value = "packs")]
        packs: PathBuf,
    },
    /// Print the JSON Schema of story files.
    Schema,
    /// Emit the event a webhook agent would emit for a POST of this JSON body, or fire a
    /// schedule agent now (its tick's event, with the keys of a JSON object --data added).
    Trigger {
        /// Story name.
        story: String,
        /// Webhook or schedule agent name.
        agent: String,
        /// The JSON body (for a schedule, an object added to the tick), or @FILE.
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
    /// Secrets for templates (`credential.NAME`), encrypted at rest (admin).
    #[command(subcommand)]
    Credential(commands::security::CredentialCommand),
    /// API tokens and their roles (admin).
    #[command(subcommand)]
    Token(commands::security::TokenCommand),
    /// The audit log of API calls that changed something (admin).
    #[command(subcommand)]
    Audit(commands::security::AuditCommand),
    /// Pack actions: list them, show one, run one by hand.
    #[command(subcommand)]
    Action(commands::action::ActionCommand),
    /// Packs: import a directory of scripts as a pack.
    #[command(subcommand)]
    Pack(PackCommand),
}

#[derive(Debug, Subcommand)]
enum PackCommand {
    /// Write a pack with one `command` action per executable script in DIR; parameters come
    /// from `# @param NAME TYPE [required] [default=…] description` header lines (README).
    ImportScripts {
        /// The directory of scripts.
        dir: PathBuf,
        /// The pack's name.
        #[arg(long)]
        pack: String,
        /// The packs directory to write into.
        #[arg(long, default_value = "packs")]
        packs: PathBuf,
        /// Replace an existing pack of that name.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    one_glibc_arena();
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
        Command::Validate { paths, packs } => commands::validate::run(&paths, &packs, cli.json),
        Command::Test { paths, packs } => commands::test::run(&paths, &packs, cli.json).await,
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
        Command::Credential(c) => commands::security::credential(&client()?, c, cli.json).await,
        Command::Token(c) => commands::security::token(client, c, cli.json).await,
        Command::Audit(c) => commands::security::audit(&client()?, c, cli.json).await,
        Command::Action(c) => commands::action::run(&client()?, c, cli.json).await,
        Command::Pack(PackCommand::ImportScripts {
            dir,
            pack,
            packs,
            force,
        }) => commands::import_scripts::run(&dir, &pack, &packs, force),
    }
}
