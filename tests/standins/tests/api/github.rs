//! GitHub: statuses and the combined status, deployments and their statuses, compare,
//! branches with Link pagination, reviews; refusals.

use reqwest::Method;
use serde_json::json;
use switchyard_standins::StandIns;

use crate::support::{client, last_reason, req, send};

const REPO: &str = "acme/shop";

fn call(s: &StandIns, method: Method, path: &str) -> reqwest::RequestBuilder {
    req(method, s.github().url(), path)
        .bearer_auth(s.github().token())
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
}

#[tokio::test]
async fn combined_status_follows_the_latest_status_of_each_context() {
    let s = StandIns::start().await;
    let g = s.github();
    g.add_repo(REPO, "main");
    let head = g.commit(REPO, "main", "Add checkout", "ada");
    let path = format!("/repos/{REPO}/commits/main/status");
    let (status, _, body) = send(call(&s, Method::GET, &path)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["state"].as_str(), body["total_count"].as_u64()),
        (Some("pending"), Some(0))
    );
    assert_eq!(body["sha"], head.as_str());

    // A status set through the API (the `github.create_commit_status` action's body).
    let (status, _, body) = send(
        call(&s, Method::POST, &format!("/repos/{REPO}/statuses/{head}")).json(&json!({
            "state": "success", "context": "ci/build", "target_url": "https://ci.example.com/1"
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["creator"]["login"], g.login());
    g.set_status(REPO, "main", "ci/lint", "failure");
    let (_, _, body) = send(call(&s, Method::GET, &path)).await;
    assert_eq!(body["state"], "failure");
    assert_eq!(body["total_count"], 2);
    g.set_status(REPO, "main", "ci/lint", "success");
    let (_, _, body) = send(call(&s, Method::GET, &path)).await;
    assert_eq!(body["state"], "success");
    assert_eq!(body["total_count"], 2);

    // A branch name with a slash works whether or not the slash is encoded.
    g.commit(REPO, "feature/x", "X", "grace");
    let (status, _, body) = send(call(
        &s,
        Method::GET,
        &format!("/repos/{REPO}/commits/feature/x/status"),
    ))
    .await;
    assert_eq!((status, body["state"].as_str()), (200, Some("pending")));
    let (status, _, _) = send(call(
        &s,
        Method::GET,
        &format!("/repos/{REPO}/commits/feature%2Fx/status"),
    ))
    .await;
    assert_eq!(status, 200);

    let (status, _, _) = send(
        call(&s, Method::POST, &format!("/repos/{REPO}/statuses/main"))
            .json(&json!({"state": "success"})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        last_reason(&s).contains("not a commit SHA"),
        "{}",
        last_reason(&s)
    );
    let (status, _, body) = send(
        call(&s, Method::POST, &format!("/repos/{REPO}/statuses/{head}"))
            .json(&json!({"state": "green"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["message"], "Validation Failed");
    let (status, _, body) =
        send(call(&s, Method::POST, &format!("/repos/{REPO}/statuses/{head}")).json(&json!({})))
            .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["message"],
        "Invalid request.\n\n\"state\" wasn't supplied."
    );
}

#[tokio::test]
async fn deployments_need_green_contexts_unless_required_contexts_is_empty() {
    let s = StandIns::start().await;
    let g = s.github();
    g.add_repo(REPO, "main");
    g.set_status(REPO, "main", "ci/build", "success");
    g.set_status(REPO, "main", "ci/test", "pending");
    let create = |body: serde_json::Value| {
        call(&s, Method::POST, &format!("/repos/{REPO}/deployments")).json(&body)
    };

    let (status, _, body) = send(create(json!({"ref": "main", "environment": "qa"}))).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["message"],
        "Conflict: Commit status checks failed for main."
    );
    assert_eq!(body["errors"][0]["field"], "required_contexts");
    assert_eq!(
        body["errors"][0]["contexts"],
        json!([{"context": "ci/build", "state": "success"}, {"context": "ci/test", "state": "pending"}])
    );
    assert!(last_reason(&s).contains("ci/test=pending"));
    // Only the listed contexts count.
    let (status, _, _) = send(create(
        json!({"ref": "main", "required_contexts": ["ci/build"]}),
    ))
    .await;
    assert_eq!(status, 201);
    let (status, _, _) = send(create(
        json!({"ref": "main", "required_contexts": ["ci/deploy"]}),
    ))
    .await;
    assert_eq!(status, 409);
    // The forced deploy: `required_contexts: []`.
    let (status, _, first) = send(create(json!({
        "ref": "main", "environment": "qa", "required_contexts": [], "payload": {"app": "shop"}, "task": "deploy"
    })))
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["environment"], "qa");
    assert_eq!(first["production_environment"], false);
    assert_eq!(first["payload"]["app"], "shop");
    assert_eq!(first["creator"]["login"], g.login());
    let first_id = first["id"].as_u64().expect("id");

    let status_path = |id: u64| format!("/repos/{REPO}/deployments/{id}/statuses");
    for state in ["in_progress", "success"] {
        let (status, _, body) = send(call(&s, Method::POST, &status_path(first_id)).json(&json!({
            "state": state, "environment_url": "https://qa.example.com", "log_url": "https://ci.example.com/9"
        })))
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["state"], state);
    }
    // A later successful deployment to the same environment makes the first inactive.
    g.set_status(REPO, "main", "ci/test", "success");
    let (_, _, second) = send(create(json!({"ref": "main", "environment": "qa"}))).await;
    let second_id = second["id"].as_u64().expect("id");
    send(call(&s, Method::POST, &status_path(second_id)).json(&json!({"state": "success"}))).await;
    let deployments = g.deployments(REPO);
    let first = deployments
        .iter()
        .find(|d| d.id == first_id)
        .expect("first");
    assert_eq!(first.state(), Some("inactive"));

    // Listing: newest first, filtered by environment.
    let (_, _, body) = send(call(
        &s,
        Method::GET,
        &format!("/repos/{REPO}/deployments?environment=qa"),
    ))
    .await;
    assert_eq!(body[0]["id"].as_u64(), Some(second_id));
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    let (_, _, body) = send(call(&s, Method::GET, &status_path(first_id))).await;
    assert_eq!(body[0]["state"], "inactive");

    let (status, _, body) = send(create(json!({"environment": "qa"}))).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["message"],
        "Invalid request.\n\n\"ref\" wasn't supplied."
    );
    let (status, _, body) = send(create(json!({"ref": "nope"}))).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (422, Some("No ref found for: nope"))
    );
    let (status, _, _) =
        send(call(&s, Method::POST, &status_path(first_id)).json(&json!({"state": "done"}))).await;
    assert_eq!(status, 422);
    let (status, _, _) =
        send(call(&s, Method::POST, &status_path(424242)).json(&json!({"state": "success"}))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_branch_behind_the_default_branch_is_auto_merged_first() {
    let s = StandIns::start().await;
    let g = s.github();
    g.add_repo(REPO, "main");
    g.commit(REPO, "topic", "Topic work", "ada");
    g.commit(REPO, "main", "Main moves on", "grace");
    let path = format!("/repos/{REPO}/deployments");
    let (status, _, body) =
        send(call(&s, Method::POST, &path).json(&json!({"ref": "topic", "auto_merge": false})))
            .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) =
        send(call(&s, Method::POST, &path).json(&json!({"ref": "topic"}))).await;
    assert_eq!(status, 202);
    assert_eq!(
        body["message"],
        "Auto-merged main into topic on deployment."
    );
    // Now up to date: the deployment is created.
    let (status, _, _) = send(call(&s, Method::POST, &path).json(&json!({"ref": "topic"}))).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn compare_lists_the_commits_head_has_and_base_lacks() {
    let s = StandIns::start().await;
    let g = s.github();
    g.add_repo(REPO, "main");
    g.add_tag(REPO, "v1.0.0", "main");
    g.commit(REPO, "main", "Fix cart", "ada");
    g.commit(REPO, "main", "Add coupons", "grace");
    let (status, _, body) = send(call(
        &s,
        Method::GET,
        &format!("/repos/{REPO}/compare/v1.0.0...main"),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["status"].as_str(),
            body["ahead_by"].as_u64(),
            body["behind_by"].as_u64()
        ),
        (Some("ahead"), Some(2), Some(0))
    );
    let messages: Vec<&str> = body["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .map(|c| c["commit"]["message"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(messages, ["Fix cart", "Add coupons"]);
    assert_eq!(body["commits"][1]["author"]["login"], "grace");
    assert_eq!(
        body["html_url"],
        format!("https://github.com/{REPO}/compare/v1.0.0...main")
    );
    let (_, _, body) = send(call(
        &s,
        Method::GET,
        &format!("/repos/{REPO}/compare/main...v1.0.0"),
    ))
    .await;
    assert_eq!(
        (body["status"].as_str(), body["behind_by"].as_u64()),
        (Some("behind"), Some(2))
    );
    let (_, _, body) = send(call(
        &s,
        Method::GET,
        &format!("/repos/{REPO}/compare/main...main"),
    ))
    .await;
    assert_eq!(body["status"], "identical");
    let (status, _, _) = send(call(
        &s,
        Method::GET,
        &format!("/repos/{REPO}/compare/v9...main"),
    ))
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn branches_page_with_a_link_header() {
    let s = StandIns::start().await;
    let g = s.github();
    g.add_repo(REPO, "main");
    for b in ["a", "b", "c", "d"] {
        g.commit(REPO, b, &format!("work on {b}"), "ada");
    }
    let mut url = format!("{}/repos/{REPO}/branches?per_page=2", g.url());
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let (status, headers, body) = send(client().get(&url).bearer_auth(g.token())).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        names.extend(
            body.as_array()
                .expect("list")
                .iter()
                .map(|b| b["name"].as_str().unwrap_or("").to_string()),
        );
        let link = headers
            .get("link")
            .map(|l| l.to_str().unwrap_or("").to_string());
        let next = link.as_deref().and_then(|l| {
            l.split(", ")
                .find(|p| p.ends_with("rel=\"next\""))
                .map(|p| {
                    p.trim_start_matches('<')
                        .split('>')
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
        });
        match next {
            Some(n) => url = n,
            None => {
                assert!(
                    link.is_some_and(|l| l.contains("rel=\"prev\"") && l.contains("rel=\"first\""))
                );
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["a", "b", "c", "d", "main"]);
    g.delete_branch(REPO, "c");
    let (_, headers, body) = send(call(&s, Method::GET, &format!("/repos/{REPO}/branches"))).await;
    assert_eq!(body.as_array().map(Vec::len), Some(4));
    assert!(headers.get("link").is_none());
    let (status, _, body) = send(call(&s, Method::GET, &format!("/repos/{REPO}/branches/c"))).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Branch not found"))
    );
}

#[tokio::test]
async fn pull_request_reviews_are_listed_oldest_first() {
    let s = StandIns::start().await;
    let g = s.github();
    g.add_repo(REPO, "main");
    g.commit(REPO, "feature", "Feature", "ada");
    g.add_pull(REPO, 7, "feature", "main", "Feature");
    g.add_review(REPO, 7, "grace", "CHANGES_REQUESTED");
    g.add_review(REPO, 7, "grace", "APPROVED");
    let (status, _, body) = send(call(
        &s,
        Method::GET,
        &format!("/repos/{REPO}/pulls/7/reviews"),
    ))
    .await;
    assert_eq!(status, 200);
    let states: Vec<&str> = body
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["CHANGES_REQUESTED", "APPROVED"]);
    assert_eq!(body[1]["user"]["login"], "grace");
    let (_, _, body) = send(call(&s, Method::GET, &format!("/repos/{REPO}/pulls/7"))).await;
    assert_eq!(body["head"]["ref"], "feature");
    let (status, _, _) = send(call(
        &s,
        Method::GET,
        &format!("/repos/{REPO}/pulls/8/reviews"),
    ))
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn refuses_requests_github_would_refuse() {
    let s = StandIns::start().await;
    s.github().add_repo(REPO, "main");
    let url = format!("{}/repos/{REPO}", s.github().url());
    // No User-Agent: reqwest sends none unless told.
    let (status, _, body) = send(
        reqwest::Client::new()
            .get(&url)
            .bearer_auth(s.github().token()),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.as_str().expect("text").contains("User-Agent"));
    let (status, _, body) = send(client().get(&url)).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Requires authentication"))
    );
    let (status, _, body) = send(client().get(&url).bearer_auth("ghp_wrong")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Bad credentials"))
    );
    assert_eq!(body["documentation_url"], "https://docs.github.com/rest");
    // `token TOKEN` is accepted as well.
    let (status, _, body) = send(
        client()
            .get(&url)
            .header("authorization", format!("token {}", s.github().token())),
    )
    .await;
    assert_eq!(
        (status, body["default_branch"].as_str()),
        (200, Some("main"))
    );
    let (status, _, _) = send(
        client()
            .get(&url)
            .bearer_auth(s.github().token())
            .header("x-github-api-version", "2020-01-01"),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, body) = send(call(&s, Method::GET, "/repos/acme/nope")).await;
    assert_eq!((status, body["message"].as_str()), (404, Some("Not Found")));
    let (status, _, _) = send(call(&s, Method::DELETE, &format!("/repos/{REPO}/branches"))).await;
    assert_eq!(status, 404);
    let (status, _, _) = send(call(&s, Method::GET, "/user/repos")).await;
    assert_eq!(status, 404);
    let (status, _, body) =
        send(call(&s, Method::POST, &format!("/repos/{REPO}/deployments")).body("{")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Problems parsing JSON"))
    );
}
