//! Packs: `packs/NAME/pack.yaml` (name, version, description, the credentials and resources
//! the pack reads, resource defaults) and `packs/NAME/actions/ACTION.yaml` (parameters and a
//! body that is one agent definition). Loaded with the same YAML-with-positions machinery as
//! stories: every problem at `file:line:col`, a load never panics.

mod action_file;
mod run_story;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use switchyard_agents::action::ActionCatalog;
use switchyard_agents::registry::best_match;

use crate::diagnostic::Diagnostic;
use crate::yaml::{self, Position, SpanMap};

pub use action_file::load_action_file;
pub use run_story::{action_story, ACTION_AGENT, INPUT_AGENT};

/// A pack's metadata.
#[derive(Clone, Debug, Serialize)]
pub struct Pack {
    /// Name (the directory's name): the `PACK` of `PACK.ACTION`.
    pub name: String,
    /// Version.
    pub version: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Credentials its actions read (`credential.NAME`), with what each is.
    pub credentials: Vec<Named>,
    /// Resources its actions read (`resource.NAME`), with their defaults.
    pub resources: Vec<ResourceSpec>,
    /// Its directory.
    pub dir: PathBuf,
    /// Its actions' references, sorted.
    pub actions: Vec<String>,
}

/// A credential a pack reads.
#[derive(Clone, Debug, Serialize)]
pub struct Named {
    /// Name.
    pub name: String,
    /// What it is.
    pub description: Option<String>,
}

/// A resource a pack reads.
#[derive(Clone, Debug, Serialize)]
pub struct ResourceSpec {
    /// Name.
    pub name: String,
    /// The value used when the resource is not set.
    pub default: Option<String>,
    /// What it is.
    pub description: Option<String>,
}

/// Every loaded pack and action.
#[derive(Debug, Default)]
pub struct Packs {
    /// The packs, sorted by name.
    pub packs: Vec<Pack>,
    /// Their actions, by `PACK.ACTION`.
    pub actions: ActionCatalog,
    /// A hash of every pack file's path and text: unchanged packs, same fingerprint.
    pub fingerprint: u64,
}

impl Packs {
    /// No packs.
    pub fn empty() -> Packs {
        Packs::default()
    }

    /// A pack by name.
    pub fn pack(&self, name: &str) -> Option<&Pack> {
        self.packs.iter().find(|p| p.name == name)
    }
}

const PACK_KEYS: &[&str] = &["name", "version", "description", "credentials", "resources"];

/// Collects diagnostics for one file.
pub(crate) struct FileCx<'a> {
    pub file: &'a Path,
    pub spans: SpanMap,
    pub diagnostics: Vec<Diagnostic>,
}

impl FileCx<'_> {
    pub fn error(&mut self, pointer: &str, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(self.file, self.spans.value(pointer), message);
        d.hint = hint;
        self.diagnostics.push(d);
    }
    pub fn key_error(&mut self, pointer: &str, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(self.file, self.spans.key(pointer), message);
        d.hint = hint;
        self.diagnostics.push(d);
    }
    pub fn warning(&mut self, pointer: &str, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::warning(self.file, self.spans.value(pointer), message);
        d.hint = hint;
        self.diagnostics.push(d);
    }
    /// Reports keys of `map` (at `pointer`) that are not in `allowed`.
    pub fn unknown_keys(
        &mut self,
        pointer: &str,
        map: &serde_json::Map<String, Value>,
        allowed: &[&str],
        what: &str,
    ) {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                let hint = best_match(key, allowed.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("{what} has: {}", allowed.join(", ")));
                self.key_error(
                    &format!("{pointer}/{}", yaml_segment(key)),
                    format!("unknown field `{key}`"),
                    Some(hint),
                );
            }
        }
    }
    /// An optional string field.
    pub fn opt_string(
        &mut self,
        map: &serde_json::Map<String, Value>,
        pointer: &str,
        key: &str,
    ) -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error(
                    &format!("{pointer}/{key}"),
                    format!("`{key}` must be a string"),
                    Some("quote it: `\"1.0\"`".into()),
                );
                None
            }
        }
    }
}

