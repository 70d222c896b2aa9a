//! Agent state (admissions, implode groups), sub-story wake-ups and resources.

use std::sync::Arc;
use std::time::Duration;

use switchyard_store::{Finished, ImplodeAdd, StateScope, Store};
use switchyard_types::{JobId, RunStatus};

use crate::support::{emit, finish, start, start_child};

type S = Arc<dyn Store>;

fn scope(agent: &str) -> StateScope {
    StateScope {
        story: "stateful".into(),
        agent: agent.into(),
    }
}

pub async fn admit_deduplicate_window(store: S) {
    let sc = scope("dedupe");
    let now = switchyard_types::now();
    let minute = Duration::from_secs(60);
    let (j1, j2, j3, j4) = (JobId::new(), JobId::new(), JobId::new(), JobId::new());
    assert!(store.admit(&sc, "ada@x", j1, now, minute, 1).await.unwrap());
    let later = now + chrono::Duration::seconds(30);
    assert!(
        !store
            .admit(&sc, "ada@x", j2, later, minute, 1)
            .await
            .unwrap(),
        "a repeat within the window is dropped"
    );
    assert!(
        store
            .admit(&sc, "ada@x", j1, later, minute, 1)
            .await
            .unwrap(),
        "a re-executed job is admitted again"
    );
    assert!(
        store
            .admit(&sc, "bob@x", j2, later, minute, 1)
            .await
            .unwrap(),
        "keys are separate"
    );
    assert!(
        store
            .admit(&scope("other"), "ada@x", j3, later, minute, 1)
            .await
            .unwrap(),
        "agents are separate"
    );
    let after_window = now + chrono::Duration::seconds(61);
    assert!(
        store
            .admit(&sc, "ada@x", j3, after_window, minute, 1)
            .await
            .unwrap(),
        "the window has passed"
    );
    assert!(
        !store
            .admit(&sc, "ada@x", j4, after_window, minute, 1)
            .await
            .unwrap(),
        "a new window opened"
    );
}

pub async fn admit_throttle_limit(store: S) {
    let sc = scope("throttle");
    let now = switchyard_types::now();
    let per = Duration::from_secs(10);
    let mut passed = 0;
    for i in 0..5 {
        let at = now + chrono::Duration::milliseconds(i * 100);
        if store
            .admit(&sc, "", JobId::new(), at, per, 2)
            .await
            .unwrap()
        {
            passed += 1;
        }
    }
    assert_eq!(passed, 2);
    let next = now + chrono::Duration::seconds(11);
    assert!(store
        .admit(&sc, "", JobId::new(), next, per, 2)
        .await
        .unwrap());
}

pub async fn concurrent_admissions_of_one_key_let_one_through(store: S) {
    let now = switchyard_types::now();
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .admit(
                    &scope("dedupe"),
                    "same",
                    JobId::new(),
                    now,
                    Duration::from_secs(60),
                    1,
                )
                .await
                .unwrap()
        }));
    }
    let mut passed = 0;
    for t in tasks {
        passed += usize::from(t.await.unwrap());
    }
    assert_eq!(passed, 1);
}

