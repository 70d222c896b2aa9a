//! Declares the queues and exchange (idempotent: the same declaration again is a no-op; a
//! queue that exists with other arguments is an error that names the queue).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::{quorum_arguments, BrokerConfig};

/// The jobs queue, its dead-letter exchange and dead-letter queue.
pub async fn declare(channel: &Channel, config: &BrokerConfig) -> Result<(), String> {
    let dlx = config.dead_letter_exchange();
    let dead = config.dead_letter_queue();
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot declare exchange {dlx}: {e}"))?;
    channel
        .queue_declare(dead.as_str().into(), durable, quorum_arguments(&[]))
        .await
        .map_err(|e| mismatch(&dead, e))?;
    channel
        .queue_bind(
            dead.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot bind {dead} to {dlx}: {e}"))?;
    let limit = i32::try_from(config.delivery_limit.max(1)).unwrap_or(i32::MAX);
    let args = quorum_arguments(&[
        ("x-delivery-limit", AMQPValue::LongInt(limit)),
        (
            "x-dead-letter-exchange",
            AMQPValue::LongString(dlx.as_str().into()),
        ),
    ]);
    channel
        .queue_declare(config.queue.as_str().into(), durable, args)
        .await
        .map_err(|e| mismatch(&config.queue, e))?;
    Ok(())
}

fn mismatch(queue: &str, e: lapin::Error) -> String {
    let text = e.to_string();
    if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent") {
        format!(
            "queue {queue} exists with other settings ({text}); delete it or choose another name with --amqp-queue"
        )
    } else {
        format!("cannot declare queue {queue}: {text}")
    }
}

/// Messages ready in `queue` (a passive declare).
pub async fn depth(channel: &Channel, queue: &str) -> Result<u32, String> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|q| q.message_count())
        .map_err(|e| format!("cannot read the depth of {queue}: {e}"))
}
