//! From YAML text to a [`Story`], collecting every problem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use switchyard_agents::registry::{self, best_match};
use switchyard_agents::{BuildContext, CommonOptions, Source, COMMON_OPTION_NAMES, RESERVED_NAMES};
use switchyard_template::{Compiler, Limits};

use crate::diagnostic::Diagnostic;
use crate::graph::find_cycle;
use crate::pack::Packs;
use crate::yaml::{self, SpanMap};
use crate::{AgentDef, Story};

/// The outcome of loading one file: the story if it has no errors, and every problem found
/// (warnings included).
#[derive(Debug)]
pub struct Loaded {
    /// The story, when the file has no errors.
    pub story: Option<Story>,
    /// Every problem, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

const STORY_KEYS: &[&str] = &["name", "description", "agents"];

struct Ctx<'a> {
    file: &'a Path,
    spans: SpanMap,
    diagnostics: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn error_at(&mut self, pointer: &str, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(self.file, self.spans.value(pointer), message);
        d.hint = hint;
        self.diagnostics.push(d);
    }
    fn key_error(&mut self, pointer: &str, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(self.file, self.spans.key(pointer), message);
        d.hint = hint;
        self.diagnostics.push(d);
    }
}

/// Loads a story file's text without packs (an `action` agent is then an error). `file` is
/// used in diagnostics.
pub fn load_str(file: &Path, source: &str) -> Loaded {
    load_str_with(file, source, &Packs::empty())
}

/// Loads a story file's text; `action` agents find their actions in `packs`.
pub fn load_str_with(file: &Path, source: &str, packs: &Packs) -> Loaded {
    let (doc, spans) = match yaml::parse(source) {
        Ok(x) => x,
        Err(e) => {
            return Loaded {
                story: None,
                diagnostics: vec![Diagnostic::error(file, e.position, e.message)
                    .with_hint("check indentation and quoting; a value with `: ` or `{{` at its start needs quotes")],
            }
        }
    };
    let mut cx = Ctx {
        file,
        spans,
        diagnostics: Vec::new(),
    };
    let story = build_story(&mut cx, doc, source, packs);
    cx.diagnostics.sort_by_key(|d| (d.line, d.column));
    let has_errors = cx.diagnostics.iter().any(Diagnostic::is_error);
    Loaded {
        story: if has_errors { None } else { story },
        diagnostics: cx.diagnostics,
    }
}

/// Loads a story file from disk, without packs.
pub fn load_file(path: &Path) -> Loaded {
    load_file_with(path, &Packs::empty())
}

/// Loads a story file from disk; `action` agents find their actions in `packs`.
pub fn load_file_with(path: &Path, packs: &Packs) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str_with(path, &text, packs),
        Err(e) => Loaded {
            story: None,
            diagnostics: vec![Diagnostic::error(
                path,
                yaml::Position { line: 1, column: 1 },
                format!("cannot read the file: {e}"),
            )],
        },
    }
}

/// Loads every `*.yaml`/`*.yml` story in a directory (not `*.test.yaml`), sorted by file
/// name; also reports two files that declare the same story name.
pub fn load_dir(dir: &Path) -> (Vec<Story>, Vec<Diagnostic>) {
    load_dir_with(dir, &Packs::empty())
}

/// Like [`load_dir`], with packs for `action` agents.
pub fn load_dir_with(dir: &Path, packs: &Packs) -> (Vec<Story>, Vec<Diagnostic>) {
    let mut files = story_files(dir);
    files.sort();
    let mut stories: Vec<Story> = Vec::new();
    let mut diagnostics = Vec::new();
    for path in files {
        let loaded = load_file_with(&path, packs);
        diagnostics.extend(loaded.diagnostics);
        if let Some(story) = loaded.story {
            if let Some(first) = stories.iter().find(|s| s.name == story.name) {
                diagnostics.push(
                    Diagnostic::error(
                        &path,
                        yaml::Position { line: 1, column: 1 },
                        format!(
                            "story name `{}` is already used by {}",
                            story.name,
                            first.file.display()
                        ),
                    )
                    .with_hint("story names must be unique across the stories directory"),
                );
                continue;
            }
            stories.push(story);
        }
    }
    diagnostics.extend(crate::check_references(&stories));
    (stories, diagnostics)
}

/// The story files of a directory (recursively), excluding story tests.
pub fn story_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(story_files(&path));
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if (name.ends_with(".yaml") || name.ends_with(".yml"))
            && !name.contains(".test.")
            && !name.starts_with('.')
        {
            out.push(path);
        }
    }
    out
}

