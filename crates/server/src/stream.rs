//! `GET /api/v1/events/stream`: Server-Sent Events of newly stored events and of the runs they
//! touch — the live feed behind the web view.
//!
//! The stream follows the store by sequence number (as `events tail` does), so it sees what
//! any process wrote; each SSE message of type `event` carries the event's `seq` as its id,
//! and a client that reconnects with `Last-Event-ID` resumes where it stopped. After a batch
//! of events, a `run` message carries the current summary of each run they belong to; runs
//! seen running are looked at again every second, so a run that ends without emitting (a
//! skipped last agent) is still reported.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::Value;
use switchyard_store::Store;
use switchyard_types::{Event, RunId, RunStatus};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::AppState;

/// How often the store is asked for new events.
const POLL: Duration = Duration::from_millis(250);
/// Running runs are looked at again every this many polls.
const RECHECK_EVERY: u64 = 4;
/// Events read per store query.
const PAGE: usize = 200;
/// Running runs one stream keeps an eye on.
const MAX_WATCHED: usize = 256;

/// Query of `GET /api/v1/events/stream`.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// Only this story's events and runs.
    story: Option<String>,
    /// Start after this sequence number (a `Last-Event-ID` header wins).
    after: Option<i64>,
    /// `false` leaves payloads out (a lighter feed for lists).
    payloads: Option<bool>,
}

/// `GET /api/v1/events/stream?story=S&after=SEQ&payloads=false`.
pub async fn events_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let store = Arc::clone(state.engine.store());
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = match resume.or(q.after) {
        Some(seq) => seq.max(0),
        None => store.last_event_seq().await?,
    };
    let follower = Follower {
        store,
        story: q.story.filter(|s| !s.is_empty()),
        payloads: q.payloads.unwrap_or(true),
        after,
        watched: HashMap::new(),
        order: VecDeque::new(),
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(follower.run(tx, state.shutdown.clone()));
    let stream = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The receiving side went away.
struct Closed;

struct Follower {
    store: Arc<dyn Store>,
    story: Option<String>,
    payloads: bool,
    after: i64,
    /// Running runs and the summary last sent for each.
    watched: HashMap<RunId, Value>,
    order: VecDeque<RunId>,
}

impl Follower {
    async fn run(mut self, tx: mpsc::Sender<SseEvent>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut polls: u64 = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = tick.tick() => {}
            }
            polls += 1;
            match self.poll(&tx, polls.is_multiple_of(RECHECK_EVERY)).await {
                Ok(()) => {}
                Err(StepError::Closed(Closed)) => return,
                Err(StepError::Store(e)) => {
                    tracing::warn!(error = %e, "event stream: the store did not answer; retrying");
                }
            }
        }
    }

    /// Sends the events stored since the last poll, then the runs they touched (and, when
    /// `recheck`, the watched running runs whose summary changed).
    async fn poll(&mut self, tx: &mpsc::Sender<SseEvent>, recheck: bool) -> Result<(), StepError> {
        let mut touched: Vec<RunId> = Vec::new();
        let mut seen: HashSet<RunId> = HashSet::new();
        loop {
            let events = self
                .store
                .events_after(self.after, self.story.as_deref(), PAGE)
                .await?;
            let full = events.len() == PAGE;
            for e in &events {
                if seen.insert(e.run_id) {
                    touched.push(e.run_id);
                }
                if let Some(message) = self.event_message(e) {
                    tx.send(message).await.map_err(|_| Closed)?;
                }
                self.after = e.seq;
            }
            if !full {
                break;
            }
        }
        let mut runs = touched.clone();
        if recheck {
            runs.extend(self.order.iter().filter(|id| !seen.contains(id)));
        }
        for id in runs {
            let Some(run) = self.store.run(id).await? else {
                continue;
            };
            let Ok(summary) = serde_json::to_value(&run) else {
                continue;
            };
            let changed = self.watched.get(&id) != Some(&summary);
            if seen.contains(&id) || changed {
                if let Ok(message) = SseEvent::default().event("run").json_data(&summary) {
                    tx.send(message).await.map_err(|_| Closed)?;
                }
            }
            self.watch(id, run.status, summary);
        }
        Ok(())
    }

    fn event_message(&self, e: &Event) -> Option<SseEvent> {
        let mut value = serde_json::to_value(e).ok()?;
        if !self.payloads {
            if let Some(map) = value.as_object_mut() {
                map.remove("payload");
            }
        }
        SseEvent::default()
            .event("event")
            .id(e.seq.to_string())
            .json_data(&value)
            .ok()
    }

    fn watch(&mut self, id: RunId, status: RunStatus, summary: Value) {
        if status != RunStatus::Running {
            if self.watched.remove(&id).is_some() {
                self.order.retain(|r| *r != id);
            }
            return;
        }
        if self.watched.insert(id, summary).is_none() {
            self.order.push_back(id);
            if self.order.len() > MAX_WATCHED {
                if let Some(oldest) = self.order.pop_front() {
                    self.watched.remove(&oldest);
                }
            }
        }
    }
}

enum StepError {
    Closed(Closed),
    Store(switchyard_store::Error),
}

impl From<Closed> for StepError {
    fn from(c: Closed) -> Self {
        StepError::Closed(c)
    }
}

impl From<switchyard_store::Error> for StepError {
    fn from(e: switchyard_store::Error) -> Self {
        StepError::Store(e)
    }
}
