//! The writers' statements keep their index plans on a fresh, still small database.

use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::executor::Executor;
use sqlx_core::row::Row;
use sqlx_postgres::PgConnectOptions;

use super::testing::{server_url, TestDatabase};
use super::{batch, migrate, options, writer_options};

/// The generic plan (the one a prepared statement keeps) of the runs counter update of a
/// batch of finishes, on a new connection made with `opts`.
async fn generic_plan_of_run_counters(opts: &PgConnectOptions) -> String {
    let mut conn = opts.connect().await.expect("connect");
    conn.execute("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("set plan_cache_mode");
    let prepare = format!(
        "PREPARE counters(uuid[], int8[], text[], timestamptz[]) AS {}",
        batch::UPDATE_RUN_COUNTERS
    );
    conn.execute(prepare.as_str()).await.expect("prepare");
    let rows = conn
        .fetch_all("EXPLAIN EXECUTE counters('{}', '{}', '{}', '{}')")
        .await
        .expect("explain");
    let _ = conn.close().await;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).expect("plan line"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_writer_finds_runs_by_their_index_even_while_the_table_is_small() {
    let Some(url) = server_url("a_writer_finds_runs_by_their_index_even_while_the_table_is_small")
    else {
        return;
    };
    let db = TestDatabase::create(&url).await.expect("database");
    migrate(db.url()).await.expect("migrate");
    let opts = options(db.url()).expect("options");
    // A fresh database's first moments: 100 runs, never analyzed.
    let mut conn = opts.connect().await.expect("connect");
    conn.execute(
        "INSERT INTO runs (id, story, status, trigger_event_id, trigger_agent, started_at, pending_jobs)
         SELECT gen_random_uuid(), 'story', 'running', gen_random_uuid(), 'inbound', now(), 1
         FROM generate_series(1, 100)",
    )
    .await
    .expect("insert runs");
    let _ = conn.close().await;

    // Why writers need their setting: by default the plan kept is a whole-table scan, which
    // would stay cached while the table grows.
    let default_plan = generic_plan_of_run_counters(&opts).await;
    assert!(
        default_plan.contains("Seq Scan on runs"),
        "expected the default generic plan to scan runs whole:\n{default_plan}"
    );
    let writer_plan = generic_plan_of_run_counters(&writer_options(&opts)).await;
    assert!(
        writer_plan.contains("Index Scan using runs_pkey on runs")
            && !writer_plan.contains("Seq Scan on runs"),
        "a writer's plan must find runs by their primary key:\n{writer_plan}"
    );
    db.drop_database().await.expect("drop database");
}
