//! Webhook authentication, checked over the raw bytes before anything is parsed.

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use switchyard_agents::webhook::WebhookAuth;
use switchyard_template::Context;

type HmacSha256 = Hmac<Sha256>;

/// Standard Webhooks: how far a timestamp may be from now.
const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a request was refused (the client sees only "authentication failed").
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A required header is missing.
    #[error("missing header `{0}`")]
    MissingHeader(String),
    /// The token or signature does not match.
    #[error("signature or token does not match")]
    Mismatch,
    /// The Standard Webhooks timestamp is too old or in the future.
    #[error("timestamp outside the 5 minute tolerance")]
    Stale,
    /// The secret could not be rendered (unknown credential…).
    #[error("the webhook's secret could not be rendered: {0}")]
    Secret(String),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, AuthError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthError::MissingHeader(name.to_string()))
}

/// Checks a request against the webhook's `auth`. `now` is Unix seconds.
pub fn verify(
    auth: &WebhookAuth,
    headers: &HeaderMap,
    body: &[u8],
    cx: &Context,
    now: i64,
) -> Result<(), AuthError> {
    match auth {
        WebhookAuth::None => Ok(()),
        WebhookAuth::Token {
            header: name,
            secret,
        } => {
            let expected = secret
                .render_string(cx)
                .map_err(|e| AuthError::Secret(e.to_string()))?;
            let got = header(headers, name)?;
            let got = got.strip_prefix("Bearer ").unwrap_or(got);
            if !expected.is_empty() && bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
                Ok(())
            } else {
                Err(AuthError::Mismatch)
            }
        }
        WebhookAuth::Hmac {
            header: name,
            prefix,
            secret,
        } => {
            let key = secret
                .render_string(cx)
                .map_err(|e| AuthError::Secret(e.to_string()))?;
            let got = header(headers, name)?;
            let hex_sig = got
                .strip_prefix(prefix.as_str())
                .ok_or(AuthError::Mismatch)?;
            let sig = hex::decode(hex_sig.trim()).map_err(|_| AuthError::Mismatch)?;
            let mut mac =
                HmacSha256::new_from_slice(key.as_bytes()).map_err(|_| AuthError::Mismatch)?;
            mac.update(body);
            mac.verify_slice(&sig).map_err(|_| AuthError::Mismatch)
        }
        WebhookAuth::StandardWebhooks { secret } => {
            let secret = secret
                .render_string(cx)
                .map_err(|e| AuthError::Secret(e.to_string()))?;
            standard_webhooks(&secret, headers, body, now)
        }
    }
}

/// The Standard Webhooks scheme: `v1,` base64 HMAC-SHA256 of `id.timestamp.body` with the
/// base64 key after `whsec_`; several space-separated signatures may be given.
pub fn standard_webhooks(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), AuthError> {
    let id = header(headers, "webhook-id")?;
    let ts = header(headers, "webhook-timestamp")?;
    let sigs = header(headers, "webhook-signature")?;
    let ts_num: i64 = ts.trim().parse().map_err(|_| AuthError::Stale)?;
    if (now - ts_num).abs() > TOLERANCE_SECS {
        return Err(AuthError::Stale);
    }
    let key_b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .map_err(|e| AuthError::Secret(format!("the signing secret is not base64: {e}")))?;
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| AuthError::Mismatch)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    for candidate in sigs.split(' ') {
        let Some(sig) = candidate.strip_prefix("v1,") else {
            continue;
        };
        if let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig) {
            if bool::from(sig.as_slice().ct_eq(expected.as_slice())) {
                return Ok(());
            }
        }
    }
    Err(AuthError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    // The test vector published with the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_webhooks_reference_vector() {
        let h = headers(&[
            ("webhook-id", ID),
            ("webhook-timestamp", TS),
            ("webhook-signature", SIG),
        ]);
        standard_webhooks(SECRET, &h, BODY, 1614265330).unwrap();
        // Several signatures: one valid is enough.
        let multi = format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {SIG}");
        let h = headers(&[
            ("webhook-id", ID),
            ("webhook-timestamp", TS),
            ("webhook-signature", &multi),
        ]);
        standard_webhooks(SECRET, &h, BODY, 1614265330).unwrap();
    }

    #[test]
    fn standard_webhooks_refuses_tampering_and_stale_timestamps() {
        let h = headers(&[
            ("webhook-id", ID),
            ("webhook-timestamp", TS),
            ("webhook-signature", SIG),
        ]);
        assert!(matches!(
            standard_webhooks(SECRET, &h, br#"{"test": 2432232315}"#, 1614265330),
            Err(AuthError::Mismatch)
        ));
        assert!(matches!(
            standard_webhooks(SECRET, &h, BODY, 1614265330 + 301),
            Err(AuthError::Stale)
        ));
        assert!(matches!(
            standard_webhooks(SECRET, &h, BODY, 1614265330 - 301),
            Err(AuthError::Stale)
        ));
        let other_id = headers(&[
            ("webhook-id", "msg_other"),
            ("webhook-timestamp", TS),
            ("webhook-signature", SIG),
        ]);
        assert!(matches!(
            standard_webhooks(SECRET, &other_id, BODY, 1614265330),
            Err(AuthError::Mismatch)
        ));
        let missing = headers(&[("webhook-id", ID), ("webhook-timestamp", TS)]);
        assert!(matches!(
            standard_webhooks(SECRET, &missing, BODY, 1614265330),
            Err(AuthError::MissingHeader(_))
        ));
    }
}
