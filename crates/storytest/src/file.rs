//! Story test files (`stories/NAME.test.yaml`): read with positions, checked against the
//! story, every problem at `file:line:col`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use switchyard_agents::registry::best_match;
use switchyard_story::yaml::{self, Position, SpanMap};
use switchyard_story::{Diagnostic, Story};
use switchyard_template::{Compiler, Limits, TemplateValue};
use switchyard_types::Timestamp;

const FILE_KEYS: &[&str] = &["story", "now", "resources", "credentials", "cases"];
const CASE_KEYS: &[&str] = &[
    "name",
    "event",
    "now",
    "resources",
    "credentials",
    "responses",
    "expect",
    "not_run",
    "ran",
];
const EVENT_KEYS: &[&str] = &["agent", "body", "headers", "query", "method", "payload"];
const RESPONSE_KEYS: &[&str] = &["status", "headers", "body", "result", "error"];

/// A parsed test file, before it is matched with its story.
#[derive(Debug)]
pub struct TestFile {
    /// The file.
    pub path: PathBuf,
    /// `story:` — the story's name; default: the story file named like this one.
    pub story: Option<String>,
    doc: Map<String, Value>,
    spans: SpanMap,
}

/// One case, ready to run against its story.
#[derive(Debug)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// The agent that emits the triggering event.
    pub source: usize,
    /// The triggering event's payload.
    pub payload: Value,
    /// `now` for templates.
    pub now: Option<Timestamp>,
    /// `resource.NAME`.
    pub resources: BTreeMap<String, String>,
    /// `credential.NAME`.
    pub credentials: BTreeMap<String, String>,
    /// Canned responses by agent name (a sequence: the last one repeats).
    pub responses: BTreeMap<String, Vec<Response>>,
    /// Expected events by agent name (`AGENT` or `AGENT.error`).
    pub expect: Vec<(String, Value)>,
    /// Agents that must not emit anything.
    pub not_run: Vec<String>,
    /// Agents that must emit something.
    pub ran: Vec<String>,
}

/// A canned response of an agent that reaches the outside.
#[derive(Debug, Clone)]
pub enum Response {
    /// The agent emits this value (its templates rendered with the agent's context).
    Result(TemplateValue),
    /// An HTTP answer: the agent emits `{status, headers, body}`, or fails when the status
    /// is not 2xx.
    Http {
        /// Status.
        status: u16,
        /// Headers.
        headers: TemplateValue,
        /// Body.
        body: TemplateValue,
    },
    /// The agent fails with this message (and kind).
    Error {
        /// Kind.
        kind: String,
        /// Message.
        message: String,
    },
}

/// Reads a test file.
pub fn read(path: &Path) -> Result<TestFile, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::error(
            path,
            Position { line: 1, column: 1 },
            format!("cannot read the file: {e}"),
        )]
    })?;
    let (doc, spans) =
        yaml::parse(&text).map_err(|e| vec![Diagnostic::error(path, e.position, e.message)])?;
    let Value::Object(doc) = doc else {
        return Err(vec![Diagnostic::error(
            path,
            Position { line: 1, column: 1 },
            "a story test is a mapping with `cases` (and optionally `story`)",
        )]);
    };
    let story = doc.get("story").and_then(Value::as_str).map(str::to_string);
    Ok(TestFile {
        path: path.to_path_buf(),
        story,
        doc,
        spans,
    })
}

struct Cx<'a> {
    file: &'a Path,
    spans: &'a SpanMap,
    story: &'a Story,
    diagnostics: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn error(&mut self, pointer: &str, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(self.file, self.spans.value(pointer), message);
        d.hint = hint;
        self.diagnostics.push(d);
    }
    fn key_error(&mut self, pointer: &str, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(self.file, self.spans.key(pointer), message);
        d.hint = hint;
        self.diagnostics.push(d);
    }
    fn keys(&mut self, pointer: &str, map: &Map<String, Value>, allowed: &[&str]) {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                let hint = best_match(k, allowed.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("allowed here: {}", allowed.join(", ")));
                self.key_error(
                    &format!("{pointer}/{}", seg(k)),
                    format!("unknown field `{k}`"),
                    Some(hint),
                );
            }
        }
    }
    /// An agent name of the story (`AGENT`, or `AGENT.error` when `errors` is allowed).
    fn agent(&mut self, pointer: &str, name: &str, at_key: bool) -> Option<usize> {
        let base = name.strip_suffix(".error").unwrap_or(name);
        if let Some(&i) = self.story.by_name.get(base) {
            return Some(i);
        }
        let names: Vec<&str> = self.story.agents.iter().map(|a| &*a.name).collect();
        let hint = best_match(base, names.iter().copied())
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| format!("its agents: {}", names.join(", ")));
        let message = format!("story `{}` has no agent `{base}`", self.story.name);
        if at_key {
            self.key_error(pointer, message, Some(hint));
        } else {
            self.error(pointer, message, Some(hint));
        }
        None
    }
}

