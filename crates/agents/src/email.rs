//! `email`: sends mail over SMTP (lettre, rustls) and emits `{message_id, to}`.
//!
//! The server is the URL in the credential named by `smtp` (default `smtp`):
//! - `smtp://user:pass@host:port` — STARTTLS when the server offers it, plain otherwise
//!   (`?tls=opportunistic`, the default); `?tls=required` refuses a server without STARTTLS;
//!   `?tls=none` never upgrades (a trusted local relay). Default port 25.
//! - `smtps://user:pass@host:port` — TLS from the first byte (implicit TLS). Default port 465.
//!
//! User and password are percent-decoded; certificates are checked against the web PKI
//! roots. The `Message-ID` is derived from the job id, so every retry of one execution sends
//! the same id and a receiving system can tell a retry from a second mail. A 5xx answer is a
//! permanent failure (kind `smtp`); a 4xx answer, a connection or a TLS failure may pass on
//! another try (transient).

use std::str::FromStr;

use async_trait::async_trait;
use lettre::message::{header::ContentType, Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_template::{Context, Template};

use crate::registry::AgentType;
use crate::{Agent, AgentError, BuildContext, ExecContext, Invalid, Outcome};

/// Options of an `email` agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailOptions {
    /// Recipients: an address (`Ada <ada@example.com>`), a comma-separated list, or a list;
    /// templates. A template that is one `{{ expr }}` may give a list.
    pub to: Recipients,
    /// Copy recipients (as `to`).
    #[serde(default)]
    pub cc: Option<Recipients>,
    /// Blind copy recipients (as `to`): they receive the mail; no header names them.
    #[serde(default)]
    pub bcc: Option<Recipients>,
    /// The From address (a template): `Switchyard <noreply@example.com>`. (`from` is the
    /// upstream list, as for every agent.)
    pub sender: String,
    /// The Reply-To address (a template).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// The subject (a template).
    pub subject: String,
    /// The plain-text body (a template). Give `text`, `html` or both.
    #[serde(default)]
    pub text: Option<String>,
    /// The HTML body (a template).
    #[serde(default)]
    pub html: Option<String>,
    /// The name of the credential holding the server URL (default `smtp`).
    #[serde(default = "default_smtp")]
    pub smtp: String,
}

/// One address or several.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Recipients {
    /// One template (an address, a comma-separated list, or a list value).
    One(String),
    /// Several templates.
    Many(Vec<String>),
}

fn default_smtp() -> String {
    "smtp".into()
}

/// A built `email` agent.
#[derive(Debug)]
pub struct Email {
    to: Vec<Template>,
    cc: Vec<Template>,
    bcc: Vec<Template>,
    sender: Template,
    reply_to: Option<Template>,
    subject: Template,
    text: Option<Template>,
    html: Option<Template>,
    smtp: String,
}

fn recipients(cx: &mut BuildContext<'_>, path: &str, r: Option<&Recipients>) -> Vec<Template> {
    match r {
        None => Vec::new(),
        Some(Recipients::One(s)) => cx.template(path, s).into_iter().collect(),
        Some(Recipients::Many(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| cx.template(&format!("{path}/{i}"), s))
            .collect(),
    }
}

impl AgentType for Email {
    type Options = EmailOptions;

    fn build(o: EmailOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        let to = recipients(cx, "/to", Some(&o.to));
        if matches!(&o.to, Recipients::Many(l) if l.is_empty()) {
            cx.error("/to", "`to` names no recipient");
        }
        let cc = recipients(cx, "/cc", o.cc.as_ref());
        let bcc = recipients(cx, "/bcc", o.bcc.as_ref());
        let sender = cx.template("/sender", &o.sender);
        if let Some(s) = sender.as_ref().filter(|s| s.is_literal()) {
            if let Err(e) = Mailbox::from_str(s.source()) {
                cx.error(
                    "/sender",
                    format!("`{}` is not an email address: {e}", s.source()),
                );
            }
        }
        let reply_to = o
            .reply_to
            .as_deref()
            .and_then(|r| cx.template("/reply_to", r));
        let subject = cx.template("/subject", &o.subject);
        let text = o.text.as_deref().and_then(|t| cx.template("/text", t));
        let html = o.html.as_deref().and_then(|t| cx.template("/html", t));
        if o.text.is_none() && o.html.is_none() {
            cx.error_with_hint("", "an email needs a body", "give `text`, `html`, or both");
        }
        let (Some(sender), Some(subject)) = (sender, subject) else {
            return Err(Invalid);
        };
        cx.finish_with(Email {
            to,
            cc,
            bcc,
            sender,
            reply_to,
            subject,
            text,
            html,
            smtp: o.smtp,
        })
    }
}

#[async_trait]
impl Agent for Email {
    async fn execute(&self, cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        let message_id = format!("<{}@switchyard>", cx.job_id);
        let (message, to) = self.message(cx.templates, &message_id)?;
        let url = cx.templates.credential(&self.smtp).ok_or_else(|| {
            AgentError::permanent(
                "credential",
                format!(
                    "the credential `{}` (the SMTP server URL, like smtp://user:pass@host:587) is not set",
                    self.smtp
                ),
            )
        })?;
        let server = SmtpServer::parse(&url, &self.smtp)?;
        // The server's URL is a credential, and the message may carry others: each one's
        // `--allowed-host` must admit the SMTP host.
        crate::outbound::check_credential_hosts(cx, &server.host)?;
        server
            .transport()?
            .send(message)
            .await
            .map_err(|e| smtp_error(&server, e))?;
        Ok(Outcome::Emit(vec![json!({
            "message_id": message_id,
            "to": to,
        })]))
    }
}

impl Email {
    /// Renders the message; returns it with the `to` addresses as written in the event.
    fn message(&self, t: &Context, message_id: &str) -> Result<(Message, Vec<String>), AgentError> {
        let sender = mailbox(&self.sender.render_string(t)?, "sender")?;
        let mut b = Message::builder()
            .from(sender)
            .subject(self.subject.render_string(t)?)
            .message_id(Some(message_id.to_string()))
            .date_now();
        if let Some(r) = &self.reply_to {
            b = b.reply_to(mailbox(&r.render_string(t)?, "reply_to")?);
        }
        let to = render_mailboxes(&self.to, t, "to")?;
        if to.is_empty() {
            return Err(AgentError::permanent(
                "invalid_address",
                "`to` rendered to no recipient",
            ));
        }
        let written: Vec<String> = to.iter().map(ToString::to_string).collect();
        for m in to {
            b = b.to(m);
        }
        for m in render_mailboxes(&self.cc, t, "cc")? {
            b = b.cc(m);
        }
        for m in render_mailboxes(&self.bcc, t, "bcc")? {
            b = b.bcc(m);
        }
        let text = self.text.as_ref().map(|x| x.render_string(t)).transpose()?;
        let html = self.html.as_ref().map(|x| x.render_string(t)).transpose()?;
        let built = match (text, html) {
            (Some(text), Some(html)) => b.multipart(MultiPart::alternative_plain_html(text, html)),
            (Some(text), None) => b.singlepart(SinglePart::plain(text)),
            (None, Some(html)) => b.singlepart(SinglePart::html(html)),
            (None, None) => b.header(ContentType::TEXT_PLAIN).body(String::new()),
        };
        let message = built.map_err(|e| AgentError::permanent("invalid_address", e.to_string()))?;
        Ok((message, written))
    }
}

fn mailbox(text: &str, option: &str) -> Result<Mailbox, AgentError> {
    Mailbox::from_str(text.trim()).map_err(|e| {
        AgentError::permanent(
            "invalid_address",
            format!("`{option}`: `{text}` is not an email address: {e}"),
        )
    })
}

fn render_mailboxes(
    templates: &[Template],
    t: &Context,
    option: &str,
) -> Result<Vec<Mailbox>, AgentError> {
    let mut out = Vec::new();
    let mut add = |text: &str| -> Result<(), AgentError> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let list = Mailboxes::from_str(text.trim()).map_err(|e| {
            AgentError::permanent(
                "invalid_address",
                format!("`{option}`: `{text}` is not an email address: {e}"),
            )
        })?;
        out.extend(list);
        Ok(())
    };
    for tmpl in templates {
        match tmpl.render(t)? {
            Value::Null => {}
            Value::String(s) => add(&s)?,
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(s) => add(&s)?,
                        Value::Null => {}
                        other => add(&other.to_string())?,
                    }
                }
            }
            other => add(&other.to_string())?,
        }
    }
    Ok(out)
}

