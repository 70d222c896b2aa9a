//! GitHub REST API stand-in (https://docs.github.com/en/rest): repositories with branches,
//! tags and a commit graph; commit statuses and the combined status; compare; branches;
//! pull requests and their reviews; deployments and deployment statuses.
//!
//! Every request needs a `User-Agent` header (else 403, as GitHub answers) and
//! `Authorization: Bearer TOKEN` or `token TOKEN` (else 401 `Requires authentication`, or
//! `Bad credentials` for another token). An `X-GitHub-Api-Version` other than a supported
//! one answers 400. Unknown repositories, refs and paths — and known paths with another
//! method, as GitHub does — answer 404 `{"message":"Not Found",…}`. Invalid bodies answer
//! 422; creating a deployment whose required status contexts are not all `success` answers
//! 409 (unless `required_contexts: []`); a branch behind the default branch is merged first
//! and answers 202 without a deployment (unless `auto_merge: false`). Lists page with
//! `per_page`/`page` and a `Link` header.

mod deployments;
mod model;
mod repos;

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::log::lock;
use crate::reply::{authorization, describe_auth, Auth, Reject};

use model::{key, GhState, Ids, Repo};
pub use model::{Commit, CommitStatus, Deployment, DeploymentStatus, PullRequest, Review};

/// API versions the stand-in accepts in `X-GitHub-Api-Version`.
const API_VERSIONS: &[&str] = &["2022-11-28", "2026-03-10"];

/// The GitHub stand-in: its URL, token and repositories.
pub struct GitHub {
    base_url: String,
    token: String,
    login: String,
    state: Mutex<GhState>,
}

impl GitHub {
    pub(crate) fn new(base_url: String, token: String, login: String) -> GitHub {
        GitHub {
            base_url,
            token,
            login,
            state: Mutex::default(),
        }
    }

    /// Base URL (the `github_api_url` resource).
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The token every request must carry (`Authorization: Bearer TOKEN`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The login the token belongs to: the creator of what the API creates.
    pub fn login(&self) -> &str {
        &self.login
    }

    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut GhState) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// Adds a repository (`owner/name`) whose default branch has one commit; returns that
    /// commit's SHA. Seeding methods below create a missing repository with branch `main`.
    pub fn add_repo(&self, full_name: &str, default_branch: &str) -> String {
        self.with_state(|s| {
            let r = s.repo_or_create(full_name, default_branch);
            r.branches
                .get(&r.default_branch)
                .map(|b| b.sha.clone())
                .unwrap_or_default()
        })
    }

    /// Adds a commit on `branch` (branched from the default branch when new); returns its SHA.
    pub fn commit(&self, full_name: &str, branch: &str, message: &str, author: &str) -> String {
        self.with_state(|s| s.commit(full_name, branch, message, author))
    }

    /// Creates (or moves) a branch at `from` (a branch, tag or SHA); returns the SHA, or
    /// `None` when `from` does not resolve.
    pub fn create_branch(&self, full_name: &str, branch: &str, from: &str) -> Option<String> {
        self.with_state(|s| {
            let r = s.repo_or_create(full_name, "main");
            let sha = r.resolve(from)?;
            r.set_branch(branch, &sha);
            Some(sha)
        })
    }

    /// Deletes a branch; false when there was none.
    pub fn delete_branch(&self, full_name: &str, branch: &str) -> bool {
        self.with_state(|s| {
            s.repo_or_create(full_name, "main")
                .branches
                .remove(branch)
                .is_some()
        })
    }

    /// Marks a branch protected or not.
    pub fn set_protected(&self, full_name: &str, branch: &str, protected: bool) {
        self.with_state(|s| {
            if let Some(b) = s.repo_or_create(full_name, "main").branches.get_mut(branch) {
                b.protected = protected;
            }
        });
    }

