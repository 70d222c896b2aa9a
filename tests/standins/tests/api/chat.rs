//! Chat: incoming webhooks and chat.postMessage, threads, refusals.

use reqwest::Method;
use serde_json::json;
use switchyard_standins::StandIns;

use crate::support::{client, last_reason, req, send};

#[tokio::test]
async fn incoming_webhook_posts_and_replies_in_threads() {
    let s = StandIns::start().await;
    let hook = s.chat().webhook_url();
    let (status, headers, body) = send(
        client()
            .post(&hook)
            .json(&json!({"text": "Deploying shop"})),
    )
    .await;
    assert_eq!((status, body), (200, json!("ok")));
    assert!(headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    let first = s.chat().messages()[0].clone();
    assert_eq!(
        (first.channel_name.as_str(), first.via.as_str()),
        ("deploys", "webhook")
    );
    // The `chat.reply` action's body.
    let (status, _, _) = send(
        client()
            .post(&hook)
            .json(&json!({"text": "done", "thread_ts": first.ts})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(s.chat().replies(&first.ts)[0].text, "done");

    let (status, _, body) = send(client().post(&hook).json(&json!({"thread_ts": first.ts}))).await;
    assert_eq!((status, body), (400, json!("no_text")));
    let (status, _, body) = send(client().post(&hook).body("not json")).await;
    assert_eq!((status, body), (400, json!("invalid_payload")));
    let (status, _, body) = send(
        client()
            .post(format!("{}/services/T0/B0/wrong", s.chat().url()))
            .json(&json!({"text": "x"})),
    )
    .await;
    assert_eq!((status, body), (403, json!("invalid_token")));
    assert!(last_reason(&s).contains("not an incoming webhook"));
    let (status, _, _) = send(client().get(&hook)).await;
    assert_eq!(status, 405);
    assert_eq!(s.chat().messages().len(), 2);
}

#[tokio::test]
async fn post_message_answers_ts_and_slack_errors_with_200() {
    let s = StandIns::start().await;
    let api = |body: serde_json::Value| {
        req(Method::POST, s.chat().url(), "/api/chat.postMessage")
            .bearer_auth(s.chat().bot_token())
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
    };
    let (status, _, body) = send(api(
        json!({"channel": "#deploys", "text": "Deploying shop/main to qa"}),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    let ts = body["ts"].as_str().expect("ts").to_string();
    assert_eq!(body["message"]["text"], "Deploying shop/main to qa");
    assert!(body.get("warning").is_none());
    let (_, _, body) = send(api(
        json!({"channel": "deploys", "text": "in progress", "thread_ts": ts}),
    ))
    .await;
    assert_eq!(body["message"]["thread_ts"], ts.as_str());
    assert_ne!(body["ts"], ts.as_str());
    assert_eq!(s.chat().replies(&ts).len(), 1);
    assert_eq!(s.chat().messages_in("#deploys").len(), 2);

    let (status, _, body) = send(api(json!({"channel": "nowhere", "text": "x"}))).await;
    assert_eq!(
        (status, body),
        (200, json!({"ok": false, "error": "channel_not_found"}))
    );
    assert!(s
        .rejected()
        .last()
        .is_some_and(|r| r.status == 200 && r.rejected.is_some()));
    let (_, _, body) = send(api(json!({"channel": "deploys"}))).await;
    assert_eq!(body["error"], "no_text");
    let (_, _, body) = send(
        req(Method::POST, s.chat().url(), "/api/chat.postMessage")
            .json(&json!({"channel": "deploys", "text": "x"})),
    )
    .await;
    assert_eq!(body["error"], "not_authed");
    let (_, _, body) = send(
        req(Method::POST, s.chat().url(), "/api/chat.postMessage")
            .bearer_auth("xoxb-wrong")
            .json(&json!({"channel": "deploys", "text": "x"})),
    )
    .await;
    assert_eq!(body["error"], "invalid_auth");
    // JSON without a charset: accepted, with Slack's warning.
    let (_, _, body) = send(
        req(Method::POST, s.chat().url(), "/api/chat.postMessage")
            .bearer_auth(s.chat().bot_token())
            .json(&json!({"channel": "deploys", "text": "x"})),
    )
    .await;
    assert_eq!(
        (body["ok"].as_bool(), body["warning"].as_str()),
        (Some(true), Some("missing_charset"))
    );
}
