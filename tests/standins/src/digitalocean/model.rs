//! DigitalOcean state: Droplets, tags, actions, domains and records, and their JSON.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::reply::now_rfc3339;

/// A Droplet as the stand-in holds it.
#[derive(Clone, Debug, Serialize)]
pub struct Droplet {
    /// Its id.
    pub id: u64,
    /// Its name (hostname).
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Size slug.
    pub size: String,
    /// The image as requested: a slug (string) or an id (number).
    pub image: Value,
    /// `new`, `active`, `off` or `archive`.
    pub status: String,
    /// Tag names (canonical capitalization).
    pub tags: Vec<String>,
    /// The cloud-init user data it was created with.
    pub user_data: Option<String>,
    /// Its public IPv4 (listed in `networks.v4` once it is no longer `new`).
    pub public_ipv4: String,
    /// Its private IPv4.
    pub private_ipv4: String,
    /// SSH key ids or fingerprints it was created with.
    pub ssh_keys: Vec<Value>,
    /// The VPC it was placed in.
    pub vpc_uuid: String,
    /// Monitoring agent requested.
    pub monitoring: bool,
    /// IPv6 requested.
    pub ipv6: bool,
    /// Backups requested.
    pub backups: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
    #[serde(skip)]
    pub(crate) created: Option<Instant>,
}

impl Droplet {
    /// Whether it carries `tag` (tag names compare case-insensitively).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
    }
}

/// A Droplet action (`power_off`, …) as requested.
#[derive(Clone, Debug, Serialize)]
pub struct DropletAction {
    /// The action's id.
    pub id: u64,
    /// The action type, e.g. `power_off`.
    pub kind: String,
    /// The Droplet's id.
    pub droplet_id: u64,
    /// Region slug of the Droplet.
    pub region: String,
    /// When it was requested.
    pub started_at: String,
}

/// A DNS record.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DomainRecord {
    /// Its id.
    pub id: u64,
    /// `A`, `AAAA`, `CAA`, `CNAME`, `MX`, `NS`, `SOA`, `SRV` or `TXT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Host name relative to the domain (`@` for the apex).
    pub name: String,
    /// The value.
    pub data: String,
    /// MX/SRV priority.
    pub priority: Option<i64>,
    /// SRV port.
    pub port: Option<i64>,
    /// Time to live, seconds.
    pub ttl: i64,
    /// SRV weight.
    pub weight: Option<i64>,
    /// CAA flags.
    pub flags: Option<i64>,
    /// CAA tag.
    pub tag: Option<String>,
}

pub(crate) struct Domain {
    pub records: Vec<DomainRecord>,
    pub ttl: i64,
}

/// What a new Droplet is made of.
#[derive(Default)]
pub(crate) struct NewDroplet {
    pub name: String,
    pub region: String,
    pub size: String,
    pub image: Value,
    pub tags: Vec<String>,
    pub user_data: Option<String>,
    pub ssh_keys: Vec<Value>,
    pub vpc_uuid: Option<String>,
    pub monitoring: bool,
    pub ipv6: bool,
    pub backups: bool,
}

pub(crate) struct State {
    pub boot_delay: Duration,
    next_droplet: u64,
    next_action: u64,
    next_record: u64,
    next_ip: u32,
    pub droplets: BTreeMap<u64, Droplet>,
    pub tags: Vec<String>,
    pub actions: BTreeMap<u64, DropletAction>,
    pub domains: BTreeMap<String, Domain>,
}