/// An SMTP server from its URL.
#[derive(Debug, PartialEq)]
struct SmtpServer {
    host: String,
    port: u16,
    tls: TlsMode,
    user: Option<(String, String)>,
    /// `host:port` for messages (never the password).
    display: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    None,
    Opportunistic,
    Required,
    Implicit,
}

impl SmtpServer {
    /// Parses `smtp[s]://[user:pass@]host[:port][?tls=…]`. Errors never quote the URL (it
    /// holds a password); they name the credential.
    fn parse(text: &str, credential: &str) -> Result<SmtpServer, AgentError> {
        let bad = |why: &str| {
            AgentError::permanent(
                "credential",
                format!("the credential `{credential}` is not a usable SMTP URL: {why} (write smtp://user:pass@host:587 or smtps://user:pass@host:465)"),
            )
        };
        let url = url::Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (tls, default_port) = match (url.scheme(), tls_param.as_deref()) {
            ("smtps", None | Some("implicit")) => (TlsMode::Implicit, 465),
            ("smtp", None | Some("opportunistic")) => (TlsMode::Opportunistic, 25),
            ("smtp", Some("required")) => (TlsMode::Required, 25),
            ("smtp", Some("none")) => (TlsMode::None, 25),
            ("smtp" | "smtps", Some(other)) => {
                return Err(bad(&format!(
                    "`tls={other}`: use required, opportunistic or none (smtp://) — smtps:// is always TLS"
                )))
            }
            (scheme, _) => return Err(bad(&format!("the scheme is `{scheme}`, not smtp or smtps"))),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("the user or password is not UTF-8 once percent-decoded"))
        };
        let user = match (url.username(), url.password()) {
            ("", None) => None,
            (u, p) => Some((decode(u)?, decode(p.unwrap_or(""))?)),
        };
        let port = url.port().unwrap_or(default_port);
        Ok(SmtpServer {
            display: format!("{host}:{port}"),
            host,
            port,
            tls,
            user,
        })
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, AgentError> {
        let params = || {
            TlsParameters::new(self.host.clone()).map_err(|e| {
                AgentError::permanent("smtp", format!("SMTP {}: TLS setup: {e}", self.display))
            })
        };
        let tls = match self.tls {
            TlsMode::None => Tls::None,
            TlsMode::Opportunistic => Tls::Opportunistic(params()?),
            TlsMode::Required => Tls::Required(params()?),
            TlsMode::Implicit => Tls::Wrapper(params()?),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.as_str())
            .port(self.port)
            .tls(tls);
        if let Some((u, p)) = &self.user {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(b.build())
    }
}

fn smtp_error(server: &SmtpServer, e: lettre::transport::smtp::Error) -> AgentError {
    let mut message = format!("SMTP {}: {e}", server.display);
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    if e.is_permanent() || e.is_client() {
        AgentError::permanent("smtp", message)
    } else {
        AgentError::transient("smtp", message)
    }
}

#[cfg(test)]
mod tests;
