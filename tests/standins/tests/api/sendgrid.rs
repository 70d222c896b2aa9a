//! SendGrid: a dynamic-template mail is accepted with 202 and recorded; refusals.

use reqwest::Method;
use serde_json::json;
use switchyard_standins::StandIns;

use crate::support::{last_reason, req, send};

/// The body the `sendgrid.send_template` action sends.
fn welcome() -> serde_json::Value {
    json!({
        "personalizations": [{"to": [{"email": "ada@example.com", "name": "Ada"}],
                              "dynamic_template_data": {"url": "https://trial-42.example.com"}}],
        "from": {"email": "hello@example.com", "name": "Acme"},
        "template_id": "d-0123456789abcdef0123456789abcdef"
    })
}

#[tokio::test]
async fn send_answers_202_with_an_empty_body_and_records_the_mail() {
    let s = StandIns::start().await;
    let (status, headers, body) = send(
        req(Method::POST, s.sendgrid().url(), "/v3/mail/send")
            .bearer_auth(s.sendgrid().api_key())
            .json(&welcome()),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(body, json!(""));
    let id = headers["x-message-id"].to_str().expect("id");
    let mails = s.sendgrid().mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].message_id, id);
    assert_eq!(mails[0].to(), ["ada@example.com"]);
    assert_eq!(mails[0].data()["url"], "https://trial-42.example.com");
    assert_eq!(
        mails[0].template_id.as_deref(),
        Some("d-0123456789abcdef0123456789abcdef")
    );
}

#[tokio::test]
async fn refuses_missing_fields_bad_addresses_and_auth() {
    let s = StandIns::start().await;
    let url = s.sendgrid().url();
    let (status, _, body) = send(req(Method::POST, url, "/v3/mail/send").json(&welcome())).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["message"], "authorization required");
    let (status, _, body) = send(
        req(Method::POST, url, "/v3/mail/send")
            .bearer_auth("SG.wrong")
            .json(&welcome()),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["errors"][0]["message"],
        "The provided authorization grant is invalid, expired, or revoked"
    );

    let call = |b: serde_json::Value| {
        req(Method::POST, url, "/v3/mail/send")
            .bearer_auth(s.sendgrid().api_key())
            .json(&b)
    };
    let (status, _, body) = send(call(json!({}))).await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["personalizations", "from", "subject", "content"]);

    let mut b = welcome();
    b["personalizations"][0]["to"][0]["email"] = json!("ada");
    let (status, _, body) = send(call(b)).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["field"], "personalizations.0.to.0.email");
    assert_eq!(
        body["errors"][0]["message"],
        "Does not contain a valid address."
    );

    let mut b = welcome();
    b["template_id"] = json!("welcome");
    send(call(b)).await;
    assert!(last_reason(&s).contains("template_id: The template_id is not a valid template ID."));

    let (status, _, _) = send(
        req(Method::POST, url, "/v3/mail/send")
            .bearer_auth(s.sendgrid().api_key())
            .header("content-type", "text/plain")
            .body(welcome().to_string()),
    )
    .await;
    assert_eq!(status, 415);
    let (status, _, _) = send(
        req(Method::POST, url, "/v3/mail/sent")
            .bearer_auth(s.sendgrid().api_key())
            .json(&welcome()),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) =
        send(req(Method::GET, url, "/v3/mail/send").bearer_auth(s.sendgrid().api_key())).await;
    assert_eq!(status, 405);
    assert!(s.sendgrid().mails().is_empty());
}
