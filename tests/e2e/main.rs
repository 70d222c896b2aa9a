//! End-to-end tests: they run the real `switchyard` binary against real HTTP servers on
//! loopback and a real SQLite store in a temporary directory (or, in `postgres`, a real
//! PostgreSQL server: see tests/services/postgres.sh).

mod support;

mod cli;
mod durability;
mod pipeline;
mod postgres;
mod reload;
mod stateful;
mod validate;
mod webhooks;
