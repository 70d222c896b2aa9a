//! `webhook`: receives HTTP requests at `/webhook/{story}/{path}`. A source agent: the HTTP
//! server turns each accepted request into the event `{method, path, headers, query, body}`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use switchyard_template::{Template, TemplateValue};

use crate::registry::AgentType;
use crate::{Agent, AgentError, BuildContext, ExecContext, Invalid, Outcome, Source};

/// Options of a `webhook` agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookOptions {
    /// The URL path under `/webhook/{story}/`; default: the agent's name.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$"))]
    pub path: Option<String>,
    /// Accepted HTTP methods (default `[POST]`).
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// How requests are authenticated. Say `none` explicitly for an open webhook.
    #[serde(default)]
    pub auth: Option<WebhookAuthOptions>,
    /// The answer to an accepted request (default: 202 with the event and run ids).
    #[serde(default)]
    pub response: Option<ResponseOptions>,
    /// A request header whose repeated value marks a redelivery (e.g. `X-GitHub-Delivery`,
    /// `webhook-id`, `Idempotency-Key`): answered with the first delivery's ids, not run again.
    #[serde(default)]
    pub idempotency_header: Option<String>,
    /// Largest accepted body, in bytes or with a unit (`512KiB`, `1MiB`, `2MB`). Default 1MiB.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// At most `limit` authenticated deliveries per `per` (a token bucket, per server
    /// process); beyond it the answer is 429 with `Retry-After`, and nothing is stored.
    #[serde(default)]
    pub rate_limit: Option<RateLimitOptions>,
}

/// `rate_limit: {limit: 10, per: 1m}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitOptions {
    /// Deliveries allowed per period (also the largest burst).
    pub limit: u32,
    /// The period.
    pub per: switchyard_types::Duration,
}

/// Webhook authentication.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WebhookAuthOptions {
    /// `none`: anyone may post.
    None(NoAuth),
    /// A shared secret, header, or signature scheme.
    Scheme(AuthScheme),
}

/// The literal `none`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoAuth {
    /// Open webhook.
    None,
}

/// An authentication scheme.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AuthScheme {
    /// A shared token in a header, compared in constant time.
    Token {
        /// The header carrying the token (e.g. `X-Token`, `Authorization`).
        header: String,
        /// The expected value: normally `{{ credential.NAME }}`.
        secret: String,
    },
    /// An HMAC of the raw body in a header, GitHub style (`X-Hub-Signature-256: sha256=…`).
    Hmac {
        /// The header carrying the signature.
        header: String,
        /// The hash (only `sha256`).
        #[serde(default = "sha256")]
        algorithm: String,
        /// Text before the hex digest (GitHub: `sha256=`).
        #[serde(default)]
        prefix: String,
        /// The HMAC key: normally `{{ credential.NAME }}`.
        secret: String,
    },
    /// The Standard Webhooks spec: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks {
        /// The signing secret (`whsec_…`): normally `{{ credential.NAME }}`.
        secret: String,
    },
}

fn sha256() -> String {
    "sha256".into()
}

/// `response`: what an accepted request is answered with.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseOptions {
    /// HTTP status (default 202).
    #[serde(default = "default_status")]
    pub status: u16,
    /// Body template; sees the webhook's event (as `event` and by the agent's name) and
    /// `run.id`. A JSON value is sent as JSON, a string as text.
    #[serde(default)]
    pub body: Option<Value>,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_status() -> u16 {
    202
}

fn default_methods() -> Vec<String> {
    vec!["POST".into()]
}

/// A size in bytes: a number, or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "ByteSizeRepr")]
pub struct ByteSize(pub usize);

#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ByteSizeRepr {
    /// Bytes.
    Bytes(usize),
    /// With a unit: B, KB, KiB, MB, MiB, GB, GiB.
    Text(String),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match ByteSizeRepr::deserialize(d)? {
            ByteSizeRepr::Bytes(n) => Ok(ByteSize(n)),
            ByteSizeRepr::Text(s) => ByteSize::parse(&s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {s:?}: write a number of bytes or e.g. 512KiB, 1MiB, 2MB"
                ))
            }),
        }
    }
}

impl ByteSize {
    /// Parses `1024`, `512KiB`, `1MiB`, `2MB`, `1GiB`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let n: usize = s[..digits].parse().ok()?;
        let mult = match s[digits..].trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(mult).map(ByteSize)
    }
}

/// A built webhook agent.
#[derive(Debug)]
pub struct Webhook {
    /// The path under `/webhook/{story}/`, when set (the story loader defaults it to the name).
    pub path: Option<String>,
    /// Accepted methods, upper case.
    pub methods: Vec<String>,
    /// Authentication, `None` when the story did not say (validate warns).
    pub auth: Option<WebhookAuth>,
    /// Custom answer.
    pub response: Option<WebhookResponse>,
    /// Lower-cased idempotency header name.
    pub idempotency_header: Option<String>,
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// Deliveries allowed per period.
    pub rate_limit: Option<RateLimitOptions>,
}

