//! Runs one case: the story's graph executed in-process, breadth first. Agents that reach
//! the outside (`http_request`, `action`, `email`, `command`, `story`) answer with the case's
//! canned responses; `delay` passes its event on at once; every other agent (transform,
//! trigger, …) really runs. No network, no store, no server.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_agents::{ExecContext, Outcome, Services};
use switchyard_story::Story;
use switchyard_template::{Context, ContextBuilder, Lookup};
use switchyard_types::{JobId, RunId, Timestamp};

use crate::file::{Case, Response};

/// Agent types whose work reaches the outside: a test gives their results.
pub const EXTERNAL: &[&str] = &["http_request", "action", "email", "command", "story"];
/// Agent types that only wait: in a test their event passes on at once.
pub const PASS_THROUGH: &[&str] = &["delay"];
/// More executions than this in one case is a runaway graph.
const MAX_EXECUTIONS: usize = 10_000;

/// What one agent did in a case.
#[derive(Debug, Default, Clone)]
pub struct AgentLog {
    /// Its events, in order.
    pub emitted: Vec<Value>,
    /// Its error events, in order.
    pub errors: Vec<Value>,
    /// Executions that passed nothing on (`if` false, trigger rules not met).
    pub skipped: usize,
    /// Events delivered to it.
    pub deliveries: usize,
}

/// What a case's run did.
#[derive(Debug, Default)]
pub struct Trace {
    /// Per agent, by index.
    pub agents: Vec<AgentLog>,
    /// Failures nothing handled: (agent, message).
    pub unhandled: Vec<(String, String)>,
    /// Problems with the test itself: (agent, message).
    pub problems: Vec<(String, String)>,
}

/// One event and the events that led to it.
struct Link {
    agent: Arc<str>,
    payload: Arc<Value>,
    parent: Option<Arc<Link>>,
}

impl Link {
    fn chain(self: &Arc<Self>) -> impl Iterator<Item = &Link> {
        let mut next: Option<&Link> = Some(self);
        std::iter::from_fn(move || {
            let cur = next?;
            next = cur.parent.as_deref();
            Some(cur)
        })
    }
}

/// Why an execution produced no events.
enum Failed {
    /// The agent failed: its error event follows.
    Error { kind: String, message: String },
    /// The test lacks a canned response.
    Unanswered(String),
}

fn lookup(map: &BTreeMap<String, String>) -> Arc<dyn Lookup> {
    Arc::new(map.clone())
}

