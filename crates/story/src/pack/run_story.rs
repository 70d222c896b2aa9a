//! The internal story behind an operator's `action run`: an `input` agent whose event holds
//! the parameters (the run's source event), and an `action` agent that runs the action with
//! them. Running an action by hand is thereby an ordinary run — stored, listed by
//! `runs list` under the story name `PACK.ACTION`, retried and recovered like any other.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use switchyard_agents::action::{ActionCatalog, PackAction};
use switchyard_agents::{
    registry, Agent, AgentError, BuildContext, ExecContext, Outcome, RetryOptions,
};
use switchyard_template::{Compiler, Limits};
use switchyard_types::Duration;

use crate::{AgentDef, Story};

/// The name of the agent whose event holds an operator's parameters.
pub const INPUT_AGENT: &str = "input";
/// The name of the agent that runs the action.
pub const ACTION_AGENT: &str = "action";

/// The source of an action run: never executed (its event is stored by the engine).
#[derive(Debug)]
struct OperatorInput;

#[async_trait]
impl Agent for OperatorInput {
    async fn execute(&self, _cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        Err(AgentError::permanent(
            "internal",
            "the operator's input of an action run is not executed",
        ))
    }
}

/// Builds the internal story that runs `action` with the parameters of its source event.
/// `None` if the action is not in `catalog` (it always is when both come from one load).
pub fn action_story(action: &PackAction, catalog: &ActionCatalog) -> Option<Story> {
    let mut compiler = Compiler::new(Limits::default());
    let mut bcx = BuildContext::new(&mut compiler).with_actions(catalog);
    let options = json!({"uses": action.reference, "with": "{{ event }}"});
    let built = registry::build("action", options.clone(), &mut bcx)?.ok()?;
    compiler.finish();
    let name: Arc<str> = Arc::from(action.reference.as_str());
    let input = AgentDef {
        name: Arc::from(INPUT_AGENT),
        kind: "input".into(),
        description: Some("the parameters an operator gave".into()),
        from: Vec::new(),
        condition: None,
        retry: RetryOptions::default(),
        timeout: None,
        agent: Arc::new(OperatorInput),
        downstream: vec![1],
        error_downstream: Vec::new(),
        options: json!({"name": INPUT_AGENT, "type": "input"}),
    };
    let mut options = options;
    options["name"] = json!(ACTION_AGENT);
    options["type"] = json!("action");
    let run = AgentDef {
        name: Arc::from(ACTION_AGENT),
        kind: "action".into(),
        description: action.description.clone(),
        from: vec![switchyard_agents::FromRef::parse(INPUT_AGENT)],
        condition: None,
        retry: RetryOptions::default(),
        timeout: action.timeout.map(Duration),
        agent: built,
        downstream: Vec::new(),
        error_downstream: Vec::new(),
        options,
    };
    let by_name = HashMap::from([(Arc::clone(&input.name), 0), (Arc::clone(&run.name), 1)]);
    Some(Story {
        name,
        description: action.description.clone(),
        file: action.file.clone(),
        agents: vec![input, run],
        by_name,
        webhooks: HashMap::new(),
        source: String::new(),
    })
}
