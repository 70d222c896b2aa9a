//! The shipped `branch-environments` story end to end: the real binary with
//! `--allow-commands`, the shipped demo environment manager (examples/branch-env-demo.sh),
//! the GitHub and DigitalOcean stand-ins, and HMAC-signed `push` deliveries as GitHub sends
//! them. The hourly cleanup is fired the way an operator would fire it now:
//! `switchyard trigger branch-environments hourly --wait`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::story_env::StoryEnv;

const STORY: &str = "branch-environments";
const SECRET: &str = "push-hook-secret";
const REPO: &str = "acme/shop";
const DOMAIN: &str = "review.example.com";

/// The demo environment manager, copied into `dir` (its environments live beside it).
fn demo_script(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/branch-env-demo.sh");
    let dst = dir.join("branch-env");
    std::fs::copy(&src, &dst).expect("copy examples/branch-env-demo.sh");
    dst
}

/// The environments the demo manager holds, by name.
fn environments(script: &Path) -> Vec<Value> {
    let out = std::process::Command::new(script)
        .arg("list")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn names(envs: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = envs
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

struct Fixture {
    env: StoryEnv,
    script: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let env = StoryEnv::start(&[STORY], &["--allow-commands"]).await;
    let dir = tempfile::tempdir().unwrap();
    let script = demo_script(dir.path());
    env.standins.github().add_repo(REPO, "main");
    env.standins.digitalocean().add_domain(DOMAIN);
    env.credential("github_webhook_secret", SECRET);
    env.resource("branch_env_domain", DOMAIN);
    env.resource("branch_env_script", script.to_str().unwrap());
    Fixture {
        env,
        script,
        _dir: dir,
    }
}

/// Delivers GitHub's `push` event for `branch` (its head now, or its deletion); returns the
/// run id.
async fn push(env: &StoryEnv, branch: &str, deleted: bool) -> String {
    let g = env.standins.github();
    let repository = env
        .vendor_call(
            reqwest::Method::GET,
            &format!("{}/repos/{REPO}", g.url()),
            g.token(),
            None,
        )
        .await;
    let zeros = "0".repeat(40);
    let after = if deleted {
        zeros.clone()
    } else {
        g.resolve(REPO, branch).expect("the branch exists")
    };
    let body = json!({
        "ref": format!("refs/heads/{branch}"),
        "before": zeros,
        "after": after,
        "created": !deleted,
        "deleted": deleted,
        "forced": false,
        "repository": repository,
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "sender": {"login": "ada"},
    });
    let (status, answer) = env.github_event(STORY, "push", "push", SECRET, &body).await;
    assert_eq!(status, 202, "{answer}");
    answer["run_id"].as_str().unwrap().to_string()
}

fn a_record(env: &StoryEnv, name: &str) -> Option<String> {
    env.standins
        .digitalocean()
        .records(DOMAIN)
        .into_iter()
        .find(|r| r.kind == "A" && r.name == name)
        .map(|r| r.data)
}

/// 404s of `GET …/branches/NAME` are how the cleanup learns a branch is gone; every other
/// request must have been accepted.
fn assert_only_branch_lookups_refused(env: &StoryEnv) {
    let refused: Vec<String> = env
        .standins
        .rejected()
        .into_iter()
        .filter(|r| !(r.method == "GET" && r.path.contains("/branches/") && r.status == 404))
        .map(|r| r.summary())
        .collect();
    assert!(refused.is_empty(), "refused: {refused:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_makes_an_environment_with_a_dns_name_and_a_deployment_and_deleting_the_branch_removes_it(
) {
    let f = start().await;
    let env = &f.env;
    let g = env.standins.github();
    let sha = g.commit(REPO, "feature/Login_form", "Add the login form", "ada");

    let run = push(env, "feature/Login_form", false).await;
    env.succeeded(&run).await;

    let envs = environments(&f.script);
    assert_eq!(names(&envs), ["feature-login-form"]);
    assert_eq!(envs[0]["branch"], "feature/Login_form");
    assert_eq!(envs[0]["sha"], sha.as_str());
    let address = a_record(env, "feature-login-form").expect("an A record for the branch");
    assert!(address.starts_with("203.0.113."), "{address}");

    let deployments = g.deployments(REPO);
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let d = &deployments[0];
    assert_eq!(d.environment, "review/feature-login-form");
    assert_eq!(d.sha, sha);
    assert!(d.transient_environment && !d.production_environment);
    let states: Vec<&str> = d.statuses.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["in_progress", "success"]);
    assert_eq!(
        d.statuses[1].environment_url,
        "https://feature-login-form.review.example.com"
    );

    // A second push updates the environment; a record pointing elsewhere is moved back.
    let record_id = env
        .standins
        .digitalocean()
        .records(DOMAIN)
        .into_iter()
        .find(|r| r.name == "feature-login-form")
        .unwrap()
        .id;
    let d_api = env.standins.digitalocean();
    env.vendor_call(
        reqwest::Method::PATCH,
        &format!("{}/v2/domains/{DOMAIN}/records/{record_id}", d_api.url()),
        d_api.token(),
        Some(&json!({"type": "A", "data": "198.51.100.1"})),
    )
    .await;
    let sha2 = g.commit(REPO, "feature/Login_form", "Validate the form", "grace");
    let run = push(env, "feature/Login_form", false).await;
    env.succeeded(&run).await;
    assert_eq!(environments(&f.script)[0]["sha"], sha2.as_str());
    assert_eq!(
        a_record(env, "feature-login-form").as_deref(),
        Some(address.as_str())
    );
    let records: Vec<_> = env
        .standins
        .digitalocean()
        .records(DOMAIN)
        .into_iter()
        .filter(|r| r.name == "feature-login-form")
        .collect();
    assert_eq!(records.len(), 1, "updated, not duplicated: {records:?}");
    assert_eq!(g.deployments(REPO).len(), 2);

    // `-no-infra` branches get nothing; neither do forged deliveries.
    g.commit(REPO, "typo-no-infra", "Fix a typo", "linus");
    let run = push(env, "typo-no-infra", false).await;
    env.succeeded(&run).await;
    assert_eq!(names(&environments(&f.script)), ["feature-login-form"]);
    assert_eq!(g.deployments(REPO).len(), 2);
    let (status, _) = env
        .github_event(
            STORY,
            "push",
            "push",
            "wrong-secret",
            &json!({"ref": "refs/heads/x"}),
        )
        .await;
    assert_eq!(status, 401);

    // Deleting the branch removes the DNS record, then the environment.
    g.delete_branch(REPO, "feature/Login_form");
    let run = push(env, "feature/Login_form", true).await;
    let detail = env.succeeded(&run).await;
    assert!(environments(&f.script).is_empty());
    assert_eq!(a_record(env, "feature-login-form"), None);
    let events = detail["events"].as_array().unwrap();
    let id_of = |agent: &str| {
        events
            .iter()
            .find(|e| e["agent"] == agent)
            .unwrap_or_else(|| panic!("no {agent} event: {detail}"))["id"]
            .clone()
    };
    let teardown = events.iter().find(|e| e["agent"] == "teardown").unwrap();
    assert_eq!(
        teardown["parent_id"],
        id_of("unpublish"),
        "the environment goes after its DNS record"
    );
    env.assert_nothing_refused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_cleanup_removes_environments_whose_branch_is_gone() {
    let f = start().await;
    let env = &f.env;
    let g = env.standins.github();

    // Unconfigured, the hourly run does nothing (and fails nothing).
    env.resource("branch_env_script", "");
    let quiet = env.server.cli_json(&["trigger", STORY, "hourly", "--wait"]);
    assert_eq!(quiet["run"]["status"], "succeeded", "{quiet}");
    assert!(
        quiet["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["agent"] == "hourly"),
        "{quiet}"
    );
    env.resource("branch_env_script", f.script.to_str().unwrap());

    for branch in ["keep-me", "stale-one", "stale-two"] {
        g.commit(REPO, branch, &format!("Work on {branch}"), "ada");
        let run = push(env, branch, false).await;
        env.succeeded(&run).await;
    }
    assert_eq!(
        names(&environments(&f.script)),
        ["keep-me", "stale-one", "stale-two"]
    );
    // Two branches go away without their deletion pushes reaching Switchyard.
    g.delete_branch(REPO, "stale-one");
    g.delete_branch(REPO, "stale-two");

    let detail = env.server.cli_json(&["trigger", STORY, "hourly", "--wait"]);
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    assert_eq!(names(&environments(&f.script)), ["keep-me"]);
    assert!(a_record(env, "keep-me").is_some());
    assert_eq!(a_record(env, "stale-one"), None);
    assert_eq!(a_record(env, "stale-two"), None);
    let run_started_by = env
        .runs(STORY)
        .into_iter()
        .find(|r| r["id"] == detail["run"]["id"])
        .unwrap();
    assert_ne!(run_started_by["started_by"], "schedule", "{run_started_by}");

    // Nothing left to clean: the next hour removes nothing.
    let again = env.server.cli_json(&["trigger", STORY, "hourly", "--wait"]);
    assert_eq!(again["run"]["status"], "succeeded", "{again}");
    assert_eq!(names(&environments(&f.script)), ["keep-me"]);
    assert_only_branch_lookups_refused(env);
}
