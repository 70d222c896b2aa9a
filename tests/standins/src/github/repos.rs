//! Repositories, branches, commits, commit statuses, compare, pull requests and reviews.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::model::{CommitStatus, Repo, HTML};
use super::{error, invalid, not_found, with_repo, GitHub};
use crate::reply::{
    json, now_rfc3339, page_of, page_params, page_url, query_get, query_pairs, type_name, Reject,
    Reply,
};

/// A JSON array answer, one page of `items`, with GitHub's `Link` header.
pub(super) fn paged(
    base: &str,
    path: &str,
    pairs: &[(String, String)],
    items: &[Value],
    default_per_page: usize,
) -> Result<Response, Reject> {
    let (page, per_page) = page_params(pairs, default_per_page, 100)
        .map_err(|e| error(422, &format!("Invalid request.\n\n{e}"), e))?;
    let (slice, last) = page_of(items, page, per_page);
    let mut links = Vec::new();
    let link = |p: usize, rel: &str| format!("<{}>; rel=\"{rel}\"", page_url(base, path, pairs, p));
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let r = json(200, Value::Array(slice));
    Ok(if links.is_empty() {
        r
    } else {
        crate::reply::with_header(r, "link", &links.join(", "))
    })
}

/// The body as a JSON object, or 400 `Problems parsing JSON`.
pub(super) fn body_object(body: &[u8]) -> Result<Map<String, Value>, Reject> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(error(
            400,
            "Body should be a JSON object",
            format!("the body is JSON {}, not an object", type_name(&other)),
        )),
        Err(e) => Err(error(
            400,
            "Problems parsing JSON",
            format!("the body is not JSON: {e}"),
        )),
    }
}

/// An optional string field, or 422.
pub(super) fn opt_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Reject> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(&format!(
            "For 'properties/{key}', {other} is not a string."
        ))),
    }
}

pub(crate) async fn get_repo(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo)): Path<(String, String)>,
) -> Reply {
    with_repo(&g, &owner, &repo, |r, _| Ok(json(200, r.json(g.url()))))
}

