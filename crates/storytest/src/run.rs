//! Runs one case: the story's graph executed in-process, breadth first. Agents that reach
//! the outside (`http_request`, `action`, `email`, `command`, `story`) answer with the case's
//! canned responses; every other agent (transform, trigger, delay, …) really runs, unless the
//! case gives it a canned response too. No network, no store, no server.
//!
//! Time is the case's own: an agent that defers (a `delay`, an `implode` waiting for
//! `max_wait`) is woken as soon as nothing else is left to run, earliest wake first, and the
//! case's clock (`now` in templates, the windows of `deduplicate` and `throttle`) moves
//! forward to its wake. So a `delay: {for: 1h}` passes its event on at once in wall time,
//! after everything that happens before the hour is up.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_agents::{ExecContext, Outcome, Services};
use switchyard_story::Story;
use switchyard_template::{Context, ContextBuilder, Lookup};
use switchyard_types::{JobId, RunId, Timestamp};

use crate::file::{Case, Response};
use crate::host::{State, TestHost};

/// Agent types whose work reaches the outside: a test gives their results.
pub const EXTERNAL: &[&str] = &["http_request", "action", "email", "command", "story"];
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

/// One execution waiting to run: an agent, its input, and (for a wake) its job.
struct Pending {
    index: usize,
    input: Arc<Link>,
    job: JobId,
    resumed: bool,
}

/// Executions that deferred, each with the case-clock time of its wake.
#[derive(Default)]
struct Sleepers {
    list: Vec<(Timestamp, usize, Pending)>,
    seq: usize,
}

impl Sleepers {
    fn push(&mut self, wake: Timestamp, p: Pending) {
        self.seq += 1;
        self.list.push((wake, self.seq, p));
    }
    /// The earliest wake (in the order they deferred, among equal times).
    fn pop(&mut self) -> Option<(Timestamp, Pending)> {
        let i = (0..self.list.len()).min_by_key(|&i| (self.list[i].0, self.list[i].1))?;
        let (wake, _, p) = self.list.swap_remove(i);
        Some((wake, p))
    }
}

/// What a run of a case shares: the story, the case and its variables.
struct CaseCx<'a> {
    story: &'a Story,
    services: &'a Services,
    run_id: String,
    started: Timestamp,
    resources: Arc<dyn Lookup>,
    credentials: Arc<dyn Lookup>,
    state: State,
}

