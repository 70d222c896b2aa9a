//! Stateful local stand-ins of the SaaS APIs the shipped packs call, for end-to-end tests
//! and for trying the shipped stories locally.
//!
//! [`StandIns::start`] binds one loopback HTTP server per vendor — DigitalOcean, HubSpot,
//! SendGrid, GitHub, a Slack-compatible chat, a generic ticket tracker and an artifact
//! repository — each with its own base URL and its own token. Each serves the endpoints
//! the packs use (and a few neighbours a story needs), at the vendor's path, method and
//! auth, and refuses what the vendor refuses with the vendor's status and error body. State
//! lives in memory: tests seed it and read it back through each vendor's handle
//! ([`StandIns::digitalocean`], …). Every request, refused or not, is in
//! [`StandIns::requests`], a refused one with the reason.
//!
//! ```no_run
//! # async fn demo() {
//! let s = switchyard_standins::StandIns::start().await;
//! s.digitalocean().add_domain("example.com");
//! s.digitalocean().add_droplet("pool-1", &["trial-pending"]);
//! for (name, value) in s.resources() { /* switchyard resource set NAME VALUE */ }
//! for (name, value) in s.credentials() { /* switchyard credential set NAME */ }
//! // … run the story …
//! assert!(s.rejected().is_empty(), "{:#?}", s.rejected());
//! # }
//! ```

pub mod artifacts;
pub mod chat;
pub mod digitalocean;
pub mod github;
pub mod hubspot;
pub mod log;
mod reply;
pub mod seed;
pub mod sendgrid;
pub mod tracker;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use artifacts::Artifacts;
pub use chat::Chat;
pub use digitalocean::DigitalOcean;
pub use github::GitHub;
pub use hubspot::HubSpot;
pub use log::{RecordedRequest, RequestLog};
pub use seed::Seed;
pub use sendgrid::SendGrid;
pub use tracker::Tracker;

/// The vendors the stand-ins imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// DigitalOcean API v2.
    DigitalOcean,
    /// HubSpot CRM API.
    HubSpot,
    /// Twilio SendGrid v3 Mail Send.
    SendGrid,
    /// GitHub REST API.
    GitHub,
    /// A Slack-compatible chat (incoming webhooks and `chat.postMessage`).
    Chat,
    /// A generic ticket tracker (`GET /issues/{key}`).
    Tracker,
    /// An artifact repository (`PUT /{path}`).
    Artifacts,
}

impl Vendor {
    /// Every vendor, in port order (`--port-base N` gives vendor i port N+i).
    pub const ALL: [Vendor; 7] = [
        Vendor::DigitalOcean,
        Vendor::HubSpot,
        Vendor::SendGrid,
        Vendor::GitHub,
        Vendor::Chat,
        Vendor::Tracker,
        Vendor::Artifacts,
    ];

    /// The vendor's short name (also the pack's name where there is a pack).
    pub fn name(self) -> &'static str {
        match self {
            Vendor::DigitalOcean => "digitalocean",
            Vendor::HubSpot => "hubspot",
            Vendor::SendGrid => "sendgrid",
            Vendor::GitHub => "github",
            Vendor::Chat => "chat",
            Vendor::Tracker => "tracker",
            Vendor::Artifacts => "artifacts",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The secrets each stand-in expects. The defaults look like the vendors' own.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// DigitalOcean personal access token (`Authorization: Bearer`).
    pub digitalocean: String,
    /// HubSpot private app access token (`Authorization: Bearer`).
    pub hubspot: String,
    /// SendGrid API key (`Authorization: Bearer`).
    pub sendgrid: String,
    /// GitHub token (`Authorization: Bearer` or `token`).
    pub github: String,
    /// Slack bot token for `chat.postMessage` (`Authorization: Bearer`).
    pub chat_bot: String,
    /// The secret last segment of the default incoming webhook's URL.
    pub chat_webhook_secret: String,
    /// Ticket tracker token (`Authorization: Bearer`).
    pub tracker: String,
    /// Artifact repository token (`Authorization: Bearer`, or Basic password).
    pub artifacts: String,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            digitalocean: "dop_v1_5tand1n0000000000000000000000000000000000000000000000000000"
                .into(),
            hubspot: "pat-na1-5tand1n0-0000-4000-8000-000000000000".into(),
            sendgrid: "SG.standin0000000000000.standin00000000000000000000000000000000000".into(),
            github: "ghp_standin000000000000000000000000000000".into(),
            chat_bot: "xoxb-0000000000-0000000000000-standin0000000000000000".into(),
            chat_webhook_secret: "standin0000000000000000".into(),
            tracker: "tracker-standin-token".into(),
            artifacts: "artifacts-standin-token".into(),
        }
    }
}

