//! Open-loop load at a fixed rate, timed from the webhook to the sink.
//!
//! `POST /drive` with `{"url", "rate", "seconds", "body", "drain_seconds"}` sends
//! `rate × seconds` POSTs of `body` to `url`, the i-th at `start + i / rate` whatever the
//! answers (open loop: a slow system does not slow the sender down, so its latency is not
//! hidden — no coordinated omission). Each body gets a `"bench_seq": i` field in front; the
//! system under test passes the body on to this same sink, whose ingest handler notes when
//! sequence number i arrived. Latencies are measured from the *scheduled* send time:
//!
//! * `sink_ms`: scheduled send → arrival at the sink (webhook to sink, the run's latency);
//! * `answer_ms`: scheduled send → the webhook's answer.
//!
//! The answer comes once every request was answered and every accepted one arrived, or
//! `drain_seconds` after the last send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

/// Arrival times of the sequence numbers of the drive in progress.
#[derive(Default)]
pub struct Arrivals {
    active: AtomicBool,
    log: Mutex<ArrivalLog>,
}

#[derive(Default)]
struct ArrivalLog {
    start: Option<Instant>,
    /// Nanoseconds from `start` to the first arrival of each sequence number (0: none yet).
    at_nanos: Vec<u64>,
    arrived: usize,
}

const SEQ_KEY: &[u8] = b"\"bench_seq\":";

impl Arrivals {
    /// Notes the arrival of a body, if a drive is in progress and the body carries its
    /// sequence number. Costs one relaxed load when no drive runs.
    pub fn note(&self, body: &Bytes) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let Some(seq) = sequence_number(body) else {
            return;
        };
        let now = Instant::now();
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let Some(start) = log.start else { return };
        let nanos = u64::try_from(now.duration_since(start).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        if let Some(slot) = log.at_nanos.get_mut(seq) {
            if *slot == 0 {
                *slot = nanos;
                log.arrived += 1;
            }
        }
    }

    fn begin(&self, start: Instant, n: usize) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        *log = ArrivalLog {
            start: Some(start),
            at_nanos: vec![0; n],
            arrived: 0,
        };
        self.active.store(true, Ordering::Relaxed);
    }

    fn arrived(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).arrived
    }

    fn finish(&self) -> Vec<u64> {
        self.active.store(false, Ordering::Relaxed);
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut log.at_nanos)
    }
}

