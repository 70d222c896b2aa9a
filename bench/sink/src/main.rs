//! A tiny, fast HTTP sink for `bench/run`.
//!
//! * any `POST` (any path) answers `200 {}` and bumps a counter;
//! * `GET /count` answers `{"count": N, "idle_ms": M}`, where `idle_ms` is the time since
//!   the last counted request (null before the first), so a client polling `/count` can
//!   tell when the last completion arrived without depending on its polling interval;
//! * `POST /reset` (exact path) sets the counter back to zero without counting itself;
//! * `POST /drive` (exact path) sends open-loop load at a fixed rate to a URL and times each
//!   request from its scheduled send to its arrival here (see [`drive`]).
//!
//! Usage: `switchyard-bench-sink [--listen 127.0.0.1:0] [--delay-ms N] [--threads N]`.
//! With `--listen` port 0 it picks a free port; either way it prints
//! `listening on ADDR` on stdout once it accepts connections.

mod drive;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use axum::Router;

#[derive(Clone)]
struct Sink {
    count: Arc<AtomicU64>,
    /// Nanoseconds from `start` to the last counted request, plus one (0: none yet).
    last: Arc<AtomicU64>,
    start: Instant,
    delay: Option<Duration>,
    arrivals: Arc<drive::Arrivals>,
}

impl Sink {
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

const OK_BODY: &str = "{}";

async fn ingest(State(sink): State<Sink>, body: Bytes) -> impl IntoResponse {
    sink.arrivals.note(&body);
    if let Some(d) = sink.delay {
        tokio::time::sleep(d).await;
    }
    sink.last
        .fetch_max(sink.now_nanos().saturating_add(1), Ordering::Relaxed);
    sink.count.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OK_BODY,
    )
}

async fn count(State(sink): State<Sink>) -> impl IntoResponse {
    let n = sink.count.load(Ordering::Relaxed);
    let last = sink.last.load(Ordering::Relaxed);
    let idle_ms = (last > 0).then(|| sink.now_nanos().saturating_sub(last - 1) as f64 / 1e6);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "count": n, "idle_ms": idle_ms }).to_string(),
    )
}

async fn reset(State(sink): State<Sink>) -> impl IntoResponse {
    sink.count.store(0, Ordering::Relaxed);
    sink.last.store(0, Ordering::Relaxed);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OK_BODY,
    )
}

async fn drive(
    State(sink): State<Sink>,
    Json(req): Json<drive::DriveRequest>,
) -> impl IntoResponse {
    match drive::drive(sink.arrivals.clone(), req).await {
        Ok(figures) => (StatusCode::OK, Json(figures)),
        Err(message) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": message })),
        ),
    }
}

/// The sink's routes.
fn app(delay: Option<Duration>) -> Router {
    let sink = Sink {
        count: Arc::new(AtomicU64::new(0)),
        last: Arc::new(AtomicU64::new(0)),
        start: Instant::now(),
        delay,
        arrivals: Arc::default(),
    };
    Router::new()
        .route("/count", get(count))
        .route("/reset", post(reset))
        .route("/drive", post(drive))
        .fallback(post(ingest))
        .with_state(sink)
}

struct Args {
    listen: SocketAddr,
    delay_ms: u64,
    threads: usize,
}

fn usage() -> ! {
    eprintln!("usage: switchyard-bench-sink [--listen ADDR] [--delay-ms N] [--threads N]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        delay_ms: 0,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => args.listen = value().parse().unwrap_or_else(|_| usage()),
            "--delay-ms" => args.delay_ms = value().parse().unwrap_or_else(|_| usage()),
            "--threads" => args.threads = value().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    args
}

fn main() -> std::io::Result<()> {
    let args = parse_args();
    // One worker thread by default: the sink shares the machine with the engine and the
    // load generator, and a single thread easily answers tens of thousands of requests
    // per second on loopback.
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let app = app((args.delay_ms > 0).then(|| Duration::from_millis(args.delay_ms)));
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("listening on {}", listener.local_addr()?);
        axum::serve(listener, app).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink on a free loopback port; its base URL.
    async fn start() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app(None)).await });
        base
    }

    /// Drives load at the sink itself (a system that passes bodies straight through): every
    /// request is answered, arrives, and is timed.
    #[tokio::test]
    async fn a_drive_at_the_sink_itself_times_every_request() {
        let base = start().await;
        let figures: serde_json::Value = reqwest::Client::new()
            .post(format!("{base}/drive"))
            .json(&serde_json::json!({
                "url": format!("{base}/ingest"), "rate": 200, "seconds": 0.5,
                "body": {"hello": "world"}, "drain_seconds": 10
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(figures["requests"], 100, "{figures}");
        assert_eq!(figures["statuses"]["200"], 100, "{figures}");
        assert_eq!(figures["arrived"], 100, "{figures}");
        let p50 = figures["sink_ms"]["p50"].as_f64().unwrap();
        assert!((0.0..1000.0).contains(&p50), "{figures}");
        let count: serde_json::Value = reqwest::get(format!("{base}/count"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(count["count"], 100, "{count}");
    }

    #[tokio::test]
    async fn a_bad_drive_request_gets_a_clear_error() {
        let base = start().await;
        let resp = reqwest::Client::new()
            .post(format!("{base}/drive"))
            .json(&serde_json::json!({"url": base, "rate": 0, "seconds": 1, "body": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("positive"),
            "{body}"
        );
    }
}
