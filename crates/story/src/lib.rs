//! Stories: YAML files that wire agents together.
//!
//! [`load_str`] turns one file into a [`Story`] — every agent built, every template compiled
//! once — or into the complete list of its problems, each at `file:line:col`. A load never
//! panics and never stops at the first problem.

pub mod diagnostic;
mod graph;
pub mod load;
pub mod pack;
mod refs;
mod schema;
pub mod yaml;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use diagnostic::{Diagnostic, Severity};
pub use load::{
    load_dir, load_dir_with, load_file, load_file_with, load_str, load_str_with, Loaded,
};
pub use pack::{load_packs, Pack, Packs};
pub use refs::check_references;
pub use schema::story_schema;
use switchyard_agents::{Agent, FromRef, RetryOptions};
use switchyard_template::Condition;
use switchyard_types::Duration;

/// A loaded story, ready to run.
#[derive(Debug)]
pub struct Story {
    /// Unique name.
    pub name: Arc<str>,
    /// What it does.
    pub description: Option<String>,
    /// The file it came from.
    pub file: PathBuf,
    /// Its agents, in file order.
    pub agents: Vec<AgentDef>,
    /// Agent index by name.
    pub by_name: HashMap<Arc<str>, usize>,
    /// Webhook path → agent index.
    pub webhooks: HashMap<String, usize>,
    /// The file's text, for change detection and `story show`.
    pub source: String,
}

/// One agent of a story.
#[derive(Debug)]
pub struct AgentDef {
    /// Name.
    pub name: Arc<str>,
    /// Type.
    pub kind: String,
    /// What it is for.
    pub description: Option<String>,
    /// Upstream references as written.
    pub from: Vec<FromRef>,
    /// Compiled `if`.
    pub condition: Option<Condition>,
    /// Retry policy.
    pub retry: RetryOptions,
    /// Time limit of one try.
    pub timeout: Option<Duration>,
    /// The built agent.
    pub agent: Arc<dyn Agent>,
    /// Agents that receive this agent's ordinary events.
    pub downstream: Vec<usize>,
    /// Agents that receive this agent's error events (`NAME.error`).
    pub error_downstream: Vec<usize>,
    /// The options as written (for display).
    pub options: serde_json::Value,
}

impl Story {
    /// An agent by name.
    pub fn agent(&self, name: &str) -> Option<&AgentDef> {
        self.by_name.get(name).map(|&i| &self.agents[i])
    }

    /// The agents upstream of `index` (transitively), nearest first: the names its
    /// templates may read.
    pub fn upstream_of(&self, index: usize) -> Vec<&str> {
        graph::upstream(self, index)
    }
}
