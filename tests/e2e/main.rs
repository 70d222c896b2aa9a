//! End-to-end tests: they run the real `switchyard` binary against real HTTP servers on
//! loopback and a real SQLite store in a temporary directory.

mod support;

mod agents_validate;
mod cli;
mod command;
mod durability;
mod email;
mod paginate_explode;
mod pipeline;
mod reload;
mod validate;
mod webhooks;
