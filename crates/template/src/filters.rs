//! Switchyard's filters and functions beyond minijinja's own (SPEC 3.1).

use std::fmt::Write as _;
use std::sync::Arc;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use hmac::{Hmac, Mac};
use minijinja::value::{Value, ValueKind};
use minijinja::Environment;
use sha2::{Digest, Sha256};

use crate::error::filter_error;
use crate::jsonpath::PathCache;
use crate::value::{owned_json_to_value, value_bytes, value_to_json, with_json};

type FilterResult<T> = Result<T, minijinja::Error>;

/// Registers every Switchyard filter and function on `env`.
pub(crate) fn register(env: &mut Environment<'static>, paths: Arc<PathCache>) {
    env.add_filter("json", json);
    env.add_filter("from_json", from_json);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("sha256", sha256);
    env.add_filter("hmac_sha256", hmac_sha256);
    env.add_filter("slugify", slugify);
    env.add_filter("date", date);
    env.add_filter("merge", merge);
    env.add_filter("omit", omit);
    let cache = paths.clone();
    env.add_filter("jsonpath", move |v: &Value, expr: &str| {
        jsonpath(&cache, v, expr, false)
    });
    env.add_filter("jsonpath_all", move |v: &Value, expr: &str| {
        jsonpath(&paths, v, expr, true)
    });
    env.add_function("uuid", || uuid::Uuid::new_v4().to_string());
}

/// Rejects undefined input (our filters take `&Value`, which bypasses strict checks).
fn defined(value: &Value) -> FilterResult<()> {
    if value.is_undefined() {
        return Err(minijinja::Error::from(minijinja::ErrorKind::UndefinedError));
    }
    Ok(())
}

fn convert(name: &str, e: crate::Error) -> minijinja::Error {
    filter_error(name, e.message)
}

/// `json`: the value as compact JSON.
fn json(value: &Value) -> FilterResult<String> {
    defined(value)?;
    let json = value_to_json(value).map_err(|e| convert("json", e))?;
    Ok(json.to_string())
}

/// `from_json`: parses a JSON string.
fn from_json(value: &str) -> FilterResult<Value> {
    serde_json::from_str(value)
        .map(owned_json_to_value)
        .map_err(|e| filter_error("from_json", format!("invalid JSON: {e}")))
}

const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `b64encode`: standard base64 of the UTF-8 text (non-strings are JSON-encoded first).
fn b64encode(value: &Value) -> FilterResult<String> {
    defined(value)?;
    let bytes = value_bytes(value).map_err(|e| convert("b64encode", e))?;
    Ok(BASE64.encode(bytes))
}