/// Size slugs the stand-in knows: (slug, memory MiB, vCPUs, disk GiB, $/month).
pub(crate) const SIZES: &[(&str, u64, u64, u64, f64)] = &[
    ("s-1vcpu-512mb-10gb", 512, 1, 10, 4.0),
    ("s-1vcpu-1gb", 1024, 1, 25, 6.0),
    ("s-1vcpu-1gb-amd", 1024, 1, 25, 7.0),
    ("s-1vcpu-1gb-intel", 1024, 1, 25, 7.0),
    ("s-1vcpu-2gb", 2048, 1, 50, 12.0),
    ("s-2vcpu-2gb", 2048, 2, 60, 18.0),
    ("s-2vcpu-4gb", 4096, 2, 80, 24.0),
    ("s-4vcpu-8gb", 8192, 4, 160, 48.0),
    ("s-8vcpu-16gb", 16384, 8, 320, 96.0),
    ("c-2", 4096, 2, 25, 42.0),
    ("c-4", 8192, 4, 50, 84.0),
    ("g-2vcpu-8gb", 8192, 2, 25, 63.0),
    ("m-2vcpu-16gb", 16384, 2, 50, 84.0),
];

/// Region slugs the stand-in knows, with their names.
pub(crate) const REGIONS: &[(&str, &str)] = &[
    ("nyc1", "New York 1"),
    ("nyc2", "New York 2"),
    ("nyc3", "New York 3"),
    ("sfo2", "San Francisco 2"),
    ("sfo3", "San Francisco 3"),
    ("ams3", "Amsterdam 3"),
    ("sgp1", "Singapore 1"),
    ("lon1", "London 1"),
    ("fra1", "Frankfurt 1"),
    ("tor1", "Toronto 1"),
    ("blr1", "Bangalore 1"),
    ("syd1", "Sydney 1"),
    ("atl1", "Atlanta 1"),
];

/// Public image slugs the stand-in knows (any numeric id is accepted as a private image).
pub(crate) const IMAGES: &[(&str, &str, &str)] = &[
    ("ubuntu-24-04-x64", "Ubuntu", "24.04 (LTS) x64"),
    ("ubuntu-22-04-x64", "Ubuntu", "22.04 (LTS) x64"),
    ("ubuntu-20-04-x64", "Ubuntu", "20.04 (LTS) x64"),
    ("debian-12-x64", "Debian", "12 x64"),
    ("debian-11-x64", "Debian", "11 x64"),
    ("fedora-40-x64", "Fedora", "40 x64"),
    ("centos-stream-9-x64", "CentOS", "Stream 9 x64"),
    ("rockylinux-9-x64", "Rocky Linux", "9 x64"),
    ("almalinux-9-x64", "AlmaLinux", "9 x64"),
    ("docker-20-04", "Ubuntu", "Docker on Ubuntu 20.04"),
];

/// Record types DigitalOcean DNS accepts.
pub(crate) const RECORD_TYPES: &[&str] =
    &["A", "AAAA", "CAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT"];

/// Whether a tag name is valid: letters, digits, `:`, `-`, `_`; 1..=255 characters.
pub(crate) fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 255
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_'))
}

/// Whether a Droplet name is valid: `^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$`, ≤ 255.
pub(crate) fn valid_droplet_name(n: &str) -> bool {
    n.len() <= 255
        && n.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && !n.starts_with(['.', '-'])
}

impl State {
    pub fn new(boot_delay: Duration) -> State {
        State {
            boot_delay,
            next_droplet: 3_164_444,
            next_action: 36_804_636,
            next_record: 28_448_429,
            next_ip: 0,
            droplets: BTreeMap::new(),
            tags: Vec::new(),
            actions: BTreeMap::new(),
            domains: BTreeMap::new(),
        }
    }

    /// Boots every `new` Droplet whose boot delay has passed.
    pub fn settle(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .droplets
            .values()
            .filter(|d| {
                d.status == "new"
                    && d.created
                        .is_some_and(|c| now.duration_since(c) >= self.boot_delay)
            })
            .map(|d| d.id)
            .collect();
        for id in due {
            self.boot(id);
        }
    }

    /// A `new` Droplet becomes `active`.
    pub fn boot(&mut self, id: u64) {
        if let Some(d) = self.droplets.get_mut(&id) {
            d.created = None;
            if d.status == "new" {
                d.status = "active".into();
            }
        }
    }