pub(crate) fn yaml_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Pack, action and parameter names: a lower-case letter, then lower-case letters, digits
/// and `_`.
pub fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Parses a YAML file into JSON and spans, or reports why it cannot be read.
pub(crate) fn read_yaml(path: &Path) -> Result<(Value, SpanMap, String), Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::error(
            path,
            Position { line: 1, column: 1 },
            format!("cannot read the file: {e}"),
        )
    })?;
    let (v, spans) = yaml::parse(&text).map_err(|e| {
        Diagnostic::error(path, e.position, e.message).with_hint(
            "check indentation and quoting; a value with `: ` or `{{` at its start needs quotes",
        )
    })?;
    Ok((v, spans, text))
}

/// Whether `dir` is a pack (holds `pack.yaml`).
pub fn is_pack_dir(dir: &Path) -> bool {
    dir.join("pack.yaml").is_file()
}

/// Whether `dir` holds packs (a subdirectory with `pack.yaml`).
pub fn is_packs_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().any(|e| is_pack_dir(&e.path())))
        .unwrap_or(false)
}

/// Loads every pack under `dir` (each subdirectory with a `pack.yaml`), sorted by name. A
/// missing directory is no packs.
pub fn load_packs(dir: &Path) -> (Packs, Vec<Diagnostic>) {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    load_pack_dirs(&dirs)
}

/// Loads the packs in these directories; directories without `pack.yaml` are reported.
pub fn load_pack_dirs(dirs: &[PathBuf]) -> (Packs, Vec<Diagnostic>) {
    let mut packs = Packs::default();
    let mut diagnostics = Vec::new();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for dir in dirs {
        let manifest = dir.join("pack.yaml");
        if !manifest.is_file() {
            if dir.join("actions").is_dir() {
                diagnostics.push(
                    Diagnostic::error(
                        dir,
                        Position { line: 1, column: 1 },
                        "this pack has no pack.yaml",
                    )
                    .with_hint("add pack.yaml with `name`, `version` and `description`"),
                );
            }
            continue;
        }
        let (pack, actions, problems) = load_pack(dir, &mut hasher);
        diagnostics.extend(problems);
        let Some(mut pack) = pack else { continue };
        if let Some(other) = packs.packs.iter().find(|p| p.name == pack.name) {
            diagnostics.push(Diagnostic::error(
                &manifest,
                Position { line: 1, column: 1 },
                format!(
                    "pack name `{}` is already used by {}",
                    pack.name,
                    other.dir.display()
                ),
            ));
            continue;
        }
        pack.actions = actions.iter().map(|a| a.reference.clone()).collect();
        pack.actions.sort();
        for a in actions {
            packs.actions.insert(a);
        }
        packs.packs.push(pack);
    }
    packs.packs.sort_by(|a, b| a.name.cmp(&b.name));
    packs.fingerprint = hasher.finish();
    (packs, diagnostics)
}

/// Loads one pack directory: its metadata, its valid actions, and every problem.
fn load_pack(
    dir: &Path,
    hasher: &mut impl Hasher,
) -> (
    Option<Pack>,
    Vec<switchyard_agents::action::PackAction>,
    Vec<Diagnostic>,
) {
    let manifest = dir.join("pack.yaml");
    let (doc, spans, text) = match read_yaml(&manifest) {
        Ok(x) => x,
        Err(d) => return (None, Vec::new(), vec![d]),
    };
    manifest.hash(hasher);
    text.hash(hasher);
    let mut cx = FileCx {
        file: &manifest,
        spans,
        diagnostics: Vec::new(),
    };
    let pack = read_manifest(&mut cx, dir, doc);
    let mut diagnostics = cx.diagnostics;
    let Some(pack) = pack else {
        return (None, Vec::new(), diagnostics);
    };
    let defaults: Arc<BTreeMap<String, String>> = Arc::new(
        pack.resources
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.default.clone()?)))
            .collect(),
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("actions"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    (n.ends_with(".yaml") || n.ends_with(".yml")) && !n.starts_with('.')
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut actions = Vec::new();
    for file in files {
        if let Ok(text) = std::fs::read_to_string(&file) {
            file.hash(hasher);
            text.hash(hasher);
        }
        let (action, problems) = load_action_file(&file, &pack.name, &defaults);
        diagnostics.extend(problems);
        if let Some(a) = action {
            if actions
                .iter()
                .any(|b: &switchyard_agents::action::PackAction| b.name == a.name)
            {
                diagnostics.push(Diagnostic::error(
                    &file,
                    Position { line: 1, column: 1 },
                    format!("action `{}` is defined twice in this pack", a.reference),
                ));
                continue;
            }
            actions.push(a);
        }
    }
    (Some(pack), actions, diagnostics)
}

