//! Story tests: `stories/NAME.test.yaml` files run a story's graph in-process on a
//! triggering event, with canned responses for the agents that reach the outside, and
//! compare what each agent emitted with what the test expects (partial match).
//!
//! ```yaml
//! cases:
//!   - name: a newcomer is greeted
//!     event: {agent: inbound, body: {name: Ada, count: 1}}
//!     responses:
//!       deliver: {status: 201, body: {id: 7}}
//!     expect:
//!       shape: {greeting: Hello Ada, n: 2}
//!     not_run: [regular]
//! ```
//!
//! Architecture invariant: no network, no store, no server — this crate depends on the story,
//! agents and template crates only, and never executes an agent that reaches the outside.

mod file;
mod host;
mod matching;
mod run;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use switchyard_agents::Services;
use switchyard_story::{Diagnostic, Packs, Story};

pub use file::{Case, Response};
pub use matching::{mismatches, Mismatch};
pub use run::{AgentLog, Trace, EXTERNAL};

/// One reason a case failed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    /// The agent concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The field that differs (`body.n`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What the test expects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
    /// What the agent emitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub got: Option<Value>,
    /// The whole message: `agent `deliver`, field `body.n`: expected 3, got 4`.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn failure(agent: &str, message: impl Into<String>) -> Failure {
    Failure {
        agent: Some(agent.to_string()),
        field: None,
        expected: None,
        got: None,
        message: message.into(),
    }
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// Its name.
    pub name: String,
    /// Whether every expectation held.
    pub passed: bool,
    /// What went wrong.
    pub failures: Vec<Failure>,
    /// The agents that emitted something, in story order.
    pub ran: Vec<String>,
    /// How long it took, in microseconds.
    pub micros: u128,
}

/// The result of one test file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file.
    pub file: PathBuf,
    /// The story it tests.
    pub story: Option<String>,
    /// Problems with the file or its story (then no case ran).
    pub diagnostics: Vec<Diagnostic>,
    /// The cases.
    pub cases: Vec<CaseReport>,
}

impl FileReport {
    /// Whether the file loaded and every case passed.
    pub fn passed(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error) && self.cases.iter().all(|c| c.passed)
    }
}

