//! Agents: the units of work in a story.
//!
//! Every agent type is one module holding its documented options struct (serde + schemars),
//! its build step (compiling templates once per story load) and its execution, plus its tests.
//! The [`registry`] table is the one place that lists the types: adding a type is one module
//! and one line there, which yields the parser, the JSON Schema and the dispatch together.
//!
//! Architecture invariant: agents reach the world only through [`ExecContext`] (its HTTP
//! client, clock and limits), so each is testable with a context built in the test.

mod build;
mod common;
mod context;
mod error;
mod outbound;
mod params;
pub mod registry;
pub mod ssrf;
#[cfg(test)]
mod testing;

pub mod action;
pub mod command;
pub mod delay;
pub mod email;
mod host;
pub mod http_request;
pub mod schedule;
pub mod story;
pub mod transform;
pub mod trigger;
pub mod webhook;

use std::fmt::Debug;

use async_trait::async_trait;
pub use build::{BuildContext, Invalid, OptionError};
pub use common::{CommonOptions, FromRef, RetryOptions, COMMON_OPTION_NAMES, RESERVED_NAMES};
pub use context::{CredentialHosts, ExecContext, Services, ServicesConfig};
pub use error::AgentError;
pub use host::{Host, ImplodeResult, NoHost, SubRun};
pub use params::{ParamProblem, ParamSpec, ParamType, Parameters, ProblemKind};
use serde_json::Value;
pub use switchyard_types as types;

/// What an agent execution produced.
#[derive(Debug)]
pub enum Outcome {
    /// Zero or more events, in order; each goes to the agents that list this one in `from`.
    Emit(Vec<Value>),
    /// The agent decided not to pass the event on (a trigger whose rules do not hold).
    Skip,
    /// Wake this execution again at `until` (a delay, a wait); the next try sees
    /// `ExecContext::resumed`. Nothing is held in memory meanwhile.
    Defer {
        /// When to wake.
        until: switchyard_types::Timestamp,
    },
}

/// How a source agent produces events (it is never executed on an incoming event).
#[derive(Debug)]
pub enum Source<'a> {
    /// Receives HTTP requests.
    Webhook(&'a webhook::Webhook),
    /// Emits on a cron expression (the engine fires it).
    Schedule(&'a schedule::Schedule),
}

/// One configured agent of a story, built once per story load.
#[async_trait]
pub trait Agent: Send + Sync + Debug + 'static {
    /// For source agents (webhook, schedule): how they produce events.
    fn source(&self) -> Option<Source<'_>> {
        None
    }

    /// Does the agent's work on one incoming event.
    async fn execute(&self, cx: &ExecContext<'_>) -> Result<Outcome, AgentError>;
}
