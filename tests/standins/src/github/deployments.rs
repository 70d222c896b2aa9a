//! Deployments and deployment statuses.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde_json::{json, Map, Value};

use super::model::{Deployment, DeploymentStatus, Repo};
use super::repos::{body_object, opt_string, paged};
use super::{error, invalid, not_found, with_repo, GitHub};
use crate::reply::{json, now_rfc3339, query_get, query_pairs, Reject, Reply};

const STATES: &[&str] = &[
    "error",
    "failure",
    "inactive",
    "in_progress",
    "queued",
    "pending",
    "success",
];

fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, Reject> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid(&format!(
            "For 'properties/{key}', {other} is not a boolean."
        ))),
    }
}

fn deployment_id(raw: &str) -> Result<u64, Reject> {
    raw.parse::<u64>()
        .map_err(|_| not_found(format!("`{raw}` is not a deployment id")))
}

/// Whether `branch` already contains the default branch's head (no merge needed).
fn up_to_date(r: &Repo, branch: &str) -> bool {
    match (r.branches.get(branch), r.branches.get(&r.default_branch)) {
        (Some(b), Some(d)) => r.ancestors(&b.sha).contains(&d.sha),
        _ => true,
    }
}

pub(crate) async fn create(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let body = body_object(&body)?;
    let git_ref = match body.get("ref") {
        Some(Value::String(r)) => r.clone(),
        Some(other) => {
            return Err(invalid(&format!(
                "For 'properties/ref', {other} is not a string."
            )))
        }
        None => return Err(invalid("\"ref\" wasn't supplied.")),
    };
    let task = opt_string(&body, "task")?.unwrap_or_else(|| "deploy".into());
    let auto_merge = opt_bool(&body, "auto_merge")?.unwrap_or(true);
    let required: Option<Vec<String>> = match body.get("required_contexts") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|c| {
                    c.as_str().map(str::to_string).ok_or_else(|| {
                        invalid(&format!(
                            "For 'items', {c} is not a string (properties/required_contexts)."
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => {
            return Err(invalid(&format!(
                "For 'properties/required_contexts', {other} is not an array."
            )))
        }
    };
    let payload = match body.get("payload") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
        Some(other) => {
            return Err(invalid(&format!(
                "For 'properties/payload', {other} is not an object or string."
            )))
        }
    };
    let environment = opt_string(&body, "environment")?.unwrap_or_else(|| "production".into());
    let description = opt_string(&body, "description")?;
    let transient = opt_bool(&body, "transient_environment")?.unwrap_or(false);
    let production =
        opt_bool(&body, "production_environment")?.unwrap_or(environment == "production");

    let merge = g.with_state(|s| {
        let k = super::model::key(&owner, &repo);
        let r = s.repos.get(&k)?;
        let is_branch = r.branches.contains_key(&git_ref) && git_ref != r.default_branch;
        if auto_merge && is_branch && !up_to_date(r, &git_ref) {
            let default = r.default_branch.clone();
            let login = g.login().to_string();
            s.merge(&k, &git_ref, &default, &login).map(|_| default)
        } else {
            None
        }
    });
    if let Some(default) = merge {
        return Ok(json(
            202,
            json!({"message": format!("Auto-merged {default} into {git_ref} on deployment.")}),
        ));
    }

    with_repo(&g, &owner, &repo, |r, ids| {
        let Some(sha) = r.resolve(&git_ref) else {
            return Err(error(
                422,
                &format!("No ref found for: {git_ref}"),
                format!("ref `{git_ref}` names no branch, tag or commit in {owner}/{repo}"),
            ));
        };
        let latest = r.latest_statuses(&sha);
        let contexts: Vec<(String, String)> = match &required {
            Some(req) => req
                .iter()
                .map(|c| {
                    let state = latest
                        .iter()
                        .find(|s| &s.context == c)
                        .map_or("missing".to_string(), |s| s.state.clone());
                    (c.clone(), state)
                })
                .collect(),
            None => latest
                .iter()
                .map(|s| (s.context.clone(), s.state.clone()))
                .collect(),
        };
        if contexts.iter().any(|(_, state)| state != "success") {
            let listed: Vec<Value> = contexts
                .iter()
                .map(|(c, s)| json!({"context": c, "state": s}))
                .collect();
            let failing: Vec<String> = contexts
                .iter()
                .filter(|(_, s)| s != "success")
                .map(|(c, s)| format!("{c}={s}"))
                .collect();
            return Err(Reject::json(
                409,
                json!({
                    "message": format!("Conflict: Commit status checks failed for {git_ref}."),
                    "errors": [{"contexts": listed, "resource": "Deployment", "field": "required_contexts", "code": "invalid"}],
                    "documentation_url": "https://docs.github.com/rest/deployments/deployments#create-a-deployment",
                    "status": "409",
                }),
                format!(
                    "commit status checks of {git_ref} are not all success: {} (send required_contexts: [] to skip them)",
                    failing.join(", ")
                ),
            ));
        }
        let d = Deployment {
            id: ids.next(),
            sha,
            git_ref,
            task,
            payload,
            original_environment: environment.clone(),
            environment,
            description,
            transient_environment: transient,
            production_environment: production,
            creator: g.login().to_string(),
            created_at: now_rfc3339(),
            statuses: Vec::new(),
        };
        let out = r.deployment_json(&d, g.url());
        r.deployments.push(d);
        Ok(json(201, out))
    })
}

pub(crate) async fn list(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Reply {
    let pairs = query_pairs(q.as_deref());
    let filter = |key: &str| query_get(&pairs, key).map(str::to_string);
    let (sha, git_ref, task, env) = (
        filter("sha"),
        filter("ref"),
        filter("task"),
        filter("environment"),
    );
    with_repo(&g, &owner, &repo, |r, _| {
        let items: Vec<Value> = r
            .deployments
            .iter()
            .rev()
            .filter(|d| sha.as_deref().is_none_or(|s| d.sha == s))
            .filter(|d| git_ref.as_deref().is_none_or(|s| d.git_ref == s))
            .filter(|d| task.as_deref().is_none_or(|s| d.task == s))
            .filter(|d| env.as_deref().is_none_or(|s| d.environment == s))
            .map(|d| r.deployment_json(d, g.url()))
            .collect();
        paged(
            g.url(),
            &format!("/repos/{owner}/{repo}/deployments"),
            &pairs,
            &items,
            30,
        )
    })
}

pub(crate) async fn get_one(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo, id)): Path<(String, String, String)>,
) -> Reply {
    let id = deployment_id(&id)?;
    with_repo(&g, &owner, &repo, |r, _| {
        match r.deployments.iter().find(|d| d.id == id) {
            Some(d) => Ok(json(200, r.deployment_json(d, g.url()))),
            None => Err(not_found(format!("no deployment {id} in {owner}/{repo}"))),
        }
    })
}

pub(crate) async fn list_statuses(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo, id)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Reply {
    let id = deployment_id(&id)?;
    let pairs = query_pairs(q.as_deref());
    with_repo(&g, &owner, &repo, |r, _| {
        let Some(d) = r.deployments.iter().find(|d| d.id == id) else {
            return Err(not_found(format!("no deployment {id} in {owner}/{repo}")));
        };
        let items: Vec<Value> = d
            .statuses
            .iter()
            .rev()
            .map(|s| r.deployment_status_json(d, s, g.url()))
            .collect();
        paged(
            g.url(),
            &format!("/repos/{owner}/{repo}/deployments/{id}/statuses"),
            &pairs,
            &items,
            30,
        )
    })
}

pub(crate) async fn create_status(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Reply {
    let id = deployment_id(&id)?;
    let body = body_object(&body)?;
    let state = match body.get("state") {
        Some(Value::String(s)) if STATES.contains(&s.as_str()) => s.clone(),
        Some(other) => {
            return Err(invalid(&format!(
                "For 'properties/state', {other} is not one of {STATES:?}."
            )))
        }
        None => return Err(invalid("\"state\" wasn't supplied.")),
    };
    let description = opt_string(&body, "description")?.unwrap_or_default();
    if description.chars().count() > 140 {
        return Err(Reject::json(
            422,
            json!({"message": "Validation Failed",
                   "errors": [{"resource": "DeploymentStatus", "code": "custom", "field": "description",
                               "message": "description is too long (maximum is 140 characters)"}],
                   "documentation_url": "https://docs.github.com/rest/deployments/statuses#create-a-deployment-status", "status": "422"}),
            format!(
                "description is {} characters (at most 140)",
                description.chars().count()
            ),
        ));
    }
    let log_url = opt_string(&body, "log_url")?
        .or(opt_string(&body, "target_url")?)
        .unwrap_or_default();
    let environment_url = opt_string(&body, "environment_url")?.unwrap_or_default();
    let environment = opt_string(&body, "environment")?;
    let auto_inactive = opt_bool(&body, "auto_inactive")?.unwrap_or(true);
    with_repo(&g, &owner, &repo, |r, ids| {
        let Some(idx) = r.deployments.iter().position(|d| d.id == id) else {
            return Err(not_found(format!("no deployment {id} in {owner}/{repo}")));
        };
        if let Some(env) = &environment {
            r.deployments[idx].environment = env.clone();
        }
        let env = r.deployments[idx].environment.clone();
        let now = now_rfc3339();
        let status = DeploymentStatus {
            id: ids.next(),
            state: state.clone(),
            description,
            environment: env.clone(),
            log_url,
            environment_url,
            creator: g.login().to_string(),
            created_at: now.clone(),
        };
        r.deployments[idx].statuses.push(status.clone());
        if state == "success" && auto_inactive {
            // Earlier non-transient, non-production deployments to the same environment
            // that last succeeded become inactive.
            for (i, d) in r.deployments.iter_mut().enumerate() {
                if i != idx
                    && d.environment == env
                    && !d.transient_environment
                    && !d.production_environment
                    && d.state() == Some("success")
                {
                    let inactive = DeploymentStatus {
                        id: ids.next(),
                        state: "inactive".into(),
                        description: String::new(),
                        environment: env.clone(),
                        log_url: String::new(),
                        environment_url: String::new(),
                        creator: g.login().to_string(),
                        created_at: now.clone(),
                    };
                    d.statuses.push(inactive);
                }
            }
        }
        let d = &r.deployments[idx];
        Ok(json(201, r.deployment_status_json(d, &status, g.url())))
    })
}