pub(crate) async fn list_branches(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Reply {
    let pairs = query_pairs(q.as_deref());
    let protected = query_get(&pairs, "protected").map(|p| p == "true" || p == "1");
    with_repo(&g, &owner, &repo, |r, _| {
        let items: Vec<Value> = r
            .branches
            .iter()
            .filter(|(_, b)| protected.is_none_or(|p| b.protected == p))
            .map(|(name, b)| {
                json!({"name": name, "commit": {"sha": b.sha, "url": format!("{}/commits/{}", r.api(g.url()), b.sha)}, "protected": b.protected})
            })
            .collect();
        paged(
            g.url(),
            &format!("/repos/{owner}/{repo}/branches"),
            &pairs,
            &items,
            30,
        )
    })
}

pub(crate) async fn get_branch(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo, branch)): Path<(String, String, String)>,
) -> Reply {
    with_repo(&g, &owner, &repo, |r, _| {
        let Some(b) = r.branches.get(&branch) else {
            return Err(error(
                404,
                "Branch not found",
                format!("no branch `{branch}` in {owner}/{repo}"),
            ));
        };
        let Some(c) = r.commits.get(&b.sha) else {
            return Err(not_found(format!("branch `{branch}` points at no commit")));
        };
        let api = r.api(g.url());
        Ok(json(
            200,
            json!({
                "name": branch,
                "commit": r.commit_json(c, g.url()),
                "_links": {"self": format!("{api}/branches/{branch}"), "html": format!("{}/tree/{branch}", r.html())},
                "protected": b.protected,
                "protection": {"enabled": b.protected, "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []}},
                "protection_url": format!("{api}/branches/{branch}/protection"),
            }),
        ))
    })
}

fn no_commit(git_ref: &str, status: u16) -> Reject {
    error(
        status,
        &format!("No commit found for SHA: {git_ref}"),
        format!("`{git_ref}` names no branch, tag or commit"),
    )
}

/// `commits/{ref}/status` (combined), `commits/{ref}/statuses` (list) or `commits/{ref}`.
pub(crate) async fn commits(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo, rest)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Reply {
    let pairs = query_pairs(q.as_deref());
    with_repo(&g, &owner, &repo, |r, _| {
        if let Some(git_ref) = rest.strip_suffix("/status") {
            let sha = r.resolve(git_ref).ok_or_else(|| no_commit(git_ref, 404))?;
            return combined(&g, r, &sha, &pairs);
        }
        if let Some(git_ref) = rest.strip_suffix("/statuses") {
            let sha = r.resolve(git_ref).ok_or_else(|| no_commit(git_ref, 404))?;
            let items: Vec<Value> = r
                .statuses
                .iter()
                .rev()
                .filter(|s| s.sha == sha)
                .map(|s| r.status_json(s, g.url(), true))
                .collect();
            return paged(
                g.url(),
                &format!("/repos/{owner}/{repo}/commits/{rest}"),
                &pairs,
                &items,
                30,
            );
        }
        let sha = r.resolve(&rest).ok_or_else(|| no_commit(&rest, 422))?;
        let c = &r.commits[&sha];
        Ok(json(200, r.commit_json(c, g.url())))
    })
}

fn combined(g: &GitHub, r: &Repo, sha: &str, pairs: &[(String, String)]) -> Reply {
    let (page, per_page) = page_params(pairs, 100, 100)
        .map_err(|e| error(422, &format!("Invalid request.\n\n{e}"), e))?;
    let latest: Vec<&CommitStatus> = r.latest_statuses(sha);
    let all: Vec<Value> = latest
        .iter()
        .map(|s| r.status_json(s, g.url(), false))
        .collect();
    let (statuses, _) = page_of(&all, page, per_page);
    Ok(json(
        200,
        json!({
            "state": r.combined_state(sha),
            "statuses": statuses,
            "sha": sha,
            "total_count": all.len(),
            "repository": r.json(g.url()),
            "commit_url": format!("{}/commits/{sha}", r.api(g.url())),
            "url": format!("{}/commits/{sha}/status", r.api(g.url())),
        }),
    ))
}

pub(crate) async fn create_status(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    body: Bytes,
) -> Reply {
    let body = body_object(&body)?;
    let state = match body.get("state") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(invalid(&format!(
                "For 'properties/state', {other} is not a string."
            )))
        }
        None => return Err(invalid("\"state\" wasn't supplied.")),
    };
    let description = opt_string(&body, "description")?;
    let target_url = opt_string(&body, "target_url")?;
    let context = opt_string(&body, "context")?.unwrap_or_else(|| "default".into());
    if !["error", "failure", "pending", "success"].contains(&state.as_str()) {
        return Err(Reject::json(
            422,
            json!({"message": "Validation Failed",
                   "errors": [{"resource": "Status", "code": "custom", "field": "state", "message": "state is not included in the list"}],
                   "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status", "status": "422"}),
            format!("state `{state}` is not one of error, failure, pending, success"),
        ));
    }
    with_repo(&g, &owner, &repo, |r, ids| {
        // The path names a commit by SHA; a branch name is not one.
        let is_hex = sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit());
        let full = is_hex.then(|| r.resolve(&sha)).flatten();
        let Some(full) = full else {
            let why = if is_hex {
                format!("no commit {sha} in {owner}/{repo}")
            } else {
                format!("the path names `{sha}`, not a commit SHA")
            };
            return Err(error(422, &format!("No commit found for SHA: {sha}"), why));
        };
        let s = CommitStatus {
            id: ids.next(),
            sha: full,
            state,
            context,
            description,
            target_url,
            creator: g.login().to_string(),
            created_at: now_rfc3339(),
        };
        let out = r.status_json(&s, g.url(), true);
        r.statuses.push(s);
        Ok(json(201, out))
    })
}