    /// Tags `target` (a branch, tag or SHA); returns the SHA tagged.
    pub fn add_tag(&self, full_name: &str, tag: &str, target: &str) -> Option<String> {
        self.with_state(|s| {
            let r = s.repo_or_create(full_name, "main");
            let sha = r.resolve(target)?;
            r.tags.insert(tag.to_string(), sha.clone());
            Some(sha)
        })
    }

    /// The SHA a branch, tag or SHA prefix names.
    pub fn resolve(&self, full_name: &str, git_ref: &str) -> Option<String> {
        self.with_state(|s| s.repo_or_create(full_name, "main").resolve(git_ref))
    }

    /// Sets a commit status on what `git_ref` names (as `creator`); returns its id.
    pub fn set_status(
        &self,
        full_name: &str,
        git_ref: &str,
        context: &str,
        state: &str,
    ) -> Option<u64> {
        self.with_state(|s| {
            let id = s.id();
            let r = s.repo_or_create(full_name, "main");
            let sha = r.resolve(git_ref)?;
            r.statuses.push(CommitStatus {
                id,
                sha,
                state: state.to_string(),
                context: context.to_string(),
                description: None,
                target_url: None,
                creator: "ci-bot".into(),
                created_at: crate::reply::now_rfc3339(),
            });
            Some(id)
        })
    }

    /// Opens pull request `number` from `head` into `base`.
    pub fn add_pull(&self, full_name: &str, number: u64, head: &str, base: &str, title: &str) {
        self.with_state(|s| {
            s.repo_or_create(full_name, "main").pulls.insert(
                number,
                PullRequest {
                    number,
                    title: title.to_string(),
                    head: head.to_string(),
                    base: base.to_string(),
                    user: "octocat".into(),
                    reviews: Vec::new(),
                },
            );
        });
    }

    /// Adds a review (`APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, …) to a pull request
    /// (opened from `main` when missing); returns its id.
    pub fn add_review(&self, full_name: &str, number: u64, user: &str, state: &str) -> u64 {
        self.with_state(|s| {
            let id = s.id();
            let r = s.repo_or_create(full_name, "main");
            let default = r.default_branch.clone();
            let pr = r.pulls.entry(number).or_insert_with(|| PullRequest {
                number,
                title: format!("Pull request #{number}"),
                head: default.clone(),
                base: default,
                user: "octocat".into(),
                reviews: Vec::new(),
            });
            let head = pr.head.clone();
            let commit_id = r.resolve(&head).unwrap_or_default();
            if let Some(pr) = r.pulls.get_mut(&number) {
                pr.reviews.push(Review {
                    id,
                    user: user.to_string(),
                    state: state.to_string(),
                    commit_id,
                    submitted_at: crate::reply::now_rfc3339(),
                });
            }
            id
        })
    }

    /// The deployments of a repository, oldest first, with their statuses.
    pub fn deployments(&self, full_name: &str) -> Vec<Deployment> {
        self.with_state(|s| s.repo_or_create(full_name, "main").deployments.clone())
    }

    /// The commit statuses of a commit (every one, oldest first).
    pub fn statuses(&self, full_name: &str, git_ref: &str) -> Vec<CommitStatus> {
        self.with_state(|s| {
            let r = s.repo_or_create(full_name, "main");
            let sha = r.resolve(git_ref).unwrap_or_default();
            r.statuses
                .iter()
                .filter(|x| x.sha == sha)
                .cloned()
                .collect()
        })
    }

    /// A repository's branches and their head SHAs, by name.
    pub fn branches(&self, full_name: &str) -> Vec<(String, String)> {
        self.with_state(|s| {
            s.repo_or_create(full_name, "main")
                .branches
                .iter()
                .map(|(n, b)| (n.clone(), b.sha.clone()))
                .collect()
        })
    }

