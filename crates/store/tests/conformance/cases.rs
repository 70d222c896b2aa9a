//! Runs, events and jobs: what both stores must do alike.

use std::collections::HashSet;
use std::sync::Arc;

use switchyard_store::{Error, Finished, Reschedule, RunQuery, Started, Store};
use switchyard_types::{EventId, JobState, RunId, RunStatus};

use crate::support::{emit, finish, job, start};

type S = Arc<dyn Store>;

pub async fn start_run_stores_the_run_its_event_and_jobs(store: S) {
    let s = start("relay", &["shape", "audit"]);
    assert_eq!(store.start_run(s.clone()).await.unwrap(), Started::New);
    let run = store
        .run(s.run_id)
        .await
        .unwrap()
        .expect("the run is stored");
    assert_eq!(run.story, "relay");
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.pending_jobs, 2);
    assert_eq!(run.trigger_event_id, s.event.id);
    assert_eq!(run.trigger_agent, "inbound");
    assert_eq!(run.started_by.as_deref(), Some("webhook"));
    assert_eq!(run.started_at, s.event.created_at);
    assert!(run.finished_at.is_none());
    let event = store.event(s.event.id).await.unwrap().expect("the event");
    assert_eq!(event.payload["n"], 0);
    assert_eq!(event.run_id, s.run_id);
    assert!(event.parent_id.is_none());
    let jobs = store.run_jobs(s.run_id).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs
        .iter()
        .all(|j| j.state == JobState::Queued && j.attempts == 0));
    assert_eq!(
        jobs.iter()
            .map(|j| j.agent.as_str())
            .collect::<HashSet<_>>(),
        HashSet::from(["shape", "audit"])
    );
    let queued = store.job(s.jobs[0].id).await.unwrap().expect("queued job");
    assert_eq!(queued.input_event_id, s.event.id);
    assert_eq!(queued.run_started_at, s.event.created_at);
    assert!(store.run(RunId::new()).await.unwrap().is_none());
    assert!(store.event(EventId::new()).await.unwrap().is_none());
}

pub async fn start_run_without_jobs_succeeds_at_once(store: S) {
    let s = start("lonely", &[]);
    store.start_run(s.clone()).await.unwrap();
    let run = store.run(s.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.finished_at, Some(s.event.created_at));
}

pub async fn idempotency_key_repeats_answer_with_the_first_ids(store: S) {
    let mut first = start("hooks", &["a"]);
    first.idempotency_key = Some("delivery-1".into());
    assert_eq!(store.start_run(first.clone()).await.unwrap(), Started::New);
    let mut again = start("hooks", &["a"]);
    again.idempotency_key = Some("delivery-1".into());
    assert_eq!(
        store.start_run(again.clone()).await.unwrap(),
        Started::Duplicate {
            event_id: first.event.id,
            run_id: first.run_id
        }
    );
    assert!(
        store.run(again.run_id).await.unwrap().is_none(),
        "a repeat stores nothing"
    );
    // The key is per story.
    let mut other = start("other", &["a"]);
    other.idempotency_key = Some("delivery-1".into());
    assert_eq!(store.start_run(other).await.unwrap(), Started::New);
}