/// The story test files under `path` (a file is itself), sorted.
pub fn test_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(path) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(test_files(&p));
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
        {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The story a test file tests: `story: NAME` among the stories of its directory, else the
/// file named like it (`hello.test.yaml` → `hello.yaml`).
fn find_story(test: &file::TestFile, packs: &Packs) -> Result<Story, Vec<Diagnostic>> {
    let dir = test.path.parent().unwrap_or(Path::new("."));
    let at = switchyard_story::yaml::Position { line: 1, column: 1 };
    if let Some(name) = &test.story {
        let (stories, diagnostics) = switchyard_story::load_dir_with(dir, packs);
        return match stories.into_iter().find(|s| *s.name == **name) {
            Some(s) => Ok(s),
            None => {
                let mut out: Vec<Diagnostic> = diagnostics
                    .into_iter()
                    .filter(Diagnostic::is_error)
                    .collect();
                out.push(Diagnostic::error(
                    &test.path,
                    at,
                    format!("no valid story named `{name}` in {}", dir.display()),
                ));
                Err(out)
            }
        };
    }
    let file_name = test.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = file_name
        .trim_end_matches(".test.yaml")
        .trim_end_matches(".test.yml");
    let candidates = [
        dir.join(format!("{stem}.yaml")),
        dir.join(format!("{stem}.yml")),
    ];
    let Some(story_file) = candidates.iter().find(|p| p.is_file()) else {
        return Err(vec![Diagnostic::error(
            &test.path,
            at,
            format!("no story file {stem}.yaml next to this test"),
        )
        .with_hint("name the test after its story, or say `story: NAME`")]);
    };
    let loaded = switchyard_story::load_file_with(story_file, packs);
    match loaded.story {
        Some(s) => Ok(s),
        None => Err(loaded
            .diagnostics
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect()),
    }
}

/// Loads and runs one test file.
pub async fn run_file(path: &Path, packs: &Packs, services: &Services) -> FileReport {
    let mut report = FileReport {
        file: path.to_path_buf(),
        story: None,
        diagnostics: Vec::new(),
        cases: Vec::new(),
    };
    let test = match file::read(path) {
        Ok(t) => t,
        Err(d) => {
            report.diagnostics = d;
            return report;
        }
    };
    let story = match find_story(&test, packs) {
        Ok(s) => s,
        Err(d) => {
            report.diagnostics = d;
            return report;
        }
    };
    report.story = Some(story.name.to_string());
    let cases = match file::cases(&test, &story) {
        Ok(c) => c,
        Err(d) => {
            report.diagnostics = d;
            return report;
        }
    };
    for case in &cases {
        let started = Instant::now();
        let trace = run::run(&story, case, services).await;
        let mut r = check(&story, case, &trace);
        r.micros = started.elapsed().as_micros();
        report.cases.push(r);
    }
    report
}

/// Compares a run's trace with the case's expectations.
pub fn check(story: &Story, case: &Case, trace: &Trace) -> CaseReport {
    let mut failures: Vec<Failure> = trace
        .problems
        .iter()
        .map(|(agent, m)| Failure {
            agent: (!agent.is_empty()).then(|| agent.clone()),
            field: None,
            expected: None,
            got: None,
            message: if agent.is_empty() {
                m.clone()
            } else {
                format!("agent `{agent}`: {m}")
            },
        })
        .collect();
    let log = |name: &str| story.by_name.get(name).map(|&i| &trace.agents[i]);
    for (key, pattern) in &case.expect {
        let (agent, errors) = match key.strip_suffix(".error") {
            Some(a) => (a, true),
            None => (key.as_str(), false),
        };
        let Some(log) = log(agent) else { continue };
        let events = if errors { &log.errors } else { &log.emitted };
        let what = if errors { "error event" } else { "event" };
        let got = match events.len() {
            0 => {
                let why = if log.deliveries == 0 {
                    "it was never reached".to_string()
                } else if let (false, Some(e)) = (errors, log.errors.first()) {
                    format!(
                        "it failed: {}",
                        e["error"]["message"].as_str().unwrap_or("")
                    )
                } else if log.skipped > 0 {
                    "its `if` was false or it passed nothing on".to_string()
                } else {
                    "it emitted nothing".to_string()
                };
                failures.push(failure(
                    agent,
                    format!("agent `{agent}` emitted no {what}: {why}"),
                ));
                continue;
            }
            1 => events[0].clone(),
            n => match pattern {
                Value::Array(p) if p.len() == n => Value::Array(events.clone()),
                _ => {
                    failures.push(failure(
                        agent,
                        format!("agent `{agent}` emitted {n} {what}s; expect a list of {n} to check them all"),
                    ));
                    continue;
                }
            },
        };
        let label = if errors {
            format!("agent `{agent}` (error event)")
        } else {
            format!("agent `{agent}`")
        };
        for m in mismatches(pattern, &got) {
            let got_text = m
                .got
                .as_ref()
                .map_or("nothing (no such field)".to_string(), short);
            let message = if m.field.is_empty() {
                format!("{label}: expected {}, got {got_text}", short(&m.expected))
            } else {
                format!(
                    "{label}, field `{}`: expected {}, got {got_text}",
                    m.field,
                    short(&m.expected)
                )
            };
            failures.push(Failure {
                agent: Some(agent.to_string()),
                field: (!m.field.is_empty()).then(|| m.field.clone()),
                expected: Some(m.expected),
                got: m.got,
                message,
            });
        }
    }
    for agent in &case.not_run {
        if let Some(log) = log(agent) {
            let n = log.emitted.len() + log.errors.len();
            if n > 0 {
                failures.push(failure(
                    agent,
                    format!("agent `{agent}` ran (it emitted {n} event(s)), but the case says it does not"),
                ));
            }
        }
    }
    for agent in &case.ran {
        if let Some(log) = log(agent) {
            if log.emitted.is_empty() && log.errors.is_empty() {
                failures.push(failure(
                    agent,
                    format!("agent `{agent}` did not run, but the case says it does"),
                ));
            }
        }
    }
    for (agent, message) in &trace.unhandled {
        let expected = case
            .expect
            .iter()
            .any(|(k, _)| k.strip_suffix(".error") == Some(agent.as_str()));
        if !expected {
            failures.push(failure(
                agent,
                format!("agent `{agent}` failed and nothing handles it: {message}"),
            ));
        }
    }
    let ran = story
        .agents
        .iter()
        .zip(&trace.agents)
        .filter(|(_, l)| !l.emitted.is_empty() || !l.errors.is_empty())
        .map(|(a, _)| a.name.to_string())
        .collect();
    CaseReport {
        name: case.name.clone(),
        passed: failures.is_empty(),
        failures,
        ran,
        micros: 0,
    }
}

/// A value for a message: JSON, cut short.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests;
