//! The SSRF guard: outgoing requests reach only public addresses unless the server allows
//! more (`serve --allow-private-networks`, `--allow-network CIDR|HOST`).
//!
//! It is enforced in two places, because one alone can be bypassed:
//! - [`GuardedResolver`], the HTTP client's DNS resolver: every address a host name resolves
//!   to is checked at connection time, so a name that resolves to a public address when a
//!   story is checked and to `127.0.0.1` when the connection is made (DNS rebinding) is
//!   still refused;
//! - [`NetworkPolicy::check_url`], called before every request and every redirect hop: the
//!   client does not resolve IP literals (`http://127.0.0.1/`, `http://[::1]/`, and
//!   `http://2130706433/`, which the URL parser normalizes to `127.0.0.1`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses outgoing requests may reach.
#[derive(Clone, Debug, Default)]
pub struct NetworkPolicy {
    /// Reach every address (`--allow-private-networks`): the guard is off.
    pub allow_private: bool,
    nets: Vec<IpNet>,
    hosts: Vec<String>,
    overrides: HashMap<String, Vec<IpAddr>>,
}

/// A refused destination.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "refused to connect to {ip} ({reason} address) for host `{host}`: requests to loopback, \
     private, link-local and other non-public addresses are blocked (SSRF guard); the server \
     can allow it with --allow-network or --allow-private-networks"
)]
pub struct Refused {
    /// The host of the URL.
    pub host: String,
    /// The address it resolved to (or was).
    pub ip: IpAddr,
    /// Why the address is not public.
    pub reason: &'static str,
}

impl NetworkPolicy {
    /// The default: only public addresses.
    pub fn strict() -> Self {
        NetworkPolicy::default()
    }

    /// Every address (the guard is off).
    pub fn open() -> Self {
        NetworkPolicy {
            allow_private: true,
            ..NetworkPolicy::default()
        }
    }

