//! The shipped `trial-provisioning` story end to end: the real binary against the stand-ins
//! of DigitalOcean, GitHub, HubSpot and SendGrid, and a real SMTP server for support's mail.
//! The test plays the systems around the story: the signup backend, the deployer (GitHub
//! deployment statuses and the `deployment_status` webhook) and a new Droplet's cloud-init.

use serde_json::{json, Value};
use switchyard_standins::hubspot::ObjectType;

use crate::smtp::{header, SmtpSink};
use crate::story_env::{until, StoryEnv, PATIENCE};

const STORY: &str = "trial-provisioning";
const REQUEST_TOKEN: &str = "signup-backend-secret";
const BUILD_TOKEN: &str = "cloud-init-secret";
const HOOK_SECRET: &str = "github-hook-secret";
const TEMPLATE: &str = "d-0123456789abcdef0123456789abcdef";
const REPO: &str = "acme/trial-app";

async fn start(smtp: &SmtpSink) -> StoryEnv {
    let env = StoryEnv::start(&[STORY], &[]).await;
    let s = &env.standins;
    s.digitalocean().add_domain("trials.example.com");
    s.github().add_repo(REPO, "main");
    s.sendgrid().add_template(TEMPLATE);
    for (name, value) in [
        ("trial_domain", "trials.example.com"),
        ("trial_github_owner", "acme"),
        ("trial_github_repo", "trial-app"),
        ("trial_support_email", "support@example.com"),
        ("trial_sender_email", "hello@example.com"),
        ("trial_welcome_template", TEMPLATE),
        ("switchyard_public_url", env.server.url.as_str()),
        ("trial_retry_after", "1s"),
        ("trial_max_attempts", "100"),
    ] {
        env.resource(name, value);
    }
    env.credential("smtp", &smtp.url());
    env.credential("trial_request_token", REQUEST_TOKEN);
    env.credential("trial_build_token", BUILD_TOKEN);
    env.credential("github_webhook_secret", HOOK_SECRET);
    env
}

/// Posts a trial request as the signup backend does; returns the run id.
async fn request(env: &StoryEnv, body: Value) -> String {
    let (status, answer) = env
        .post_bearer(STORY, "request", REQUEST_TOKEN, &body)
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], true, "{answer}");
    answer["run_id"].as_str().unwrap().to_string()
}