pub async fn implode_completes_groups_and_flushes(store: S) {
    let sc = scope("gather");
    let now = switchyard_types::now();
    // The opener is a real job, deferred until its `max_wait`.
    let mut opener = start("gather", &["order"]);
    opener.jobs[0].deferred = true;
    opener.jobs[0].due_at = now + chrono::Duration::hours(1);
    store.start_run(opener.clone()).await.unwrap();
    let (j1, j2, j3) = (opener.jobs[0].id, JobId::new(), JobId::new());
    let item = |s: &str| -> Arc<str> { s.into() };
    assert_eq!(
        store
            .implode_add(&sc, "k", j1, now, item("1"), 3)
            .await
            .unwrap(),
        ImplodeAdd::Pending { opened: true }
    );
    let t2 = now + chrono::Duration::milliseconds(1);
    assert_eq!(
        store
            .implode_add(&sc, "k", j2, t2, item("2"), 3)
            .await
            .unwrap(),
        ImplodeAdd::Pending { opened: false }
    );
    let t3 = now + chrono::Duration::milliseconds(2);
    let items: Vec<String> = vec!["1".into(), "2".into(), "3".into()];
    assert_eq!(
        store
            .implode_add(&sc, "k", j3, t3, item("3"), 3)
            .await
            .unwrap(),
        ImplodeAdd::Complete {
            items: items.clone(),
            woke: Some(j1)
        },
        "the completed group wakes the job that opened it"
    );
    let woken = store
        .job(j1)
        .await
        .unwrap()
        .expect("the opener still waits");
    assert!(woken.due_at <= t3, "the opener is due now, not at max_wait");
    assert_eq!(
        store
            .implode_add(&sc, "k", j3, t3, item("3"), 3)
            .await
            .unwrap(),
        ImplodeAdd::Complete { items, woke: None },
        "a re-executed job completes its group again, identically"
    );
    assert_eq!(
        store.implode_flush(&sc, "k", j1).await.unwrap(),
        None,
        "the opener's timeout finds its group already complete"
    );
    // A group that times out.
    let j4 = JobId::new();
    assert_eq!(
        store
            .implode_add(&sc, "k", j4, t3, item("4"), 3)
            .await
            .unwrap(),
        ImplodeAdd::Pending { opened: true }
    );
    assert_eq!(
        store.implode_flush(&sc, "k", j4).await.unwrap(),
        Some(vec!["4".to_string()])
    );
    assert_eq!(
        store.implode_flush(&sc, "k", j4).await.unwrap(),
        Some(vec!["4".to_string()]),
        "a re-executed flush gets the same items"
    );
    let too_big: Arc<str> = "x".repeat((1 << 20) + 1).into();
    assert!(store
        .implode_add(&sc, "k", JobId::new(), now, too_big, 3)
        .await
        .is_err());
}

/// A parent run whose `story` agent job waits (deferred for an hour) for a child run.
async fn waiting_parent(store: &S) -> JobId {
    let mut parent = start("parent", &["call"]);
    let hour = switchyard_types::now() + chrono::Duration::hours(1);
    parent.jobs[0].deferred = true;
    parent.jobs[0].due_at = hour;
    store.start_run(parent.clone()).await.unwrap();
    parent.jobs[0].id
}

pub async fn parent_wakes_when_exit_emits(store: S) {
    let parent = waiting_parent(&store).await;
    let child = start_child("child", &["work"], parent, "exit");
    store.start_run(child.clone()).await.unwrap();
    let (f, _, next) = emit(&child.jobs[0], 1, &["exit", "audit"]);
    assert_eq!(
        store.finish_job(f).await.unwrap(),
        Finished::Applied {
            run_ended: None,
            woke: None
        },
        "work is not the exit agent"
    );
    let (f, _, _) = emit(&next[0], 2, &[]);
    let finished_at = f.finished_at;
    assert_eq!(
        store.finish_job(f).await.unwrap(),
        Finished::Applied {
            run_ended: None,
            woke: Some(parent)
        }
    );
    let woken = store
        .job(parent)
        .await
        .unwrap()
        .expect("the parent job waits");
    assert!(woken.due_at <= finished_at, "the parent is due now");
}

