//! The ticket tracker, the artifact repository, seeds, the request log.

use reqwest::Method;
use serde_json::json;
use switchyard_standins::{Seed, StandIns, Vendor};

use crate::support::{last_reason, req, send};

#[tokio::test]
async fn tracker_answers_a_tickets_state() {
    let s = StandIns::start().await;
    s.tracker().set_ticket("REL-1", "ready for release");
    let t = s.tracker();
    let (status, _, body) =
        send(req(Method::GET, t.url(), "/issues/REL-1").bearer_auth(t.token())).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["key"].as_str(), body["state"].as_str()),
        (Some("REL-1"), Some("ready for release"))
    );
    let (status, _, _) =
        send(req(Method::GET, t.url(), "/issues/REL-2").bearer_auth(t.token())).await;
    assert_eq!(status, 404);
    let (status, _, _) = send(req(Method::GET, t.url(), "/issues/REL-1")).await;
    assert_eq!(status, 401);
    let (status, _, _) = send(
        req(Method::PUT, t.url(), "/issues/REL-1")
            .bearer_auth(t.token())
            .json(&json!({"state": "in review"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        t.ticket("REL-1").map(|x| x.state).as_deref(),
        Some("in review")
    );
}

#[tokio::test]
async fn artifacts_are_stored_by_put_with_bearer_or_basic_auth() {
    let s = StandIns::start().await;
    let a = s.artifacts();
    let (status, _, body) = send(
        req(Method::PUT, a.url(), "/releases/shop/1.0.0/shop.tar.gz")
            .bearer_auth(a.token())
            .body("tarball"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["size"], 7);
    let (status, _, _) = send(
        req(Method::PUT, a.url(), "/releases/shop/1.0.0/shop.tar.gz.asc")
            .basic_auth("ci", Some(a.token()))
            .body("sig"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        a.artifact("releases/shop/1.0.0/shop.tar.gz")
            .map(|x| x.bytes),
        Some(b"tarball".to_vec())
    );
    let (status, _, body) = send(
        req(Method::GET, a.url(), "/releases/shop/1.0.0/shop.tar.gz.asc").bearer_auth(a.token()),
    )
    .await;
    assert_eq!((status, body), (200, json!("sig")));
    let (status, headers, _) = send(
        req(Method::PUT, a.url(), "/x")
            .basic_auth("ci", Some("wrong"))
            .body("x"),
    )
    .await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(a.artifacts().len(), 2);
}

#[tokio::test]
async fn a_seed_sets_up_every_stand_in_and_the_state_is_inspectable() {
    let s = StandIns::start().await;
    let seed: Seed = serde_json::from_value(json!({
        "digitalocean": {"domains": ["example.com"], "droplets": [{"name": "pool-1", "tags": ["trial-pending"]}]},
        "github": [{"repo": "acme/shop", "commits": [{"branch": "feature", "message": "F", "author": "ada"}],
                    "statuses": [{"ref": "feature", "context": "ci", "state": "success"}],
                    "pulls": [{"number": 3, "head": "feature", "reviews": [{"user": "grace", "state": "APPROVED"}]}],
                    "tags": {"v1": "main"}}],
        "hubspot": {"contacts": [{"email": "ada@example.com"}], "properties": [{"object": "deals", "name": "trial_url"}]},
        "sendgrid": {"templates": ["d-0123456789abcdef0123456789abcdef"]},
        "chat": {"channels": ["releases-bot"]},
        "tracker": {"REL-9": "ready for release"}
    }))
    .expect("seed");
    s.seed(&seed);
    assert_eq!(s.digitalocean().droplets_tagged("trial-pending").len(), 1);
    assert!(s.hubspot().contact_by_email("ADA@example.com").is_some());
    assert_eq!(
        s.github().statuses("acme/shop", "feature")[0].state,
        "success"
    );
    assert_eq!(
        s.tracker().ticket("REL-9").map(|t| t.state).as_deref(),
        Some("ready for release")
    );
    let state = s.snapshot();
    assert_eq!(
        state["github"]["repos"][0]["pulls"][0]["reviews"][0]["state"],
        "APPROVED"
    );
    // Each stand-in serves its state and its requests (not logged as vendor traffic).
    let (status, _, body) = send(req(
        Method::GET,
        s.url(Vendor::DigitalOcean),
        "/_standin/state",
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["droplets"][0]["name"], "pool-1");
    assert!(s.requests().is_empty());
    assert!(serde_json::from_value::<Seed>(json!({"digitalocean": {"domain": []}})).is_err());
}

#[tokio::test]
async fn settings_name_every_pack_resource_and_credential() {
    let s = StandIns::start().await;
    let resources = s.resources();
    let names: Vec<&str> = resources.iter().map(|(n, _)| n.as_str()).collect();
    for n in [
        "digitalocean_api_url",
        "hubspot_api_url",
        "sendgrid_api_url",
        "github_api_url",
        "chat_api_url",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    let creds = s.credentials();
    let get = |n: &str| {
        creds
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("github_token"), s.github().token());
    assert_eq!(get("chat_webhook_url"), s.chat().webhook_url());
    assert_eq!(get("sendgrid_api_key"), s.sendgrid().api_key());
    // Each vendor has its own base URL.
    let mut urls: Vec<&str> = Vendor::ALL.iter().map(|v| s.url(*v)).collect();
    urls.dedup();
    assert_eq!(urls.len(), Vendor::ALL.len());
    let _ = last_reason(&s);
}

#[tokio::test]
async fn wait_for_request_returns_a_matching_request_once_it_arrives() {
    let s = StandIns::start().await;
    let url = s.tracker().url().to_string();
    let token = s.tracker().token().to_string();
    let none = s
        .wait_for_request(std::time::Duration::from_millis(50), |r| {
            r.path == "/issues/LATE"
        })
        .await;
    assert!(none.is_none());
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let _ = req(Method::GET, &url, "/issues/LATE")
            .bearer_auth(token)
            .send()
            .await;
    });
    let got = s
        .wait_for_request(std::time::Duration::from_secs(10), |r| {
            r.path == "/issues/LATE"
        })
        .await
        .expect("the request");
    assert_eq!((got.vendor, got.status), (Vendor::Tracker, 404));
    assert!(
        got.summary().contains("no ticket `LATE`"),
        "{}",
        got.summary()
    );
}