    /// Allows a network (`10.0.0.0/8`), an address (`10.1.2.3`), a host name
    /// (`api.internal`) or every subdomain of one (`*.internal`).
    pub fn allow(&mut self, entry: &str) -> Result<(), String> {
        let entry = entry.trim();
        if let Ok(net) = entry.parse::<IpNet>() {
            self.nets.push(net);
        } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
            self.nets.push(IpNet::from(ip));
        } else if valid_host_pattern(entry) {
            self.hosts.push(entry.to_ascii_lowercase());
        } else {
            return Err(format!(
                "`{entry}` is not a CIDR network, an IP address or a host name"
            ));
        }
        Ok(())
    }

    /// Makes `HOST` resolve to `IP` (`HOST:IP`, like curl's `--resolve`). The answer is
    /// checked like any other: allow the host too when the address is not public.
    pub fn resolve_override(&mut self, spec: &str) -> Result<(), String> {
        let (host, ip) = spec
            .split_once(':')
            .ok_or_else(|| format!("`{spec}`: write HOST:IP"))?;
        let ip: IpAddr = ip
            .trim_matches(['[', ']'])
            .parse()
            .map_err(|_| format!("`{spec}`: `{ip}` is not an IP address"))?;
        if !valid_host_pattern(host) || host.starts_with("*.") {
            return Err(format!("`{spec}`: `{host}` is not a host name"));
        }
        self.overrides
            .entry(host.to_ascii_lowercase())
            .or_default()
            .push(ip);
        Ok(())
    }

    /// Whether `host` is allow-listed by name.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.hosts.iter().any(|h| host_matches(h, &host))
    }

    /// Checks one address that `host` resolved to (or is).
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_private || self.host_allowed(host) {
            return Ok(());
        }
        let canonical = canonical(ip);
        if self
            .nets
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
        {
            return Ok(());
        }
        match classify(ip) {
            None => Ok(()),
            Some(reason) => Err(Refused {
                host: host.to_string(),
                ip,
                reason,
            }),
        }
    }

    /// Checks a URL whose host is an IP literal (the client connects to those without
    /// asking the resolver). Host names are checked by [`GuardedResolver`].
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        let host = url.host_str().unwrap_or_default();
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(host, IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(host, IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => match d.parse::<IpAddr>() {
                Ok(ip) => self.check(host, ip),
                Err(_) => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// The addresses `host` resolves to: the `--resolve` override, or the system resolver.
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        if let Some(ips) = self.overrides.get(host) {
            return Ok(ips.clone());
        }
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

fn valid_host_pattern(s: &str) -> bool {
    let name = s.strip_prefix("*.").unwrap_or(s);
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// `*.example.com` matches every subdomain of example.com; anything else matches exactly.
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        None => pattern == host,
    }
}

/// An IPv4 address carried in an IPv6 one (mapped, compatible, NAT64, 6to4) as that IPv4
/// address; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::a.b.c.d).
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Why an address is not a public one, or `None` when it is.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(if ip.is_unspecified() || o[0] == 0 {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "shared (CGNAT)"
    } else if ip.is_broadcast() {
        "broadcast"
    } else if ip.is_multicast() {
        "multicast"
    } else if o[0] >= 240 {
        "reserved"
    } else if ip.is_documentation() {
        "documentation"
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        "IETF protocol"
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        "benchmarking"
    } else {
        return None;
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "unique-local"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local"
    } else if (s[0] & 0xffc0) == 0xfec0 {
        "site-local"
    } else if (s[0] & 0xff00) == 0xff00 {
        "multicast"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation"
    } else if s[..6] == [0, 0, 0, 0, 0, 0] {
        "IPv4-compatible"
    } else {
        return None;
    })
}

/// The HTTP client's DNS resolver: resolves, then keeps only the addresses the policy
/// allows; a host with none left is refused with [`Refused`].
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<NetworkPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let ips = policy.lookup(&host).await?;
            let mut allowed = Vec::with_capacity(ips.len());
            let mut refused = None;
            for ip in ips {
                match policy.check(&host, ip) {
                    Ok(()) => allowed.push(SocketAddr::new(ip, 0)),
                    Err(r) => {
                        tracing::warn!(host = %host, ip = %ip, reason = r.reason, "SSRF guard refused an address");
                        refused.get_or_insert(r);
                    }
                }
            }
            match (allowed.is_empty(), refused) {
                (true, Some(r)) => Err(Box::new(r) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// The refusal behind a client error, if the guard caused it.
pub fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &NetworkPolicy, url: &str) -> Option<&'static str> {
        let url = url::Url::parse(url).unwrap();
        policy.check_url(&url).err().map(|r| r.reason)
    }

    #[test]
    fn non_public_literals_are_refused_in_every_spelling() {
        let p = NetworkPolicy::strict();
        for (url, reason) in [
            ("http://127.0.0.1/", "loopback"),
            ("http://127.1.2.3:8080/", "loopback"),
            ("http://2130706433/", "loopback"),
            ("http://0x7f000001/", "loopback"),
            ("http://017700000001/", "loopback"),
            ("http://0177.0.0.1/", "loopback"),
            ("http://[::1]/", "loopback"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("http://[::ffff:7f00:1]/", "loopback"),
            ("http://[::127.0.0.1]/", "loopback"),
            ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
            ("http://[2002:a9fe:a9fe::1]/", "link-local"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://[fe80::1]/", "link-local"),
            ("http://10.0.0.1/", "private"),
            ("http://172.16.5.4/", "private"),
            ("http://192.168.1.1/", "private"),
            ("http://[fd00::1]/", "unique-local"),
            ("http://[fc00::1]/", "unique-local"),
            ("http://0.0.0.0/", "unspecified"),
            ("http://0/", "unspecified"),
            ("http://[::]/", "unspecified"),
            ("http://100.64.0.1/", "shared (CGNAT)"),
            ("http://224.0.0.1/", "multicast"),
            ("http://[ff02::1]/", "multicast"),
            ("http://255.255.255.255/", "broadcast"),
        ] {
            assert_eq!(refused(&p, url), Some(reason), "{url}");
        }
    }

    #[test]
    fn public_addresses_and_names_pass_the_literal_check() {
        let p = NetworkPolicy::strict();
        for url in [
            "https://93.184.215.14/",
            "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
            "https://api.github.com/",
            "http://100.128.0.1/",
            "http://172.32.0.1/",
        ] {
            assert_eq!(refused(&p, url), None, "{url}");
        }
    }

    #[test]
    fn allow_lists_open_networks_addresses_and_hosts() {
        let mut p = NetworkPolicy::strict();
        p.allow("10.0.0.0/8").unwrap();
        p.allow("127.0.0.2").unwrap();
        p.allow("*.internal").unwrap();
        p.allow("vault.corp").unwrap();
        assert_eq!(refused(&p, "http://10.9.8.7/"), None);
        assert_eq!(refused(&p, "http://[::ffff:10.9.8.7]/"), None);
        assert_eq!(refused(&p, "http://127.0.0.2/"), None);
        assert_eq!(refused(&p, "http://127.0.0.1/"), Some("loopback"));
        let lo = IpAddr::from([127, 0, 0, 1]);
        assert!(p.check("api.internal", lo).is_ok());
        assert!(
            p.check("internal", lo).is_err(),
            "a wildcard needs a subdomain"
        );
        assert!(p.check("vault.corp", lo).is_ok());
        assert!(p.check("x.vault.corp", lo).is_err());
        assert!(p.allow("not a host!").is_err());
        assert!(NetworkPolicy::open().check("x", lo).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_private_addresses() {
        let mut p = NetworkPolicy::strict();
        p.resolve_override("rebound.test:127.0.0.1").unwrap();
        p.resolve_override("metadata.test:169.254.169.254").unwrap();
        p.resolve_override("api.vendor.test:127.0.0.1").unwrap();
        p.allow("api.vendor.test").unwrap();
        let resolver = GuardedResolver::new(Arc::new(p));
        for host in ["rebound.test", "metadata.test", "localhost"] {
            let err = match resolver.resolve(host.parse().unwrap()).await {
                Ok(_) => panic!("{host} was not refused"),
                Err(e) => e,
            };
            let r = refusal(err.as_ref()).expect("a refusal");
            assert_eq!(r.host, host);
        }
        let ok: Vec<SocketAddr> = resolver
            .resolve("api.vendor.test".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(ok, [SocketAddr::from(([127, 0, 0, 1], 0))]);
    }

    #[tokio::test]
    async fn the_client_reports_the_refusal_without_connecting() {
        let mut p = NetworkPolicy::strict();
        p.resolve_override("rebound.test:127.0.0.1").unwrap();
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(Arc::new(p))))
            .build()
            .unwrap();
        // Port 9 (discard): nothing listens there; a refusal must come from the guard.
        let err = client
            .get("http://rebound.test:9/")
            .send()
            .await
            .unwrap_err();
        let r = refusal(&err).expect("the guard's refusal is in the error chain");
        assert_eq!(r.reason, "loopback");
    }
}