pub async fn concurrent_repeats_of_one_key_store_one_run(store: S) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut s = start("hooks", &["a"]);
            s.idempotency_key = Some("same".into());
            (s.run_id, s.event.id, store.start_run(s).await.unwrap())
        }));
    }
    let mut new = Vec::new();
    let mut dups = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (run, ev, Started::New) => new.push((ev, run)),
            (_, _, Started::Duplicate { event_id, run_id }) => dups.push((event_id, run_id)),
        }
    }
    assert_eq!(new.len(), 1, "exactly one delivery stores a run");
    assert!(
        dups.iter().all(|d| *d == new[0]),
        "repeats name the first run"
    );
    let runs = store
        .runs(RunQuery {
            story: Some("hooks".into()),
            limit: 100,
            ..RunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
}

pub async fn finish_job_records_children_and_ends_the_run(store: S) {
    let s = start("relay", &["shape", "audit"]);
    store.start_run(s.clone()).await.unwrap();
    let (shape, audit) = (&s.jobs[0], &s.jobs[1]);
    let (f, shaped, children) = emit(shape, 1, &["deliver"]);
    assert_eq!(
        store.finish_job(f).await.unwrap(),
        Finished::Applied {
            run_ended: None,
            woke: None
        }
    );
    assert_eq!(store.run(s.run_id).await.unwrap().unwrap().pending_jobs, 2);
    let skipped = finish(audit, vec![], vec![]);
    assert_eq!(
        store.finish_job(skipped).await.unwrap(),
        Finished::Applied {
            run_ended: None,
            woke: None
        }
    );
    let (f, _, _) = emit(&children[0], 2, &[]);
    assert_eq!(
        store.finish_job(f).await.unwrap(),
        Finished::Applied {
            run_ended: Some(RunStatus::Succeeded),
            woke: None
        }
    );
    let run = store.run(s.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.pending_jobs, 0);
    assert!(run.finished_at.is_some());
    assert!(run.error.is_none());
    let events = store.run_events(s.run_id).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.agent.as_str()).collect::<Vec<_>>(),
        ["inbound", "shape", "deliver"],
        "a run's events in the order they were stored"
    );
    assert_eq!(events[1].id, shaped.id);
    assert_eq!(events[1].parent_id, Some(s.event.id));
    let jobs = store.run_jobs(s.run_id).await.unwrap();
    let state = |agent: &str| jobs.iter().find(|j| j.agent == agent).unwrap().state;
    assert_eq!(state("shape"), JobState::Succeeded);
    assert_eq!(state("audit"), JobState::Skipped);
    assert_eq!(state("deliver"), JobState::Succeeded);
    assert!(jobs
        .iter()
        .all(|j| j.finished_at.is_some() && j.attempts == 1));
    assert!(
        store.job(shape.id).await.unwrap().is_none(),
        "only queued jobs are returned"
    );
}

pub async fn unhandled_failure_fails_the_run(store: S) {
    let s = start("relay", &["deliver"]);
    store.start_run(s.clone()).await.unwrap();
    let mut f = finish(&s.jobs[0], vec![], vec![]);
    f.state = JobState::Failed;
    f.attempts = 3;
    f.error = Some("HTTP 500".into());
    f.unhandled_failure = Some("deliver: HTTP 500".into());
    assert_eq!(
        store.finish_job(f).await.unwrap(),
        Finished::Applied {
            run_ended: Some(RunStatus::Failed),
            woke: None
        }
    );
    let run = store.run(s.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("deliver: HTTP 500"));
    let jobs = store.run_jobs(s.run_id).await.unwrap();
    assert_eq!(jobs[0].state, JobState::Failed);
    assert_eq!(jobs[0].attempts, 3);
    assert_eq!(jobs[0].error.as_deref(), Some("HTTP 500"));
}

pub async fn second_finish_is_already_finished(store: S) {
    let s = start("relay", &["shape"]);
    store.start_run(s.clone()).await.unwrap();
    let (f, _, _) = emit(&s.jobs[0], 1, &["deliver"]);
    assert!(matches!(
        store.finish_job(f.clone()).await.unwrap(),
        Finished::Applied { .. }
    ));
    // A redelivery with other ids for its output writes nothing.
    let (again, _, _) = emit(&s.jobs[0], 1, &["deliver"]);
    assert_eq!(
        store.finish_job(again).await.unwrap(),
        Finished::AlreadyFinished
    );
    assert_eq!(store.run_events(s.run_id).await.unwrap().len(), 2);
    assert_eq!(store.run_jobs(s.run_id).await.unwrap().len(), 2);
    assert_eq!(store.run(s.run_id).await.unwrap().unwrap().pending_jobs, 1);
}

pub async fn concurrent_finishes_of_one_run_end_it_once(store: S) {
    let agents: Vec<String> = (0..60).map(|i| format!("a{i}")).collect();
    let names: Vec<&str> = agents.iter().map(String::as_str).collect();
    let s = start("fan", &names);
    store.start_run(s.clone()).await.unwrap();
    let mut tasks = Vec::new();
    for j in &s.jobs {
        // Every job finished twice at once: a redelivery racing the first delivery.
        for _ in 0..2 {
            let store = Arc::clone(&store);
            let (f, _, _) = emit(j, 1, &[]);
            tasks.push(tokio::spawn(
                async move { store.finish_job(f).await.unwrap() },
            ));
        }
    }
    let mut applied = 0;
    let mut ended = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Finished::Applied { run_ended, .. } => {
                applied += 1;
                ended.extend(run_ended);
            }
            Finished::AlreadyFinished => {}
        }
    }
    assert_eq!(applied, 60, "each job is finished once");
    assert_eq!(
        ended,
        [RunStatus::Succeeded],
        "exactly one finish ends the run"
    );
    let run = store.run(s.run_id).await.unwrap().unwrap();
    assert_eq!((run.status, run.pending_jobs), (RunStatus::Succeeded, 0));
    assert_eq!(store.run_events(s.run_id).await.unwrap().len(), 61);
}