/// Plays a new Droplet's cloud-init: checks what its user data would call, and calls it.
async fn report_built(env: &StoryEnv, droplet_id: u64) {
    let d = env.standins.digitalocean().droplet(droplet_id).unwrap();
    let user_data = d.user_data.clone().unwrap_or_default();
    assert!(
        user_data.contains(&format!(
            "{}/webhook/trial-provisioning/built",
            env.server.url
        )) && user_data.contains(&format!("Authorization: Bearer {BUILD_TOKEN}")),
        "the user data calls back with the build token: {user_data}"
    );
    let (status, answer) = env
        .post_bearer(
            STORY,
            "built",
            BUILD_TOKEN,
            &json!({"droplet_id": droplet_id}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    env.succeeded(answer["run_id"].as_str().unwrap()).await;
}

/// The deployment the story created for a tenant, once there is one.
async fn deployment_for(env: &StoryEnv, email: &str) -> switchyard_standins::github::Deployment {
    until(&format!("a trial deployment for {email}"), || {
        env.standins
            .github()
            .deployments(REPO)
            .into_iter()
            .find(|d| d.payload["email"] == email)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_request_becomes_a_tenant_and_the_pool_is_refilled() {
    let smtp = SmtpSink::start();
    let env = start(&smtp).await;
    let pooled = env
        .standins
        .digitalocean()
        .add_droplet("trial-pool-1", &["trial-pending"]);
    env.standins.digitalocean().set_status(pooled.id, "off");

    // A second submit of the same form is dropped.
    let run = request(
        &env,
        json!({"email": "Ada@Example.com", "name": "Ada Lovelace", "company": "Analytical Engines"}),
    )
    .await;
    env.succeeded(&run).await;
    let again = request(
        &env,
        json!({"email": "ada@example.com", "name": "Ada Lovelace", "company": "Analytical Engines"}),
    )
    .await;
    env.succeeded(&again).await;

    // The pooled Droplet is the trial's: retagged, powered on, deployed to.
    let d = env.standins.digitalocean().droplet(pooled.id).unwrap();
    assert!(d.has_tag("trial") && !d.has_tag("trial-pending"), "{d:?}");
    assert_eq!(d.status, "active", "powered on: {d:?}");
    let deployments = env.standins.github().deployments(REPO);
    assert_eq!(deployments.len(), 1, "one deployment: {deployments:?}");
    let deployment = &deployments[0];
    assert_eq!(deployment.task, "deploy:trial");
    let tenant = deployment.payload["tenant"].as_str().unwrap().to_string();
    assert!(tenant.starts_with("analytical-engines-"), "{tenant}");
    assert_eq!(deployment.environment, format!("trial-{tenant}"));
    assert_eq!(deployment.payload["ip"], d.public_ipv4.as_str());
    assert_eq!(deployment.payload["droplet_id"], pooled.id);
    assert_eq!(deployment.payload["email"], "ada@example.com");

    // A replacement is being built, outside the pool.
    let building = env
        .standins
        .digitalocean()
        .droplets_tagged("trial-building");
    assert_eq!(building.len(), 1, "{building:?}");
    assert!(env
        .standins
        .digitalocean()
        .droplets_tagged("trial-pending")
        .is_empty());

    // The deployer reports success; GitHub delivers the status.
    let (status, answer) = env
        .report_deployment(
            STORY,
            "deployed",
            REPO,
            deployment.id,
            &json!({"state": "success", "log_url": "https://ci.example.com/runs/1"}),
            HOOK_SECRET,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    env.succeeded(answer["run_id"].as_str().unwrap()).await;

    let hostname = format!("{tenant}.trials.example.com");
    let records = env.standins.digitalocean().records("trials.example.com");
    assert!(
        records
            .iter()
            .any(|r| r.kind == "A" && r.name == tenant && r.data == d.public_ipv4),
        "{records:?}"
    );
    let h = env.standins.hubspot();
    let contact = h
        .contact_by_email("ada@example.com")
        .expect("contact created");
    assert_eq!(
        contact.properties.get("firstname").map(String::as_str),
        Some("Ada")
    );
    assert_eq!(
        contact.properties.get("lastname").map(String::as_str),
        Some("Lovelace")
    );
    assert_eq!(
        contact.properties.get("company").map(String::as_str),
        Some("Analytical Engines")
    );
    let deals = h.deals();
    assert_eq!(deals.len(), 1, "{deals:?}");
    assert_eq!(
        h.associated(ObjectType::Deals, &deals[0].id, ObjectType::Contacts),
        vec![contact.id.clone()]
    );
    let mails = env.standins.sendgrid().mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to(), vec!["ada@example.com".to_string()]);
    assert_eq!(mails[0].data()["url"], format!("https://{hostname}"));

    // The replacement's cloud-init reports: powered off, then in the pool.
    report_built(&env, building[0].id).await;
    let built = env.standins.digitalocean().droplet(building[0].id).unwrap();
    assert_eq!(built.status, "off");
    assert!(
        built.has_tag("trial-pending") && !built.has_tag("trial-building"),
        "{built:?}"
    );

    assert!(
        smtp.delivered().is_empty(),
        "support got no mail: {:?}",
        smtp.delivered()
    );
    env.assert_nothing_refused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_pool_empty_support_is_emailed_and_the_request_waits_for_a_built_droplet() {
    let smtp = SmtpSink::start();
    let env = start(&smtp).await;
    env.standins
        .hubspot()
        .add_contact(&[("email", "grace@example.com"), ("firstname", "Grace")]);

    let run = request(
        &env,
        json!({"email": "grace@example.com", "name": "Grace Hopper", "company": "Navy"}),
    )
    .await;
    env.succeeded(&run).await;

    // Support hears of it once, whatever the retries.
    let mail = smtp.until_delivered(1, PATIENCE).await;
    let data = mail[0]["data"].as_str().unwrap();
    assert_eq!(mail[0]["rcpt_tos"], json!(["support@example.com"]));
    assert!(
        header(data, "Subject")
            .unwrap()
            .contains("Trial pool empty: Navy"),
        "{data}"
    );
    // One Droplet is built for it; the request is retried meanwhile.
    let building = until("a Droplet being built", || {
        let b = env
            .standins
            .digitalocean()
            .droplets_tagged("trial-building");
        (!b.is_empty()).then_some(b)
    })
    .await;
    until("a retry of the request", || {
        env.runs(STORY)
            .iter()
            .any(|r| r["started_by"] == "story:trial-provisioning")
            .then_some(())
    })
    .await;
    assert!(env.standins.github().deployments(REPO).is_empty());

    // The build reports back; the next retry takes the Droplet.
    report_built(&env, building[0].id).await;
    let deployment = deployment_for(&env, "grace@example.com").await;
    assert_eq!(deployment.payload["droplet_id"], building[0].id);
    let taken = env.standins.digitalocean().droplet(building[0].id).unwrap();
    assert!(
        taken.has_tag("trial") && !taken.has_tag("trial-pending"),
        "{taken:?}"
    );
    assert_eq!(taken.status, "active");

    // The retries stop: once every run of the story is over (a pending retry keeps its run
    // running), nothing else builds, no second deployment, no more mail.
    until("every run of the story to be over", || {
        env.runs(STORY)
            .iter()
            .all(|r| r["status"] != "running")
            .then_some(())
    })
    .await;
    let all = env.standins.digitalocean().droplets();
    assert_eq!(
        all.len(),
        2,
        "the one built for the wait and its replacement: {all:?}"
    );
    assert_eq!(env.standins.github().deployments(REPO).len(), 1);
    assert_eq!(smtp.delivered().len(), 1);

    // The existing contact is reused for the trial deal.
    let (status, answer) = env
        .report_deployment(
            STORY,
            "deployed",
            REPO,
            deployment.id,
            &json!({"state": "success"}),
            HOOK_SECRET,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    env.succeeded(answer["run_id"].as_str().unwrap()).await;
    let h = env.standins.hubspot();
    assert_eq!(h.contacts().len(), 1, "{:?}", h.contacts());
    let contact = h.contact_by_email("grace@example.com").unwrap();
    let deals = h.deals();
    assert_eq!(
        h.associated(ObjectType::Deals, &deals[0].id, ObjectType::Contacts),
        vec![contact.id]
    );
    assert_eq!(env.standins.sendgrid().mails().len(), 1);
    env.assert_nothing_refused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deployment_and_a_failing_step_email_support_and_bad_signatures_are_refused() {
    let smtp = SmtpSink::start();
    let env = start(&smtp).await;
    env.standins
        .digitalocean()
        .add_droplet("trial-pool-1", &["trial-pending"]);
    let run = request(
        &env,
        json!({"email": "linus@example.com", "name": "Linus", "company": "Kernel"}),
    )
    .await;
    env.succeeded(&run).await;
    let deployment = deployment_for(&env, "linus@example.com").await;

    // A forged delivery is refused before anything is stored.
    let (status, _) = env
        .github_event(
            STORY,
            "deployed",
            "deployment_status",
            "not-the-secret",
            &json!({"deployment": {"task": "deploy:trial"}}),
        )
        .await;
    assert_eq!(status, 401);

    let (status, answer) = env
        .report_deployment(
            STORY,
            "deployed",
            REPO,
            deployment.id,
            &json!({"state": "failure", "description": "ansible: host unreachable"}),
            HOOK_SECRET,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    env.succeeded(answer["run_id"].as_str().unwrap()).await;
    let mail = smtp.until_delivered(1, PATIENCE).await;
    let data = mail[0]["data"].as_str().unwrap();
    assert!(
        header(data, "Subject")
            .unwrap()
            .starts_with("Trial deployment failed: Kernel"),
        "{data}"
    );
    assert!(data.contains("ansible: host unreachable"), "{data}");
    assert!(env
        .standins
        .digitalocean()
        .records("trials.example.com")
        .iter()
        .all(|r| r.kind != "A"));

    // A DNS name already taken fails the step: support gets the run id.
    let tenant = deployment.payload["tenant"].as_str().unwrap();
    env.standins.digitalocean().add_record(
        "trials.example.com",
        "CNAME",
        tenant,
        "elsewhere.example.com.",
    );
    let (status, answer) = env
        .report_deployment(
            STORY,
            "deployed",
            REPO,
            deployment.id,
            &json!({"state": "success"}),
            HOOK_SECRET,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let run_id = answer["run_id"].as_str().unwrap();
    env.succeeded(run_id).await;
    let mail = smtp.until_delivered(2, PATIENCE).await;
    let failure = mail
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .find(|d| {
            header(d, "Subject")
                .unwrap()
                .starts_with("Trial provisioning failed")
        })
        .expect("the failure notice");
    assert!(failure.contains(run_id), "{failure}");
    assert!(env.standins.hubspot().contacts().is_empty());
}
