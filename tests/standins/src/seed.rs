//! Seeds: an initial state for the stand-ins, as JSON (the binary's `--seed FILE`, or
//! [`crate::StandIns::seed`] in a test).
//!
//! ```json
//! {
//!   "digitalocean": {"domains": ["example.com"],
//!                    "droplets": [{"name": "pool-1", "tags": ["trial-pending"]}]},
//!   "github": [{"repo": "acme/shop", "default_branch": "main",
//!               "commits": [{"branch": "feature-x", "message": "Add x", "author": "ada"}],
//!               "statuses": [{"ref": "main", "context": "ci/build", "state": "success"}],
//!               "pulls": [{"number": 7, "head": "feature-x", "base": "main",
//!                          "reviews": [{"user": "grace", "state": "APPROVED"}]}],
//!               "tags": {"v1.0.0": "main"}}],
//!   "hubspot": {"contacts": [{"email": "ada@example.com", "firstname": "Ada"}],
//!               "properties": [{"object": "contacts", "name": "trial_url"}]},
//!   "sendgrid": {"templates": ["d-0123456789abcdef0123456789abcdef"]},
//!   "chat": {"channels": ["deploys"]},
//!   "tracker": {"REL-1": "ready for release"}
//! }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::hubspot::ObjectType;
use crate::StandIns;

/// The whole seed; every part is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    /// DigitalOcean domains and Droplets.
    pub digitalocean: DoSeed,
    /// GitHub repositories.
    pub github: Vec<RepoSeed>,
    /// HubSpot contacts and custom properties.
    pub hubspot: HubSpotSeed,
    /// SendGrid dynamic templates (once any is given, others are refused).
    pub sendgrid: SendGridSeed,
    /// Chat channels.
    pub chat: ChatSeed,
    /// Tickets: key → state.
    pub tracker: BTreeMap<String, String>,
}

/// DigitalOcean part of a seed.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoSeed {
    /// Domains (zones) to create.
    pub domains: Vec<String>,
    /// Active Droplets to create.
    pub droplets: Vec<DropletSeed>,
}

/// An active Droplet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropletSeed {
    /// Its name.
    pub name: String,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A GitHub repository.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoSeed {
    /// `owner/name`.
    pub repo: String,
    /// Default branch (default `main`).
    #[serde(default = "main")]
    pub default_branch: String,
    /// Commits, in order, each on a branch (created from the default branch when new).
    #[serde(default)]
    pub commits: Vec<CommitSeed>,
    /// Commit statuses.
    #[serde(default)]
    pub statuses: Vec<StatusSeed>,
    /// Pull requests.
    #[serde(default)]
    pub pulls: Vec<PullSeed>,
    /// Tags: name → ref.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn main() -> String {
    "main".into()
}

/// A commit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitSeed {
    /// The branch it goes on.
    pub branch: String,
    /// Its message.
    pub message: String,
    /// The author's login.
    #[serde(default = "octocat")]
    pub author: String,
}

fn octocat() -> String {
    "octocat".into()
}

/// A commit status.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSeed {
    /// A branch, tag or SHA.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Its context.
    pub context: String,
    /// Its state.
    pub state: String,
}

/// A pull request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullSeed {
    /// Its number.
    pub number: u64,
    /// Head branch.
    pub head: String,
    /// Base branch (default `main`).
    #[serde(default = "main")]
    pub base: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Reviews.
    #[serde(default)]
    pub reviews: Vec<ReviewSeed>,
}

/// A review.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSeed {
    /// Reviewer's login.
    pub user: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, …
    pub state: String,
}

/// HubSpot part of a seed.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSpotSeed {
    /// Contacts, as property maps.
    pub contacts: Vec<BTreeMap<String, String>>,
    /// Custom properties to declare.
    pub properties: Vec<PropertySeed>,
}

/// A custom property.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertySeed {
    /// `contacts`, `deals` or `companies`.
    pub object: String,
    /// The property's name.
    pub name: String,
}

/// SendGrid part of a seed.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendGridSeed {
    /// Dynamic template ids.
    pub templates: Vec<String>,
}

/// Chat part of a seed.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSeed {
    /// Channel names.
    pub channels: Vec<String>,
}

pub(crate) fn apply(s: &StandIns, seed: &Seed) {
    let d = s.digitalocean();
    for domain in &seed.digitalocean.domains {
        d.add_domain(domain);
    }
    for x in &seed.digitalocean.droplets {
        let tags: Vec<&str> = x.tags.iter().map(String::as_str).collect();
        d.add_droplet(&x.name, &tags);
    }
    let g = s.github();
    for r in &seed.github {
        g.add_repo(&r.repo, &r.default_branch);
        for c in &r.commits {
            g.commit(&r.repo, &c.branch, &c.message, &c.author);
        }
        for (tag, target) in &r.tags {
            g.add_tag(&r.repo, tag, target);
        }
        for st in &r.statuses {
            g.set_status(&r.repo, &st.git_ref, &st.context, &st.state);
        }
        for p in &r.pulls {
            let title = if p.title.is_empty() {
                format!("Pull request #{}", p.number)
            } else {
                p.title.clone()
            };
            g.add_pull(&r.repo, p.number, &p.head, &p.base, &title);
            for rv in &p.reviews {
                g.add_review(&r.repo, p.number, &rv.user, &rv.state);
            }
        }
    }
    let h = s.hubspot();
    for p in &seed.hubspot.properties {
        if let Some(kind) = ObjectType::parse(&p.object) {
            h.add_property(kind, &p.name);
        }
    }
    for c in &seed.hubspot.contacts {
        let props: Vec<(&str, &str)> = c.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        h.add_contact(&props);
    }
    for t in &seed.sendgrid.templates {
        s.sendgrid().add_template(t);
    }
    for c in &seed.chat.channels {
        s.chat().add_channel(c);
    }
    for (key, state) in &seed.tracker {
        s.tracker().set_ticket(key, state);
    }
}