/// Runs `case` against `story`.
pub async fn run(story: &Story, case: &Case, services: &Services) -> Trace {
    let mut trace = Trace {
        agents: vec![AgentLog::default(); story.agents.len()],
        ..Trace::default()
    };
    let started: Timestamp = case.now.unwrap_or_else(switchyard_types::now);
    let cx = CaseCx {
        story,
        services,
        run_id: RunId::new().to_string(),
        started,
        resources: lookup(&case.resources),
        credentials: lookup(&case.credentials),
        state: State::default(),
    };
    // The case's clock: `started`, moved forward by the wakes of deferred executions.
    let mut clock = started;
    let mut answered: BTreeMap<usize, usize> = BTreeMap::new();
    let source = &story.agents[case.source];
    let first = Arc::new(Link {
        agent: Arc::clone(&source.name),
        payload: Arc::new(case.payload.clone()),
        parent: None,
    });
    trace.agents[case.source].emitted.push(case.payload.clone());
    let fresh = |index: usize, input: &Arc<Link>| Pending {
        index,
        input: Arc::clone(input),
        job: JobId::new(),
        resumed: false,
    };
    let mut queue: VecDeque<Pending> = source
        .downstream
        .iter()
        .map(|&d| fresh(d, &first))
        .collect();
    let mut sleepers = Sleepers::default();
    let mut executions = 0;
    loop {
        let p = match queue.pop_front() {
            Some(p) => p,
            None => match sleepers.pop() {
                Some((wake, p)) => {
                    clock = clock.max(wake);
                    p
                }
                None => break,
            },
        };
        executions += 1;
        if executions > MAX_EXECUTIONS {
            trace.problems.push((
                String::new(),
                format!("more than {MAX_EXECUTIONS} agent executions: stopped"),
            ));
            break;
        }
        let def = &story.agents[p.index];
        if !p.resumed {
            trace.agents[p.index].deliveries += 1;
        }
        let templates = cx.templates(&p.input, clock);
        // As in the engine, `if` is evaluated on every execution, a wake included.
        let real_start = switchyard_types::now();
        let result = match def.condition.as_ref().map(|c| c.eval(&templates)) {
            Some(Ok(false)) => Ok(Outcome::Skip),
            Some(Err(e)) => Err(Failed::Error {
                kind: "template".into(),
                message: e.to_string(),
            }),
            Some(Ok(true)) | None => {
                let given = case.responses.contains_key(&*def.name);
                if given || EXTERNAL.contains(&def.kind.as_str()) {
                    let n = answered.entry(p.index).or_default();
                    *n += 1;
                    canned(case, &def.name, &def.kind, *n - 1, &templates)
                } else {
                    cx.execute(&p, &templates, clock).await
                }
            }
        };
        let log = &mut trace.agents[p.index];
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
                        parent: Some(Arc::clone(&p.input)),
                    });
                    queue.extend(def.downstream.iter().map(|&d| fresh(d, &link)));
                }
            }
            Ok(Outcome::Defer { until }) => {
                let wake = clock
                    .checked_add_signed(case_wait(until - real_start))
                    .unwrap_or(Timestamp::MAX_UTC);
                sleepers.push(wake, Pending { resumed: true, ..p });
            }
            Err(Failed::Unanswered(message)) => {
                trace.problems.push((def.name.to_string(), message));
            }
            Err(Failed::Error { kind, message }) => {
                let payload = json!({
                    "error": {"kind": kind, "message": message, "attempts": def.retry.attempts},
                    "input": *p.input.payload,
                });
                log.errors.push(payload.clone());
                if def.error_downstream.is_empty() {
                    trace.unhandled.push((def.name.to_string(), message));
                }
                let link = Arc::new(Link {
                    agent: Arc::clone(&def.name),
                    payload: Arc::new(payload),
                    parent: Some(Arc::clone(&p.input)),
                });
                queue.extend(def.error_downstream.iter().map(|&d| fresh(d, &link)));
            }
        }
    }
    trace
}

/// How long a deferring agent waits on the case's clock. The agent computed its `until`
/// from the real clock during its execution, a moment after `real_start`: the difference
/// is the wait plus that moment, so it is rounded to the whole second (to the millisecond
/// under a second) to give the same clock, and the same `now`, on every run of the test.
fn case_wait(measured: chrono::Duration) -> chrono::Duration {
    let ms = measured.num_milliseconds().max(0);
    let ms = if ms >= 1000 {
        (ms + 500) / 1000 * 1000
    } else {
        ms
    };
    chrono::Duration::milliseconds(ms)
}

impl CaseCx<'_> {
    /// The template variables of an execution on `input` at `now`.
    fn templates(&self, input: &Arc<Link>, now: Timestamp) -> Context {
        let mut b = ContextBuilder::new();
        for link in input.chain() {
            if self.story.by_name.contains_key(&*link.agent) {
                b = b.agent(&link.agent, Arc::clone(&link.payload));
            }
        }
        b.event(Arc::clone(&input.payload))
            .run(&self.run_id, &self.story.name, self.started)
            .resources(Arc::clone(&self.resources))
            .credentials(Arc::clone(&self.credentials))
            .now(now)
            .build()
    }

    /// Runs an agent that stays inside the test for real.
    async fn execute(
        &self,
        p: &Pending,
        templates: &Context,
        now: Timestamp,
    ) -> Result<Outcome, Failed> {
        let def = &self.story.agents[p.index];
        let host = TestHost {
            state: &self.state,
            agent: &def.name,
            job: p.job,
            now,
        };
        // The one place an execution context is made: keep in step with `ExecContext`.
        let cx = ExecContext {
            templates,
            input: &p.input.payload,
            services: self.services,
            job_id: p.job,
            attempt: 1,
            story: &self.story.name,
            agent: &def.name,
            resumed: p.resumed,
            host: &host,
        };
        def.agent.execute(&cx).await.map_err(|e| Failed::Error {
            kind: e.kind.to_string(),
            message: e.message,
        })
    }
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
