//! GitHub state: repositories as commit graphs with branches and tags, commit statuses,
//! deployments and their statuses, pull requests and reviews; and their JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::reply::now_rfc3339;

/// Where GitHub's web pages are (for `html_url`s).
pub(crate) const HTML: &str = "https://github.com";

/// A commit.
#[derive(Clone, Debug, Serialize)]
pub struct Commit {
    /// Its SHA (40 hex digits).
    pub sha: String,
    /// Its message.
    pub message: String,
    /// The author's login.
    pub author: String,
    /// Parent SHAs.
    pub parents: Vec<String>,
    /// When it was made.
    pub date: String,
    #[serde(skip)]
    pub(crate) seq: u64,
}

/// A commit status.
#[derive(Clone, Debug, Serialize)]
pub struct CommitStatus {
    /// Its id.
    pub id: u64,
    /// The commit's SHA.
    pub sha: String,
    /// `error`, `failure`, `pending` or `success`.
    pub state: String,
    /// Its label, e.g. `ci/build`.
    pub context: String,
    /// Its description.
    pub description: Option<String>,
    /// Its link.
    pub target_url: Option<String>,
    /// Who set it.
    pub creator: String,
    /// When.
    pub created_at: String,
}

/// A deployment status.
#[derive(Clone, Debug, Serialize)]
pub struct DeploymentStatus {
    /// Its id.
    pub id: u64,
    /// `error`, `failure`, `inactive`, `in_progress`, `queued`, `pending` or `success`.
    pub state: String,
    /// Its description.
    pub description: String,
    /// The environment.
    pub environment: String,
    /// The deployment's output.
    pub log_url: String,
    /// The deployed environment's URL.
    pub environment_url: String,
    /// Who set it.
    pub creator: String,
    /// When.
    pub created_at: String,
}

/// A deployment.
#[derive(Clone, Debug, Serialize)]
pub struct Deployment {
    /// Its id.
    pub id: u64,
    /// The SHA deployed.
    pub sha: String,
    /// The ref as requested.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The task, e.g. `deploy`.
    pub task: String,
    /// Extra data for the deployment system.
    pub payload: Value,
    /// The environment (changed by a status with `environment`).
    pub environment: String,
    /// The environment as created.
    pub original_environment: String,
    /// Its description.
    pub description: Option<String>,
    /// The environment goes away with the deployment.
    pub transient_environment: bool,
    /// End users use the environment.
    pub production_environment: bool,
    /// Who created it.
    pub creator: String,
    /// When.
    pub created_at: String,
    /// Its statuses, oldest first.
    pub statuses: Vec<DeploymentStatus>,
}

impl Deployment {
    /// The latest status's state, if any.
    pub fn state(&self) -> Option<&str> {
        self.statuses.last().map(|s| s.state.as_str())
    }
}

