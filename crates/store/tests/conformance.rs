//! One behaviour, two stores: every case below runs against the embedded SQLite store (in a
//! temporary directory) and against the PostgreSQL store (in a fresh database on the test
//! server named by `SWITCHYARD_TEST_DATABASE_URL`; see `switchyard_store::postgres::testing`
//! for what happens when it is unset).

#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/security_cases.rs"]
mod security_cases;
#[path = "conformance/state_cases.rs"]
mod state_cases;
#[path = "conformance/support.rs"]
mod support;

use std::sync::Arc;

use switchyard_store::postgres::testing::{server_url, TestDatabase};
use switchyard_store::postgres::{PgConfig, PgStore};
use switchyard_store::sqlite::{Durability, SqliteConfig, SqliteStore};
use switchyard_store::Store;

/// A store under test and what must be cleaned up after it.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    db: Option<TestDatabase>,
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SqliteConfig::new(dir.path().join("data"));
        config.durability = Durability::Normal;
        let store = SqliteStore::open(config).expect("open the SQLite store");
        Fixture {
            store: Arc::new(store),
            _dir: Some(dir),
            db: None,
        }
    }

    async fn postgres(test: &str) -> Option<Fixture> {
        let server = server_url(test)?;
        let db = TestDatabase::create(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database on {server}: {e}"));
        let store = PgStore::connect(PgConfig::new(db.url()))
            .await
            .unwrap_or_else(|e| panic!("cannot open the PostgreSQL store: {e}"));
        Some(Fixture {
            store: Arc::new(store),
            _dir: None,
            db: Some(db),
        })
    }

    async fn close(self) {
        drop(self.store);
        if let Some(db) = self.db {
            db.drop_database().await.expect("drop the test database");
        }
    }
}

macro_rules! conformance {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let f = super::Fixture::sqlite();
                    super::$module::$case(f.store.clone()).await;
                    f.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(f) =
                        super::Fixture::postgres(concat!("postgres::", stringify!($case))).await
                    else {
                        return;
                    };
                    super::$module::$case(f.store.clone()).await;
                    f.close().await;
                }
            )*
        }
    };
}

conformance!(
    cases::start_run_stores_the_run_its_event_and_jobs,
    cases::start_run_without_jobs_succeeds_at_once,
    cases::idempotency_key_repeats_answer_with_the_first_ids,
    cases::concurrent_repeats_of_one_key_store_one_run,
    cases::finish_job_records_children_and_ends_the_run,
    cases::unhandled_failure_fails_the_run,
    cases::second_finish_is_already_finished,
    cases::concurrent_finishes_of_one_run_end_it_once,
    cases::reschedule_and_queued_jobs_keyset_paging,
    cases::lineage_and_latest_event,
    cases::runs_keyset_pagination_by_story_and_status,
    cases::events_after_and_last_seq,
    cases::replay_reopens_a_finished_run,
    cases::too_large_payloads_are_refused,
    cases::one_bad_write_does_not_spoil_its_batch,
    cases::group_commit_batches_concurrent_writes,
    cases::prune_removes_old_history_in_bounded_batches,
    state_cases::admit_deduplicate_window,
    state_cases::admit_throttle_limit,
    state_cases::concurrent_admissions_of_one_key_let_one_through,
    state_cases::implode_completes_groups_and_flushes,
    state_cases::parent_wakes_when_exit_emits,
    state_cases::parent_wakes_when_child_run_ends,
    state_cases::a_wake_during_execution_survives_its_deferral,
    state_cases::resources_set_list_delete,
    security_cases::credentials_upsert_keep_creation_time_and_delete,
    security_cases::credentials_rotation_rewrites_all_at_once,
    security_cases::tokens_are_found_by_hash_and_revoked_by_id_or_name,
    security_cases::duplicate_token_hash_is_refused_alone,
    security_cases::audit_pages_newest_first,
);
