//! For tests: the URL of a service (PostgreSQL, RabbitMQ) that the test command started.
//! Not for production use.
//!
//! Tests read a service's URL from an environment variable. When it is unset they fail if
//! `SWITCHYARD_REQUIRE_SERVICES=1` (the test command sets that), and otherwise pass after
//! saying, visibly, that they did not run.

use std::io::Write as _;

/// Set to `1` to make tests that lack their services fail instead of passing unrun.
pub const REQUIRE_VAR: &str = "SWITCHYARD_REQUIRE_SERVICES";

/// The URL of `service` (e.g. `PostgreSQL`) from the variable `var`, or `None` after telling
/// the developer that `test` did not run; `started` names what `tests/run` starts for it.
///
/// # Panics
/// When `var` is unset and `SWITCHYARD_REQUIRE_SERVICES=1`: a required test must not pass
/// without running.
pub fn service_url(var: &str, service: &str, started: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test} needs {service}: {var} is unset but {REQUIRE_VAR}=1 \
                 (run tests/run, which starts {started}, or set {var})"
            );
            // Written to the real stderr (not the captured one) so it shows in `cargo test`.
            let _ = writeln!(
                std::io::stderr(),
                "NOT RUN: {test} needs {service}; set {var} (tests/run starts {started})"
            );
            None
        }
    }
}
