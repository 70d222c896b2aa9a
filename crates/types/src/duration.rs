use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a number and a unit: `500ms`, `30s`, `5m`, `24h`, `7d`.
/// Several parts may be combined, largest first: `1h30m`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

/// Why a duration string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {reason} (write e.g. 500ms, 30s, 5m, 24h, 7d)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    /// Zero length.
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    /// From whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// The standard library duration.
    pub const fn std(self) -> std::time::Duration {
        self.0
    }

    /// Parses `500ms`, `30s`, `5m`, `24h`, `7d` and combinations like `1h30m`.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err = |reason| DurationError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s == "0" {
            return Ok(Duration::ZERO);
        }
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let number: u128 = rest[..digits]
                .parse()
                .map_err(|_| err("the number is too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
            let unit_ms: u128 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                "" if rest.starts_with(char::is_whitespace) => {
                    return Err(err(
                        "write the unit right after the number, without a space",
                    ))
                }
                "" => return Err(err("a unit is missing")),
                _ => return Err(err("unknown unit (use ms, s, m, h, d or w)")),
            };
            rest = &rest[unit_len..];
            total = total
                .checked_add(number.saturating_mul(unit_ms))
                .ok_or_else(|| err("it is too long"))?;
        }
        let ms = u64::try_from(total).map_err(|_| err("it is too long"))?;
        Ok(Duration::from_millis(ms))
    }
}

impl FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Duration::parse(s)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        const UNITS: [(u128, &str); 5] = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ];
        if ms == 0 {
            return f.write_str("0s");
        }
        let mut rest = ms;
        for (size, unit) in UNITS {
            if rest >= size {
                write!(f, "{}{}", rest / size, unit)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d|w))+$|^0$",
            "description": "A duration: a number and a unit (ms, s, m, h, d, w), e.g. 500ms, 30s, 5m, 24h, 7d, 1h30m.",
        })
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_combinations() {
        let cases = [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
            ("1h30m", 5_400_000),
            ("0", 0),
        ];
        for (input, ms) in cases {
            assert_eq!(
                Duration::parse(input),
                Ok(Duration::from_millis(ms)),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        for (input, reason) in [
            ("", "it is empty"),
            ("5", "a unit is missing"),
            ("5y", "unknown unit"),
            ("10 minutes", "without a space"),
            ("ms", "expected a number"),
            ("99999999999999999999999999999999999999999d", "too large"),
        ] {
            let e = Duration::parse(input).unwrap_err().to_string();
            assert!(e.contains(reason), "{input}: {e}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for s in ["500ms", "30s", "5m", "1d", "1h30m", "2d3h4m5s6ms"] {
            let d = Duration::parse(s).unwrap();
            assert_eq!(d.to_string(), s);
            assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }
    }
}
