//! Scaled out: RabbitMQ or PostgreSQL stopped and restarted in a burst of webhooks.

use super::*;

/// Polls `/readyz` until `check` holds for its answer.
async fn wait_ready(url: &str, what: &str, check: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/readyz")).await {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or_default();
            if check(status, &body) {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "/readyz never showed {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_restart_mid_burst_answers_503_then_completes_every_202() {
    let Some(svc) = Services::new("scaled::rabbitmq_restart_mid_burst…").await else {
        return;
    };
    let rabbit = PrivateService::rabbitmq();
    let stories = stories_dir(&[("burst.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let front = svc
        .front_on(
            &rabbit.url,
            stories.path(),
            &data.path().join("front"),
            &sink,
        )
        .await;
    let mut worker = Worker::start(
        svc.args(&rabbit.url),
        stories.path(),
        data.path().join("w.log"),
        &[],
    );
    worker.ready().await;

    let burst = Burst::start(format!("{}/webhook/burst/inbound", front.url), 12);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    rabbit.stop();
    // Once the front end has noticed, webhooks are refused and /readyz says why.
    let body = wait_ready(&front.url, "the queue down", |status, b| {
        status == 503 && b["queue"] != "ok"
    })
    .await;
    assert_eq!(body["store"], "ok", "{body}");
    // The worker's /readyz says so too.
    let worker_url = format!("http://127.0.0.1:{}", worker.port);
    wait_ready(&worker_url, "the queue down on the worker", |status, b| {
        status == 503 && b["queue"] != "ok"
    })
    .await;
    let down_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let down_until = Instant::now();
    rabbit.restart();
    wait_ready(&front.url, "the queue back", |status, _| status == 200).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answers: Vec<Answer> = burst.finish().await;
    let (acknowledged, refused) =
        assert_outage(&answers, down_from, down_until, &front, &sink).await;
    wait_ready(
        &format!("http://127.0.0.1:{}", worker.port),
        "the worker ready",
        |s, _| s == 200,
    )
    .await;
    eprintln!(
        "{acknowledged} acknowledged, {refused} answered 503 while RabbitMQ was down; all delivered without a restart of Switchyard"
    );
    drop((worker, front));
    drop(rabbit);
    svc.close().await;
}

/// The answers sent and answered while a service was down (`from`..`until`) must all be 503,
/// some after it must be 202, and every 202 must complete at the sink.
async fn assert_outage(
    answers: &[Answer],
    from: Instant,
    until: Instant,
    front: &Server,
    sink: &Sink,
) -> (usize, usize) {
    let during: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent >= from && a.answered <= until)
        .collect();
    // For a failure message: (sent, answered) in ms relative to the outage's start, status.
    let ms = |t: Instant| {
        if t >= from {
            t.duration_since(from).as_millis() as i64
        } else {
            -(from.duration_since(t).as_millis() as i64)
        }
    };
    let around: Vec<(i64, i64, u16)> = answers
        .iter()
        .filter(|a| a.answered + Duration::from_secs(3) >= from && a.sent <= until)
        .map(|a| (ms(a.sent), ms(a.answered), a.status))
        .collect();
    assert!(
        during.len() >= 3,
        "too few webhooks during the outage to mean anything: {} (sent ms after the outage began, took ms, status: {around:?})",
        during.len()
    );
    assert!(
        during.iter().all(|a| a.status == 503),
        "webhooks during the outage must get 503, got {:?} {:?}",
        during.iter().map(|a| a.status).collect::<HashSet<_>>(),
        during
            .iter()
            .filter_map(|a| a.error.as_deref())
            .collect::<Vec<_>>()
    );
    let after = answers
        .iter()
        .filter(|a| a.sent > until && a.status == 202)
        .count();
    assert!(after > 0, "no webhook was accepted after the outage");
    let acknowledged = acknowledged(answers);
    assert_all_delivered(front, sink, &acknowledged, Duration::from_secs(90)).await;
    (acknowledged.len(), during.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_restart_mid_burst_pauses_workers_and_completes_every_202() {
    let test = "scaled::postgresql_restart_mid_burst…";
    let Some(amqp) = switchyard_broker::testing::server_url(test) else {
        return;
    };
    if switchyard_store::postgres::testing::server_url(test).is_none() {
        return;
    }
    let pg = PrivateService::postgres();
    let queue = unique_queue("e2e");
    let args = vec![
        "--database-url",
        pg.url.as_str(),
        "--amqp-url",
        amqp.as_str(),
        "--amqp-queue",
        queue.as_str(),
    ];
    let stories = stories_dir(&[("burst.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let mut front_args = args.clone();
    front_args.push("--no-workers");
    let front = Server::start_with(stories.path(), &data.path().join("front"), &front_args).await;
    assert!(front
        .cli(&["resource", "set", "sink_url", &sink.url])
        .status
        .success());
    // The workers use the key the front end generated.
    let key_file = data.path().join("front").join("master.key");
    let key_file = key_file.to_str().unwrap();
    let worker_args = [args.clone(), vec!["--master-key-file", key_file]].concat();
    let mut w1 = Worker::start(
        worker_args.clone(),
        stories.path(),
        data.path().join("w1.log"),
        &[],
    );
    let mut w2 = Worker::start(worker_args, stories.path(), data.path().join("w2.log"), &[]);
    w1.ready().await;
    w2.ready().await;

    let burst = Burst::start(format!("{}/webhook/burst/inbound", front.url), 12);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    pg.stop();
    let body = wait_ready(&front.url, "the store down", |status, b| {
        status == 503 && b["store"] != "ok"
    })
    .await;
    assert_eq!(body["queue"], "ok", "{body}");
    // The workers' /readyz say so too.
    for w in [&w1, &w2] {
        wait_ready(
            &format!("http://127.0.0.1:{}", w.port),
            "the store down on a worker",
            |status, b| status == 503 && b["store"] != "ok",
        )
        .await;
    }
    let down_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let down_until = Instant::now();
    pg.restart();
    wait_ready(&front.url, "the store back", |status, _| status == 200).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answers = burst.finish().await;
    let (acknowledged, refused) =
        assert_outage(&answers, down_from, down_until, &front, &sink).await;
    for w in [&w1, &w2] {
        wait_ready(
            &format!("http://127.0.0.1:{}", w.port),
            "a worker ready again",
            |status, _| status == 200,
        )
        .await;
    }
    eprintln!(
        "{acknowledged} acknowledged, {refused} answered 503 while PostgreSQL was down; all delivered by the workers without a restart"
    );
    drop((w1, w2, front));
}
