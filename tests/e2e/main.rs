//! End-to-end tests: they run the real `switchyard` binary against real HTTP servers on
//! loopback and a real SQLite store in a temporary directory (or, in `postgres`, a real
//! PostgreSQL server: see tests/services/postgres.sh).

mod support;
mod webdriver;

mod agents_validate;
mod cli;
mod command;
mod durability;
mod email;
mod openapi;
mod operations;
mod paginate_explode;
mod pipeline;
mod postgres;
mod reload;
mod scaled;
mod schedule;
mod stateful;
mod ui;
mod ui_auth;
mod validate;
mod web_api;
mod webhooks;