    /// The canonical spelling of an existing tag, if any.
    pub fn tag(&self, name: &str) -> Option<String> {
        self.tags
            .iter()
            .find(|t| t.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// The tag's canonical spelling, creating it when missing.
    pub fn ensure_tag(&mut self, name: &str) -> String {
        match self.tag(name) {
            Some(t) => t,
            None => {
                self.tags.push(name.to_string());
                name.to_string()
            }
        }
    }

    pub fn insert_droplet(&mut self, n: NewDroplet, now: Instant) -> u64 {
        let id = self.next_droplet;
        self.next_droplet += 1;
        self.next_ip += 1;
        let ip = self.next_ip;
        let d = Droplet {
            id,
            name: n.name,
            region: n.region,
            size: n.size,
            image: n.image,
            status: "new".into(),
            tags: n.tags,
            user_data: n.user_data,
            // TEST-NET-3 (RFC 5737) for public addresses: never routable.
            public_ipv4: format!("203.0.{}.{}", 113 + ip / 250, 1 + ip % 250),
            private_ipv4: format!("10.108.{}.{}", ip / 250, 2 + ip % 250),
            ssh_keys: n.ssh_keys,
            vpc_uuid: n
                .vpc_uuid
                .unwrap_or_else(|| "760e09ef-dc84-11e8-981e-3cfdfeaae000".into()),
            monitoring: n.monitoring,
            ipv6: n.ipv6,
            backups: n.backups,
            created_at: now_rfc3339(),
            created: Some(now),
        };
        self.droplets.insert(id, d);
        id
    }

    pub fn insert_action(&mut self, kind: &str, droplet_id: u64, region: &str) -> DropletAction {
        let a = DropletAction {
            id: self.next_action,
            kind: kind.to_string(),
            droplet_id,
            region: region.to_string(),
            started_at: now_rfc3339(),
        };
        self.next_action += 1;
        self.actions.insert(a.id, a.clone());
        a
    }

    pub fn add_domain(&mut self, name: &str, ip: Option<&str>) {
        let mut d = Domain {
            records: Vec::new(),
            ttl: 1800,
        };
        let mut push = |s: &mut State, kind: &str, name: &str, data: &str| {
            let id = s.next_record;
            s.next_record += 1;
            d.records.push(DomainRecord {
                id,
                kind: kind.into(),
                name: name.into(),
                data: data.into(),
                priority: None,
                port: None,
                ttl: 1800,
                weight: None,
                flags: None,
                tag: None,
            });
        };
        push(self, "SOA", "@", "1800");
        for ns in [
            "ns1.digitalocean.com",
            "ns2.digitalocean.com",
            "ns3.digitalocean.com",
        ] {
            push(self, "NS", "@", ns);
        }
        if let Some(ip) = ip {
            push(self, "A", "@", ip);
        }
        self.domains.insert(name.to_ascii_lowercase(), d);
    }

    /// Adds a record to an existing domain; returns its id (0 when there is no domain).
    pub fn insert_record(&mut self, domain: &str, mut r: DomainRecord) -> u64 {
        let id = self.next_record;
        let Some(d) = self.domains.get_mut(domain) else {
            return 0;
        };
        self.next_record += 1;
        r.id = id;
        d.records.push(r);
        id
    }

    pub fn droplet_json(&self, d: &Droplet, base_url: &str) -> Value {
        let _ = base_url;
        let (slug, memory, vcpus, disk, price) = SIZES
            .iter()
            .copied()
            .find(|s| s.0 == d.size)
            .unwrap_or(("s-1vcpu-1gb", 1024, 1, 25, 6.0));
        let region_name = REGIONS
            .iter()
            .find(|r| r.0 == d.region)
            .map(|r| r.1)
            .unwrap_or("New York 3");
        let image = match &d.image {
            Value::String(s) => {
                let (dist, name) = IMAGES
                    .iter()
                    .find(|i| i.0 == s)
                    .map(|i| (i.1, i.2))
                    .unwrap_or(("Unknown", s.as_str()));
                json!({"id": 63663980, "name": name, "distribution": dist, "slug": s,
                       "public": true, "regions": [d.region], "created_at": "2024-04-25T00:00:00Z",
                       "type": "base", "min_disk_size": 15, "size_gigabytes": 2.36,
                       "description": "", "tags": [], "status": "available", "error_message": ""})
            }
            other => {
                json!({"id": other, "name": format!("snapshot-{other}"), "distribution": "Ubuntu",
                       "slug": null, "public": false, "regions": [d.region],
                       "created_at": "2024-04-25T00:00:00Z", "type": "snapshot",
                       "min_disk_size": 25, "size_gigabytes": 4.2, "description": "",
                       "tags": [], "status": "available", "error_message": ""})
            }
        };
        let v4 = if d.status == "new" {
            json!([])
        } else {
            json!([
                {"ip_address": d.private_ipv4, "netmask": "255.255.240.0", "gateway": "10.108.0.1", "type": "private"},
                {"ip_address": d.public_ipv4, "netmask": "255.255.255.0", "gateway": "203.0.113.254", "type": "public"}
            ])
        };
        let mut features = vec!["droplet_agent", "private_networking"];
        if d.monitoring {
            features.push("monitoring");
        }
        if d.ipv6 {
            features.push("ipv6");
        }
        if d.backups {
            features.push("backups");
        }
        json!({
            "id": d.id,
            "name": d.name,
            "memory": memory,
            "vcpus": vcpus,
            "disk": disk,
            "disk_info": [{"type": "local", "size": {"amount": disk, "unit": "gib"}}],
            "locked": false,
            "status": d.status,
            "kernel": null,
            "created_at": d.created_at,
            "features": features,
            "backup_ids": [],
            "next_backup_window": null,
            "snapshot_ids": [],
            "image": image,
            "volume_ids": [],
            "size": {
                "slug": slug, "memory": memory, "vcpus": vcpus, "disk": disk, "transfer": 1.0,
                "price_monthly": price, "price_hourly": price / 672.0,
                "regions": REGIONS.iter().map(|r| r.0).collect::<Vec<_>>(),
                "available": true, "description": "Basic"
            },
            "size_slug": slug,
            "networks": {"v4": v4, "v6": []},
            "region": {
                "name": region_name, "slug": d.region,
                "features": ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
                "available": true,
                "sizes": SIZES.iter().map(|s| s.0).collect::<Vec<_>>()
            },
            "tags": d.tags,
            "vpc_uuid": d.vpc_uuid,
        })
    }

    pub fn action_json(&self, a: &DropletAction) -> Value {
        let region_name = REGIONS
            .iter()
            .find(|r| r.0 == a.region)
            .map(|r| r.1)
            .unwrap_or("New York 3");
        json!({
            "id": a.id,
            "status": "completed",
            "type": a.kind,
            "started_at": a.started_at,
            "completed_at": a.started_at,
            "resource_id": a.droplet_id,
            "resource_type": "droplet",
            "region": {"name": region_name, "slug": a.region, "features": [], "available": true, "sizes": []},
            "region_slug": a.region,
        })
    }

    pub fn tag_json(&self, tag: &str, base_url: &str) -> Value {
        let tagged: Vec<&Droplet> = self.droplets.values().filter(|d| d.has_tag(tag)).collect();
        let mut droplets = json!({"count": tagged.len()});
        let mut all = json!({"count": tagged.len()});
        if let Some(last) = tagged.last() {
            let uri = format!("{base_url}/v2/droplets/{}", last.id);
            droplets["last_tagged_uri"] = json!(uri);
            all["last_tagged_uri"] = json!(uri);
        }
        all["droplets"] = droplets;
        for kind in ["images", "volumes", "volume_snapshots", "databases"] {
            all[kind] = json!({"count": 0});
        }
        json!({"name": tag, "resources": all})
    }
}
