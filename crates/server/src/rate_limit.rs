//! Per-webhook rate limits (`rate_limit: {limit, per}`): a token bucket per webhook, in
//! this process's memory. A bucket holds `limit` deliveries and refills at `limit / per`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchyard_agents::webhook::RateLimitOptions;

#[derive(Debug)]
struct Bucket {
    config: RateLimitOptions,
    tokens: f64,
    last: Instant,
}

/// The buckets of every webhook with a rate limit.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl RateLimits {
    /// Takes one delivery from the bucket of `(story, path)`; when it is empty, how long
    /// until the next one is allowed.
    pub fn take(
        &self,
        story: &str,
        path: &str,
        config: RateLimitOptions,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let limit = f64::from(config.limit.max(1));
        let per = config.per.std().as_secs_f64().max(1e-3);
        let bucket = buckets
            .entry((story.to_string(), path.to_string()))
            .or_insert(Bucket {
                config,
                tokens: limit,
                last: now,
            });
        if bucket.config != config {
            // The story was reloaded with another limit: start afresh.
            *bucket = Bucket {
                config,
                tokens: limit,
                last: now,
            };
        }
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit / per).min(limit);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) * per / limit))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_limit_then_refills_over_the_period() {
        let limits = RateLimits::default();
        let config = RateLimitOptions {
            limit: 3,
            per: switchyard_types::Duration::from_secs(60),
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            limits.take("s", "p", config, t0).unwrap();
        }
        let wait = limits.take("s", "p", config, t0).unwrap_err();
        assert_eq!(wait.as_secs(), 20, "one delivery per 20 s");
        assert!(limits.take("other", "p", config, t0).is_ok(), "per webhook");
        limits
            .take("s", "p", config, t0 + Duration::from_secs(21))
            .unwrap();
        assert!(limits
            .take("s", "p", config, t0 + Duration::from_secs(22))
            .is_err());
        let bigger = RateLimitOptions {
            limit: 10,
            ..config
        };
        assert!(limits
            .take("s", "p", bigger, t0 + Duration::from_secs(22))
            .is_ok());
    }
}
