//! The connection task: connect, declare, consume, watch; on any failure start over with
//! backoff. Deliveries of a lost connection cannot be acknowledged any more: the broker
//! delivers them again, which the engine tolerates (a finished job is recognised as such).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{topology, Delivery, Live, Shared};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the connection is checked and the queue's depth read.
const WATCH_EVERY: Duration = Duration::from_secs(1);

pub async fn run(shared: Arc<Shared>, jobs: mpsc::Sender<Delivery>, dead: mpsc::Sender<Delivery>) {
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u32;
    loop {
        if shared.cancel.is_cancelled() {
            break;
        }
        match connect(&shared, &jobs, &dead).await {
            Ok((conn, live, topology_channel, lost)) => {
                backoff = FIRST_BACKOFF;
                if failures > 0 {
                    tracing::info!(queue = %shared.config.queue, "connected to RabbitMQ again");
                } else {
                    tracing::info!(queue = %shared.config.queue, "connected to RabbitMQ");
                }
                failures = 0;
                metrics::gauge!("switchyard_broker_connected").set(1.0);
                shared.link.send_replace(Some(live));
                let reason = watch(&shared, &conn, &topology_channel, &lost).await;
                shared.link.send_replace(None);
                shared.ready.store(u64::MAX, Ordering::Relaxed);
                metrics::gauge!("switchyard_broker_connected").set(0.0);
                lost.cancel();
                if let Ok(mut e) = shared.last_error.lock() {
                    e.clone_from(&reason);
                }
                if shared.cancel.is_cancelled() {
                    let _ = conn.close(200, "switchyard is stopping".into()).await;
                    break;
                }
                tracing::warn!(error = %reason, "lost the connection to RabbitMQ; reconnecting");
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    conn.close(320, "reconnecting".into()),
                )
                .await;
            }
            Err(e) => {
                failures += 1;
                // The first failure is worth a warning; the rest of an outage, one a minute.
                if failures == 1 || failures.is_multiple_of(60) {
                    tracing::warn!(error = %e, failures, "cannot connect to RabbitMQ; retrying");
                } else {
                    tracing::debug!(error = %e, failures, "cannot connect to RabbitMQ; retrying");
                }
                if let Ok(mut last) = shared.last_error.lock() {
                    *last = e;
                }
                tokio::select! {
                    _ = shared.cancel.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    shared.link.send_replace(None);
    tracing::debug!("RabbitMQ connection task stopped");
}

type Connected = (Connection, Arc<Live>, Channel, CancellationToken);

/// One connection with its topology, publishing channel and consumers.
async fn connect(
    shared: &Shared,
    jobs: &mpsc::Sender<Delivery>,
    dead: &mpsc::Sender<Delivery>,
) -> Result<Connected, String> {
    let config = &shared.config;
    let properties = ConnectionProperties::default().with_connection_name("switchyard".into());
    let conn = tokio::time::timeout(
        config.connect_timeout,
        Connection::connect(&config.url, properties),
    )
    .await
    .map_err(|_| "timed out connecting".to_string())?
    .map_err(|e| e.to_string())?;
    let lost = CancellationToken::new();
    let result = async {
        let topology_channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        topology::declare(&topology_channel, config).await?;
        let publish = conn.create_channel().await.map_err(|e| e.to_string())?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        if config.consume_jobs {
            consume(
                &conn,
                &config.queue,
                config.prefetch.max(1),
                jobs.clone(),
                lost.clone(),
            )
            .await?;
        }
        if config.consume_dead_letters {
            consume(
                &conn,
                &config.dead_letter_queue(),
                8,
                dead.clone(),
                lost.clone(),
            )
            .await?;
        }
        Ok::<_, String>((Arc::new(Live { publish }), topology_channel))
    }
    .await;
    match result {
        Ok((live, topology_channel)) => Ok((conn, live, topology_channel, lost)),
        Err(e) => {
            lost.cancel();
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                conn.close(320, "setup failed".into()),
            )
            .await;
            Err(e)
        }
    }
}

/// A consumer on its own channel, forwarding deliveries until the channel or connection ends
/// (then it cancels `lost`).
async fn consume(
    conn: &Connection,
    queue: &str,
    prefetch: u16,
    tx: mpsc::Sender<Delivery>,
    lost: CancellationToken,
) -> Result<(), String> {
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot consume {queue}: {e}"))?;
    let queue = queue.to_string();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = lost.cancelled() => break,
                n = consumer.next() => n,
            };
            match next {
                Some(Ok(d)) => {
                    if d.redelivered {
                        metrics::counter!("switchyard_broker_redelivered_total").increment(1);
                    }
                    if tx.send(Delivery::new(d)).await.is_err() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(queue = %queue, error = %e, "consumer ended");
                    break;
                }
                None => {
                    tracing::debug!(queue = %queue, "consumer cancelled");
                    break;
                }
            }
        }
        // Keep the channel open until here: dropping it would not close it, but be explicit.
        drop(channel);
        lost.cancel();
    });
    Ok(())
}

/// Waits until the connection is lost (or the broker is closed); returns why.
async fn watch(
    shared: &Shared,
    conn: &Connection,
    topology_channel: &Channel,
    lost: &CancellationToken,
) -> String {
    let mut events = Box::pin(conn.events_listener());
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return "closed".into(),
            _ = lost.cancelled() => return "a consumer stopped".into(),
            ev = events.next() => match ev {
                Some(lapin::Event::Error(e)) => return e.to_string(),
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(%reason, "RabbitMQ blocks publishing (resource alarm)");
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    tracing::info!("RabbitMQ unblocked publishing");
                }
                Some(_) => {}
                None => return "the connection's event stream ended".into(),
            },
            _ = tick.tick() => {
                if !conn.status().connected() {
                    return "the connection is closed".into();
                }
                match topology::depth(topology_channel, &shared.config.queue).await {
                    Ok(n) => shared.ready.store(u64::from(n), Ordering::Relaxed),
                    Err(e) => return e,
                }
            }
        }
    }
}
