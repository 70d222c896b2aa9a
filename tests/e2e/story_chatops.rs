//! The shipped `chatops-deploy` story end to end: chat commands as a Mattermost/Slack slash
//! command posts them (form-encoded, `Authorization: Token …`), GitHub's `deployment` and
//! `status` events as GitHub delivers them (HMAC-signed), the shipped demo deploy script
//! (examples/deploy-demo.sh) run with `--allow-commands`, and the GitHub and chat
//! stand-ins. The daily report is fired with `switchyard trigger chatops-deploy daily`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use switchyard_standins::chat::Message;

use crate::story_env::{until, StoryEnv};

const STORY: &str = "chatops-deploy";
const SECRET: &str = "deploy-hook-secret";
const COMMAND_TOKEN: &str = "slash-command-token";
const REPO: &str = "acme/shop";

struct Fixture {
    env: StoryEnv,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let env = StoryEnv::start(&[STORY], &["--allow-commands"]).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("deploy");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/deploy-demo.sh"),
        &script,
    )
    .unwrap();
    env.resource(
        "chatops_apps",
        &json!({"shop": {"repository": REPO, "default_branch": "main",
                         "environments": ["production", "staging", "qa"]}})
        .to_string(),
    );
    env.resource("chatops_channel", "deploys");
    env.resource("chatops_deploy_script", script.to_str().unwrap());
    env.resource("chatops_people", r#"{"grace": "U0GRACE"}"#);
    env.credential("chatops_command_token", COMMAND_TOKEN);
    env.credential("github_webhook_secret", SECRET);
    env.standins.github().add_repo(REPO, "main");
    Fixture {
        env,
        log: dir.path().join("deploys.log"),
        _dir: dir,
    }
}