/// The number after the first `"bench_seq":` in a JSON body.
fn sequence_number(body: &[u8]) -> Option<usize> {
    let at = body.windows(SEQ_KEY.len()).position(|w| w == SEQ_KEY)? + SEQ_KEY.len();
    let rest = &body[at..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// What `POST /drive` asks for.
#[derive(Deserialize)]
pub struct DriveRequest {
    url: String,
    rate: f64,
    seconds: f64,
    body: Value,
    #[serde(default = "default_drain")]
    drain_seconds: f64,
}

fn default_drain() -> f64 {
    30.0
}

/// Outcome of one request, in nanoseconds from the drive's start.
#[derive(Clone, Copy)]
enum Answer {
    Pending,
    Status(u16, u64),
    Failed,
}

/// Runs a drive and returns its figures as JSON (or an error message).
pub async fn drive(arrivals: Arc<Arrivals>, req: DriveRequest) -> Result<Value, String> {
    if !(req.rate > 0.0 && req.rate.is_finite() && req.seconds > 0.0 && req.seconds.is_finite()) {
        return Err("rate and seconds must be positive numbers".into());
    }
    let Value::Object(fields) = req.body else {
        return Err("body must be a JSON object".into());
    };
    let n = (req.rate * req.seconds).round() as usize;
    if n == 0 || n > 10_000_000 {
        return Err(format!("rate × seconds = {n} requests: out of range"));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    // The body without its opening brace: each request puts its sequence number in front.
    let rest = serde_json::to_string(&fields).map_err(|e| e.to_string())?;
    let rest = Arc::new(rest[1..].to_string());
    let sep = if fields.is_empty() { "" } else { "," };

    let answers = Arc::new(Mutex::new(vec![Answer::Pending; n]));
    let period = Duration::from_secs_f64(1.0 / req.rate);
    let start = Instant::now() + Duration::from_millis(20);
    arrivals.begin(start, n);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let body = format!("{{\"bench_seq\":{i}{sep}{rest}");
        let (client, url, answers) = (client.clone(), req.url.clone(), answers.clone());
        tasks.spawn(async move {
            let outcome = match client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let _ = resp.bytes().await;
                    let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    Answer::Status(status, nanos)
                }
                Err(_) => Answer::Failed,
            };
            answers.lock().unwrap_or_else(|e| e.into_inner())[i] = outcome;
        });
    }
    let sent_for = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs_f64(req.drain_seconds.max(0.0));
    // Every request answered ...
    while !tasks.is_empty() {
        if tokio::time::timeout_at(deadline.into(), tasks.join_next())
            .await
            .is_err()
        {
            break;
        }
    }
    tasks.abort_all();
    // ... and every accepted one arrived at the sink (or the drain time is up).
    let accepted = count(
        &answers,
        |a| matches!(a, Answer::Status(s, _) if (200..300).contains(&s)),
    );
    while arrivals.arrived() < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_nanos = arrivals.finish();
    let answers = answers.lock().unwrap_or_else(|e| e.into_inner()).clone();

    let scheduled = |i: usize| period.mul_f64(i as f64).as_nanos() as f64;
    let mut sink_ms = Vec::with_capacity(n);
    let mut answer_ms = Vec::with_capacity(n);
    let mut statuses = serde_json::Map::new();
    let (mut failed, mut pending) = (0u64, 0u64);
    for (i, a) in answers.iter().enumerate() {
        match *a {
            Answer::Status(s, at) => {
                answer_ms.push((at as f64 - scheduled(i)) / 1e6);
                let e = statuses.entry(s.to_string()).or_insert(json!(0));
                *e = json!(e.as_u64().unwrap_or(0) + 1);
            }
            Answer::Failed => failed += 1,
            Answer::Pending => pending += 1,
        }
        if let Some(&at) = at_nanos.get(i).filter(|&&t| t > 0) {
            sink_ms.push((at as f64 - scheduled(i)) / 1e6);
        }
    }
    Ok(json!({
        "requests": n,
        "rate": req.rate,
        "sent_in_s": sent_for.as_secs_f64(),
        "statuses": statuses,
        "failed": failed,
        "unanswered": pending,
        "accepted": accepted,
        "arrived": sink_ms.len(),
        "sink_ms": percentiles(&mut sink_ms),
        "answer_ms": percentiles(&mut answer_ms),
    }))
}

fn count(answers: &Mutex<Vec<Answer>>, pred: impl Fn(Answer) -> bool) -> usize {
    answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|a| pred(**a))
        .count()
}

/// p50, p90, p99 and max (nearest rank) of a sample, or null when it is empty.
fn percentiles(v: &mut [f64]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    json!({ "p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": v[v.len() - 1] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sequence_number_wherever_the_system_put_it() {
        assert_eq!(sequence_number(br#"{"bench_seq":42,"a":1}"#), Some(42));
        assert_eq!(
            sequence_number(br#"{"a":1,"seen":true,"bench_seq": 7}"#),
            Some(7)
        );
        assert_eq!(sequence_number(br#"{"a":1}"#), None);
        assert_eq!(sequence_number(br#"{"bench_seq":"x"}"#), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = percentiles(&mut v);
        assert_eq!(p["p50"], 50.0);
        assert_eq!(p["p99"], 99.0);
        assert_eq!(p["max"], 100.0);
        assert_eq!(percentiles(&mut []), Value::Null);
    }
}
