//! End-to-end tests: they run the real `switchyard` binary against real HTTP servers on
//! loopback and a real SQLite store in a temporary directory (or, in `postgres`, a real
//! PostgreSQL server: see tests/services/postgres.sh).

mod services;
mod smtp;
mod support;
mod webdriver;

mod actions;
mod agents_validate;
mod cli;
mod command;
mod credentials;
mod durability;
mod email;
mod openapi;
mod operations;
mod paginate_explode;
mod pipeline;
mod postgres;
mod postgres_security;
mod reload;
mod scaled;
mod schedule;
mod ssrf;
mod standins;
mod stateful;
mod story_branches;
mod story_chatops;
mod story_env;
mod story_release;
mod story_tests;
mod story_trial;
mod tokens;
mod ui;
mod ui_auth;
mod validate;
mod web_api;
mod webhook_security;
mod webhooks;
