//! The scaled-out job queue: RabbitMQ through lapin.
//!
//! A [`Broker`] keeps one AMQP connection to RabbitMQ alive in a background task: it connects
//! (retrying with backoff while the broker is away), declares the topology (idempotent), opens
//! a publishing channel with publisher confirms and, as asked, consumers for the jobs queue and
//! the dead-letter queue, whose deliveries it forwards to the [`Receivers`]. When the
//! connection breaks it starts over; nothing has to be restarted.
//!
//! Topology (for a queue named `Q`, default `switchyard.jobs`):
//!
//! ```text
//! publish ──► Q   (durable quorum queue, x-delivery-limit, dead letters to Q.dlx)
//!             │ a message returned more than the limit (nacked, or held by a consumer
//!             │ that died) is dead-lettered
//!             ▼
//!          Q.dlx (fanout exchange) ──► Q.dead (durable quorum queue)
//! ```
//!
//! Messages are persistent JSON [`JobEnvelope`]s; every publish waits for the broker's confirm.
//! Consumers acknowledge manually ([`Delivery::ack`]) and take at most `prefetch` messages at a
//! time. Architecture invariant: this is the only crate that names lapin.

mod link;
pub mod testing;
mod topology;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use serde::{Deserialize, Serialize};
use switchyard_types::{EventId, JobId, Payload, RunId, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Settings of the RabbitMQ queue.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `amqp://user:password@host:5672/vhost` (`amqps://` for TLS).
    pub url: String,
    /// Name of the jobs queue; the dead-letter exchange and queue are `NAME.dlx`, `NAME.dead`.
    pub queue: String,
    /// Deliveries of one message before it is dead-lettered (`x-delivery-limit`).
    pub delivery_limit: u32,
    /// Unacknowledged jobs this process may hold (`basic.qos` prefetch).
    pub prefetch: u16,
    /// Consume the jobs queue (workers).
    pub consume_jobs: bool,
    /// Consume the dead-letter queue.
    pub consume_dead_letters: bool,
    /// Longest wait for a connection attempt.
    pub connect_timeout: Duration,
    /// Longest wait for the broker to confirm a publish.
    pub confirm_timeout: Duration,
}

impl BrokerConfig {
    /// Defaults for a URL.
    pub fn new(url: impl Into<String>) -> Self {
        BrokerConfig {
            url: url.into(),
            queue: "switchyard.jobs".into(),
            delivery_limit: 5,
            prefetch: 64,
            consume_jobs: false,
            consume_dead_letters: false,
            connect_timeout: Duration::from_secs(5),
            confirm_timeout: Duration::from_secs(10),
        }
    }

    fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.queue)
    }

    fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }
}

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not connected to RabbitMQ (now): try again later.
    #[error("RabbitMQ is unavailable: {0}")]
    Unavailable(String),
    /// The broker refused or did not confirm a message.
    #[error("RabbitMQ did not take the message: {0}")]
    NotConfirmed(String),
    /// An acknowledgement could not be sent (the channel it came on is gone; the broker
    /// delivers the message again).
    #[error("cannot acknowledge: {0}")]
    Ack(String),
    /// The URL does not parse.
    #[error("bad AMQP URL: {0}")]
    Url(String),
}

/// Largest message body that carries a job's lineage: above it the lineage is left out and
/// the worker reads it from the store.
pub const MAX_LINEAGE_BYTES: usize = 256 * 1024;

/// One job on the queue: what a worker needs to find and run it. Attempts and leases are
/// read from the store, which is the truth; the input event and its ancestors travel with
/// the job when the publisher had them in memory (they never change once stored), so the
/// worker need not read them back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEnvelope {
    /// The job.
    pub job_id: JobId,
    /// Its run.
    pub run_id: RunId,
    /// Story name.
    pub story: String,
    /// Agent to run.
    pub agent: String,
    /// The event delivered.
    pub input_event_id: EventId,
    /// Tries already made when published.
    pub attempts: u32,
    /// When the run started.
    pub run_started_at: Timestamp,
    /// Whether this is the wake of an agent that asked for one (a delay's second phase).
    #[serde(default)]
    pub resumed: bool,
    /// The input event and its ancestors, nearest first (the input event is the first);
    /// empty when not carried (then the worker reads them from the store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<LineageLink>,
}

