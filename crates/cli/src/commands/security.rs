//! `credential …`, `token …`, `audit list`: admin commands. Credentials and the audit log go
//! through the API; tokens may also be written to the store directly (a stopped server's
//! data directory with `--data`, or a PostgreSQL database with `--database-url`), which is
//! how the first admin token is made.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use switchyard_server::auth::{create_token, Role};
use switchyard_store::postgres::{PgConfig, PgStore};
use switchyard_store::sqlite::{OpenError, SqliteConfig, SqliteStore};
use switchyard_store::Store;

use super::serve::redact_url;

use crate::client::{enc, Client};
use crate::output::{pretty, table, text, time};

/// `credential …`
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Store a secret for templates (`credential.NAME`), encrypted; the value is read from
    /// standard input unless --from-env is given. Never printed back.
    Set {
        /// Name (letters, digits, `_`).
        name: String,
        /// Read the value from this environment variable instead of standard input.
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
        /// Only send the value to this host (repeatable; `*.example.com` for subdomains):
        /// rendering it into a request for any other host is an error.
        #[arg(long = "allowed-host", value_name = "HOST")]
        allowed_hosts: Vec<String>,
    },
    /// Names, allowed hosts and dates (never values).
    List,
    /// Remove a credential.
    Delete {
        /// Name.
        name: String,
    },
    /// Re-encrypt every credential under a new master key. With a key file, the server
    /// generates the key and replaces the file; with SWITCHYARD_MASTER_KEY, give the new key
    /// with --new-key-from-env and set SWITCHYARD_MASTER_KEY to it before the next start.
    RotateKey {
        /// Read the new key (32 bytes, base64) from this environment variable.
        #[arg(long, value_name = "VAR")]
        new_key_from_env: Option<String>,
    },
}

/// `token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; it is printed once and only its hash is kept.
    Create {
        /// viewer (reads), operator (also triggers, replays, runs actions) or admin (also
        /// credentials, resources, tokens, audit).
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
        /// A name saying who or what uses it.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        direct: DirectStore,
    },
    /// Tokens: ids, names, roles, dates (never the tokens).
    List {
        #[command(flatten)]
        direct: DirectStore,
    },
    /// Revoke a token by id, or every active token with this name.
    Revoke {
        /// Token id (`tok_…`) or name.
        id: String,
        #[command(flatten)]
        direct: DirectStore,
    },
}

/// Where `token` commands reach the store without a server: how the first admin token is
/// made. Without either, they ask the server's API.
#[derive(Debug, Args)]
pub struct DirectStore {
    /// Use this SQLite data directory directly instead of asking a server (the server must
    /// be stopped).
    #[arg(long, value_name = "DIR", conflicts_with = "database_url")]
    data: Option<PathBuf>,
    /// Use this PostgreSQL database directly instead of asking a server
    /// (`postgres://user:password@host:5432/db`; servers may keep running).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

impl DirectStore {
    /// The store named by `--data` or `--database-url`, if either was given.
    async fn open(&self) -> anyhow::Result<Option<Arc<dyn Store>>> {
        if let Some(dir) = &self.data {
            return Ok(Some(Arc::new(open_store(dir)?)));
        }
        if let Some(url) = &self.database_url {
            let store = PgStore::connect(PgConfig::new(url))
                .await
                .with_context(|| {
                    format!("cannot open the PostgreSQL store at {}", redact_url(url))
                })?;
            return Ok(Some(Arc::new(store)));
        }
        Ok(None)
    }
}

/// `audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Calls that changed something, newest first: who, what, on what, outcome.
    List {
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Entries older than this sequence number (the next page).
        #[arg(long)]
        before: Option<i64>,
    },
}

fn read_value(name: &str, from_env: Option<&str>) -> anyhow::Result<String> {
    let value = match from_env {
        Some(var) => std::env::var(var)
            .with_context(|| format!("environment variable {var} is not set (or not UTF-8)"))?,
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("value of credential {name} (then Enter):");
                let mut line = String::new();
                stdin.read_line(&mut line)?;
                line
            } else {
                let mut all = String::new();
                stdin
                    .read_to_string(&mut all)
                    .context("cannot read the value from standard input")?;
                all
            }
        }
    };
    let value = value
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(&value)
        .to_string();
    if value.is_empty() {
        bail!("the value of credential {name} is empty");
    }
    Ok(value)
}