/// Built authentication, secrets compiled as templates.
#[derive(Debug)]
pub enum WebhookAuth {
    /// Anyone may post.
    None,
    /// Shared token in a header.
    Token {
        /// Lower-cased header name.
        header: String,
        /// Expected value.
        secret: Template,
    },
    /// HMAC-SHA256 over the raw body.
    Hmac {
        /// Lower-cased header name.
        header: String,
        /// Prefix before the hex digest.
        prefix: String,
        /// Key.
        secret: Template,
    },
    /// Standard Webhooks.
    StandardWebhooks {
        /// Signing secret.
        secret: Template,
    },
}

/// Built custom response.
#[derive(Debug)]
pub struct WebhookResponse {
    /// Status code.
    pub status: u16,
    /// Body template.
    pub body: Option<TemplateValue>,
    /// Headers (templates).
    pub headers: Vec<(String, Template)>,
}

/// The default largest body: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

impl AgentType for Webhook {
    type Options = WebhookOptions;

    fn build(o: WebhookOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        let mut methods = Vec::new();
        for (i, m) in o.methods.iter().enumerate() {
            let upper = m.to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                methods.push(upper);
            } else {
                cx.error_with_hint(
                    &format!("/methods/{i}"),
                    format!("unknown HTTP method `{m}`"),
                    format!("use one of {}", METHODS.join(", ")),
                );
            }
        }
        if methods.is_empty() && o.methods.is_empty() {
            cx.error("/methods", "a webhook needs at least one method");
        }
        let auth = o.auth.as_ref().map(|a| match a {
            WebhookAuthOptions::None(_) => WebhookAuth::None,
            WebhookAuthOptions::Scheme(AuthScheme::Token { header, secret }) => {
                WebhookAuth::Token {
                    header: header.to_ascii_lowercase(),
                    secret: cx
                        .template("/auth/secret", secret)
                        .unwrap_or_else(|| placeholder(cx)),
                }
            }
            WebhookAuthOptions::Scheme(AuthScheme::Hmac {
                header,
                algorithm,
                prefix,
                secret,
            }) => {
                if algorithm != "sha256" {
                    cx.error(
                        "/auth/algorithm",
                        format!("unsupported HMAC algorithm `{algorithm}`: only sha256"),
                    );
                }
                WebhookAuth::Hmac {
                    header: header.to_ascii_lowercase(),
                    prefix: prefix.clone(),
                    secret: cx
                        .template("/auth/secret", secret)
                        .unwrap_or_else(|| placeholder(cx)),
                }
            }
            WebhookAuthOptions::Scheme(AuthScheme::StandardWebhooks { secret }) => {
                WebhookAuth::StandardWebhooks {
                    secret: cx
                        .template("/auth/secret", secret)
                        .unwrap_or_else(|| placeholder(cx)),
                }
            }
        });
        if o.auth.is_none() {
            cx.warn(
                "",
                "webhook has no `auth`: anyone who knows its URL can start this story",
                "add `auth: {type: hmac, …}` / `{type: token, …}`, or say `auth: none` if that is intended",
            );
        }
        let response = o.response.map(|r| {
            if !(100..=599).contains(&r.status) {
                cx.error(
                    "/response/status",
                    format!("{} is not an HTTP status", r.status),
                );
            }
            WebhookResponse {
                status: r.status,
                body: r.body.as_ref().and_then(|b| cx.value("/response/body", b)),
                headers: r
                    .headers
                    .iter()
                    .filter_map(|(k, v)| {
                        cx.template(&format!("/response/headers/{k}"), v)
                            .map(|t| (k.clone(), t))
                    })
                    .collect(),
            }
        });
        if let Some(r) = &o.rate_limit {
            if r.limit == 0 {
                cx.error("/rate_limit/limit", "the limit must be at least 1");
            }
            if r.per.std().is_zero() {
                cx.error("/rate_limit/per", "the period must be longer than 0");
            }
        }
        let webhook = Webhook {
            path: o.path,
            methods,
            auth,
            response,
            idempotency_header: o.idempotency_header.map(|h| h.to_ascii_lowercase()),
            max_body: o.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0),
            rate_limit: o.rate_limit,
        };
        cx.finish_with(webhook)
    }
}

fn placeholder(cx: &mut BuildContext<'_>) -> Template {
    // Only reached when an error was recorded: the agent is never built.
    cx.template("", "")
        .expect("an empty template always compiles")
}

#[async_trait]
impl Agent for Webhook {
    fn source(&self) -> Option<Source<'_>> {
        Some(Source::Webhook(self))
    }

    async fn execute(&self, _cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        Err(AgentError::permanent(
            "invalid_story",
            "a webhook agent receives HTTP requests; it cannot take events from other agents",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(ByteSize::parse("1MiB"), Some(ByteSize(1 << 20)));
        assert_eq!(ByteSize::parse("512KiB"), Some(ByteSize(512 * 1024)));
        assert_eq!(ByteSize::parse("2MB"), Some(ByteSize(2_000_000)));
        assert_eq!(ByteSize::parse("100"), Some(ByteSize(100)));
        assert_eq!(ByteSize::parse("1XB"), None);
    }
}
