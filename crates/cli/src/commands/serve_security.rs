//! What `serve` sets up for security before it listens: the master key of credentials, the
//! SSRF policy of outgoing requests, and whether the API requires tokens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail};
use clap::Args;
use secrecy::SecretString;
use switchyard_agents::ssrf::NetworkPolicy;
use switchyard_engine::{load_master_key, Keyring};
use switchyard_server::auth::{active_tokens, Auth};
use switchyard_store::Store;

/// Security options of `serve`.
#[derive(Debug, Args)]
pub struct ServeSecurityArgs {
    /// File holding the master key that encrypts credentials (32 bytes, base64); default
    /// DATA/master.key. SWITCHYARD_MASTER_KEY, when set, is used instead.
    #[arg(long, value_name = "FILE")]
    master_key_file: Option<PathBuf>,
    #[command(flatten)]
    network: NetworkArgs,
}

/// Where `http_request` may go: the SSRF guard's flags (`serve` and `worker`).
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Let `http_request` reach loopback, private and link-local addresses: turns the SSRF
    /// guard off. Meant for development.
    #[arg(long)]
    allow_private_networks: bool,
    /// Let `http_request` reach this network (10.0.0.0/8), address, or host name
    /// (`vault.corp`, `*.corp` for its subdomains) although it is not public; repeatable.
    #[arg(long = "allow-network", value_name = "CIDR|HOST")]
    allow_network: Vec<String>,
    /// Resolve HOST to IP without asking DNS, like curl's --resolve (tests, split-horizon
    /// DNS). The SSRF guard still checks the address: allow-list HOST if it is not public.
    #[arg(long = "resolve", value_name = "HOST:IP", hide = true)]
    resolve: Vec<String>,
}

impl NetworkArgs {
    /// The SSRF policy from the flags.
    pub fn network_policy(&self) -> anyhow::Result<NetworkPolicy> {
        let mut policy = if self.allow_private_networks {
            NetworkPolicy::open()
        } else {
            NetworkPolicy::strict()
        };
        for entry in &self.allow_network {
            policy
                .allow(entry)
                .map_err(|e| anyhow!("--allow-network {e}"))?;
        }
        for spec in &self.resolve {
            policy
                .resolve_override(spec)
                .map_err(|e| anyhow!("--resolve {e}"))?;
        }
        if self.allow_private_networks {
            tracing::warn!("--allow-private-networks: http_request may reach loopback, private and link-local addresses (the SSRF guard is off)");
        } else if !self.allow_network.is_empty() {
            tracing::info!(allowed = ?self.allow_network, "SSRF guard on, with an allow-list");
        }
        Ok(policy)
    }
}

impl ServeSecurityArgs {
    /// The SSRF policy from the flags.
    pub fn network_policy(&self) -> anyhow::Result<NetworkPolicy> {
        self.network.network_policy()
    }

    /// Loads (or, while no credential exists, creates) the master key.
    pub async fn keyring(&self, store: &dyn Store, data: &Path) -> anyhow::Result<Keyring> {
        let file = self
            .master_key_file
            .clone()
            .unwrap_or_else(|| data.join("master.key"));
        load_keyring(store, master_key_env(), &file).await
    }
}

/// `SWITCHYARD_MASTER_KEY`, when set and not blank.
fn master_key_env() -> Option<SecretString> {
    std::env::var("SWITCHYARD_MASTER_KEY")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(SecretString::from)
}

/// The master key of a `worker`: `SWITCHYARD_MASTER_KEY`, else `--master-key-file`. Unlike
/// `serve`, a worker never creates a key: it must decrypt what the front ends encrypt, so it
/// is given theirs.
pub async fn worker_keyring(store: &dyn Store, file: Option<&Path>) -> anyhow::Result<Keyring> {
    let env = master_key_env();
    let file = match (&env, file) {
        (Some(_), _) => file.map(Path::to_path_buf).unwrap_or_default(),
        (None, Some(file)) if file.exists() => file.to_path_buf(),
        (None, Some(file)) => bail!(
            "the master key file {} does not exist: give the worker the front ends' key \
             (the same file, or SWITCHYARD_MASTER_KEY)",
            file.display()
        ),
        (None, None) => bail!(
            "a worker needs the master key of the front ends to decrypt credentials: set \
             SWITCHYARD_MASTER_KEY or --master-key-file FILE (a copy of their key file)"
        ),
    };
    load_keyring(store, env, &file).await
}

async fn load_keyring(
    store: &dyn Store,
    env: Option<SecretString>,
    file: &Path,
) -> anyhow::Result<Keyring> {
    let from_env = env.is_some();
    let loaded = load_master_key(store, env, file)
        .await
        .map_err(|e| anyhow!("cannot open the credential store: {e}"))?;
    if loaded.generated {
        tracing::warn!(
            file = %file.display(),
            key_id = loaded.keyring.current().id(),
            "GENERATED A NEW MASTER KEY in {}: every credential will be encrypted with it. \
             Back it up and keep it secret (mode 0600); without it stored credentials cannot be \
             read. To manage the key yourself, set SWITCHYARD_MASTER_KEY instead.",
            file.display()
        );
    } else {
        tracing::info!(
            source = if from_env {
                "SWITCHYARD_MASTER_KEY"
            } else {
                "key file"
            },
            key_id = loaded.keyring.current().id(),
            credentials = loaded.credentials,
            "master key loaded"
        );
    }
    Ok(loaded.keyring)
}

/// Whether the API needs tokens: always, except on a loopback address while no token
/// exists. On any other address without tokens, `serve` refuses to start.
/// `store_hint` names the store for the message (`--data DIR`, `--database-url URL`).
pub async fn api_auth(
    store: &dyn Store,
    listen: SocketAddr,
    store_hint: &str,
) -> anyhow::Result<Arc<Auth>> {
    let active = active_tokens(store).await?;
    let loopback = listen.ip().is_loopback();
    if active == 0 {
        if !loopback {
            bail!(
                "serving on {listen} (not a loopback address) requires API tokens, and none exist. \
                 Create an admin token first, while the server is stopped:\n  \
                 switchyard token create --role admin --name NAME {store_hint}\n\
                 then start the server again and pass the token with --token or SWITCHYARD_TOKEN."
            );
        }
        tracing::warn!(
            "THE API IS OPEN: no API token exists, so anyone who can reach {listen} may use \
             /api/v1 as an admin. Create one (`switchyard token create --role admin`) to require tokens."
        );
    } else {
        tracing::info!(tokens = active, "the API requires a bearer token");
    }
    Ok(Arc::new(Auth::new(loopback, active)))
}

/// While the API runs open, re-counts the tokens now and then, so that a token written to
/// the store by another process (`token create --database-url`) closes it within seconds.
/// Ends when `stop` completes (the server shuts down).
pub fn watch_tokens(
    auth: Arc<Auth>,
    store: Arc<dyn Store>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if !auth.is_open() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        tokio::pin!(stop);
        while auth.is_open() {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = auth.recount(store.as_ref()).await {
                tracing::warn!(error = %e, "could not count the API tokens");
            }
        }
        tracing::info!("an API token exists now: the API requires tokens");
    });
}