/// Runs `case` against `story`.
pub async fn run(story: &Story, case: &Case, services: &Services) -> Trace {
    let mut trace = Trace {
        agents: vec![AgentLog::default(); story.agents.len()],
        ..Trace::default()
    };
    let now: Timestamp = case.now.unwrap_or_else(switchyard_types::now);
    let run_id = RunId::new().to_string();
    let resources = lookup(&case.resources);
    let credentials = lookup(&case.credentials);
    let mut answered: BTreeMap<usize, usize> = BTreeMap::new();
    let source = &story.agents[case.source];
    let first = Arc::new(Link {
        agent: Arc::clone(&source.name),
        payload: Arc::new(case.payload.clone()),
        parent: None,
    });
    trace.agents[case.source].emitted.push(case.payload.clone());
    let mut queue: VecDeque<(usize, Arc<Link>)> = source
        .downstream
        .iter()
        .map(|&d| (d, Arc::clone(&first)))
        .collect();
    let mut executions = 0;
    while let Some((index, input)) = queue.pop_front() {
        executions += 1;
        if executions > MAX_EXECUTIONS {
            trace.problems.push((
                String::new(),
                format!("more than {MAX_EXECUTIONS} agent executions: stopped"),
            ));
            break;
        }
        let def = &story.agents[index];
        trace.agents[index].deliveries += 1;
        let mut b = ContextBuilder::new();
        for link in input.chain() {
            if story.by_name.contains_key(&*link.agent) {
                b = b.agent(&link.agent, Arc::clone(&link.payload));
            }
        }
        let templates = b
            .event(Arc::clone(&input.payload))
            .run(&run_id, &story.name, now)
            .resources(Arc::clone(&resources))
            .credentials(Arc::clone(&credentials))
            .now(now)
            .build();
        let result = match def.condition.as_ref().map(|c| c.eval(&templates)) {
            Some(Ok(false)) => Ok(Outcome::Skip),
            Some(Err(e)) => Err(Failed::Error {
                kind: "template".into(),
                message: e.to_string(),
            }),
            Some(Ok(true)) | None => {
                if EXTERNAL.contains(&def.kind.as_str()) {
                    let n = answered.entry(index).or_default();
                    *n += 1;
                    canned(case, &def.name, &def.kind, *n - 1, &templates)
                } else if PASS_THROUGH.contains(&def.kind.as_str()) {
                    Ok(Outcome::Emit(vec![(*input.payload).clone()]))
                } else {
                    execute(def, story, &templates, &input.payload, services).await
                }
            }
        };
        let log = &mut trace.agents[index];
        match result {
            Ok(Outcome::Skip) => log.skipped += 1,
            Ok(Outcome::Emit(values)) => {
                if values.is_empty() {
                    log.skipped += 1;
                }
                for v in values {
                    log.emitted.push(v.clone());
                    let link = Arc::new(Link {
                        agent: Arc::clone(&def.name),
                        payload: Arc::new(v),
                        parent: Some(Arc::clone(&input)),
                    });
                    queue.extend(def.downstream.iter().map(|&d| (d, Arc::clone(&link))));
                }
            }
            Err(Failed::Unanswered(message)) => {
                trace.problems.push((def.name.to_string(), message));
            }
            Err(Failed::Error { kind, message }) => {
                let payload = json!({
                    "error": {"kind": kind, "message": message, "attempts": def.retry.attempts},
                    "input": *input.payload,
                });
                log.errors.push(payload.clone());
                if def.error_downstream.is_empty() {
                    trace.unhandled.push((def.name.to_string(), message));
                }
                let link = Arc::new(Link {
                    agent: Arc::clone(&def.name),
                    payload: Arc::new(payload),
                    parent: Some(Arc::clone(&input)),
                });
                queue.extend(def.error_downstream.iter().map(|&d| (d, Arc::clone(&link))));
            }
        }
    }
    trace
}

/// Runs a pure agent for real.
async fn execute(
    def: &switchyard_story::AgentDef,
    story: &Story,
    templates: &Context,
    input: &Arc<Value>,
    services: &Services,
) -> Result<Outcome, Failed> {
    // The one place an execution context is made: keep in step with `ExecContext`.
    let cx = ExecContext {
        templates,
        input,
        services,
        job_id: JobId::new(),
        attempt: 1,
        story: &story.name,
        agent: &def.name,
    };
    def.agent.execute(&cx).await.map_err(|e| Failed::Error {
        kind: e.kind.to_string(),
        message: e.message,
    })
}

/// The canned answer of an agent that reaches the outside: the `n`th of its responses
/// (the last one repeats).
fn canned(
    case: &Case,
    agent: &str,
    kind: &str,
    n: usize,
    templates: &Context,
) -> Result<Outcome, Failed> {
    let Some(seq) = case.responses.get(agent).filter(|s| !s.is_empty()) else {
        return Err(Failed::Unanswered(format!(
            "`{agent}` is a `{kind}` agent, which reaches the outside; give its result under `responses: {{{agent}: …}}`"
        )));
    };
    let render = |t: &switchyard_template::TemplateValue| {
        t.render(templates).map_err(|e| {
            Failed::Unanswered(format!(
                "the canned response of `{agent}` does not render: {e}"
            ))
        })
    };
    match &seq[n.min(seq.len() - 1)] {
        Response::Result(t) => Ok(Outcome::Emit(vec![render(t)?])),
        Response::Error { kind, message } => Err(Failed::Error {
            kind: kind.clone(),
            message: message.clone(),
        }),
        Response::Http {
            status,
            headers,
            body,
        } => {
            let body = render(body)?;
            if (200..300).contains(status) {
                Ok(Outcome::Emit(vec![json!({
                    "status": status,
                    "headers": render(headers)?,
                    "body": body,
                })]))
            } else {
                let text = match &body {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Err(Failed::Error {
                    kind: "http_status".into(),
                    message: format!(
                        "answered {status}: {}",
                        text.chars().take(300).collect::<String>()
                    ),
                })
            }
        }
    }
}
