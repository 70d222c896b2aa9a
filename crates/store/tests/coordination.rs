//! Coordination of several processes on the PostgreSQL store (the scaled-out mode): job
//! claims and leases, rescues, the outbox sweeper, named leases. PostgreSQL only: the embedded
//! store has no coordination, which is checked too.

#[path = "conformance/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{finish, start};
use switchyard_store::postgres::testing::{server_url, TestDatabase};
use switchyard_store::postgres::{PgConfig, PgStore};
use switchyard_store::sqlite::{SqliteConfig, SqliteStore};
use switchyard_store::{Claim, Reschedule, Store, Sweep};

async fn store(test: &str) -> Option<(Arc<PgStore>, TestDatabase)> {
    let server = server_url(test)?;
    let db = TestDatabase::create(&server).await.expect("test database");
    let store = PgStore::connect(PgConfig::new(db.url()))
        .await
        .expect("open the PostgreSQL store");
    Some((Arc::new(store), db))
}

const LEASE: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(300);

fn taken(c: Claim) -> (u32, bool, u32) {
    match c {
        Claim::Taken {
            attempts,
            resumed,
            rescues,
        } => (attempts, resumed, rescues),
        other => panic!("expected Taken, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_hold_a_job_for_one_worker_and_count_rescues_from_dead_ones() {
    let Some((pg, db)) = store("coordination::claims").await else {
        return;
    };
    let c = pg.coordination().expect("PostgreSQL coordinates");
    let s = start("story", &["a"]);
    let job = s.jobs[0].clone();
    pg.start_run(s).await.unwrap();

    // The first worker takes it; another finds it held; the holder may take it again.
    assert_eq!(
        taken(c.claim(job.id, job.run_id, "w1", SHORT).await.unwrap()),
        (0, false, 0)
    );
    match c.claim(job.id, job.run_id, "w2", LEASE).await.unwrap() {
        Claim::Held { wait } => assert!(wait <= SHORT, "{wait:?}"),
        other => panic!("expected Held, got {other:?}"),
    }
    assert_eq!(
        taken(c.claim(job.id, job.run_id, "w1", SHORT).await.unwrap()).2,
        0
    );

    // Renewed, the lease holds past its first term.
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.renew("w1", &[job.id], LEASE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(
        c.claim(job.id, job.run_id, "w2", LEASE).await.unwrap(),
        Claim::Held { .. }
    ));

    // w1 "dies": its lease runs out; w2 takes the job back, a rescue.
    c.renew("w1", &[job.id], SHORT).await.unwrap();
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    assert_eq!(
        taken(c.claim(job.id, job.run_id, "w2", SHORT).await.unwrap()).2,
        1
    );
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    assert_eq!(
        taken(c.claim(job.id, job.run_id, "w3", LEASE).await.unwrap()).2,
        2
    );

    // A released job is taken without a rescue.
    c.release("w3", job.id).await.unwrap();
    assert_eq!(
        taken(c.claim(job.id, job.run_id, "w4", LEASE).await.unwrap()).2,
        2
    );

    // Finished: nothing to take.
    pg.finish_job(finish(&job, vec![], vec![])).await.unwrap();
    assert_eq!(
        c.claim(job.id, job.run_id, "w4", LEASE).await.unwrap(),
        Claim::Done
    );
    drop(pg);
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_jobs_are_not_taken_early_and_a_reschedule_reopens_the_outbox() {
    let Some((pg, db)) = store("coordination::deferred").await else {
        return;
    };
    let c = pg.coordination().unwrap();
    let s = start("story", &["delay"]);
    let job = s.jobs[0].clone();
    pg.start_run(s).await.unwrap();
    taken(c.claim(job.id, job.run_id, "w1", LEASE).await.unwrap());

    // The agent asks to be woken in 5 s: the lease ends, the job waits in the outbox.
    let due = switchyard_types::now() + chrono::Duration::seconds(5);
    pg.reschedule(Reschedule {
        job_id: job.id,
        attempts: 0,
        due_at: due,
        started_at: Some(switchyard_types::now()),
        error: None,
        resume: true,
    })
    .await
    .unwrap();
    match c.claim(job.id, job.run_id, "w2", LEASE).await.unwrap() {
        Claim::NotDue { wait } => {
            assert!(
                wait > Duration::from_secs(3) && wait <= Duration::from_secs(5),
                "{wait:?}"
            )
        }
        other => panic!("expected NotDue, got {other:?}"),
    }
    let now = switchyard_types::now();
    assert!(c.due_unpublished(now, 10).await.unwrap().is_empty());
    let later = c.due_unpublished(due, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert!(later[0].resumed);
    // A mark for the job at another due time (it was rescheduled since) is not taken.
    c.mark_published(&[job.id]).await.unwrap();
    c.mark_due_published(&[(job.id, now)]).await.unwrap();
    assert_eq!(c.due_unpublished(due, 10).await.unwrap().len(), 1);
    c.mark_due_published(&[(job.id, later[0].due_at)])
        .await
        .unwrap();
    assert!(c.due_unpublished(due, 10).await.unwrap().is_empty());
    drop(pg);
    db.drop_database().await.unwrap();
}

fn sweep(lost: Option<Duration>) -> Sweep {
    Sweep {
        unpublished_after: Duration::ZERO,
        expired_lease_after: Duration::ZERO,
        lost_after: lost,
        limit: 100,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_publishes_the_outbox_and_takes_back_expired_leases_once() {
    let Some((pg, db)) = store("coordination::sweeper").await else {
        return;
    };
    let c = pg.coordination().unwrap();
    let a = start("story", &["a"]);
    let b = start("story", &["b"]);
    let (ja, jb) = (a.jobs[0].clone(), b.jobs[0].clone());
    pg.start_run(a).await.unwrap();
    pg.start_run(b).await.unwrap();
    c.mark_published(&[jb.id]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Only the unpublished job is swept, once.
    let swept = c.sweep(sweep(None)).await.unwrap();
    assert_eq!(swept.iter().map(|j| j.id).collect::<Vec<_>>(), [ja.id]);
    assert!(c.sweep(sweep(None)).await.unwrap().is_empty());

    // A job held by a worker whose lease ran out is taken back: a rescue, no owner.
    taken(c.claim(ja.id, ja.run_id, "dead", SHORT).await.unwrap());
    assert!(
        c.sweep(sweep(None)).await.unwrap().is_empty(),
        "held, not expired"
    );
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    let swept = c.sweep(sweep(None)).await.unwrap();
    assert_eq!(swept.iter().map(|j| j.id).collect::<Vec<_>>(), [ja.id]);
    assert_eq!(
        taken(c.claim(ja.id, ja.run_id, "w2", LEASE).await.unwrap()).2,
        1
    );

    // Published long ago and never taken (a message the broker lost): swept only when asked.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(c.sweep(sweep(None)).await.unwrap().is_empty());
    let swept = c
        .sweep(sweep(Some(Duration::from_millis(50))))
        .await
        .unwrap();
    assert_eq!(swept.iter().map(|j| j.id).collect::<Vec<_>>(), [jb.id]);
    // A failed publish puts it back in the outbox.
    c.unmark_published(&[jb.id]).await.unwrap();
    assert_eq!(c.sweep(sweep(None)).await.unwrap().len(), 1);
    drop(pg);
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_arriving_together_are_answered_each_for_its_own_job() {
    let Some((pg, db)) = store("coordination::claim_batch").await else {
        return;
    };
    let c = pg.coordination().unwrap();
    let mut jobs = Vec::new();
    for _ in 0..6 {
        let s = start("story", &["a"]);
        jobs.push(s.jobs[0].clone());
        pg.start_run(s).await.unwrap();
    }
    // Job 0 is held by another worker, job 1 is finished, job 2 is held by this worker
    // already (a redelivery); 3, 4 and 5 are free, and 5 is asked for twice.
    taken(
        c.claim(jobs[0].id, jobs[0].run_id, "other", LEASE)
            .await
            .unwrap(),
    );
    taken(
        c.claim(jobs[1].id, jobs[1].run_id, "other", LEASE)
            .await
            .unwrap(),
    );
    pg.finish_job(finish(&jobs[1], vec![], vec![]))
        .await
        .unwrap();
    taken(
        c.claim(jobs[2].id, jobs[2].run_id, "me", LEASE)
            .await
            .unwrap(),
    );
    let asks = [0, 1, 2, 3, 4, 5, 5];
    let answers = futures::future::join_all(
        asks.iter()
            .map(|&i| c.claim(jobs[i].id, jobs[i].run_id, "me", LEASE)),
    )
    .await;
    let answers: Vec<Claim> = answers.into_iter().map(|a| a.unwrap()).collect();
    assert!(matches!(answers[0], Claim::Held { wait } if wait > Duration::from_secs(20)));
    assert_eq!(answers[1], Claim::Done);
    for a in &answers[2..5] {
        assert_eq!(taken(*a), (0, false, 0));
    }
    // The same job twice: one claim takes it; the other finds it held (in the same batch)
    // or takes it again (in a later one: the same owner).
    let fives = &answers[5..];
    assert!(
        fives.iter().any(|a| matches!(a, Claim::Taken { .. }))
            && fives
                .iter()
                .all(|a| matches!(a, Claim::Taken { rescues: 0, .. } | Claim::Held { .. })),
        "{fives:?}"
    );
    // The other worker's job is still its own; this worker's jobs are held for it.
    assert!(matches!(
        c.claim(jobs[3].id, jobs[3].run_id, "other", LEASE)
            .await
            .unwrap(),
        Claim::Held { .. }
    ));
    drop(pg);
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_published_jobs_skips_rows_another_write_holds() {
    use sqlx_core::connection::{ConnectOptions, Connection};
    use sqlx_core::executor::Executor;

    let Some((pg, db)) = store("coordination::mark_skips_locked").await else {
        return;
    };
    let c = pg.coordination().unwrap();
    let a = start("story", &["a"]);
    let b = start("story", &["b"]);
    let (ja, jb) = (a.jobs[0].clone(), b.jobs[0].clone());
    pg.start_run(a).await.unwrap();
    pg.start_run(b).await.unwrap();

    // Another transaction holds job a's row (as a claim or a finish in flight would).
    let options: sqlx_postgres::PgConnectOptions = db.url().parse().unwrap();
    let mut other = options.connect().await.unwrap();
    other.execute("BEGIN").await.unwrap();
    other
        .execute(&*format!(
            "SELECT 1 FROM jobs WHERE id = '{}' FOR UPDATE",
            ja.id
        ))
        .await
        .unwrap();

    // The mark does not wait for it: it marks b and leaves a in the outbox.
    tokio::time::timeout(Duration::from_secs(5), c.mark_published(&[ja.id, jb.id]))
        .await
        .expect("the mark does not wait for a held row")
        .unwrap();
    other.execute("ROLLBACK").await.unwrap();
    other.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let swept = c.sweep(sweep(None)).await.unwrap();
    assert_eq!(swept.iter().map(|j| j.id).collect::<Vec<_>>(), [ja.id]);
    drop(pg);
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_lease_has_one_holder_until_it_runs_out() {
    let Some((pg, db)) = store("coordination::named_lease").await else {
        return;
    };
    let c = pg.coordination().unwrap();
    assert!(c.hold_lease("coordinator", "p1", SHORT).await.unwrap());
    assert!(!c.hold_lease("coordinator", "p2", SHORT).await.unwrap());
    assert!(c.hold_lease("coordinator", "p1", SHORT).await.unwrap());
    assert!(c.hold_lease("other", "p2", SHORT).await.unwrap());
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    assert!(c.hold_lease("coordinator", "p2", LEASE).await.unwrap());
    assert!(!c.hold_lease("coordinator", "p1", LEASE).await.unwrap());
    c.drop_lease("coordinator", "p2").await.unwrap();
    assert!(c.hold_lease("coordinator", "p1", LEASE).await.unwrap());
    drop(pg);
    db.drop_database().await.unwrap();
}

#[test]
fn the_embedded_store_does_not_coordinate() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("d"))).unwrap();
    assert!(store.coordination().is_none());
}