/// One stored event of a job's lineage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineageLink {
    /// The event.
    pub event_id: EventId,
    /// The agent that emitted it.
    pub agent: Arc<str>,
    /// Its payload.
    pub payload: Payload,
}

/// A job's message body: with its lineage when the body stays under [`MAX_LINEAGE_BYTES`],
/// else without.
fn message_body(job: &JobEnvelope) -> Result<Vec<u8>, serde_json::Error> {
    let body = serde_json::to_vec(job)?;
    if body.len() <= MAX_LINEAGE_BYTES || job.lineage.is_empty() {
        return Ok(body);
    }
    let lean = JobEnvelope {
        lineage: Vec::new(),
        ..job.clone()
    };
    serde_json::to_vec(&lean)
}

/// A message taken from a queue, to be acknowledged once its outcome is stored.
#[derive(Debug)]
pub struct Delivery {
    /// The message body.
    pub body: Vec<u8>,
    /// Delivered before (to this or another consumer) and not acknowledged.
    pub redelivered: bool,
    /// Why it was dead-lettered (`x-death` reason, e.g. `delivery_limit`, `rejected`), for
    /// messages from the dead-letter queue.
    pub death_reason: Option<String>,
    /// Deliveries so far as counted by the queue (`x-delivery-count`), when known.
    pub delivery_count: Option<u64>,
    acker: lapin::Acker,
}

impl Delivery {
    fn new(d: lapin::message::Delivery) -> Delivery {
        let headers = d.properties.headers().as_ref();
        let delivery_count = headers
            .and_then(|h| h.inner().get("x-delivery-count"))
            .and_then(as_u64);
        let death_reason = headers
            .and_then(|h| h.inner().get("x-death"))
            .and_then(|v| match v {
                AMQPValue::FieldArray(a) => a.as_slice().first().cloned(),
                _ => None,
            })
            .and_then(|first| match first {
                AMQPValue::FieldTable(t) => t.inner().get("reason").and_then(as_string),
                _ => None,
            });
        Delivery {
            body: d.data,
            redelivered: d.redelivered,
            death_reason,
            delivery_count,
            acker: d.acker,
        }
    }

    /// The job it carries.
    pub fn envelope(&self) -> Result<JobEnvelope, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("not a job message: {e}"))
    }

    /// Done with it: the broker forgets it.
    pub async fn ack(&self) -> Result<(), Error> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| Error::Ack(e.to_string()))
            .and_then(sent)
    }

    /// Hand it back for another consumer (counts as a delivery towards the limit).
    pub async fn requeue(&self) -> Result<(), Error> {
        self.acker
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .map_err(|e| Error::Ack(e.to_string()))
            .and_then(sent)
    }

    /// Refuse it for good: it is dead-lettered at once.
    pub async fn reject(&self) -> Result<(), Error> {
        self.acker
            .nack(BasicNackOptions {
                requeue: false,
                multiple: false,
            })
            .await
            .map_err(|e| Error::Ack(e.to_string()))
            .and_then(sent)
    }
}

/// `Ok(false)` from lapin: not sent, because the channel it came on is gone (or it was
/// acknowledged already).
fn sent(done: bool) -> Result<(), Error> {
    if done {
        Ok(())
    } else {
        Err(Error::Ack(
            "its channel is closed; the broker will deliver it again".into(),
        ))
    }
}

fn as_u64(v: &AMQPValue) -> Option<u64> {
    match v {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        _ => None,
    }
}