fn seg(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn strings(cx: &mut Cx<'_>, pointer: &str, v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    _ => {
                        cx.error(
                            &format!("{pointer}/{}", seg(k)),
                            "a value here is a string",
                            None,
                        );
                        continue;
                    }
                };
                out.insert(k.clone(), text);
            }
        }
        Some(_) => cx.error(pointer, "this is a mapping of name to value", None),
    }
    out
}

fn time(cx: &mut Cx<'_>, pointer: &str, v: Option<&Value>) -> Option<Timestamp> {
    let s = v?.as_str();
    match s.map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
        _ => {
            cx.error(
                pointer,
                "`now` is an RFC 3339 time like 2024-05-06T07:08:09Z",
                None,
            );
            None
        }
    }
}

/// Checks the file against its story and compiles its cases.
pub fn cases(file: &TestFile, story: &Story) -> Result<Vec<Case>, Vec<Diagnostic>> {
    let mut cx = Cx {
        file: &file.path,
        spans: &file.spans,
        story,
        diagnostics: Vec::new(),
    };
    let mut compiler = Compiler::new(Limits::default());
    cx.keys("", &file.doc, FILE_KEYS);
    let now = time(&mut cx, "/now", file.doc.get("now"));
    let resources = strings(&mut cx, "/resources", file.doc.get("resources"));
    let credentials = strings(&mut cx, "/credentials", file.doc.get("credentials"));
    let mut out = Vec::new();
    match file.doc.get("cases") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, c) in list.iter().enumerate() {
                let base = format!("/cases/{i}");
                let mut case = Case {
                    name: format!("case {}", i + 1),
                    source: 0,
                    payload: Value::Null,
                    now,
                    resources: resources.clone(),
                    credentials: credentials.clone(),
                    responses: BTreeMap::new(),
                    expect: Vec::new(),
                    not_run: Vec::new(),
                    ran: Vec::new(),
                };
                if read_case(&mut cx, &mut compiler, &base, c, &mut case) {
                    out.push(case);
                }
            }
        }
        _ => cx.error(
            "",
            "the test has no `cases`",
            Some("add `cases:` with `- name`, `event`, `expect`".into()),
        ),
    }
    compiler.finish();
    if cx.diagnostics.is_empty() {
        Ok(out)
    } else {
        cx.diagnostics.sort_by_key(|d| (d.line, d.column));
        Err(cx.diagnostics)
    }
}

fn read_case(
    cx: &mut Cx<'_>,
    compiler: &mut Compiler,
    base: &str,
    value: &Value,
    case: &mut Case,
) -> bool {
    let before = cx.diagnostics.len();
    let Value::Object(c) = value else {
        cx.error(
            base,
            "a case is a mapping with `name`, `event` and `expect`",
            None,
        );
        return false;
    };
    cx.keys(base, c, CASE_KEYS);
    if let Some(n) = c.get("name").and_then(Value::as_str) {
        case.name = n.to_string();
    }
    if let Some(t) = time(cx, &format!("{base}/now"), c.get("now")) {
        case.now = Some(t);
    }
    case.resources.extend(strings(
        cx,
        &format!("{base}/resources"),
        c.get("resources"),
    ));
    case.credentials.extend(strings(
        cx,
        &format!("{base}/credentials"),
        c.get("credentials"),
    ));
    read_event(cx, base, c.get("event"), case);
    if let Some(r) = c.get("responses") {
        let ptr = format!("{base}/responses");
        match r {
            Value::Object(m) => {
                for (agent, v) in m {
                    let p = format!("{ptr}/{}", seg(agent));
                    if cx.agent(&p, agent, true).is_none() {
                        continue;
                    }
                    let items: Vec<(String, &Value)> = match v {
                        Value::Array(list) => list
                            .iter()
                            .enumerate()
                            .map(|(j, v)| (format!("{p}/{j}"), v))
                            .collect(),
                        one => vec![(p.clone(), one)],
                    };
                    let mut seq = Vec::new();
                    for (p, v) in items {
                        seq.extend(read_response(cx, compiler, &p, v));
                    }
                    case.responses.insert(agent.clone(), seq);
                }
            }
            _ => cx.error(
                &ptr,
                "`responses` maps agent names to their canned responses",
                None,
            ),
        }
    }
    match c.get("expect") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (agent, pattern) in m {
                let p = format!("{base}/expect/{}", seg(agent));
                if cx.agent(&p, agent, true).is_some() {
                    case.expect.push((agent.clone(), pattern.clone()));
                }
            }
        }
        Some(_) => cx.error(
            &format!("{base}/expect"),
            "`expect` maps agent names to the events they emit",
            None,
        ),
    }
    for (key, list) in [("not_run", &mut case.not_run), ("ran", &mut case.ran)] {
        match c.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (j, item) in items.iter().enumerate() {
                    let p = format!("{base}/{key}/{j}");
                    match item.as_str() {
                        Some(a) if cx.agent(&p, a, false).is_some() => list.push(a.to_string()),
                        Some(_) => {}
                        None => cx.error(&p, "an agent name", None),
                    }
                }
            }
            Some(_) => cx.error(
                &format!("{base}/{key}"),
                format!("`{key}` is a list of agent names"),
                None,
            ),
        }
    }
    cx.diagnostics.len() == before
}