    /// The state as JSON (for the binary's `/_standin/state`).
    pub fn snapshot(&self) -> Value {
        self.with_state(|s| {
            let repos: Vec<Value> = s
                .repos
                .values()
                .map(|r| {
                    json!({
                        "full_name": r.full_name(),
                        "default_branch": r.default_branch,
                        "branches": r.branches.iter().map(|(n, b)| (n.clone(), json!(b.sha))).collect::<serde_json::Map<_, _>>(),
                        "tags": r.tags,
                        "statuses": r.statuses,
                        "deployments": r.deployments,
                        "pulls": r.pulls.values().collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({ "repos": repos })
        })
    }
}

/// GitHub's error body.
pub(crate) fn error(status: u16, message: &str, reason: impl Into<String>) -> Reject {
    Reject::json(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
        reason,
    )
}

/// 404 Not Found, with the reason for the log.
pub(crate) fn not_found(reason: impl Into<String>) -> Reject {
    error(404, "Not Found", reason)
}

/// 422 `Invalid request.` for a body that fails the schema.
pub(crate) fn invalid(detail: &str) -> Reject {
    error(422, &format!("Invalid request.\n\n{detail}"), detail)
}

/// Runs `f` on a repository, or answers 404.
pub(crate) fn with_repo<R>(
    g: &GitHub,
    owner: &str,
    name: &str,
    f: impl FnOnce(&mut Repo, &mut Ids) -> Result<R, Reject>,
) -> Result<R, Reject> {
    g.with_state(|s| {
        let GhState { repos, ids, .. } = s;
        let Some(repo) = repos.get_mut(&key(owner, name)) else {
            return Err(not_found(format!(
                "no repository {owner}/{name} (seed it with add_repo)"
            )));
        };
        f(repo, ids)
    })
}

async fn auth(State(g): State<Arc<GitHub>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if headers
        .get(header::USER_AGENT)
        .is_none_or(|v| v.as_bytes().is_empty())
    {
        return Reject::text(
            403,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n",
            "no User-Agent header (GitHub refuses requests without one)",
        )
        .into_response();
    }
    let a = authorization(headers);
    let ok = match a {
        Auth::Bearer(t) => t == g.token,
        Auth::Other(v) => v
            .strip_prefix("token ")
            .is_some_and(|t| t.trim() == g.token),
        Auth::Missing => false,
    };
    if !ok {
        let message = if a == Auth::Missing {
            "Requires authentication"
        } else {
            "Bad credentials"
        };
        return error(401, message, describe_auth(&a)).into_response();
    }
    if let Some(v) = headers.get("x-github-api-version") {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if !API_VERSIONS.contains(&v.as_str()) {
            return error(
                400,
                &format!("API version {v} is not supported."),
                format!("X-GitHub-Api-Version `{v}` is not one of {API_VERSIONS:?}"),
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn fallback(req: Request) -> Reject {
    not_found(format!(
        "no GitHub API route {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// The stand-in's routes.
pub(crate) fn router(g: Arc<GitHub>) -> Router {
    Router::new()
        .route("/repos/{owner}/{repo}", get(repos::get_repo))
        .route("/repos/{owner}/{repo}/branches", get(repos::list_branches))
        .route(
            "/repos/{owner}/{repo}/branches/{*branch}",
            get(repos::get_branch),
        )
        .route("/repos/{owner}/{repo}/commits/{*rest}", get(repos::commits))
        .route(
            "/repos/{owner}/{repo}/statuses/{sha}",
            post(repos::create_status),
        )
        .route(
            "/repos/{owner}/{repo}/compare/{*basehead}",
            get(repos::compare),
        )
        .route("/repos/{owner}/{repo}/pulls/{number}", get(repos::get_pull))
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/reviews",
            get(repos::list_reviews),
        )
        .route(
            "/repos/{owner}/{repo}/deployments",
            get(deployments::list).post(deployments::create),
        )
        .route(
            "/repos/{owner}/{repo}/deployments/{id}",
            get(deployments::get_one),
        )
        .route(
            "/repos/{owner}/{repo}/deployments/{id}/statuses",
            get(deployments::list_statuses).post(deployments::create_status),
        )
        .route_layer(from_fn_with_state(g.clone(), auth))
        .method_not_allowed_fallback(fallback)
        .fallback(fallback)
        .with_state(g)
}