fn as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Where deliveries arrive. A consumer that was not asked for never yields anything.
pub struct Receivers {
    /// Jobs to run.
    pub jobs: mpsc::Receiver<Delivery>,
    /// Dead-lettered jobs.
    pub dead_letters: mpsc::Receiver<Delivery>,
}

/// The live connection's publishing side.
struct Live {
    publish: Channel,
}

/// Shared between the handle and the connection task.
struct Shared {
    config: BrokerConfig,
    link: watch::Sender<Option<Arc<Live>>>,
    last_error: Mutex<String>,
    /// Ready messages in the jobs queue at the last look (u64::MAX: unknown).
    ready: AtomicU64,
    cancel: CancellationToken,
    closed: AtomicBool,
}

/// A handle on the queue. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("queue", &self.shared.config.queue)
            .finish()
    }
}

impl Broker {
    /// Starts the connection task (which keeps reconnecting until [`Broker::close`]) and
    /// returns at once; see [`Broker::wait_connected`].
    pub fn start(config: BrokerConfig) -> Result<(Broker, Receivers), Error> {
        config
            .url
            .parse::<lapin::uri::AMQPUri>()
            .map_err(Error::Url)?;
        let capacity = usize::from(config.prefetch.max(1));
        let (jobs_tx, jobs) = mpsc::channel(capacity);
        let (dead_tx, dead_letters) = mpsc::channel(16);
        let (link, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            config,
            link,
            last_error: Mutex::new("not connected yet".into()),
            ready: AtomicU64::new(u64::MAX),
            cancel: CancellationToken::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(link::run(Arc::clone(&shared), jobs_tx, dead_tx));
        Ok((Broker { shared }, Receivers { jobs, dead_letters }))
    }

    /// Waits until connected, at most `timeout`; the last connection error otherwise.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), Error> {
        let mut rx = self.shared.link.subscribe();
        let connected = tokio::time::timeout(timeout, rx.wait_for(|l| l.is_some()))
            .await
            .is_ok_and(|r| r.is_ok());
        if connected {
            Ok(())
        } else {
            Err(Error::Unavailable(self.last_error()))
        }
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        self.shared.link.borrow().is_some()
    }

    /// `Ok` when connected, else why not (for `/readyz`).
    pub fn status(&self) -> Result<(), String> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(self.last_error())
        }
    }

    fn last_error(&self) -> String {
        self.shared
            .last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Messages ready in the jobs queue at the last look (about once a second), if known.
    pub fn ready_messages(&self) -> Option<u64> {
        match self.shared.ready.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        }
    }

    /// The jobs queue's name.
    pub fn queue(&self) -> &str {
        &self.shared.config.queue
    }

    /// Deliveries of one message before it is dead-lettered.
    pub fn delivery_limit(&self) -> u32 {
        self.shared.config.delivery_limit
    }

    /// Publishes jobs (persistent) and waits for the broker to confirm every one.
    pub async fn publish(&self, jobs: &[JobEnvelope]) -> Result<(), Error> {
        if jobs.is_empty() {
            return Ok(());
        }
        let live = self
            .shared
            .link
            .borrow()
            .clone()
            .ok_or_else(|| Error::Unavailable(self.last_error()))?;
        // Bounded as a whole: a broker that blocks publishers (a resource alarm) or a
        // half-dead connection must not hold a webhook for ever.
        let result = tokio::time::timeout(
            self.shared.config.confirm_timeout,
            self.publish_on(&live, jobs),
        )
        .await
        .unwrap_or_else(|_| Err(Error::NotConfirmed("no confirm in time".into())));
        match &result {
            Ok(()) => {
                metrics::counter!("switchyard_broker_published_total").increment(jobs.len() as u64)
            }
            Err(_) => metrics::counter!("switchyard_broker_publish_failures_total")
                .increment(jobs.len() as u64),
        }
        result
    }

    async fn publish_on(&self, live: &Live, jobs: &[JobEnvelope]) -> Result<(), Error> {
        let queue = self.shared.config.queue.as_str();
        let mut confirms = Vec::with_capacity(jobs.len());
        for job in jobs {
            let body = message_body(job).map_err(|e| Error::NotConfirmed(e.to_string()))?;
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(job.job_id.to_string().into());
            let confirm = live
                .publish
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &body,
                    properties,
                )
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            confirms.push(confirm);
        }
        for r in futures::future::join_all(confirms).await {
            match r {
                Ok(lapin::Confirmation::Ack(None)) => {}
                Ok(lapin::Confirmation::Ack(Some(returned))) => {
                    return Err(Error::NotConfirmed(format!(
                        "returned as unroutable: {}",
                        returned.reply_text
                    )))
                }
                Ok(lapin::Confirmation::Nack(_)) => {
                    return Err(Error::NotConfirmed("the broker refused it (nack)".into()))
                }
                Ok(lapin::Confirmation::NotRequested) => {}
                Err(e) => return Err(Error::Unavailable(e.to_string())),
            }
        }
        Ok(())
    }

    /// Stops the connection task and closes the connection (unacknowledged deliveries go
    /// back to the queue).
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.cancel.cancel();
        let mut rx = self.shared.link.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| l.is_none())).await;
    }
}