/// Posts a slash command as the chat sends it (the run goes on after the answer).
async fn say(env: &StoryEnv, command: &str, text: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/webhook/{STORY}/command", env.server.url))
        .header("authorization", format!("Token {COMMAND_TOKEN}"))
        .form(&[
            ("token", "legacy-unused"),
            ("channel_id", "deploys"),
            ("channel_name", "deploys"),
            ("user_name", "ada"),
            ("command", command),
            ("text", text),
            ("response_url", "https://chat.example.com/hooks/commands/1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["text"], format!("On it: {text}"), "{answer}");
}

/// Plays GitHub: delivers the `deployment` event of a deployment; returns the run id.
async fn deliver_deployment(env: &StoryEnv, id: u64) -> String {
    let g = env.standins.github();
    let api = format!("{}/repos/{REPO}", g.url());
    let deployment = env
        .vendor_call(
            reqwest::Method::GET,
            &format!("{api}/deployments/{id}"),
            g.token(),
            None,
        )
        .await;
    let repository = env
        .vendor_call(reqwest::Method::GET, &api, g.token(), None)
        .await;
    let body = json!({"action": "created", "deployment": deployment,
                      "repository": repository, "sender": deployment["creator"]});
    let (status, answer) = env
        .github_event(STORY, "deployment", "deployment", SECRET, &body)
        .await;
    assert_eq!(status, 202, "{answer}");
    answer["run_id"].as_str().unwrap().to_string()
}

/// Plays GitHub: delivers the `status` event of a context that turned green on `sha`, the
/// head of main; waits for its run.
async fn deliver_status(env: &StoryEnv, sha: &str, context: &str) {
    let g = env.standins.github();
    let api = format!("{}/repos/{REPO}", g.url());
    let repository = env
        .vendor_call(reqwest::Method::GET, &api, g.token(), None)
        .await;
    let body = json!({
        "sha": sha, "state": "success", "context": context,
        "branches": [{"name": "main", "commit": {"sha": sha}}],
        "repository": repository, "sender": {"login": "ci-bot"},
    });
    let (status, answer) = env
        .github_event(STORY, "status", "status", SECRET, &body)
        .await;
    assert_eq!(status, 202, "{answer}");
    env.succeeded(answer["run_id"].as_str().unwrap()).await;
}

fn in_thread(env: &StoryEnv, ts: &str) -> Vec<Message> {
    env.standins.chat().replies(ts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_command_deploys_through_github_and_reports_in_the_thread() {
    let f = start().await;
    let env = &f.env;
    let g = env.standins.github();
    let first = g.commit(REPO, "main", "Ship checkout", "ada");
    g.set_status(REPO, "main", "ci/build", "success");
    let sha = g.commit(REPO, "feature-x", "Add search", "grace");
    g.set_status(REPO, "feature-x", "ci/build", "success");

    // An earlier deployment to staging, for the "previous" line and the compare link.
    g.create_branch(REPO, "old", &first);
    say(env, "/deploy", "shop/old to staging").await;
    let old = until("the first deployment", || {
        g.deployments(REPO).first().cloned()
    })
    .await;
    env.succeeded(&deliver_deployment(env, old.id).await).await;

    say(env, "/deploy", "shop/feature-x to staging").await;
    let d = until("a deployment of feature-x", || {
        g.deployments(REPO)
            .into_iter()
            .find(|d| d.git_ref == "feature-x")
    })
    .await;
    assert_eq!(
        (d.environment.as_str(), d.sha.as_str()),
        ("staging", sha.as_str())
    );
    assert_eq!(d.payload["requested_by"], "ada");
    let thread = d.payload["chat"]["thread_ts"].as_str().unwrap().to_string();
    let root = env
        .standins
        .chat()
        .messages()
        .into_iter()
        .find(|m| m.ts == thread)
        .expect("the announcement");
    assert!(
        root.text
            .contains("@ada is deploying shop/feature-x to staging"),
        "{}",
        root.text
    );

    // GitHub delivers the deployment event; the deploy runs.
    let run = deliver_deployment(env, d.id).await;
    env.succeeded(&run).await;
    let log = std::fs::read_to_string(&f.log).unwrap();
    assert!(
        log.contains(&format!("acme/shop feature-x {sha} staging")),
        "{log}"
    );
    let states: Vec<String> = g
        .deployments(REPO)
        .into_iter()
        .find(|x| x.id == d.id)
        .unwrap()
        .statuses
        .into_iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(states, ["in_progress", "success"]);
    let replies = in_thread(env, &thread);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies[0].text.contains("Deploying acme/shop feature-x")
            && replies[0]
                .text
                .contains(&format!("Previous: deployment {}", old.id))
            && replies[0].text.contains(&format!(
                "https://github.com/acme/shop/compare/{}...{}",
                &old.sha[..12],
                &sha[..12]
            )),
        "{}",
        replies[0].text
    );
    assert!(
        replies[1].text.contains("is live on staging"),
        "{}",
        replies[1].text
    );
    env.assert_nothing_refused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_red_branch_needs_a_forced_deploy_and_a_failing_deploy_is_reported() {
    let f = start().await;
    let env = &f.env;
    let g = env.standins.github();
    g.commit(REPO, "broken-login", "Try a new login", "linus");
    g.set_status(REPO, "broken-login", "ci/test", "failure");

    say(env, "/deploy", "shop/broken-login to qa").await;
    let refusal = until("the refusal", || {
        env.standins
            .chat()
            .messages()
            .into_iter()
            .find(|m| m.text.starts_with("Not deploying"))
    })
    .await;
    assert!(
        refusal.text.contains("ci/test: failure")
            && refusal.text.contains("deploy! shop/broken-login to qa"),
        "{}",
        refusal.text
    );
    assert!(g.deployments(REPO).is_empty());

    // Forced: GitHub is asked to check nothing.
    say(env, "/deploy!", "shop/broken-login to qa").await;
    let d = until("the forced deployment", || {
        g.deployments(REPO).first().cloned()
    })
    .await;
    assert_eq!(d.payload["forced"], true);
    let thread = d.payload["chat"]["thread_ts"].as_str().unwrap().to_string();

    let run = deliver_deployment(env, d.id).await;
    env.succeeded(&run).await;
    let d = g.deployments(REPO).into_iter().next().unwrap();
    assert_eq!(d.state(), Some("failure"));
    let replies = in_thread(env, &thread);
    let last = replies.last().unwrap();
    assert!(
        last.text.contains("failed") && last.text.contains("health check timed out"),
        "{replies:?}"
    );

    // Nonsense gets usage, and nothing else.
    say(env, "/deploy", "what is this?").await;
    until("the usage", || {
        env.standins
            .chat()
            .messages()
            .into_iter()
            .find(|m| m.text.starts_with("Usage: deploy APP"))
    })
    .await;
    assert_eq!(g.deployments(REPO).len(), 1);
    env.assert_nothing_refused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_default_branch_goes_to_qa_and_the_daily_report_lists_what_is_not_deployed() {
    let f = start().await;
    let env = &f.env;
    let g = env.standins.github();
    let base = g.commit(REPO, "main", "Ship checkout", "ada");
    g.set_status(REPO, "main", "ci/build", "success");
    g.set_status(REPO, "main", "ci/test", "pending");

    // GitHub's `status` event for one context while another is pending: nothing yet.
    let sha = g.resolve(REPO, "main").unwrap();
    deliver_status(env, &sha, "ci/build").await;
    assert!(g.deployments(REPO).is_empty());

    // The last context goes green: main is deployed to QA, once.
    g.set_status(REPO, "main", "ci/test", "success");
    deliver_status(env, &sha, "ci/test").await;
    deliver_status(env, &sha, "ci/test").await;
    let deployments = g.deployments(REPO);
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(
        (
            deployments[0].environment.as_str(),
            deployments[0].sha.as_str()
        ),
        ("qa", base.as_str())
    );
    env.succeeded(&deliver_deployment(env, deployments[0].id).await)
        .await;

    // Two more commits land on main; the daily report names them and their authors.
    g.commit(REPO, "main", "Add search\n\nWith filters.", "grace");
    g.commit(REPO, "main", "Fix a typo", "linus");
    let detail = env.server.cli_json(&["trigger", STORY, "daily", "--wait"]);
    assert_eq!(detail["run"]["status"], "succeeded", "{detail:#}");
    let reports: Vec<Message> = env
        .standins
        .chat()
        .messages_in("deploys")
        .into_iter()
        .filter(|m| m.text.starts_with("*shop*"))
        .collect();
    assert_eq!(reports.len(), 1, "only qa has a deployment: {reports:?}");
    let text = &reports[0].text;
    assert!(text.contains("2 commit(s) on main not yet on qa"), "{text}");
    assert!(text.contains("Add search — <@U0GRACE>"), "{text}");
    assert!(text.contains("Fix a typo — @linus"), "{text}");
    env.assert_nothing_refused();
}