pub(crate) async fn compare(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo, basehead)): Path<(String, String, String)>,
) -> Reply {
    let Some((base, head)) = basehead.split_once("...") else {
        return Err(not_found(format!("`{basehead}` is not BASE...HEAD")));
    };
    with_repo(&g, &owner, &repo, |r, _| {
        let (Some(b), Some(h)) = (r.resolve(base), r.resolve(head)) else {
            return Err(not_found(format!(
                "`{base}` or `{head}` names no branch, tag or commit in {owner}/{repo}"
            )));
        };
        let (ab, ah) = (r.ancestors(&b), r.ancestors(&h));
        let ahead = r.only_in(&ah, &ab);
        let behind = r.only_in(&ab, &ah);
        let merge_base = ab
            .intersection(&ah)
            .filter_map(|s| r.commits.get(s))
            .max_by_key(|c| c.seq)
            .map(|c| r.commit_json(c, g.url()));
        let status = match (ahead.is_empty(), behind.is_empty()) {
            (true, true) => "identical",
            (false, true) => "ahead",
            (true, false) => "behind",
            (false, false) => "diverged",
        };
        let api = r.api(g.url());
        let html = format!("{}/compare/{base}...{head}", r.html());
        Ok(json(
            200,
            json!({
                "url": format!("{api}/compare/{base}...{head}"),
                "html_url": html,
                "permalink_url": format!("{HTML}/{}/compare/{owner}:{}...{owner}:{}", r.full_name(), &b[..7], &h[..7]),
                "diff_url": format!("{html}.diff"),
                "patch_url": format!("{html}.patch"),
                "base_commit": r.commit_json(&r.commits[&b], g.url()),
                "merge_base_commit": merge_base,
                "status": status,
                "ahead_by": ahead.len(),
                "behind_by": behind.len(),
                "total_commits": ahead.len(),
                "commits": ahead.iter().take(250).map(|c| r.commit_json(c, g.url())).collect::<Vec<_>>(),
                "files": [],
            }),
        ))
    })
}

fn pull_number(raw: &str) -> Result<u64, Reject> {
    raw.parse::<u64>()
        .map_err(|_| not_found(format!("`{raw}` is not a pull request number")))
}

pub(crate) async fn get_pull(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo, number)): Path<(String, String, String)>,
) -> Reply {
    let number = pull_number(&number)?;
    with_repo(&g, &owner, &repo, |r, _| {
        let Some(pr) = r.pulls.get(&number) else {
            return Err(not_found(format!(
                "no pull request #{number} in {owner}/{repo}"
            )));
        };
        let side = |branch: &str| {
            json!({"label": format!("{owner}:{branch}"), "ref": branch, "sha": r.resolve(branch),
                   "user": super::model::user_json(&owner, g.url()), "repo": r.json(g.url())})
        };
        Ok(json(
            200,
            json!({
                "url": format!("{}/pulls/{number}", r.api(g.url())),
                "id": number + 900_000,
                "number": number,
                "state": "open",
                "locked": false,
                "title": pr.title,
                "user": super::model::user_json(&pr.user, g.url()),
                "body": null,
                "html_url": format!("{}/pull/{number}", r.html()),
                "head": side(&pr.head),
                "base": side(&pr.base),
                "merged": false,
                "mergeable": true,
                "draft": false,
            }),
        ))
    })
}

pub(crate) async fn list_reviews(
    State(g): State<Arc<GitHub>>,
    Path((owner, repo, number)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Reply {
    let number = pull_number(&number)?;
    let pairs = query_pairs(q.as_deref());
    with_repo(&g, &owner, &repo, |r, _| {
        let Some(pr) = r.pulls.get(&number) else {
            return Err(not_found(format!(
                "no pull request #{number} in {owner}/{repo}"
            )));
        };
        let html = format!("{}/pull/{number}", r.html());
        let items: Vec<Value> = pr
            .reviews
            .iter()
            .map(|rv| {
                json!({
                    "id": rv.id,
                    "node_id": format!("PRR_kwDO{:08}", rv.id),
                    "user": super::model::user_json(&rv.user, g.url()),
                    "body": "",
                    "state": rv.state,
                    "html_url": format!("{html}#pullrequestreview-{}", rv.id),
                    "pull_request_url": format!("{}/pulls/{number}", r.api(g.url())),
                    "author_association": "MEMBER",
                    "_links": {"html": {"href": format!("{html}#pullrequestreview-{}", rv.id)},
                               "pull_request": {"href": format!("{}/pulls/{number}", r.api(g.url()))}},
                    "submitted_at": rv.submitted_at,
                    "commit_id": rv.commit_id,
                })
            })
            .collect();
        paged(
            g.url(),
            &format!("/repos/{owner}/{repo}/pulls/{number}/reviews"),
            &pairs,
            &items,
            30,
        )
    })
}