/// The arguments of a quorum queue.
fn quorum_arguments(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    for (k, v) in extra {
        args.insert((*k).into(), v.clone());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_old_ones_still_parse() {
        let e = JobEnvelope {
            job_id: JobId::new(),
            run_id: RunId::new(),
            story: "s".into(),
            agent: "a".into(),
            input_event_id: EventId::new(),
            attempts: 2,
            run_started_at: switchyard_types::now(),
            resumed: true,
            lineage: Vec::new(),
        };
        let text = serde_json::to_vec(&e).unwrap();
        assert_eq!(serde_json::from_slice::<JobEnvelope>(&text).unwrap(), e);
        let mut v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        v.as_object_mut().unwrap().remove("resumed");
        let back: JobEnvelope = serde_json::from_value(v).unwrap();
        assert!(!back.resumed);
        assert!(back.lineage.is_empty());
    }

    fn with_lineage(payload_bytes: usize) -> JobEnvelope {
        let link = |agent: &str, text: String| LineageLink {
            event_id: EventId::new(),
            agent: agent.into(),
            payload: Arc::new(serde_json::json!({ "text": text, "n": 1 })),
        };
        JobEnvelope {
            job_id: JobId::new(),
            run_id: RunId::new(),
            story: "s".into(),
            agent: "post".into(),
            input_event_id: EventId::new(),
            attempts: 0,
            run_started_at: switchyard_types::now(),
            resumed: false,
            lineage: vec![
                link("transform", "x".repeat(payload_bytes)),
                link("webhook", "y".into()),
            ],
        }
    }

    #[test]
    fn a_lineage_travels_with_its_job() {
        let e = with_lineage(1000);
        let body = message_body(&e).unwrap();
        let back: JobEnvelope = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, e);
        assert_eq!(&*back.lineage[0].agent, "transform");
        assert_eq!(back.lineage[1].payload["text"], "y");
    }

    #[test]
    fn a_lineage_too_large_for_a_message_is_left_to_the_store() {
        let e = with_lineage(MAX_LINEAGE_BYTES);
        let body = message_body(&e).unwrap();
        assert!(body.len() < 4096, "{} bytes", body.len());
        let back: JobEnvelope = serde_json::from_slice(&body).unwrap();
        assert!(back.lineage.is_empty());
        assert_eq!(back.job_id, e.job_id);
        assert_eq!(back.agent, "post");
    }

    #[test]
    fn bad_urls_are_refused_up_front() {
        assert!(matches!(
            Broker::start(BrokerConfig::new("http://nope")),
            Err(Error::Url(_))
        ));
    }
}
