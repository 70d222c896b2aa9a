//! Fresh PostgreSQL databases for tests (used by this crate's conformance suite and by the
//! end-to-end tests; not for production use).
//!
//! Tests that need PostgreSQL read the server's URL from `SWITCHYARD_TEST_DATABASE_URL`
//! (`tests/run` starts a private server and sets it). When it is unset they fail if
//! `SWITCHYARD_REQUIRE_SERVICES=1` (the test command sets that), and otherwise pass after
//! saying, visibly, that they did not run.

use std::str::FromStr;

use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::executor::Executor;
use sqlx_postgres::PgConnectOptions;

use super::ConnectError;

/// The variable holding the URL of a PostgreSQL server tests may create databases on.
pub const URL_VAR: &str = "SWITCHYARD_TEST_DATABASE_URL";
pub use switchyard_types::testing::REQUIRE_VAR;

/// The test server's URL, or `None` after telling the developer that `test` did not run.
///
/// # Panics
/// When the URL is unset and `SWITCHYARD_REQUIRE_SERVICES=1`: a required test must not pass
/// without running.
pub fn server_url(test: &str) -> Option<String> {
    switchyard_types::testing::service_url(URL_VAR, "PostgreSQL", "a private server", test)
}

/// A database created for one test, dropped by [`TestDatabase::drop_database`] (or, as a
/// fallback, when the value is dropped).
pub struct TestDatabase {
    url: String,
    name: String,
    admin: PgConnectOptions,
    dropped: bool,
}

impl TestDatabase {
    /// Creates a database with a random name on the server at `server_url`.
    pub async fn create(server_url: &str) -> Result<TestDatabase, ConnectError> {
        let admin =
            PgConnectOptions::from_str(server_url).map_err(|e| ConnectError::Url(e.to_string()))?;
        let name = format!("switchyard_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin
            .connect()
            .await
            .map_err(|e| ConnectError::Connect(e.to_string()))?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .map_err(|e| ConnectError::Connect(e.to_string()))?;
        let _ = conn.close().await;
        Ok(TestDatabase {
            url: with_database(server_url, &name),
            name,
            admin,
            dropped: false,
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database (disconnecting whoever still uses it).
    pub async fn drop_database(mut self) -> Result<(), ConnectError> {
        self.dropped = true;
        drop_db(&self.admin, &self.name).await
    }
}

async fn drop_db(admin: &PgConnectOptions, name: &str) -> Result<(), ConnectError> {
    let mut conn = admin
        .connect()
        .await
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
    conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
    let _ = conn.close().await;
    Ok(())
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A test that panicked: drop the database from a thread of its own (no async drop).
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(drop_db(&admin, &name));
            }
        })
        .join();
    }
}

/// `url` with its database (the path) replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_and_query_kept() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5433/postgres", "t1"),
            "postgres://u@127.0.0.1:5433/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1?sslmode=disable", "t2"),
            "postgres://u:p@h:1/t2?sslmode=disable"
        );
    }
}
