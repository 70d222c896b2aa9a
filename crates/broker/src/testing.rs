//! For tests: the URL of a RabbitMQ broker (`tests/services/rabbitmq.sh` starts a private one)
//! and queue names of their own. Not for production use.
//!
//! Tests that need RabbitMQ read its URL from `SWITCHYARD_TEST_AMQP_URL`. When it is unset they
//! fail if `SWITCHYARD_REQUIRE_SERVICES=1` (the test command sets that), and otherwise pass
//! after saying, visibly, that they did not run.

use std::io::Write as _;

/// The variable holding the URL of a RabbitMQ broker tests may use.
pub const URL_VAR: &str = "SWITCHYARD_TEST_AMQP_URL";
/// Set to `1` to make tests that lack their services fail instead of passing unrun.
pub const REQUIRE_VAR: &str = "SWITCHYARD_REQUIRE_SERVICES";

/// The test broker's URL, or `None` after telling the developer that `test` did not run.
///
/// # Panics
/// When the URL is unset and `SWITCHYARD_REQUIRE_SERVICES=1`: a required test must not pass
/// without running.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test} needs RabbitMQ: {URL_VAR} is unset but {REQUIRE_VAR}=1 \
                 (run tests/run, which starts a private broker, or set {URL_VAR})"
            );
            let _ = writeln!(
                std::io::stderr(),
                "NOT RUN: {test} needs RabbitMQ; set {URL_VAR} (tests/run starts a private broker)"
            );
            None
        }
    }
}

/// A queue name no other test uses.
pub fn unique_queue(prefix: &str) -> String {
    format!("{prefix}.{}", switchyard_types::JobId::new().0.simple())
}