/// The child can end while the parent's execution that started it is still running: that
/// execution then defers (waits for the wake it has already missed). The wake must win.
pub async fn a_wake_during_execution_survives_its_deferral(store: S) {
    let mut parent = start("parent", &["call"]);
    parent.jobs[0].due_at = switchyard_types::now();
    store.start_run(parent.clone()).await.unwrap();
    let parent_job = parent.jobs[0].id;
    let started_at = switchyard_types::now();
    // The parent's first execution starts its child; the child emits from its exit agent...
    let child = start_child("child", &["exit"], parent_job, "exit");
    store.start_run(child.clone()).await.unwrap();
    let (f, _, _) = emit(&child.jobs[0], 1, &[]);
    let woken_at = f.finished_at;
    assert_eq!(
        store.finish_job(f).await.unwrap(),
        Finished::Applied {
            run_ended: Some(RunStatus::Succeeded),
            woke: Some(parent_job)
        }
    );
    // ...and only then does the parent's execution record its deferral for a day.
    let day = switchyard_types::now() + chrono::Duration::days(1);
    store
        .reschedule(switchyard_store::Reschedule {
            job_id: parent_job,
            attempts: 1,
            due_at: day,
            started_at: Some(started_at),
            error: None,
            resume: true,
        })
        .await
        .unwrap();
    let job = store.job(parent_job).await.unwrap().expect("still waiting");
    assert!(
        job.due_at <= woken_at,
        "the wake was lost: due {} instead of at once",
        job.due_at
    );
    // A retry (not a wait) of another job is not pulled forward by anything.
    let other = start("other", &["work"]);
    store.start_run(other.clone()).await.unwrap();
    store
        .reschedule(switchyard_store::Reschedule {
            job_id: other.jobs[0].id,
            attempts: 1,
            due_at: day,
            started_at: Some(started_at),
            error: Some("boom".into()),
            resume: false,
        })
        .await
        .unwrap();
    let job = store.job(other.jobs[0].id).await.unwrap().unwrap();
    assert_eq!(job.due_at, day);
}

pub async fn parent_wakes_when_child_run_ends(store: S) {
    let parent = waiting_parent(&store).await;
    let child = start_child("child", &["work"], parent, "exit");
    store.start_run(child.clone()).await.unwrap();
    let mut f = finish(&child.jobs[0], vec![], vec![]);
    f.state = switchyard_types::JobState::Failed;
    f.unhandled_failure = Some("work: boom".into());
    assert_eq!(
        store.finish_job(f).await.unwrap(),
        Finished::Applied {
            run_ended: Some(RunStatus::Failed),
            woke: Some(parent)
        }
    );
    // A parent that has finished meanwhile is not woken.
    let parent2 = waiting_parent(&store).await;
    let child = start_child("child", &["work"], parent2, "exit");
    store.start_run(child.clone()).await.unwrap();
    let pjob = store.job(parent2).await.unwrap().unwrap();
    let mut pf = finish(
        &switchyard_store::NewJob {
            id: pjob.id,
            run_id: pjob.run_id,
            story: "parent".into(),
            agent: "call".into(),
            input_event_id: pjob.input_event_id,
            created_at: pjob.due_at,
            due_at: pjob.due_at,
            deferred: true,
        },
        vec![],
        vec![],
    );
    pf.state = switchyard_types::JobState::Failed;
    store.finish_job(pf).await.unwrap();
    assert_eq!(
        store
            .finish_job(finish(&child.jobs[0], vec![], vec![]))
            .await
            .unwrap(),
        Finished::Applied {
            run_ended: Some(RunStatus::Succeeded),
            woke: None
        }
    );
}

pub async fn resources_set_list_delete(store: S) {
    assert!(store.resources().await.unwrap().is_empty());
    store.set_resource("sink_url", "http://a").await.unwrap();
    store.set_resource("api", "http://b").await.unwrap();
    store.set_resource("sink_url", "http://c").await.unwrap();
    let all = store.resources().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| (r.name.as_str(), r.value.as_str()))
            .collect::<Vec<_>>(),
        [("api", "http://b"), ("sink_url", "http://c")]
    );
    assert!(store.delete_resource("api").await.unwrap());
    assert!(!store.delete_resource("api").await.unwrap());
    assert_eq!(store.resources().await.unwrap().len(), 1);
    store.ping().await.unwrap();
}
