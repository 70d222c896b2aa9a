//! Unit-test helpers: build an agent from JSON options and run it on one input, with a
//! context built in the test (the architecture invariant that makes agents testable).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use switchyard_template::{Compiler, ContextBuilder, Limits};
use switchyard_types::JobId;

use crate::{Agent, AgentError, BuildContext, OptionError, Outcome, Services, ServicesConfig};

/// Builds an agent of `kind` from its own options; the problems when it does not build.
pub fn build(kind: &str, options: Value) -> Result<Arc<dyn Agent>, Vec<OptionError>> {
    let mut compiler = Compiler::new(Limits::default());
    let mut cx = BuildContext::new(&mut compiler);
    let built = crate::registry::build(kind, options, &mut cx).expect("known agent type");
    let problems = cx.into_problems();
    compiler.finish();
    match built {
        Ok(a) if problems.iter().all(|p| p.warning) => Ok(a),
        _ => Err(problems),
    }
}

/// The problems of options that must not build.
pub fn problems(kind: &str, options: Value) -> Vec<OptionError> {
    match build(kind, options) {
        Ok(_) => panic!("expected a build error for {kind} options"),
        Err(p) => p,
    }
}

/// Runs `agent` on `input` (also visible to templates as `event` and as agent `inbound`).
pub async fn run(
    agent: &dyn Agent,
    input: Value,
    config: ServicesConfig,
    credentials: &HashMap<String, String>,
) -> Result<Outcome, AgentError> {
    let services = Services::new(config).expect("services");
    run_with(agent, input, &services, credentials).await
}

/// Like [`run`], with services built by the test (e.g. with credentials' allowed hosts).
pub async fn run_with(
    agent: &dyn Agent,
    input: Value,
    services: &Services,
    credentials: &HashMap<String, String>,
) -> Result<Outcome, AgentError> {
    let payload = Arc::new(input);
    let templates = ContextBuilder::new()
        .agent("inbound", Arc::clone(&payload))
        .event(Arc::clone(&payload))
        .credentials(Arc::new(credentials.clone()))
        .build();
    let cx = crate::ExecContext {
        templates: &templates,
        input: &payload,
        services,
        job_id: JobId::new(),
        attempt: 1,
        story: "test",
        agent: "agent",
        resumed: false,
        host: &crate::NoHost,
    };
    agent.execute(&cx).await
}

/// The emitted values of a successful run.
pub fn emitted(outcome: Result<Outcome, AgentError>) -> Vec<Value> {
    match outcome {
        Ok(Outcome::Emit(v)) => v,
        other => panic!("expected events, got {other:?}"),
    }
}