/// A pull request review.
#[derive(Clone, Debug, Serialize)]
pub struct Review {
    /// Its id.
    pub id: u64,
    /// The reviewer's login.
    pub user: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED` or `PENDING`.
    pub state: String,
    /// The commit reviewed.
    pub commit_id: String,
    /// When.
    pub submitted_at: String,
}

/// A pull request.
#[derive(Clone, Debug, Serialize)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// Its title.
    pub title: String,
    /// The head branch.
    pub head: String,
    /// The base branch.
    pub base: String,
    /// Who opened it.
    pub user: String,
    /// Its reviews, oldest first.
    pub reviews: Vec<Review>,
}

pub(crate) struct Branch {
    pub sha: String,
    pub protected: bool,
}

pub(crate) struct Repo {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub default_branch: String,
    pub commits: BTreeMap<String, Commit>,
    pub branches: BTreeMap<String, Branch>,
    pub tags: BTreeMap<String, String>,
    pub statuses: Vec<CommitStatus>,
    pub deployments: Vec<Deployment>,
    pub pulls: BTreeMap<u64, PullRequest>,
}

/// Ids handed out for statuses, deployments, reviews, repositories.
#[derive(Default)]
pub(crate) struct Ids(u64);

impl Ids {
    pub fn next(&mut self) -> u64 {
        self.0 += 1;
        1_000_000 + self.0
    }
}

#[derive(Default)]
pub(crate) struct GhState {
    pub repos: BTreeMap<String, Repo>,
    pub ids: Ids,
    next_seq: u64,
}

/// The state's key for a repository: `owner/name`, lower case (GitHub ignores case).
pub(crate) fn key(owner: &str, name: &str) -> String {
    format!("{owner}/{name}").to_ascii_lowercase()
}

impl GhState {
    pub fn id(&mut self) -> u64 {
        self.ids.next()
    }

    /// The repository, created with one commit on `default_branch` when missing.
    pub fn repo_or_create(&mut self, full: &str, default_branch: &str) -> &mut Repo {
        let (owner, name) = full.split_once('/').unwrap_or(("acme", full));
        let k = key(owner, name);
        if !self.repos.contains_key(&k) {
            let id = self.id();
            let mut repo = Repo {
                id,
                owner: owner.to_string(),
                name: name.to_string(),
                default_branch: default_branch.to_string(),
                commits: BTreeMap::new(),
                branches: BTreeMap::new(),
                tags: BTreeMap::new(),
                statuses: Vec::new(),
                deployments: Vec::new(),
                pulls: BTreeMap::new(),
            };
            self.next_seq += 1;
            let sha = repo.add_commit(self.next_seq, "Initial commit", "octocat", vec![]);
            repo.branches.insert(
                default_branch.to_string(),
                Branch {
                    sha,
                    protected: false,
                },
            );
            self.repos.insert(k.clone(), repo);
        }
        self.repos.get_mut(&k).expect("inserted above")
    }

    /// Adds a commit on `branch` (created from the default branch when missing).
    pub fn commit(&mut self, full: &str, branch: &str, message: &str, author: &str) -> String {
        self.next_seq += 1;
        let seq = self.next_seq;
        let repo = self.repo_or_create(full, "main");
        let parent = repo
            .branches
            .get(branch)
            .or_else(|| repo.branches.get(&repo.default_branch))
            .map(|b| b.sha.clone());
        let sha = repo.add_commit(seq, message, author, parent.into_iter().collect());
        repo.set_branch(branch, &sha);
        sha
    }

    /// A merge commit of `from`'s head into `branch`.
    pub fn merge(&mut self, k: &str, branch: &str, from: &str, author: &str) -> Option<String> {
        self.next_seq += 1;
        let seq = self.next_seq;
        let repo = self.repos.get_mut(k)?;
        let a = repo.branches.get(branch)?.sha.clone();
        let b = repo.branches.get(from)?.sha.clone();
        let sha = repo.add_commit(
            seq,
            &format!("Merge {from} into {branch}"),
            author,
            vec![a, b],
        );
        repo.set_branch(branch, &sha);
        Some(sha)
    }
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    fn add_commit(
        &mut self,
        seq: u64,
        message: &str,
        author: &str,
        parents: Vec<String>,
    ) -> String {
        let mut h = Sha256::new();
        h.update(format!(
            "{}/{}:{seq}:{message}:{parents:?}",
            self.owner, self.name
        ));
        let sha = hex::encode(h.finalize())[..40].to_string();
        self.commits.insert(
            sha.clone(),
            Commit {
                sha: sha.clone(),
                message: message.to_string(),
                author: author.to_string(),
                parents,
                date: now_rfc3339(),
                seq,
            },
        );
        sha
    }

    pub fn set_branch(&mut self, branch: &str, sha: &str) {
        self.branches
            .entry(branch.to_string())
            .and_modify(|b| b.sha = sha.to_string())
            .or_insert(Branch {
                sha: sha.to_string(),
                protected: false,
            });
    }

    /// A branch name, tag name, full SHA or unique SHA prefix (≥ 7) to a SHA.
    pub fn resolve(&self, r: &str) -> Option<String> {
        let r = r.strip_prefix("refs/").unwrap_or(r);
        if let Some(b) = r.strip_prefix("heads/") {
            return self.branches.get(b).map(|b| b.sha.clone());
        }
        if let Some(t) = r.strip_prefix("tags/") {
            return self.tags.get(t).cloned();
        }
        if let Some(b) = self.branches.get(r) {
            return Some(b.sha.clone());
        }
        if let Some(t) = self.tags.get(r) {
            return Some(t.clone());
        }
        let r = r.to_ascii_lowercase();
        if r.len() >= 7 && r.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut found = self.commits.keys().filter(|s| s.starts_with(&r));
            if let (Some(s), None) = (found.next(), found.next()) {
                return Some(s.clone());
            }
        }
        None
    }

    /// A commit and every commit it descends from.
    pub fn ancestors(&self, sha: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![sha.to_string()];
        while let Some(s) = stack.pop() {
            if seen.insert(s.clone()) {
                if let Some(c) = self.commits.get(&s) {
                    stack.extend(c.parents.iter().cloned());
                }
            }
        }
        seen
    }

    /// Commits of `of` not in `not`, oldest first.
    pub fn only_in(&self, of: &BTreeSet<String>, not: &BTreeSet<String>) -> Vec<&Commit> {
        let mut v: Vec<&Commit> = of
            .difference(not)
            .filter_map(|s| self.commits.get(s))
            .collect();
        v.sort_by_key(|c| c.seq);
        v
    }

    /// The latest status of each context on a commit, in the order contexts first appeared.
    pub fn latest_statuses(&self, sha: &str) -> Vec<&CommitStatus> {
        let mut out: Vec<&CommitStatus> = Vec::new();
        for s in self.statuses.iter().filter(|s| s.sha == sha) {
            match out.iter_mut().find(|o| o.context == s.context) {
                Some(o) => *o = s,
                None => out.push(s),
            }
        }
        out
    }

    /// The combined state: failure if any context errs or fails, pending if any is
    /// pending or there is none, success otherwise.
    pub fn combined_state(&self, sha: &str) -> &'static str {
        let latest = self.latest_statuses(sha);
        if latest
            .iter()
            .any(|s| s.state == "error" || s.state == "failure")
        {
            "failure"
        } else if latest.is_empty() || latest.iter().any(|s| s.state == "pending") {
            "pending"
        } else {
            "success"
        }
    }

    pub fn api(&self, base: &str) -> String {
        format!("{base}/repos/{}/{}", self.owner, self.name)
    }

    pub fn html(&self) -> String {
        format!("{HTML}/{}/{}", self.owner, self.name)
    }

    pub fn json(&self, base: &str) -> Value {
        json!({
            "id": self.id,
            "node_id": format!("R_kgDO{:08}", self.id),
            "name": self.name,
            "full_name": self.full_name(),
            "private": true,
            "owner": user_json(&self.owner, base),
            "html_url": self.html(),
            "url": self.api(base),
            "default_branch": self.default_branch,
            "visibility": "private",
        })
    }

    pub fn commit_json(&self, c: &Commit, base: &str) -> Value {
        let who = json!({"name": c.author, "email": format!("{}@users.noreply.github.com", c.author), "date": c.date});
        json!({
            "sha": c.sha,
            "node_id": format!("C_kwDO{}", &c.sha[..12]),
            "commit": {
                "author": who, "committer": who, "message": c.message,
                "tree": {"sha": c.sha, "url": format!("{}/git/trees/{}", self.api(base), c.sha)},
                "url": format!("{}/git/commits/{}", self.api(base), c.sha),
                "comment_count": 0,
                "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null}
            },
            "url": format!("{}/commits/{}", self.api(base), c.sha),
            "html_url": format!("{}/commit/{}", self.html(), c.sha),
            "comments_url": format!("{}/commits/{}/comments", self.api(base), c.sha),
            "author": user_json(&c.author, base),
            "committer": user_json(&c.author, base),
            "parents": c.parents.iter().map(|p| json!({
                "sha": p, "url": format!("{}/commits/{p}", self.api(base)),
                "html_url": format!("{}/commit/{p}", self.html())
            })).collect::<Vec<_>>(),
        })
    }

    pub fn status_json(&self, s: &CommitStatus, base: &str, with_creator: bool) -> Value {
        let mut v = json!({
            "url": format!("{}/statuses/{}", self.api(base), s.sha),
            "avatar_url": format!("https://avatars.githubusercontent.com/{}", s.creator),
            "id": s.id,
            "node_id": format!("SC_kwDO{:08}", s.id),
            "state": s.state,
            "description": s.description,
            "target_url": s.target_url,
            "context": s.context,
            "created_at": s.created_at,
            "updated_at": s.created_at,
        });
        if with_creator {
            v["creator"] = user_json(&s.creator, base);
        }
        v
    }

    pub fn deployment_json(&self, d: &Deployment, base: &str) -> Value {
        let url = format!("{}/deployments/{}", self.api(base), d.id);
        json!({
            "url": url,
            "id": d.id,
            "node_id": format!("DE_kwDO{:08}", d.id),
            "sha": d.sha,
            "ref": d.git_ref,
            "task": d.task,
            "payload": d.payload,
            "original_environment": d.original_environment,
            "environment": d.environment,
            "description": d.description,
            "creator": user_json(&d.creator, base),
            "created_at": d.created_at,
            "updated_at": d.statuses.last().map_or(&d.created_at, |s| &s.created_at),
            "statuses_url": format!("{url}/statuses"),
            "repository_url": self.api(base),
            "transient_environment": d.transient_environment,
            "production_environment": d.production_environment,
            "performed_via_github_app": null,
        })
    }

    pub fn deployment_status_json(
        &self,
        d: &Deployment,
        s: &DeploymentStatus,
        base: &str,
    ) -> Value {
        let url = format!("{}/deployments/{}", self.api(base), d.id);
        json!({
            "url": format!("{url}/statuses/{}", s.id),
            "id": s.id,
            "node_id": format!("DES_kwDO{:08}", s.id),
            "state": s.state,
            "creator": user_json(&s.creator, base),
            "description": s.description,
            "environment": s.environment,
            "target_url": s.log_url,
            "log_url": s.log_url,
            "environment_url": s.environment_url,
            "created_at": s.created_at,
            "updated_at": s.created_at,
            "deployment_url": url,
            "repository_url": self.api(base),
            "performed_via_github_app": null,
        })
    }
}

/// A user as GitHub embeds one.
pub(crate) fn user_json(login: &str, base: &str) -> Value {
    let mut h = Sha256::new();
    h.update(login.as_bytes());
    let id = u64::from_be_bytes(h.finalize()[..8].try_into().unwrap_or([0; 8])) % 100_000_000;
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_kgDO{id:08}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": format!("{base}/users/{login}"),
        "html_url": format!("{HTML}/{login}"),
        "type": if login.ends_with("[bot]") { "Bot" } else { "User" },
        "site_admin": false,
    })
}