/// How to start the stand-ins.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to bind (default 127.0.0.1).
    pub host: IpAddr,
    /// Vendor i listens on `port_base + i` (in [`Vendor::ALL`] order); `None` picks free ports.
    pub port_base: Option<u16>,
    /// The tokens each stand-in expects.
    pub tokens: Tokens,
    /// How long a Droplet created through the API stays `new` (default: zero).
    pub droplet_boot_delay: Duration,
    /// The GitHub login the token belongs to (creator of deployments and statuses).
    pub github_login: String,
    /// The channel the default incoming webhook posts to.
    pub chat_webhook_channel: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_base: None,
            tokens: Tokens::default(),
            droplet_boot_delay: Duration::ZERO,
            github_login: "switchyard-bot".into(),
            chat_webhook_channel: "deploys".into(),
        }
    }
}

/// Whether a [`Setting`] is a resource or a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingKind {
    /// `switchyard resource set NAME VALUE`.
    Resource,
    /// `switchyard credential set NAME` (value on stdin).
    Credential,
}

/// A resource or credential that points a pack (or a story) at a stand-in.
#[derive(Clone, Debug, Serialize)]
pub struct Setting {
    /// Resource or credential.
    pub kind: SettingKind,
    /// Its name, as the packs declare it (e.g. `digitalocean_api_url`).
    pub name: String,
    /// The value for the stand-ins.
    pub value: String,
    /// The stand-in it points at.
    pub vendor: Vendor,
}

/// The running stand-ins. Dropping it stops them.
pub struct StandIns {
    digitalocean: Arc<DigitalOcean>,
    hubspot: Arc<HubSpot>,
    sendgrid: Arc<SendGrid>,
    github: Arc<GitHub>,
    chat: Arc<Chat>,
    tracker: Arc<Tracker>,
    artifacts: Arc<Artifacts>,
    urls: BTreeMap<Vendor, String>,
    log: RequestLog,
    tasks: Vec<JoinHandle<()>>,
}

impl StandIns {
    /// Starts every stand-in on free loopback ports with the default tokens.
    ///
    /// # Panics
    /// When a loopback port cannot be bound (the machine is out of ports).
    pub async fn start() -> StandIns {
        match StandIns::start_with(Config::default()).await {
            Ok(s) => s,
            Err(e) => panic!("cannot start the stand-ins on loopback: {e}"),
        }
    }

