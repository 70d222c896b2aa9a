//! Agent options as shown to API clients and the web view: credential references and
//! literal secrets become `[redacted:NAME]`.

use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::{Map, Value};

/// A `{{ … }}` expression that reads a credential: `credential.NAME` or `credential['NAME']`.
static CREDENTIAL_EXPR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"\{\{[^}]*?\bcredential\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']+)["']\s*\])(?:[^}]|\}[^}])*\}\}"#,
    )
    .unwrap_or_else(|e| unreachable!("the credential pattern is valid: {e}"))
});

/// Option keys whose literal values are secrets whatever the agent type.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "authorization",
    "client_secret",
];

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    SECRET_KEYS
        .iter()
        .any(|s| key == *s || key.ends_with(&format!("_{s}")))
}

/// The options with every credential reference and literal secret replaced.
pub fn redact_options(options: &Value) -> Value {
    redact(options, None)
}

fn redact(value: &Value, key: Option<&str>) -> Value {
    match value {
        Value::String(s) => {
            let replaced = redact_credentials(s);
            match key {
                // A literal (no template at all) under a secret-looking key is itself a secret.
                Some(k) if is_secret_key(k) && !replaced.contains("{{") && replaced == *s => {
                    Value::String(format!("[redacted:{k}]"))
                }
                _ => Value::String(replaced),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| redact(v, key)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact(v, Some(k))))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

fn redact_credentials(s: &str) -> String {
    if !s.contains("credential") {
        return s.to_string();
    }
    CREDENTIAL_EXPR
        .replace_all(s, |c: &Captures<'_>| {
            let name = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
            format!("[redacted:{name}]")
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::redact_options;

    #[test]
    fn credential_templates_and_literal_secrets_are_redacted() {
        let options = json!({
            "name": "deliver",
            "url": "{{ resource.api }}/x?key={{ credential.api_key }}",
            "headers": {
                "Authorization": "Bearer {{ credential['gh-token'] }}",
                "X-Secret-Token": "hunter2",
                "X-Trace": "{{ run.id }}"
            },
            "auth": {"type": "hmac", "secret": "{{ credential.github_hook | trim }}", "header": "X-Hub-Signature-256"},
            "plain": {"password": "swordfish", "retries": 3, "token": "{{ resource.public_token }}"},
            "list": ["{{credential.a}}", "keep"]
        });
        assert_eq!(
            redact_options(&options),
            json!({
                "name": "deliver",
                "url": "{{ resource.api }}/x?key=[redacted:api_key]",
                "headers": {
                    "Authorization": "Bearer [redacted:gh-token]",
                    "X-Secret-Token": "[redacted:X-Secret-Token]",
                    "X-Trace": "{{ run.id }}"
                },
                "auth": {"type": "hmac", "secret": "[redacted:github_hook]", "header": "X-Hub-Signature-256"},
                "plain": {"password": "[redacted:password]", "retries": 3, "token": "{{ resource.public_token }}"},
                "list": ["[redacted:a]", "keep"]
            })
        );
    }

    #[test]
    fn text_that_only_mentions_credentials_is_kept() {
        let options =
            json!({"description": "uses the credential store", "body": "{{ credentials_count }}"});
        assert_eq!(redact_options(&options), options);
    }
}