/// `switchyard credential …`
pub async fn credential(
    client: &Client,
    cmd: CredentialCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match cmd {
        CredentialCommand::Set {
            name,
            from_env,
            allowed_hosts,
        } => {
            let value = read_value(&name, from_env.as_deref())?;
            client
                .call(
                    Method::PUT,
                    &format!("/credentials/{}", enc(&name)),
                    Some(json!({"value": value, "allowed_hosts": allowed_hosts})),
                )
                .await?;
            if json {
                println!(
                    "{}",
                    pretty(&json!({"name": name, "allowed_hosts": allowed_hosts}))
                );
            } else {
                println!("credential {name} set");
            }
        }
        CredentialCommand::List => {
            let v = client.get("/credentials").await?;
            if json {
                println!("{}", pretty(&v));
            } else {
                let rows: Vec<Vec<String>> = items(&v, "credentials")
                    .map(|c| {
                        let hosts: Vec<String> = items(c, "allowed_hosts").map(text).collect();
                        vec![
                            text(&c["name"]),
                            if hosts.is_empty() {
                                "(any)".into()
                            } else {
                                hosts.join(",")
                            },
                            text(&c["key_id"]),
                            time(&c["updated_at"]),
                        ]
                    })
                    .collect();
                table(&["NAME", "ALLOWED HOSTS", "KEY", "UPDATED"], &rows);
            }
        }
        CredentialCommand::Delete { name } => {
            client
                .call(
                    Method::DELETE,
                    &format!("/credentials/{}", enc(&name)),
                    None,
                )
                .await?;
            if !json {
                println!("credential {name} deleted");
            }
        }
        CredentialCommand::RotateKey { new_key_from_env } => {
            let body = match new_key_from_env {
                Some(var) => {
                    let key = std::env::var(&var)
                        .with_context(|| format!("environment variable {var} is not set"))?;
                    json!({"new_key": key.trim()})
                }
                None => json!({}),
            };
            let v = client
                .call(Method::POST, "/credentials/rotate-key", Some(body))
                .await?;
            if json {
                println!("{}", pretty(&v));
            } else {
                println!(
                    "re-encrypted {} credential(s): master key {} replaced by {}",
                    text(&v["credentials"]),
                    text(&v["old_key_id"]),
                    text(&v["key_id"])
                );
                match v["key_file"].as_str() {
                    Some(f) => println!("the new key is in {f}"),
                    None => println!(
                        "set SWITCHYARD_MASTER_KEY to the new key before the server's next start"
                    ),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v[key]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
}

/// Opens a stopped server's store; a running server holds it.
fn open_store(dir: &Path) -> anyhow::Result<SqliteStore> {
    match SqliteStore::open(SqliteConfig::new(dir)) {
        Ok(s) => Ok(s),
        Err(OpenError::Locked(_)) => bail!(
            "{} is in use by a running server. Stop it first, or go through its API instead: \
             omit --data and pass an admin token (--token or SWITCHYARD_TOKEN)",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot open the store in {}", dir.display())),
    }
}

/// `switchyard token …`
pub async fn token(
    client: impl FnOnce() -> anyhow::Result<Client>,
    cmd: TokenCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Create { role, name, direct } => {
            let v = match direct.open().await? {
                Some(store) => {
                    let role = Role::parse(&role).context("unknown role")?;
                    let (record, token) =
                        create_token(store.as_ref(), role, name.as_deref()).await?;
                    json!({"id": record.id, "name": record.name, "role": record.role,
                           "created_at": record.created_at, "token": token})
                }
                None => {
                    client()?
                        .call(
                            Method::POST,
                            "/tokens",
                            Some(json!({"role": role, "name": name})),
                        )
                        .await?
                }
            };
            if json {
                println!("{}", pretty(&v));
            } else {
                eprintln!(
                    "created {} token `{}` ({}); store it now, it is not shown again:",
                    text(&v["role"]),
                    text(&v["name"]),
                    text(&v["id"])
                );
                println!("{}", text(&v["token"]));
            }
        }
        TokenCommand::List { direct } => {
            let v = match direct.open().await? {
                Some(store) => json!({"tokens": store.tokens().await?}),
                None => client()?.get("/tokens").await?,
            };
            if json {
                println!("{}", pretty(&v));
            } else {
                let rows: Vec<Vec<String>> = items(&v, "tokens")
                    .map(|t| {
                        vec![
                            text(&t["id"]),
                            text(&t["name"]),
                            text(&t["role"]),
                            time(&t["created_at"]),
                            time(&t["revoked_at"]),
                        ]
                    })
                    .collect();
                table(&["ID", "NAME", "ROLE", "CREATED", "REVOKED"], &rows);
            }
        }
        TokenCommand::Revoke { id, direct } => {
            match direct.open().await? {
                Some(store) => {
                    if store.revoke_token(&id).await? == 0 {
                        bail!("no active token `{id}`");
                    }
                }
                None => {
                    client()?
                        .call(Method::DELETE, &format!("/tokens/{}", enc(&id)), None)
                        .await?;
                }
            }
            if !json {
                println!("token {id} revoked");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `switchyard audit list`
pub async fn audit(client: &Client, cmd: AuditCommand, json: bool) -> anyhow::Result<ExitCode> {
    let AuditCommand::List { limit, before } = cmd;
    let mut path = format!("/audit?limit={limit}");
    if let Some(b) = before {
        path.push_str(&format!("&before={b}"));
    }
    let v = client.get(&path).await?;
    if json {
        println!("{}", pretty(&v));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = items(&v, "entries")
        .map(|e| {
            vec![
                text(&e["seq"]),
                time(&e["at"]),
                text(&e["token_name"]),
                text(&e["role"]),
                text(&e["action"]),
                text(&e["target"]),
                text(&e["outcome"]),
            ]
        })
        .collect();
    table(
        &[
            "SEQ", "TIME", "TOKEN", "ROLE", "ACTION", "TARGET", "OUTCOME",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