fn is_story_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_agent_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn build_story(cx: &mut Ctx<'_>, doc: Value, source: &str, packs: &Packs) -> Option<Story> {
    let Value::Object(top) = doc else {
        cx.error_at(
            "",
            "a story file must be a mapping with `name` and `agents`",
            Some("start with `name: my-story` and `agents:`".into()),
        );
        return None;
    };
    for key in top.keys() {
        if !STORY_KEYS.contains(&key.as_str()) {
            let hint =
                best_match(key, STORY_KEYS.iter().copied()).map(|s| format!("did you mean `{s}`?"));
            cx.key_error(
                &format!("/{key}"),
                format!("unknown story field `{key}`"),
                hint.or_else(|| Some("a story has `name`, `description` and `agents`".into())),
            );
        }
    }
    let name = match top.get("name") {
        Some(Value::String(n)) if is_story_name(n) => Some(n.clone()),
        Some(Value::String(n)) => {
            cx.error_at(
                "/name",
                format!("story name `{n}` may only hold lower-case letters, digits and `-`"),
                None,
            );
            None
        }
        Some(_) => {
            cx.error_at("/name", "story `name` must be a string", None);
            None
        }
        None => {
            cx.error_at(
                "",
                "the story has no `name`",
                Some("add `name: my-story`".into()),
            );
            None
        }
    };
    let description = match top.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            cx.error_at("/description", "`description` must be a string", None);
            None
        }
    };
    let agent_values = match top.get("agents") {
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            cx.error_at("/agents", "`agents` must be a list", None);
            return None;
        }
        None => {
            cx.error_at(
                "",
                "the story has no `agents`",
                Some("add `agents:` with at least one agent".into()),
            );
            return None;
        }
    };

    let mut compiler = Compiler::new(Limits::default());
    let mut agents: Vec<AgentDef> = Vec::with_capacity(agent_values.len());
    let mut by_name: HashMap<Arc<str>, usize> = HashMap::new();
    let mut ok = true;
    // Agents that failed to build still own their name, so references to them are not
    // reported as unknown; the graph checks below run on the agents that did build.
    let mut failed_names: Vec<String> = Vec::new();
    let mut positions: Vec<usize> = Vec::new();
    for (i, value) in agent_values.into_iter().enumerate() {
        let base = format!("/agents/{i}");
        let raw_name = value
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        match build_agent(cx, &base, value, &mut compiler, packs) {
            Some(def) if failed_names.iter().any(|n| **n == *def.name) => {
                cx.error_at(
                    &format!("{base}/name"),
                    format!("duplicate agent name `{}`", def.name),
                    Some("names are unique in a story".into()),
                );
                ok = false;
            }
            Some(def) => {
                if let Some(&first) = by_name.get(&def.name) {
                    cx.error_at(
                        &format!("{base}/name"),
                        format!("duplicate agent name `{}`", def.name),
                        Some(format!(
                            "agent {} already has this name; names are unique in a story",
                            positions[first] + 1
                        )),
                    );
                    ok = false;
                    continue;
                }
                by_name.insert(Arc::clone(&def.name), agents.len());
                agents.push(def);
                positions.push(i);
            }
            None => {
                ok = false;
                if let Some(n) = raw_name {
                    if by_name.contains_key(n.as_str()) || failed_names.contains(&n) {
                        cx.error_at(
                            &format!("{base}/name"),
                            format!("duplicate agent name `{n}`"),
                            Some("names are unique in a story".into()),
                        );
                    }
                    failed_names.push(n);
                }
            }
        }
    }
    compiler.finish();

    // Wire `from` edges.
    let mut names: Vec<String> = agents
        .iter()
        .map(|a| a.name.to_string())
        .chain(failed_names.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); agents.len()];
    for i in 0..agents.len() {
        let at = positions[i];
        let is_source = agents[i].agent.source().is_some();
        if is_source && !agents[i].from.is_empty() {
            cx.error_at(
                &format!("/agents/{at}/from"),
                format!(
                    "`{}` is a {} agent: it starts runs and cannot take `from`",
                    agents[i].name, agents[i].kind
                ),
                None,
            );
            ok = false;
        }
        if !is_source && agents[i].from.is_empty() {
            cx.diagnostics.push(
                Diagnostic::warning(
                    cx.file,
                    cx.spans.value(&format!("/agents/{at}")),
                    format!(
                        "agent `{}` has no `from`: it never receives events",
                        agents[i].name
                    ),
                )
                .with_hint("add `from: UPSTREAM_AGENT`"),
            );
        }
        for (j, r) in agents[i].from.clone().iter().enumerate() {
            let ptr = if agents[i].options.get("from").is_some_and(Value::is_array) {
                format!("/agents/{at}/from/{j}")
            } else {
                format!("/agents/{at}/from")
            };
            match by_name.get(r.agent.as_str()) {
                None if failed_names.contains(&r.agent) => {}
                None => {
                    let hint = best_match(&r.agent, names.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"));
                    cx.error_at(
                        &ptr,
                        format!(
                            "`from` names `{}`, which is not an agent of this story",
                            r.agent
                        ),
                        hint.or_else(|| Some(format!("agents here: {}", names.join(", ")))),
                    );
                    ok = false;
                }
                Some(&up) => {
                    edges[up].push(i);
                    if r.errors {
                        agents[up].error_downstream.push(i);
                    } else {
                        agents[up].downstream.push(i);
                    }
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let path: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| &*agents[i].name)
            .collect();
        cx.error_at(&format!("/agents/{}/from", positions[cycle[0]]), format!("agents form a cycle: {}", path.join(" → ")), Some("events must flow one way; break the loop (a `story` agent can start a new run instead)".into()));
        ok = false;
    }

    // Webhook paths.
    let mut webhooks = HashMap::new();
    for (i, a) in agents.iter().enumerate() {
        if let Some(Source::Webhook(w)) = a.agent.source() {
            let path = w.path.clone().unwrap_or_else(|| a.name.to_string());
            if let Some(&other) = webhooks.get(&path) {
                let other: usize = other;
                cx.error_at(
                    &format!("/agents/{}", positions[i]),
                    format!(
                        "webhook path `{path}` is already used by agent `{}`",
                        agents[other].name
                    ),
                    None,
                );
                ok = false;
            } else {
                webhooks.insert(path, i);
            }
        }
    }

    let name = name?;
    if !ok {
        return None;
    }
    Some(Story {
        name: name.into(),
        description,
        file: cx.file.to_path_buf(),
        agents,
        by_name,
        webhooks,
        source: source.to_string(),
    })
}

fn build_agent(
    cx: &mut Ctx<'_>,
    base: &str,
    value: Value,
    compiler: &mut Compiler,
    packs: &Packs,
) -> Option<AgentDef> {
    let Value::Object(map) = value else {
        cx.error_at(
            base,
            "an agent must be a mapping with `name` and `type`",
            None,
        );
        return None;
    };
    let options = Value::Object(map.clone());
    let (mut common_map, mut rest) = (Map::new(), Map::new());
    for (k, v) in map {
        if COMMON_OPTION_NAMES.contains(&k.as_str()) {
            common_map.insert(k, v);
        } else {
            rest.insert(k, v);
        }
    }
    let common: CommonOptions = match serde_path_to_error::deserialize(Value::Object(common_map)) {
        Ok(c) => c,
        Err(e) => {
            let path = path_pointer(e.path());
            let msg = e.inner().to_string();
            if msg.starts_with("missing field") {
                cx.error_at(
                    base,
                    format!("agent {msg}"),
                    Some("every agent has `name` and `type`".into()),
                );
            } else {
                cx.error_at(&format!("{base}{path}"), msg, None);
            }
            return None;
        }
    };
    let mut ok = true;
    if !is_agent_name(&common.name) {
        cx.error_at(&format!("{base}/name"), format!("agent name `{}` must start with a lower-case letter and hold only lower-case letters, digits and `_`", common.name), None);
        ok = false;
    }
    if RESERVED_NAMES.contains(&common.name.as_str()) {
        cx.error_at(
            &format!("{base}/name"),
            format!(
                "agent name `{}` would hide the template variable of the same name",
                common.name
            ),
            Some(format!(
                "these names are reserved: {}",
                RESERVED_NAMES.join(", ")
            )),
        );
        ok = false;
    }
    // An `action` agent without a `timeout` of its own has its action's (a long `command`
    // body is not cut short by the server's default).
    let timeout = common.timeout.or_else(|| {
        let uses = (common.kind == "action").then(|| options.get("uses")?.as_str())??;
        packs
            .actions
            .get(uses)?
            .timeout
            .map(switchyard_types::Duration)
    });
    let mut bcx = BuildContext::new(compiler).with_actions(&packs.actions);
    bcx.timeout = timeout;
    let condition = common
        .condition
        .as_ref()
        .and_then(|c| bcx.condition("/if", c));
    let built = registry::build(&common.kind, Value::Object(rest), &mut bcx);
    let problems = bcx.into_problems();
    for p in problems {
        let ptr = format!("{base}{}", p.path);
        let at = if points_at_key(&p.message) {
            cx.spans.key(&ptr)
        } else {
            cx.spans.value(&ptr)
        };
        let mut d = if p.warning {
            Diagnostic::warning(cx.file, at, p.message)
        } else {
            Diagnostic::error(cx.file, at, p.message)
        };
        d.hint = p.hint;
        cx.diagnostics.push(d);
    }
    let agent = match built {
        None => {
            let hint = best_match(&common.kind, registry::TYPES.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("known types: {}", registry::TYPES.join(", ")));
            cx.error_at(
                &format!("{base}/type"),
                format!("unknown agent type `{}`", common.kind),
                Some(hint),
            );
            return None;
        }
        Some(Err(_)) => return None,
        Some(Ok(a)) => a,
    };
    if !ok || (common.condition.is_some() && condition.is_none()) {
        return None;
    }
    Some(AgentDef {
        name: common.name.as_str().into(),
        kind: common.kind,
        description: common.description,
        from: common.from,
        condition,
        retry: common.retry,
        timeout,
        agent,
        downstream: Vec::new(),
        error_downstream: Vec::new(),
        options,
    })
}

/// Problems about a key (an unknown option or parameter, a missing parameter) point at the
/// key rather than at its value.
pub(crate) fn points_at_key(message: &str) -> bool {
    [
        "unknown option",
        "unknown parameter",
        "missing required parameter",
    ]
    .iter()
    .any(|p| message.starts_with(p))
}

fn path_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{key}")),
            _ => {}
        }
    }
    out
}