    /// Starts every stand-in as configured.
    pub async fn start_with(config: Config) -> std::io::Result<StandIns> {
        let log = RequestLog::default();
        let mut listeners = BTreeMap::new();
        let mut urls = BTreeMap::new();
        for (i, vendor) in Vendor::ALL.into_iter().enumerate() {
            let port = match config.port_base {
                Some(base) => base.checked_add(i as u16).ok_or_else(|| {
                    std::io::Error::other(format!("port base {base} + {i} is over 65535"))
                })?,
                None => 0,
            };
            let listener = TcpListener::bind(SocketAddr::new(config.host, port))
                .await
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{vendor} on port {port}: {e}"))
                })?;
            let addr = listener.local_addr()?;
            urls.insert(vendor, format!("http://{addr}"));
            listeners.insert(vendor, listener);
        }
        let url = |v: Vendor| urls[&v].clone();
        let t = &config.tokens;
        let s = StandIns {
            digitalocean: Arc::new(DigitalOcean::new(
                url(Vendor::DigitalOcean),
                t.digitalocean.clone(),
                config.droplet_boot_delay,
            )),
            hubspot: Arc::new(HubSpot::new(url(Vendor::HubSpot), t.hubspot.clone())),
            sendgrid: Arc::new(SendGrid::new(url(Vendor::SendGrid), t.sendgrid.clone())),
            github: Arc::new(GitHub::new(
                url(Vendor::GitHub),
                t.github.clone(),
                config.github_login.clone(),
            )),
            chat: Arc::new(Chat::new(
                url(Vendor::Chat),
                t.chat_bot.clone(),
                &t.chat_webhook_secret,
                &config.chat_webhook_channel,
            )),
            tracker: Arc::new(Tracker::new(url(Vendor::Tracker), t.tracker.clone())),
            artifacts: Arc::new(Artifacts::new(url(Vendor::Artifacts), t.artifacts.clone())),
            urls,
            log,
            tasks: Vec::new(),
        };
        let mut s = s;
        for (vendor, listener) in listeners {
            let app = s.router(vendor).layer(from_fn_with_state(
                log::LogLayer {
                    vendor,
                    log: s.log.clone(),
                },
                log::record,
            ));
            s.tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        Ok(s)
    }

    /// A vendor's routes, plus `GET /_standin/state` (its state as JSON, no auth).
    fn router(&self, vendor: Vendor) -> Router {
        let snapshot = self.snapshot_fn(vendor);
        let api = match vendor {
            Vendor::DigitalOcean => digitalocean::router(self.digitalocean.clone()),
            Vendor::HubSpot => hubspot::router(self.hubspot.clone()),
            Vendor::SendGrid => sendgrid::router(self.sendgrid.clone()),
            Vendor::GitHub => github::router(self.github.clone()),
            Vendor::Chat => chat::router(self.chat.clone()),
            Vendor::Tracker => tracker::router(self.tracker.clone()),
            Vendor::Artifacts => artifacts::router(self.artifacts.clone()),
        };
        let log = self.log.clone();
        Router::new()
            .route(
                "/_standin/state",
                get(move || {
                    let v = snapshot();
                    async move { axum::Json(v) }
                }),
            )
            .route(
                "/_standin/requests",
                get(move || {
                    let all: Vec<RecordedRequest> = log
                        .all()
                        .into_iter()
                        .filter(|r| r.vendor == vendor)
                        .collect();
                    async move { axum::Json(all) }
                }),
            )
            .merge(api)
    }

    fn snapshot_fn(&self, vendor: Vendor) -> impl Fn() -> Value + Clone + Send + Sync + 'static {
        let (d, h, sg, g, c, t, a) = (
            self.digitalocean.clone(),
            self.hubspot.clone(),
            self.sendgrid.clone(),
            self.github.clone(),
            self.chat.clone(),
            self.tracker.clone(),
            self.artifacts.clone(),
        );
        move || match vendor {
            Vendor::DigitalOcean => d.snapshot(),
            Vendor::HubSpot => h.snapshot(),
            Vendor::SendGrid => sg.snapshot(),
            Vendor::GitHub => g.snapshot(),
            Vendor::Chat => c.snapshot(),
            Vendor::Tracker => t.snapshot(),
            Vendor::Artifacts => a.snapshot(),
        }
    }

    /// The DigitalOcean stand-in.
    pub fn digitalocean(&self) -> &DigitalOcean {
        &self.digitalocean
    }

    /// The HubSpot stand-in.
    pub fn hubspot(&self) -> &HubSpot {
        &self.hubspot
    }

    /// The SendGrid stand-in.
    pub fn sendgrid(&self) -> &SendGrid {
        &self.sendgrid
    }

    /// The GitHub stand-in.
    pub fn github(&self) -> &GitHub {
        &self.github
    }

    /// The chat stand-in.
    pub fn chat(&self) -> &Chat {
        &self.chat
    }

    /// The ticket tracker stand-in.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The artifact repository stand-in.
    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    /// A vendor's base URL.
    pub fn url(&self, vendor: Vendor) -> &str {
        &self.urls[&vendor]
    }

    /// Every resource and credential that points the packs (and stories) at the stand-ins:
    /// `PACK_api_url` resources and the packs' credentials, plus `tracker_api_url`,
    /// `tracker_token`, `artifacts_url` and `artifacts_token` for stories.
    pub fn settings(&self) -> Vec<Setting> {
        use SettingKind::{Credential, Resource};
        let s = |kind, name: &str, value: &str, vendor| Setting {
            kind,
            name: name.to_string(),
            value: value.to_string(),
            vendor,
        };
        vec![
            s(
                Resource,
                "digitalocean_api_url",
                self.digitalocean.url(),
                Vendor::DigitalOcean,
            ),
            s(
                Credential,
                "digitalocean_token",
                self.digitalocean.token(),
                Vendor::DigitalOcean,
            ),
            s(
                Resource,
                "hubspot_api_url",
                self.hubspot.url(),
                Vendor::HubSpot,
            ),
            s(
                Credential,
                "hubspot_token",
                self.hubspot.token(),
                Vendor::HubSpot,
            ),
            s(
                Resource,
                "sendgrid_api_url",
                self.sendgrid.url(),
                Vendor::SendGrid,
            ),
            s(
                Credential,
                "sendgrid_api_key",
                self.sendgrid.api_key(),
                Vendor::SendGrid,
            ),
            s(
                Resource,
                "github_api_url",
                self.github.url(),
                Vendor::GitHub,
            ),
            s(
                Credential,
                "github_token",
                self.github.token(),
                Vendor::GitHub,
            ),
            s(Resource, "chat_api_url", self.chat.url(), Vendor::Chat),
            s(
                Credential,
                "chat_webhook_url",
                &self.chat.webhook_url(),
                Vendor::Chat,
            ),
            s(
                Credential,
                "chat_bot_token",
                self.chat.bot_token(),
                Vendor::Chat,
            ),
            s(
                Resource,
                "tracker_api_url",
                self.tracker.url(),
                Vendor::Tracker,
            ),
            s(
                Credential,
                "tracker_token",
                self.tracker.token(),
                Vendor::Tracker,
            ),
            s(
                Resource,
                "artifacts_url",
                self.artifacts.url(),
                Vendor::Artifacts,
            ),
            s(
                Credential,
                "artifacts_token",
                self.artifacts.token(),
                Vendor::Artifacts,
            ),
        ]
    }

    /// The resources of [`StandIns::settings`], as `(name, value)`.
    pub fn resources(&self) -> Vec<(String, String)> {
        self.settings_of(SettingKind::Resource)
    }

    /// The credentials of [`StandIns::settings`], as `(name, value)`.
    pub fn credentials(&self) -> Vec<(String, String)> {
        self.settings_of(SettingKind::Credential)
    }

    fn settings_of(&self, kind: SettingKind) -> Vec<(String, String)> {
        self.settings()
            .into_iter()
            .filter(|s| s.kind == kind)
            .map(|s| (s.name, s.value))
            .collect()
    }

    /// Applies a seed (domains, Droplets, repositories, contacts, tickets, …).
    pub fn seed(&self, seed: &Seed) {
        seed::apply(self, seed);
    }

    /// Every request any stand-in received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.all()
    }

    /// The requests one stand-in received, oldest first.
    pub fn requests_to(&self, vendor: Vendor) -> Vec<RecordedRequest> {
        self.log
            .all()
            .into_iter()
            .filter(|r| r.vendor == vendor)
            .collect()
    }

    /// The requests a stand-in refused, with the reasons.
    pub fn rejected(&self) -> Vec<RecordedRequest> {
        self.log
            .all()
            .into_iter()
            .filter(|r| r.rejected.is_some())
            .collect()
    }

    /// Waits until a request matching `matches` has been received (one already received
    /// counts); returns it, or `None` after `timeout`. For example, the Droplet-create
    /// request a story makes when its pool is empty, before the test plays the build's
    /// report-back webhook.
    pub async fn wait_for_request(
        &self,
        timeout: Duration,
        matches: impl Fn(&RecordedRequest) -> bool,
    ) -> Option<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(r) = self.log.all().into_iter().find(|r| matches(r)) {
                return Some(r);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The shared request log (to follow requests live, or clear it).
    pub fn log(&self) -> &RequestLog {
        &self.log
    }

    /// Every stand-in's state as one JSON document.
    pub fn snapshot(&self) -> Value {
        json!({
            "digitalocean": self.digitalocean.snapshot(),
            "hubspot": self.hubspot.snapshot(),
            "sendgrid": self.sendgrid.snapshot(),
            "github": self.github.snapshot(),
            "chat": self.chat.snapshot(),
            "tracker": self.tracker.snapshot(),
            "artifacts": self.artifacts.snapshot(),
        })
    }
}

impl Drop for StandIns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
