//! The queue against a real RabbitMQ (tests/services/rabbitmq.sh): publish with confirms,
//! manual acks, redelivery of what a consumer held, and dead-lettering after the delivery
//! limit.

use std::time::Duration;

use switchyard_broker::testing::{server_url, unique_queue};
use switchyard_broker::{Broker, BrokerConfig, Delivery, JobEnvelope};
use switchyard_types::{EventId, JobId, RunId};
use tokio::sync::mpsc;

fn envelope(story: &str) -> JobEnvelope {
    JobEnvelope {
        job_id: JobId::new(),
        run_id: RunId::new(),
        story: story.into(),
        agent: "a".into(),
        input_event_id: EventId::new(),
        attempts: 0,
        run_started_at: switchyard_types::now(),
        resumed: false,
        lineage: Vec::new(),
    }
}

async fn next(rx: &mut mpsc::Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a delivery within 20 s")
        .expect("the consumer is alive")
}

fn config(url: &str, queue: &str) -> BrokerConfig {
    let mut c = BrokerConfig::new(url);
    c.queue = queue.to_string();
    c.delivery_limit = 3;
    c.prefetch = 4;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_jobs_are_delivered_redelivered_when_held_and_dead_lettered_at_the_limit() {
    let Some(url) = server_url("broker::published_jobs_are_delivered…") else {
        return;
    };
    let queue = unique_queue("test.broker");
    let (publisher, _unused) = Broker::start(config(&url, &queue)).unwrap();
    publisher
        .wait_connected(Duration::from_secs(20))
        .await
        .unwrap();

    let mut c = config(&url, &queue);
    c.consume_jobs = true;
    c.consume_dead_letters = true;
    let (consumer, mut rx) = Broker::start(c).unwrap();
    consumer
        .wait_connected(Duration::from_secs(20))
        .await
        .unwrap();

    // Delivered, acknowledged: gone.
    let first = envelope("ok");
    publisher
        .publish(std::slice::from_ref(&first))
        .await
        .unwrap();
    let d = next(&mut rx.jobs).await;
    assert_eq!(d.envelope().unwrap(), first);
    assert!(!d.redelivered);
    d.ack().await.unwrap();

    // Handed back again and again: dead-lettered after the limit, with the reason.
    let poison = envelope("poison");
    publisher
        .publish(std::slice::from_ref(&poison))
        .await
        .unwrap();
    let mut deliveries = 0;
    let dead = loop {
        tokio::select! {
            d = next(&mut rx.jobs) => {
                assert_eq!(d.envelope().unwrap(), poison);
                deliveries += 1;
                d.requeue().await.unwrap();
            }
            d = rx.dead_letters.recv() => break d.expect("dead-letter consumer alive"),
        }
    };
    assert_eq!(dead.envelope().unwrap(), poison);
    assert!(
        (3..=4).contains(&deliveries),
        "dead-lettered after {deliveries} deliveries with a limit of 3"
    );
    assert!(dead.death_reason.is_some(), "{dead:?}");
    eprintln!(
        "dead-lettered after {deliveries} deliveries, reason {:?}",
        dead.death_reason
    );
    dead.ack().await.unwrap();

    // A consumer that goes away without acknowledging: the message goes to another one.
    let held = envelope("held");
    publisher
        .publish(std::slice::from_ref(&held))
        .await
        .unwrap();
    let d = next(&mut rx.jobs).await;
    assert_eq!(d.envelope().unwrap(), held);
    consumer.close().await;
    let mut c = config(&url, &queue);
    c.consume_jobs = true;
    let (other, mut rx2) = Broker::start(c).unwrap();
    let again = next(&mut rx2.jobs).await;
    assert_eq!(again.envelope().unwrap(), held);
    assert!(again.redelivered);
    again.ack().await.unwrap();
    // The first consumer's acknowledgement now fails: its channel is gone.
    assert!(d.ack().await.is_err());

    assert_eq!(publisher.status(), Ok(()));
    other.close().await;
    publisher.close().await;
    assert!(publisher.status().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_means_unavailable_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (b, _rx) = Broker::start(BrokerConfig::new(format!(
        "amqp://guest:guest@127.0.0.1:{port}/%2f"
    )))
    .unwrap();
    let err = b
        .wait_connected(Duration::from_millis(800))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert!(!b.is_connected());
    let publish = b.publish(&[envelope("x")]).await.unwrap_err();
    assert!(
        matches!(publish, switchyard_broker::Error::Unavailable(_)),
        "{publish}"
    );
    b.close().await;
}
