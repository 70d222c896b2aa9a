//! `switchyard-standins`: runs every stand-in for trying the shipped stories locally.
//!
//! ```text
//! cargo run -p switchyard-standins -- [--port-base 9100] [--packs packs] [--seed FILE]
//! ```
//!
//! Prints each stand-in's URL, then the `switchyard resource set` / `credential set`
//! commands that point the packs at them (names read from `PACKS/*/pack.yaml`), then one
//! line per request received, until interrupted. `GET URL/_standin/state` on any stand-in
//! shows its state; `GET URL/_standin/requests` its requests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use saphyr::{LoadableYamlNode, Yaml};
use switchyard_standins::{Config, Seed, SettingKind, StandIns, Vendor};

/// Local stand-ins of DigitalOcean, HubSpot, SendGrid, GitHub, a Slack-compatible chat, a
/// ticket tracker and an artifact repository.
#[derive(Parser)]
#[command(name = "switchyard-standins", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// First port: the stand-ins listen on N, N+1, … (digitalocean, hubspot, sendgrid,
    /// github, chat, tracker, artifacts). Free ports when not given.
    #[arg(long)]
    port_base: Option<u16>,
    /// The packs directory whose pack.yaml files name the resources and credentials.
    #[arg(long, default_value = "packs")]
    packs: PathBuf,
    /// A JSON seed (see the crate's `seed` module) instead of the built-in demo state.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Seconds a Droplet created through the API stays `new` before it is `active`.
    #[arg(long, default_value_t = 0)]
    boot_delay: u64,
    /// Do not print each request.
    #[arg(long)]
    quiet: bool,
}

/// The state the stand-ins start with when no `--seed` is given.
const DEMO_SEED: &str = r#"{
  "digitalocean": {
    "domains": ["example.com"],
    "droplets": [{"name": "trial-pool-1", "tags": ["trial-pending"]},
                 {"name": "trial-pool-2", "tags": ["trial-pending"]}]
  },
  "github": [{
    "repo": "acme/shop",
    "default_branch": "main",
    "commits": [{"branch": "main", "message": "Add checkout", "author": "ada"},
                {"branch": "feature-login", "message": "Add login form", "author": "grace"}],
    "statuses": [{"ref": "main", "context": "ci/build", "state": "success"},
                 {"ref": "feature-login", "context": "ci/build", "state": "success"}],
    "pulls": [{"number": 1, "head": "feature-login", "base": "main", "title": "Login form",
               "reviews": [{"user": "ada", "state": "APPROVED"}]}],
    "tags": {"v1.0.0": "main"}
  }],
  "tracker": {"REL-1": "ready for release"}
}"#;

/// Resource and credential names each pack declares (`resources:` / `credentials:` keys).
fn pack_names(packs: &Path) -> Result<Vec<(String, SettingKind, String)>, String> {
    let mut out = Vec::new();
    let dir = std::fs::read_dir(packs).map_err(|e| format!("{}: {e}", packs.display()))?;
    let mut files: Vec<PathBuf> = dir
        .filter_map(Result::ok)
        .map(|e| e.path().join("pack.yaml"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let docs = Yaml::load_from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let Some(doc) = docs.first() else { continue };
        let pack = doc
            .as_mapping_get("name")
            .and_then(Yaml::as_str)
            .unwrap_or("?")
            .to_string();
        for (key, kind) in [
            ("resources", SettingKind::Resource),
            ("credentials", SettingKind::Credential),
        ] {
            if let Some(m) = doc.as_mapping_get(key).and_then(Yaml::as_mapping) {
                for k in m.keys() {
                    if let Some(name) = k.as_str() {
                        out.push((pack.clone(), kind, name.to_string()));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Shell-quotes a value.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn print_setup(s: &StandIns, packs: &Path) {
    let settings = s.settings();
    let command = |kind: SettingKind, name: &str, value: &str| match kind {
        SettingKind::Resource => format!("switchyard resource set {name} {}", quote(value)),
        SettingKind::Credential => {
            format!(
                "printf %s {} | switchyard credential set {name}",
                quote(value)
            )
        }
    };
    let mut done = BTreeSet::new();
    match pack_names(packs) {
        Ok(names) => {
            println!(
                "\n# Point the packs in {} at the stand-ins:",
                packs.display()
            );
            for (pack, kind, name) in names {
                match settings.iter().find(|x| x.name == name && x.kind == kind) {
                    Some(x) => {
                        println!("{}", command(kind, &name, &x.value));
                        done.insert(name);
                    }
                    None => println!("# {pack}: no stand-in value for {name}"),
                }
            }
        }
        Err(e) => println!("\n# Could not read the packs ({e}); every setting follows."),
    }
    let rest: Vec<_> = settings
        .iter()
        .filter(|x| !done.contains(&x.name))
        .collect();
    if !rest.is_empty() {
        println!("\n# For stories (no pack declares these):");
        for x in rest {
            println!("{}", command(x.kind, &x.name, &x.value));
        }
    }
    println!(
        "\n# The stand-ins are on loopback: run `switchyard serve --allow-private-networks` so\n\
         # http_request may reach them."
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed: Seed = match &args.seed {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: seed {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => match serde_json::from_str(DEMO_SEED) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: the built-in demo seed: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let config = Config {
        host: args.host,
        port_base: args.port_base,
        droplet_boot_delay: Duration::from_secs(args.boot_delay),
        ..Config::default()
    };
    let s = match StandIns::start_with(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the stand-ins: {e}");
            return ExitCode::FAILURE;
        }
    };
    s.seed(&seed);
    println!("# Stand-ins (state: URL/_standin/state, requests: URL/_standin/requests):");
    for v in Vendor::ALL {
        println!("#   {:<13} {}", v.name(), s.url(v));
    }
    println!("#   chat webhook  {}", s.chat().webhook_url());
    print_setup(&s, &args.packs);
    println!("\n# Requests (Ctrl-C to stop):");
    let mut live = s.log().subscribe();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            r = live.recv() => match r {
                Ok(r) if !args.quiet => println!("{}", r.summary()),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => println!("# ({n} requests not shown)"),
                Err(_) => break,
            },
        }
    }
    ExitCode::SUCCESS
}