/// `b64decode`: decodes standard base64 (padding optional) to UTF-8 text.
fn b64decode(value: &str) -> FilterResult<String> {
    let bytes = BASE64
        .decode(value.trim())
        .map_err(|e| filter_error("b64decode", format!("invalid base64: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|_| filter_error("b64decode", "the decoded bytes are not UTF-8 text"))
}

/// `sha256`: lower-case hex SHA-256 of the UTF-8 text.
fn sha256(value: &Value) -> FilterResult<String> {
    defined(value)?;
    let bytes = value_bytes(value).map_err(|e| convert("sha256", e))?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

/// `hmac_sha256(key)`: lower-case hex HMAC-SHA256 of the text with `key`.
fn hmac_sha256(value: &Value, key: &Value) -> FilterResult<String> {
    defined(value)?;
    defined(key)?;
    let bytes = value_bytes(value).map_err(|e| convert("hmac_sha256", e))?;
    let key = value_bytes(key).map_err(|e| convert("hmac_sha256", e))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| filter_error("hmac_sha256", format!("bad key: {e}")))?;
    mac.update(&bytes);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// `slugify`: lower-case ASCII, runs of other characters become one `-`, trimmed of `-`.
/// Common accented Latin letters are folded to ASCII first (`é` → `e`).
pub(crate) fn slugify(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut pending_dash = false;
    let mut buf = [0u8; 4];
    for c in value.chars() {
        let piece: &str = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase().encode_utf8(&mut buf)
        } else if let Some(folded) = fold_latin(c) {
            folded
        } else {
            pending_dash = true;
            continue;
        };
        if pending_dash && !out.is_empty() {
            out.push('-');
        }
        pending_dash = false;
        out.push_str(piece);
    }
    out
}

fn fold_latin(c: char) -> Option<&'static str> {
    Some(match c.to_lowercase().next()? {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ł' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ß' => "ss",
        'ť' | 'ţ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'þ' => "th",
        _ => return None,
    })
}

/// `jsonpath(expr)` / `jsonpath_all(expr)`: the first match (or none) / every match.
fn jsonpath(cache: &PathCache, value: &Value, expr: &str, all: bool) -> FilterResult<Value> {
    defined(value)?;
    let name = if all { "jsonpath_all" } else { "jsonpath" };
    let path = cache.get(expr).map_err(|e| convert(name, e))?;
    with_json(value, |json| {
        if all {
            let items: Vec<serde_json::Value> = path.query(json).into_iter().cloned().collect();
            owned_json_to_value(serde_json::Value::Array(items))
        } else {
            path.first(json)
                .map_or(Value::from(()), owned_json_to_value)
        }
    })
    .map_err(|e| convert(name, e))
}

/// `date(fmt)`: formats an RFC 3339 time or epoch seconds (int, float or numeric string)
/// with a strftime-style format. RFC 3339 input keeps its offset; epoch input is UTC.
fn date(value: &Value, fmt: &str) -> FilterResult<String> {
    defined(value)?;
    let time = parse_time(value)?;
    let mut out = String::new();
    write!(out, "{}", time.format(fmt))
        .map_err(|_| filter_error("date", format!("invalid format `{fmt}`")))?;
    Ok(out)
}

fn parse_time(value: &Value) -> FilterResult<DateTime<FixedOffset>> {
    let bad = || {
        filter_error(
            "date",
            format!("expected an RFC 3339 time or epoch seconds, got `{value}`"),
        )
    };
    let from_epoch = |secs: f64| -> FilterResult<DateTime<FixedOffset>> {
        if !secs.is_finite() || secs.abs() > 1e14 {
            return Err(bad());
        }
        let whole = secs.floor();
        let nanos = ((secs - whole) * 1e9).round().min(999_999_999.0) as u32;
        Utc.timestamp_opt(whole as i64, nanos)
            .single()
            .map(|t| t.fixed_offset())
            .ok_or_else(bad)
    };
    match value.kind() {
        ValueKind::Number => {
            if let Some(i) = value.as_i64() {
                Utc.timestamp_opt(i, 0)
                    .single()
                    .map(|t| t.fixed_offset())
                    .ok_or_else(bad)
            } else {
                from_epoch(f64::try_from(value.clone()).map_err(|_| bad())?)
            }
        }
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default().trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                Ok(t)
            } else if let Ok(i) = s.parse::<i64>() {
                Utc.timestamp_opt(i, 0)
                    .single()
                    .map(|t| t.fixed_offset())
                    .ok_or_else(bad)
            } else if let Ok(f) = s.parse::<f64>() {
                from_epoch(f)
            } else {
                Err(bad())
            }
        }
        _ => Err(bad()),
    }
}

/// `merge(other)`: shallow merge of two maps; keys of `other` win.
fn merge(value: &Value, other: &Value) -> FilterResult<Value> {
    defined(value)?;
    defined(other)?;
    for (side, v) in [("left", value), ("right", other)] {
        if v.kind() != ValueKind::Map {
            return Err(filter_error(
                "merge",
                format!("the {side} side must be a map (object), not {}", v.kind()),
            ));
        }
    }
    let mut map = std::collections::BTreeMap::new();
    for side in [value, other] {
        for key in side.try_iter()? {
            let v = side.get_item(&key)?;
            map.insert(key, v);
        }
    }
    Ok(Value::from_iter(map))
}

/// `omit(key, …)`: the mapping without these keys (`{{ params | omit("owner", "repo") }}`:
/// a pack action's body fields without its path parameters).
fn omit(value: &Value, keys: minijinja::value::Rest<String>) -> FilterResult<Value> {
    defined(value)?;
    if value.kind() != ValueKind::Map {
        return Err(filter_error(
            "omit",
            format!("the input must be a map (object), not {}", value.kind()),
        ));
    }
    let mut map = std::collections::BTreeMap::new();
    for key in value.try_iter()? {
        if key.as_str().is_some_and(|k| keys.iter().any(|o| o == k)) {
            continue;
        }
        let v = value.get_item(&key)?;
        map.insert(key, v);
    }
    Ok(Value::from_iter(map))
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugify_cases() {
        for (input, want) in [
            ("Feature/ABC_12 x", "feature-abc-12-x"),
            ("  --Hello,   World!--  ", "hello-world"),
            ("already-slug", "already-slug"),
            ("Crème Brûlée", "creme-brulee"),
            ("Straße", "strasse"),
            ("日本語", ""),
            ("", ""),
            ("a__b", "a-b"),
        ] {
            assert_eq!(slugify(input), want, "slugify({input:?})");
        }
    }
}
