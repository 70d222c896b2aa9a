//! Loads a store the way the engine does under webhook load and prints throughput and
//! group-commit batch sizes: `C` concurrent tasks, each repeatedly starting a run (one
//! event, one job) and finishing its job (one event, no children) — two writes per run.
//!
//! ```sh
//! cargo run --release -p switchyard-store --example store_load -- sqlite /tmp/dir 50 5
//! cargo run --release -p switchyard-store --example store_load -- postgres postgres://… 50 5
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_store::postgres::{PgConfig, PgStore};
use switchyard_store::sqlite::{SqliteConfig, SqliteStore};
use switchyard_store::{FinishJob, NewEvent, NewJob, StartRun, Store};
use switchyard_types::{EventId, EventKind, JobId, JobState, RunId};

fn payload() -> Arc<str> {
    let note = "x".repeat(900);
    format!("{{\"order\":{{\"id\":42,\"note\":\"{note}\"}}}}").into()
}

async fn one_run(store: &dyn Store, body: &Arc<str>) -> switchyard_store::Result<()> {
    let now = switchyard_types::now();
    let run = RunId::new();
    let event = NewEvent {
        id: EventId::new(),
        story: "load".into(),
        agent: "inbound".into(),
        run_id: run,
        parent_id: None,
        kind: EventKind::Event,
        created_at: now,
        json: Arc::clone(body),
    };
    let job = NewJob {
        id: JobId::new(),
        run_id: run,
        story: "load".into(),
        agent: "shape".into(),
        input_event_id: event.id,
        created_at: now,
        due_at: now,
        deferred: false,
    };
    let input = event.id;
    store
        .start_run(StartRun {
            run_id: run,
            event,
            jobs: vec![job.clone()],
            idempotency_key: None,
            started_by: None,
            parent: None,
        })
        .await?;
    let out = NewEvent {
        id: EventId::new(),
        story: "load".into(),
        agent: "shape".into(),
        run_id: run,
        parent_id: Some(input),
        kind: EventKind::Event,
        created_at: now,
        json: Arc::clone(body),
    };
    store
        .finish_job(FinishJob {
            job_id: job.id,
            run_id: run,
            state: JobState::Succeeded,
            attempts: 1,
            started_at: now,
            finished_at: switchyard_types::now(),
            error: None,
            events: vec![out],
            jobs: vec![],
            unhandled_failure: None,
        })
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (kind, target) = match (args.first(), args.get(1)) {
        (Some(k), Some(t)) => (k.as_str(), t.as_str()),
        _ => {
            eprintln!("usage: store_load sqlite DIR|postgres URL [CONCURRENCY] [SECONDS]");
            std::process::exit(2);
        }
    };
    let concurrency: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let store: Arc<dyn Store> = match kind {
        "sqlite" => Arc::new(SqliteStore::open(SqliteConfig::new(target)).expect("open SQLite")),
        _ => Arc::new(
            PgStore::connect(PgConfig::new(target))
                .await
                .expect("connect to PostgreSQL"),
        ),
    };
    let body = payload();
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, body, stop, runs) = (
                Arc::clone(&store),
                Arc::clone(&body),
                Arc::clone(&stop),
                Arc::clone(&runs),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    one_run(store.as_ref(), &body).await.expect("write");
                    runs.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let s = store.commit_stats();
    let n = runs.load(Ordering::Relaxed);
    println!(
        "{kind} c={concurrency}: {:.0} runs/s ({:.0} writes/s), {} commits ({:.0}/s), mean batch {:.1}, max batch {}, mean commit {:.2} ms",
        n as f64 / elapsed,
        s.writes as f64 / elapsed,
        s.commits,
        s.commits as f64 / elapsed,
        s.writes as f64 / s.commits.max(1) as f64,
        s.max_batch,
        s.commit_micros as f64 / s.commits.max(1) as f64 / 1000.0
    );
}
