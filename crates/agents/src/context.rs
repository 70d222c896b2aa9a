//! What an agent execution can reach: shared services and the per-execution context.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use switchyard_template::Context as TemplateContext;
use switchyard_types::{JobId, Payload};

use crate::ssrf::{GuardedResolver, NetworkPolicy};

/// Settings for the shared services, from the server's command line.
#[derive(Clone, Debug)]
pub struct ServicesConfig {
    /// Default time limit of one try when an agent sets no `timeout`.
    pub default_timeout: Duration,
    /// Largest response body `http_request` reads.
    pub max_response_bytes: usize,
    /// User-Agent of outgoing requests.
    pub user_agent: String,
    /// Which addresses outgoing requests may reach (the SSRF guard).
    pub network: NetworkPolicy,
    /// Whether `command` agents may run programs (`serve --allow-commands`).
    pub allow_commands: bool,
    /// Largest stdout (and, separately, stderr) a `command` agent keeps; the rest is read,
    /// dropped, and the event says it was truncated. Default 256 KiB each, so that both fit
    /// in one event under the store's 1 MiB event size limit.
    pub max_command_output: usize,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        ServicesConfig {
            default_timeout: Duration::from_secs(30),
            max_response_bytes: 10 * 1024 * 1024,
            user_agent: concat!("switchyard/", env!("CARGO_PKG_VERSION")).to_string(),
            network: NetworkPolicy::strict(),
            allow_commands: false,
            max_command_output: 256 * 1024,
        }
    }
}

/// Where credentials may be sent (`credential set --allowed-host`).
pub trait CredentialHosts: Send + Sync + fmt::Debug {
    /// The hosts the credential `name` may be sent to; `None` or empty: any host.
    fn allowed_hosts(&self, name: &str) -> Option<Vec<String>>;
}

/// Services shared by every execution: one pooled HTTP client, limits.
#[derive(Clone, Debug)]
pub struct Services {
    /// Pooled HTTP client (rustls), its resolver guarded by `config.network`. Redirects are
    /// followed by `http_request` itself, so each hop is checked.
    pub http: reqwest::Client,
    /// Settings.
    pub config: Arc<ServicesConfig>,
    /// The SSRF policy (also enforced inside `http`'s resolver).
    pub network: Arc<NetworkPolicy>,
    /// Allowed hosts per credential; set by the engine.
    pub credential_hosts: Option<Arc<dyn CredentialHosts>>,
}

impl Services {
    /// Builds the shared services.
    pub fn new(config: ServicesConfig) -> Result<Self, reqwest::Error> {
        let network = Arc::new(config.network.clone());
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&network))))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?;
        Ok(Services {
            http,
            config: Arc::new(config),
            network,
            credential_hosts: None,
        })
    }
}

/// One agent execution: the incoming event, its templates' variables, and the services.
pub struct ExecContext<'a> {
    /// Template variables: upstream agents, `event`, `run`, `credential`, `resource`, `now`.
    pub templates: &'a TemplateContext,
    /// The incoming event's payload.
    pub input: &'a Payload,
    /// Shared services.
    pub services: &'a Services,
    /// The job: stable across retries of this execution (an idempotency key).
    pub job_id: JobId,
    /// This try's number, from 1.
    pub attempt: u32,
    /// Story name.
    pub story: &'a str,
    /// Agent name.
    pub agent: &'a str,
    /// True when the agent asked to be woken ([`crate::Outcome::Defer`]) and this is that wake.
    pub resumed: bool,
    /// Durable state and other stories, provided by the engine.
    pub host: &'a dyn crate::Host,
}

impl<'a> ExecContext<'a> {
    /// The same execution with other template variables (a pack action's body).
    pub fn with_templates<'b>(&'b self, templates: &'b TemplateContext) -> ExecContext<'b>
    where
        'a: 'b,
    {
        ExecContext { templates, ..*self }
    }
}
