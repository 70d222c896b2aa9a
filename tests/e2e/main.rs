//! End-to-end tests: they run the real `switchyard` binary against real HTTP servers on
//! loopback and a real SQLite store in a temporary directory.

mod support;

mod actions;
mod cli;
mod durability;
mod pipeline;
mod reload;
mod story_tests;
mod validate;
mod webhooks;