fn read_manifest(cx: &mut FileCx<'_>, dir: &Path, doc: Value) -> Option<Pack> {
    let Value::Object(top) = doc else {
        cx.error(
            "",
            "pack.yaml must be a mapping with `name`, `version` and `description`",
            None,
        );
        return None;
    };
    cx.unknown_keys("", &top, PACK_KEYS, "pack.yaml");
    let dir_name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let name = match top.get("name") {
        Some(Value::String(n)) if !is_identifier(n) => {
            cx.error(
                "/name",
                format!("pack name `{n}` must start with a lower-case letter and hold only lower-case letters, digits and `_`"),
                None,
            );
            None
        }
        Some(Value::String(n)) if *n != dir_name => {
            cx.error(
                "/name",
                format!("pack name `{n}` differs from its directory `{dir_name}`"),
                Some("a pack's name is its directory's name: rename one of them".into()),
            );
            None
        }
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => {
            cx.error("/name", "pack `name` must be a string", None);
            None
        }
        None => {
            cx.error(
                "",
                "pack.yaml has no `name`",
                Some(format!("add `name: {dir_name}`")),
            );
            None
        }
    };
    let version = cx.opt_string(&top, "", "version");
    let description = cx.opt_string(&top, "", "description");
    let credentials = read_credentials(cx, top.get("credentials"));
    let resources = read_resources(cx, top.get("resources"));
    Some(Pack {
        name: name?,
        version,
        description,
        credentials,
        resources,
        dir: dir.to_path_buf(),
        actions: Vec::new(),
    })
}

/// `credentials`: a list of names, or a mapping of name to description.
fn read_credentials(cx: &mut FileCx<'_>, v: Option<&Value>) -> Vec<Named> {
    let mut out = Vec::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(n) => out.push(Named {
                        name: n.to_string(),
                        description: None,
                    }),
                    None => cx.error(
                        &format!("/credentials/{i}"),
                        "a credential name must be a string",
                        None,
                    ),
                }
            }
        }
        Some(Value::Object(map)) => {
            for (name, d) in map {
                let description = match d {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    _ => {
                        cx.error(
                            &format!("/credentials/{}", yaml_segment(name)),
                            "a credential's entry is its description (a string)",
                            None,
                        );
                        None
                    }
                };
                out.push(Named {
                    name: name.clone(),
                    description,
                });
            }
        }
        Some(_) => cx.error(
            "/credentials",
            "`credentials` must be a list of names or a mapping of name to description",
            None,
        ),
    }
    out
}

/// `resources`: a mapping of name to `{default, description}`.
fn read_resources(cx: &mut FileCx<'_>, v: Option<&Value>) -> Vec<ResourceSpec> {
    let mut out = Vec::new();
    let map = match v {
        None | Some(Value::Null) => return out,
        Some(Value::Object(map)) => map,
        Some(_) => {
            cx.error(
                "/resources",
                "`resources` must be a mapping of name to `{default, description}`",
                None,
            );
            return out;
        }
    };
    for (name, spec) in map {
        let base = format!("/resources/{}", yaml_segment(name));
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            cx.key_error(
                &base,
                format!("resource name `{name}` may hold only letters, digits and `_`"),
                None,
            );
            continue;
        }
        let (default, description) = match spec {
            Value::Null => (None, None),
            Value::Object(m) => {
                cx.unknown_keys(&base, m, &["default", "description"], "a resource");
                let default = match m.get("default") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    Some(_) => {
                        cx.error(
                            &format!("{base}/default"),
                            "a resource's default is a string (resources hold text)",
                            None,
                        );
                        None
                    }
                };
                (default, cx.opt_string(m, &base, "description"))
            }
            _ => {
                cx.error(
                    &base,
                    "a resource is a mapping: `{default: VALUE, description: TEXT}`",
                    None,
                );
                (None, None)
            }
        };
        out.push(ResourceSpec {
            name: name.clone(),
            default,
            description,
        });
    }
    out
}

#[cfg(test)]
mod tests;