/// `event: {agent, body, headers, query, method}` (a webhook's POST) or
/// `event: {agent, payload}` (the source's event verbatim).
fn read_event(cx: &mut Cx<'_>, base: &str, v: Option<&Value>, case: &mut Case) {
    let ptr = format!("{base}/event");
    let Some(Value::Object(e)) = v else {
        cx.error(
            if v.is_some() { &ptr } else { base },
            "the case has no `event`",
            Some("add `event: {agent: WEBHOOK_AGENT, body: {…}}`".into()),
        );
        return;
    };
    cx.keys(&ptr, e, EVENT_KEYS);
    let Some(agent) = e.get("agent").and_then(Value::as_str) else {
        cx.error(
            &ptr,
            "the event names no `agent`",
            Some("the agent that emits it: usually the story's webhook".into()),
        );
        return;
    };
    let Some(index) = cx.agent(&format!("{ptr}/agent"), agent, false) else {
        return;
    };
    case.source = index;
    if let Some(p) = e.get("payload") {
        case.payload = p.clone();
        return;
    }
    let story = cx.story;
    let path = story
        .webhooks
        .iter()
        .find(|(_, &i)| i == index)
        .map(|(p, _)| p.clone())
        .unwrap_or_else(|| agent.to_string());
    let mut headers = Map::new();
    headers.insert("content-type".into(), Value::from("application/json"));
    if let Some(Value::Object(h)) = e.get("headers") {
        for (k, v) in h {
            headers.insert(k.to_ascii_lowercase(), v.clone());
        }
    }
    case.payload = serde_json::json!({
        "method": e.get("method").cloned().unwrap_or_else(|| Value::from("POST")),
        "path": path,
        "headers": headers,
        "query": e.get("query").cloned().unwrap_or_else(|| Value::Object(Map::new())),
        "body": e.get("body").cloned().unwrap_or(Value::Null),
    });
}

fn read_response(
    cx: &mut Cx<'_>,
    compiler: &mut Compiler,
    ptr: &str,
    v: &Value,
) -> Option<Response> {
    let Value::Object(m) = v else {
        cx.error(
            ptr,
            "a response is a mapping: `{status, body}`, `{result: …}` or `{error: …}`",
            None,
        );
        return None;
    };
    cx.keys(ptr, m, RESPONSE_KEYS);
    let mut value = |cx: &mut Cx<'_>, key: &str, default: Value| -> Option<TemplateValue> {
        let v = m.get(key).cloned().unwrap_or(default);
        match compiler.value(&v) {
            Ok(t) => Some(t),
            Err(e) => {
                cx.error(&format!("{ptr}/{key}"), format!("bad template: {e}"), None);
                None
            }
        }
    };
    if let Some(e) = m.get("error") {
        let (kind, message) = match e {
            Value::String(s) => ("canned".to_string(), s.clone()),
            Value::Object(o) => (
                o.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("canned")
                    .to_string(),
                o.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("failed")
                    .to_string(),
            ),
            _ => {
                cx.error(
                    &format!("{ptr}/error"),
                    "`error` is a message or `{kind, message}`",
                    None,
                );
                return None;
            }
        };
        return Some(Response::Error { kind, message });
    }
    if m.contains_key("result") {
        return value(cx, "result", Value::Null).map(Response::Result);
    }
    let status = match m.get("status") {
        None => 200,
        Some(s) => match s.as_u64().filter(|s| (100..=599).contains(s)) {
            Some(s) => s as u16,
            None => {
                cx.error(
                    &format!("{ptr}/status"),
                    "`status` is an HTTP status code",
                    None,
                );
                return None;
            }
        },
    };
    Some(Response::Http {
        status,
        headers: value(cx, "headers", Value::Object(Map::new()))?,
        body: value(cx, "body", Value::Null)?,
    })
}
