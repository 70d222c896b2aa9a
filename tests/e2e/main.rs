//! End-to-end tests: they run the real `switchyard` binary against real HTTP servers on
//! loopback and a real SQLite store in a temporary directory.

mod support;

mod cli;
mod credentials;
mod durability;
mod pipeline;
mod reload;
mod ssrf;
mod tokens;
mod validate;
mod webhook_security;
mod webhooks;
