use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use switchyard_template::ContextBuilder;

use super::{Email, SmtpServer, TlsMode};
use crate::testing::{build, problems, run, run_with};
use crate::{Agent, CredentialHosts, Services, ServicesConfig};

fn server(url: &str) -> Result<SmtpServer, crate::AgentError> {
    SmtpServer::parse(url, "smtp")
}

#[test]
fn smtp_urls_choose_tls_port_and_credentials() {
    let s = server("smtp://ada:p%40ss%2Bword@mail.example.com:587").unwrap();
    assert_eq!(
        s,
        SmtpServer {
            host: "mail.example.com".into(),
            port: 587,
            tls: TlsMode::Opportunistic,
            user: Some(("ada".into(), "p@ss+word".into())),
            display: "mail.example.com:587".into(),
        }
    );
    let s = server("smtps://mail.example.com").unwrap();
    assert_eq!((s.port, s.tls, s.user), (465, TlsMode::Implicit, None));
    assert_eq!(
        server("smtp://h?tls=required").unwrap().tls,
        TlsMode::Required
    );
    assert_eq!(server("smtp://h?tls=none").unwrap().tls, TlsMode::None);
    assert_eq!(server("smtp://h").unwrap().port, 25);
    assert_eq!(server("smtp://[::1]:2525").unwrap().host, "::1");

    for bad in [
        "http://user:secret@h",
        "smtp://user:secret@h?tls=maybe",
        "smtps://user:secret@h?tls=none",
        "not a url secret",
        "smtp://user:secret@:25",
    ] {
        let e = server(bad).unwrap_err();
        assert_eq!(e.kind, "credential", "{bad}");
        assert!(e.message.contains("`smtp`"), "{}", e.message);
        assert!(
            !e.message.contains("secret"),
            "the URL must not leak: {}",
            e.message
        );
    }
}

fn email(options: serde_json::Value) -> Arc<dyn Agent> {
    build("email", options).unwrap_or_else(|p| panic!("{p:?}"))
}

#[test]
fn the_message_has_rendered_headers_both_bodies_and_no_bcc_header() {
    let options = json!({
        "to": ["{{ inbound.user }} <{{ inbound.email }}>", "ops@example.com"],
        "cc": "audit@example.com, Lead <lead@example.com>",
        "bcc": "{{ inbound.hidden }}",
        "sender": "Switchyard <noreply@example.com>",
        "reply_to": "support@example.com",
        "subject": "Welcome, {{ inbound.user }}",
        "text": "Hello {{ inbound.user }}",
        "html": "<p>Hello <b>{{ inbound.user }}</b></p>",
    });
    let built: Email = build_email(options);
    let cx = ContextBuilder::new()
        .agent(
            "inbound",
            Arc::new(json!({"user": "Ada", "email": "ada@example.com", "hidden": ["x@example.com", "y@example.com"]})),
        )
        .build();
    let (m, to) = built.message(&cx, "<job-1@switchyard>").unwrap();
    assert_eq!(to, ["Ada <ada@example.com>", "ops@example.com"]);
    let envelope: Vec<String> = m.envelope().to().iter().map(ToString::to_string).collect();
    assert_eq!(
        envelope,
        [
            "ada@example.com",
            "ops@example.com",
            "audit@example.com",
            "lead@example.com",
            "x@example.com",
            "y@example.com"
        ]
    );
    let text = String::from_utf8(m.formatted()).unwrap();
    for h in [
        "From: Switchyard <noreply@example.com>\r\n",
        "Reply-To: support@example.com\r\n",
        "To: Ada <ada@example.com>, ops@example.com\r\n",
        "Cc: audit@example.com, Lead <lead@example.com>\r\n",
        "Subject: Welcome, Ada\r\n",
        "Message-ID: <job-1@switchyard>\r\n",
        "Content-Type: multipart/alternative",
        "Hello Ada",
        "<p>Hello <b>Ada</b></p>",
    ] {
        assert!(text.contains(h), "missing {h:?} in\n{text}");
    }
    assert!(!text.to_ascii_lowercase().contains("bcc"), "{text}");
}

fn build_email(options: serde_json::Value) -> Email {
    let o: super::EmailOptions = serde_json::from_value(options).unwrap();
    let mut compiler = switchyard_template::Compiler::new(switchyard_template::Limits::default());
    let mut cx = crate::BuildContext::new(&mut compiler);
    let built = <Email as crate::registry::AgentType>::build(o, &mut cx);
    let problems = cx.into_problems();
    compiler.finish();
    built.unwrap_or_else(|_| panic!("{problems:?}"))
}

