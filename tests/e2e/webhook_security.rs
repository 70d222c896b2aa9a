//! Webhook authentication and rate limits through the binary: signed deliveries are
//! accepted, tampered or unsigned ones answered 401 with nothing stored, redeliveries not
//! run twice, and a rate-limited webhook answers 429 with Retry-After.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::support::{stories_dir, Server};

const HOOKS: &str = r#"
name: hooks
agents:
  - name: push
    type: webhook
    auth:
      type: hmac
      header: X-Hub-Signature-256
      prefix: "sha256="
      secret: "{{ credential.gh_secret }}"
    idempotency_header: X-GitHub-Delivery
  - name: sw
    type: webhook
    auth: {type: standard-webhooks, secret: "{{ credential.sw_secret }}"}
  - name: limited
    type: webhook
    auth: none
    rate_limit: {limit: 2, per: 1m}
"#;

// GitHub's documented example ("Validating webhook deliveries").
const GH_SECRET: &str = "It's a Secret to Everybody";
const GH_BODY: &str = "Hello, World!";
const GH_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn start() -> (Server, tempfile::TempDir, tempfile::TempDir) {
    let stories = stories_dir(&[("hooks.yaml", HOOKS)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    for (name, value) in [("gh_secret", GH_SECRET), ("sw_secret", SW_SECRET)] {
        let out = server.cli_input(&["credential", "set", name], value, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (server, stories, data)
}

async fn runs(server: &Server) -> usize {
    server.api("/runs").await["runs"].as_array().unwrap().len()
}

async fn post(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/webhook/hooks/{path}", server.url))
        .header("content-type", "text/plain")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_github_signed_delivery_is_accepted_once_and_a_tampered_one_refused() {
    let (server, _stories, _data) = start().await;

    for (headers, body) in [
        (vec![("x-hub-signature-256", GH_SIGNATURE)], "Hello, World?"),
        (vec![("x-hub-signature-256", "sha256=00")], GH_BODY),
        (vec![], GH_BODY),
    ] {
        let r = post(&server, "push", &headers, body).await;
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
    }
    assert_eq!(runs(&server).await, 0, "refused deliveries store nothing");

    let headers = [
        ("x-hub-signature-256", GH_SIGNATURE),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let r = post(&server, "push", &headers, GH_BODY).await;
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    let r = post(&server, "push", &headers, GH_BODY).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["x-switchyard-duplicate"], "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!(first, again, "a redelivery is answered with the first ids");
    assert_eq!(runs(&server).await, 1);
    let event = server
        .api(&format!("/events/{}", first["event_id"].as_str().unwrap()))
        .await;
    assert_eq!(event["payload"]["body"], GH_BODY);
}

fn standard_signature(id: &str, ts: &str, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SW_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn standard_webhooks_deliveries_are_checked_for_signature_age_and_replay() {
    let (server, _stories, _data) = start().await;
    let body = r#"{"type":"invoice.paid"}"#;
    let now = chrono::Utc::now().timestamp().to_string();
    let sig = standard_signature("msg_1", &now, body);
    let ok = [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", now.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    let r = post(&server, "sw", &ok, body).await;
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    let r = post(&server, "sw", &ok, body).await;
    assert_eq!(r.status(), 202, "a replayed id is answered, not run again");
    assert_eq!(r.json::<Value>().await.unwrap(), first);

    let old = (chrono::Utc::now().timestamp() - 600).to_string();
    let stale_sig = standard_signature("msg_2", &old, body);
    let stale = [
        ("webhook-id", "msg_2"),
        ("webhook-timestamp", old.as_str()),
        ("webhook-signature", stale_sig.as_str()),
    ];
    assert_eq!(post(&server, "sw", &stale, body).await.status(), 401);
    let forged = [
        ("webhook-id", "msg_3"),
        ("webhook-timestamp", now.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    assert_eq!(post(&server, "sw", &forged, body).await.status(), 401);
    assert_eq!(runs(&server).await, 1);
}

#[tokio::test]
async fn a_rate_limited_webhook_answers_429_with_retry_after() {
    let (server, _stories, _data) = start().await;
    for _ in 0..2 {
        assert_eq!(post(&server, "limited", &[], "x").await.status(), 202);
    }
    let r = post(&server, "limited", &[], "x").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    assert_eq!(
        runs(&server).await,
        2,
        "the refused delivery stored nothing"
    );
    // Other webhooks are not limited by it.
    let now = chrono::Utc::now().timestamp().to_string();
    let sig = standard_signature("msg_9", &now, "y");
    let headers = [
        ("webhook-id", "msg_9"),
        ("webhook-timestamp", now.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    assert_eq!(post(&server, "sw", &headers, "y").await.status(), 202);
}
