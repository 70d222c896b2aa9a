//! For tests: the URL of a RabbitMQ broker (`tests/services/rabbitmq.sh` starts a private one)
//! and queue names of their own. Not for production use.
//!
//! Tests that need RabbitMQ read its URL from `SWITCHYARD_TEST_AMQP_URL`. When it is unset they
//! fail if `SWITCHYARD_REQUIRE_SERVICES=1` (the test command sets that), and otherwise pass
//! after saying, visibly, that they did not run.

/// The variable holding the URL of a RabbitMQ broker tests may use.
pub const URL_VAR: &str = "SWITCHYARD_TEST_AMQP_URL";
pub use switchyard_types::testing::REQUIRE_VAR;

/// The test broker's URL, or `None` after telling the developer that `test` did not run.
///
/// # Panics
/// When the URL is unset and `SWITCHYARD_REQUIRE_SERVICES=1`: a required test must not pass
/// without running.
pub fn server_url(test: &str) -> Option<String> {
    switchyard_types::testing::service_url(URL_VAR, "RabbitMQ", "a private broker", test)
}

/// A queue name no other test uses.
pub fn unique_queue(prefix: &str) -> String {
    format!("{prefix}.{}", switchyard_types::JobId::new().0.simple())
}
