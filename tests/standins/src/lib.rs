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

pub mod digitalocean;
pub mod hubspot;
pub mod log;
mod reply;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use digitalocean::DigitalOcean;
pub use hubspot::HubSpot;
pub use log::{RecordedRequest, RequestLog};

/// The vendors the stand-ins imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// DigitalOcean API v2.
    DigitalOcean,
    /// HubSpot CRM API.
    HubSpot,
}

impl Vendor {
    /// Every vendor, in port order (`--port-base N` gives vendor i port N+i).
    pub const ALL: [Vendor; 2] = [Vendor::DigitalOcean, Vendor::HubSpot];

    /// The vendor's short name (also the pack's name where there is a pack).
    pub fn name(self) -> &'static str {
        match self {
            Vendor::DigitalOcean => "digitalocean",
            Vendor::HubSpot => "hubspot",
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
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            digitalocean: "dop_v1_standin0000000000000000000000000000000000000000000000000000"
                .into(),
            hubspot: "pat-na1-5tand1n0-0000-4000-8000-000000000000".into(),
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_base: None,
            tokens: Tokens::default(),
            droplet_boot_delay: Duration::ZERO,
        }
    }
}

/// The running stand-ins. Dropping it stops them.
pub struct StandIns {
    digitalocean: Arc<DigitalOcean>,
    hubspot: Arc<HubSpot>,
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
                Some(base) => base
                    .checked_add(i as u16)
                    .ok_or_else(|| std::io::Error::other("--port-base is too high"))?,
                None => 0,
            };
            let listener = TcpListener::bind(SocketAddr::new(config.host, port)).await?;
            let addr = listener.local_addr()?;
            urls.insert(vendor, format!("http://{addr}"));
            listeners.insert(vendor, listener);
        }
        let url = |v: Vendor| urls[&v].clone();
        let t = &config.tokens;
        let digitalocean = Arc::new(DigitalOcean::new(
            url(Vendor::DigitalOcean),
            t.digitalocean.clone(),
            config.droplet_boot_delay,
        ));
        let hubspot = Arc::new(HubSpot::new(url(Vendor::HubSpot), t.hubspot.clone()));
        let mut routers: BTreeMap<Vendor, Router> = BTreeMap::new();
        routers.insert(Vendor::HubSpot, hubspot::router(hubspot.clone()));
        routers.insert(
            Vendor::DigitalOcean,
            digitalocean::router(digitalocean.clone()),
        );
        let mut tasks = Vec::new();
        for (vendor, listener) in listeners {
            let Some(router) = routers.remove(&vendor) else {
                continue;
            };
            let app = router.layer(from_fn_with_state(
                log::LogLayer {
                    vendor,
                    log: log.clone(),
                },
                log::record,
            ));
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        Ok(StandIns {
            digitalocean,
            hubspot,
            urls,
            log,
            tasks,
        })
    }

    /// The DigitalOcean stand-in.
    pub fn digitalocean(&self) -> &DigitalOcean {
        &self.digitalocean
    }

    /// The HubSpot stand-in.
    pub fn hubspot(&self) -> &HubSpot {
        &self.hubspot
    }

    /// A vendor's base URL.
    pub fn url(&self, vendor: Vendor) -> &str {
        &self.urls[&vendor]
    }

    /// Every request any stand-in received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.all()
    }

    /// The requests a stand-in refused (answered outside 2xx), with the reasons.
    pub fn rejected(&self) -> Vec<RecordedRequest> {
        self.log
            .all()
            .into_iter()
            .filter(|r| r.rejected.is_some())
            .collect()
    }

    /// The shared request log (to follow requests live, or clear it).
    pub fn log(&self) -> &RequestLog {
        &self.log
    }
}

impl Drop for StandIns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