#[tokio::test]
async fn a_missing_credential_or_a_bad_address_is_a_permanent_error() {
    let agent = email(
        json!({"to": "{{ inbound.to }}", "sender": "a@example.com", "subject": "s", "text": "t"}),
    );
    let config = ServicesConfig::default();
    let e = run(
        agent.as_ref(),
        json!({"to": "b@example.com"}),
        config.clone(),
        &HashMap::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, "credential");
    assert!(e.message.contains("`smtp`"), "{}", e.message);
    let creds = HashMap::from([("smtp".to_string(), "smtp://127.0.0.1:1".to_string())]);
    let e = run(
        agent.as_ref(),
        json!({"to": "not an address"}),
        config.clone(),
        &creds,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, "invalid_address");
    assert!(e.message.contains("`to`"), "{}", e.message);
    // Nothing listens on port 1: a connection failure may pass on another try.
    let e = run(
        agent.as_ref(),
        json!({"to": "b@example.com"}),
        config,
        &creds,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, "smtp");
    assert!(e.retryable, "{e:?}");
}

#[derive(Debug)]
struct Hosts(HashMap<&'static str, Vec<String>>);

impl CredentialHosts for Hosts {
    fn allowed_hosts(&self, name: &str) -> Option<Vec<String>> {
        self.0.get(name).cloned()
    }
}

#[tokio::test]
async fn credentials_bound_to_other_hosts_are_not_sent_to_the_smtp_server() {
    let agent = email(json!({
        "to": "b@example.com", "sender": "a@example.com", "subject": "s",
        "text": "{{ inbound.note }}{{ credential.github if inbound.leak else '' }}",
    }));
    let mut services = Services::new(ServicesConfig::default()).unwrap();
    services.credential_hosts = Some(Arc::new(Hosts(HashMap::from([
        ("smtp", vec!["mail.example.com".to_string()]),
        ("github", vec!["api.github.com".to_string()]),
    ]))));
    let creds = HashMap::from([
        ("smtp".to_string(), "smtp://u:p@127.0.0.1:1".to_string()),
        ("github".to_string(), "ghp_secret".to_string()),
    ]);
    // The SMTP URL's own host is not one the credential may go to.
    let e = run_with(
        agent.as_ref(),
        json!({"note": "hi", "leak": false}),
        &services,
        &creds,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, "credential_host", "{e:?}");
    assert!(
        e.message.contains("`smtp`") && e.message.contains("127.0.0.1"),
        "{}",
        e.message
    );
    assert!(!e.retryable);

    // An allowed SMTP host passes the check (the send then fails: nothing listens on :1)...
    let creds_ok = HashMap::from([
        ("smtp".to_string(), "smtp://u:p@127.0.0.1:1".to_string()),
        ("github".to_string(), "ghp_secret".to_string()),
    ]);
    services.credential_hosts = Some(Arc::new(Hosts(HashMap::from([
        ("smtp", vec!["127.0.0.1".to_string()]),
        ("github", vec!["api.github.com".to_string()]),
    ]))));
    let e = run_with(
        agent.as_ref(),
        json!({"note": "hi", "leak": false}),
        &services,
        &creds_ok,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, "smtp", "{e:?}");
    // ...but a message carrying a credential bound to another host is refused before sending.
    let e = run_with(
        agent.as_ref(),
        json!({"note": "hi", "leak": true}),
        &services,
        &creds_ok,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, "credential_host", "{e:?}");
    assert!(e.message.contains("`github`"), "{}", e.message);
}

#[test]
fn validate_needs_recipients_a_sender_a_subject_and_a_body() {
    let p = problems(
        "email",
        json!({"to": "a@example.com", "sender": "b@example.com", "subject": "s"}),
    );
    assert_eq!(p[0].path, "");
    assert!(p[0].message.contains("needs a body"), "{p:?}");
    let p = problems(
        "email",
        json!({"to": "a@example.com", "sender": "not an address", "subject": "s", "text": "t"}),
    );
    assert_eq!(p[0].path, "/sender");
    let p = problems(
        "email",
        json!({"sender": "b@example.com", "subject": "s", "text": "t"}),
    );
    assert!(p[0].message.contains("missing field `to`"), "{p:?}");
    let p = problems(
        "email",
        json!({"to": [], "sender": "b@example.com", "subject": "s", "text": "t"}),
    );
    assert_eq!(p[0].path, "/to");
    let p = problems(
        "email",
        json!({"to": "a@example.com", "sender": "b@example.com", "subject": "{{ x", "text": "t"}),
    );
    assert_eq!(p[0].path, "/subject");
}