pub async fn reschedule_and_queued_jobs_keyset_paging(store: S) {
    let agents = ["a", "b", "c", "d", "e"];
    let s = start("paged", &agents);
    store.start_run(s.clone()).await.unwrap();
    // Immediate jobs, two at a time, in (due, id) order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.queued_jobs(false, after, None, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some((last.due_at, last.id));
        seen.extend(page.iter().map(|j| j.id));
    }
    let mut expected: Vec<_> = s.jobs.iter().map(|j| (j.due_at, j.id)).collect();
    expected.sort();
    assert_eq!(seen, expected.iter().map(|e| e.1).collect::<Vec<_>>());

    // Two become deferred: a retry in 10 s and a delay's second phase in 20 s.
    let now = switchyard_types::now();
    let (retry, delay) = (&s.jobs[1], &s.jobs[3]);
    store
        .reschedule(Reschedule {
            job_id: retry.id,
            attempts: 1,
            due_at: now + chrono::Duration::seconds(10),
            started_at: Some(now),
            error: Some("HTTP 503".into()),
            resume: false,
        })
        .await
        .unwrap();
    store
        .reschedule(Reschedule {
            job_id: delay.id,
            attempts: 0,
            due_at: now + chrono::Duration::seconds(20),
            started_at: Some(now),
            error: None,
            resume: true,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .queued_jobs(false, None, None, 100)
            .await
            .unwrap()
            .len(),
        3
    );
    let soon = store
        .queued_jobs(true, None, Some(now + chrono::Duration::seconds(15)), 100)
        .await
        .unwrap();
    assert_eq!(soon.iter().map(|j| j.id).collect::<Vec<_>>(), [retry.id]);
    assert_eq!(soon[0].attempts, 1);
    assert!(!soon[0].resumed);
    let all = store.queued_jobs(true, None, None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|j| j.id).collect::<Vec<_>>(),
        [retry.id, delay.id]
    );
    assert!(all[1].resumed);
    let rest = store
        .queued_jobs(true, Some((all[0].due_at, all[0].id)), None, 100)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), [delay.id]);
    let job = store.job(retry.id).await.unwrap().unwrap();
    assert_eq!(job.due_at, now + chrono::Duration::seconds(10));
    let stored = store.run_jobs(s.run_id).await.unwrap();
    let r = stored.iter().find(|j| j.id == retry.id).unwrap();
    assert_eq!(r.error.as_deref(), Some("HTTP 503"));
    assert_eq!(r.started_at, Some(now));

    // A finished job is not rescheduled again.
    store
        .finish_job(finish(retry, vec![], vec![]))
        .await
        .unwrap();
    store
        .reschedule(Reschedule {
            job_id: retry.id,
            attempts: 2,
            due_at: now,
            started_at: None,
            error: None,
            resume: false,
        })
        .await
        .unwrap();
    assert!(store.job(retry.id).await.unwrap().is_none());
    assert_eq!(
        store
            .queued_jobs(true, None, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn lineage_and_latest_event(store: S) {
    let s = start("chain", &["a"]);
    store.start_run(s.clone()).await.unwrap();
    let (f, a_event, a_jobs) = emit(&s.jobs[0], 1, &["b"]);
    store.finish_job(f).await.unwrap();
    let (f, b_event, _) = emit(&a_jobs[0], 2, &[]);
    store.finish_job(f).await.unwrap();
    let chain = store.lineage(b_event.id, 10).await.unwrap();
    assert_eq!(
        chain.iter().map(|e| e.id).collect::<Vec<_>>(),
        [b_event.id, a_event.id, s.event.id],
        "nearest first"
    );
    let short = store.lineage(b_event.id, 2).await.unwrap();
    assert_eq!(
        short.iter().map(|e| e.id).collect::<Vec<_>>(),
        [b_event.id, a_event.id]
    );
    assert!(store.lineage(EventId::new(), 10).await.unwrap().is_empty());
    let latest = store.latest_event(s.run_id, "a").await.unwrap().unwrap();
    assert_eq!(latest.id, a_event.id);
    assert!(store
        .latest_event(s.run_id, "nobody")
        .await
        .unwrap()
        .is_none());
}

pub async fn runs_keyset_pagination_by_story_and_status(store: S) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let s = start("pages", if i % 2 == 0 { &[] } else { &["x"] });
        store.start_run(s.clone()).await.unwrap();
        ids.push(s.run_id);
    }
    store.start_run(start("elsewhere", &[])).await.unwrap();
    let q = |before, status| RunQuery {
        story: Some("pages".into()),
        status,
        before,
        limit: 2,
    };
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = store.runs(q(before, None)).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        pages.push(page.iter().map(|r| r.id).collect::<Vec<_>>());
    }
    let newest_first: Vec<RunId> = ids.iter().rev().copied().collect();
    assert_eq!(pages.concat(), newest_first);
    assert_eq!(pages[0].len(), 2);
    let done = store
        .runs(RunQuery {
            limit: 100,
            ..q(None, Some(RunStatus::Succeeded))
        })
        .await
        .unwrap();
    assert_eq!(
        done.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[4], ids[2], ids[0]]
    );
    let all = store
        .runs(RunQuery {
            limit: 100,
            ..RunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
}

pub async fn events_after_and_last_seq(store: S) {
    assert_eq!(store.last_event_seq().await.unwrap(), 0);
    let a = start("one", &[]);
    let b = start("two", &[]);
    let c = start("one", &[]);
    for s in [&a, &b, &c] {
        store.start_run(s.clone()).await.unwrap();
    }
    let all = store.events_after(0, None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        [a.event.id, b.event.id, c.event.id]
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(store.last_event_seq().await.unwrap(), all[2].seq);
    let one = store.events_after(0, Some("one"), 100).await.unwrap();
    assert_eq!(
        one.iter().map(|e| e.id).collect::<Vec<_>>(),
        [a.event.id, c.event.id]
    );
    let later = store.events_after(all[0].seq, None, 1).await.unwrap();
    assert_eq!(later.iter().map(|e| e.id).collect::<Vec<_>>(), [b.event.id]);
}

pub async fn replay_reopens_a_finished_run(store: S) {
    let s = start("again", &["a"]);
    store.start_run(s.clone()).await.unwrap();
    store
        .finish_job(finish(&s.jobs[0], vec![], vec![]))
        .await
        .unwrap();
    assert_eq!(
        store.run(s.run_id).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    let replayed = job("again", "a", s.run_id, s.event.id, None);
    store
        .replay(s.run_id, vec![replayed.clone()])
        .await
        .unwrap();
    let run = store.run(s.run_id).await.unwrap().unwrap();
    assert_eq!((run.status, run.pending_jobs), (RunStatus::Running, 1));
    assert!(run.finished_at.is_none());
    assert_eq!(
        store
            .finish_job(finish(&replayed, vec![], vec![]))
            .await
            .unwrap(),
        Finished::Applied {
            run_ended: Some(RunStatus::Succeeded),
            woke: None
        }
    );
}

pub async fn too_large_payloads_are_refused(store: S) {
    let big: Arc<str> = format!("\"{}\"", "x".repeat(2 << 20)).into();
    let mut s = start("big", &["a"]);
    s.event.json = Arc::clone(&big);
    assert!(matches!(
        store.start_run(s.clone()).await,
        Err(Error::TooLarge { limit, .. }) if limit == 1 << 20
    ));
    assert!(store.run(s.run_id).await.unwrap().is_none());
    let s = start("big", &["a"]);
    store.start_run(s.clone()).await.unwrap();
    let (mut f, _, _) = emit(&s.jobs[0], 1, &[]);
    f.events[0].json = big;
    assert!(matches!(
        store.finish_job(f).await,
        Err(Error::TooLarge { .. })
    ));
    assert!(
        store.job(s.jobs[0].id).await.unwrap().is_some(),
        "nothing was written"
    );
}

pub async fn one_bad_write_does_not_spoil_its_batch(store: S) {
    let first = start("batch", &[]);
    store.start_run(first.clone()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = Arc::clone(&store);
        let mut s = start("batch", &["a"]);
        if i == 20 {
            // Reuses a stored event's id: this write must fail, alone.
            s.event.id = first.event.id;
        }
        tasks.push(tokio::spawn(
            async move { (s.run_id, store.start_run(s).await) },
        ));
    }
    let mut failed = 0;
    for t in tasks {
        let (run, result) = t.await.unwrap();
        match result {
            Ok(Started::New) => assert!(store.run(run).await.unwrap().is_some()),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {
                failed += 1;
                assert!(
                    store.run(run).await.unwrap().is_none(),
                    "the bad write left nothing"
                );
            }
        }
    }
    assert_eq!(failed, 1);
}

pub async fn group_commit_batches_concurrent_writes(store: S) {
    let before = store.commit_stats();
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.start_run(start("burst", &["a"])).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Started::New);
    }
    let after = store.commit_stats();
    let writes = after.writes - before.writes;
    let commits = after.commits - before.commits;
    assert!(writes >= 400, "{writes} writes recorded");
    assert!(
        commits < writes,
        "{writes} concurrent writes took {commits} commits: no batching"
    );
    assert!(after.max_batch > 1);
    let stored = store
        .runs(RunQuery {
            story: Some("burst".into()),
            limit: 1000,
            ..RunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 400);
}

/// Retention pruning works in short batches: each write deletes at most about its row
/// budget (a run with more events than the budget goes in chunks over several writes), and
/// the batches together remove every finished run older than the cutoff, with its events —
/// but never a running run, nor one that finished after the cutoff.
pub async fn prune_removes_old_history_in_bounded_batches(store: S) {
    const BUDGET: usize = 8;
    let mut old = Vec::new();
    for _ in 0..10 {
        let s = start("retention", &[]);
        store.start_run(s.clone()).await.unwrap();
        old.push((s.run_id, s.event.id));
    }
    // A run with 31 events and a job: larger than one batch.
    let big = start("retention", &["fan"]);
    store.start_run(big.clone()).await.unwrap();
    let events: Vec<_> = (1..=30)
        .map(|n| crate::support::event("retention", "fan", big.run_id, Some(big.event.id), n))
        .collect();
    let big_events: Vec<EventId> = events.iter().map(|e| e.id).collect();
    store
        .finish_job(finish(&big.jobs[0], events, vec![]))
        .await
        .unwrap();
    old.push((big.run_id, big.event.id));
    let running = start("retention", &["wait"]);
    store.start_run(running.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let cutoff = switchyard_types::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let recent = start("retention", &[]);
    store.start_run(recent.clone()).await.unwrap();

    let mut total = switchyard_store::Pruned::default();
    let mut batches = 0;
    loop {
        let p = store.prune(cutoff, BUDGET).await.unwrap();
        batches += 1;
        assert!(
            p.rows() <= BUDGET,
            "batch {batches} deleted {} rows, over its budget of {BUDGET}: {p:?}",
            p.rows()
        );
        total.runs += p.runs;
        total.events += p.events;
        if !p.more {
            break;
        }
        assert!(batches < 100, "pruning never finished: {total:?}");
    }
    assert_eq!(total.runs, 11, "every old finished run is pruned");
    assert_eq!(total.events, 10 + 31, "with all its events");
    assert!(batches >= 6, "41 events and 11 runs in batches of {BUDGET}");
    for (run, event) in &old {
        assert!(
            store.run(*run).await.unwrap().is_none(),
            "old run {run} is gone"
        );
        assert!(store.event(*event).await.unwrap().is_none());
    }
    for id in &big_events {
        assert!(store.event(*id).await.unwrap().is_none());
    }
    let still = store.run(running.run_id).await.unwrap();
    assert_eq!(
        still.map(|r| r.status),
        Some(RunStatus::Running),
        "a running run is never pruned"
    );
    assert!(store.run(recent.run_id).await.unwrap().is_some());
    assert!(store.event(recent.event.id).await.unwrap().is_some());
    // Nothing is left to prune: another pass deletes nothing.
    assert_eq!(store.prune(cutoff, BUDGET).await.unwrap().rows(), 0);
}
