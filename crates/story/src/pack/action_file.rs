//! One action file: `name`, `description`, `parameters`, and `run` — the body, one agent
//! definition (`type` plus that type's options, and an optional `timeout`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use switchyard_agents::action::PackAction;
use switchyard_agents::registry::{self, best_match};
use switchyard_agents::{BuildContext, ParamSpec, Parameters};
use switchyard_template::{Compiler, Limits};
use switchyard_types::Duration;

use super::{is_identifier, read_yaml, yaml_segment, FileCx};
use crate::diagnostic::Diagnostic;

const ACTION_KEYS: &[&str] = &["name", "description", "parameters", "run"];
const PARAM_FIELDS: &[&str] = &[
    "type",
    "required",
    "default",
    "enum",
    "description",
    "secret",
];
const PARAM_TYPES: &[&str] = &["string", "integer", "number", "boolean", "array", "object"];
/// Options of a story agent that have no meaning in an action's body.
const NOT_IN_BODY: &[&str] = &["name", "from", "if", "retry", "description"];

/// Loads one action file of pack `pack`. `resource_defaults` are the pack's.
pub fn load_action_file(
    file: &Path,
    pack: &str,
    resource_defaults: &Arc<BTreeMap<String, String>>,
) -> (Option<PackAction>, Vec<Diagnostic>) {
    let (doc, spans, _) = match read_yaml(file) {
        Ok(x) => x,
        Err(d) => return (None, vec![d]),
    };
    let mut cx = FileCx {
        file,
        spans,
        diagnostics: Vec::new(),
    };
    let action = read_action(&mut cx, file, pack, resource_defaults, doc);
    let mut diagnostics = cx.diagnostics;
    diagnostics.sort_by_key(|d| (d.line, d.column));
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    (action.filter(|_| ok), diagnostics)
}

fn read_action(
    cx: &mut FileCx<'_>,
    file: &Path,
    pack: &str,
    resource_defaults: &Arc<BTreeMap<String, String>>,
    doc: Value,
) -> Option<PackAction> {
    let Value::Object(top) = doc else {
        cx.error(
            "",
            "an action file must be a mapping with `name`, `description`, `parameters` and `run`",
            None,
        );
        return None;
    };
    cx.unknown_keys("", &top, ACTION_KEYS, "an action file");
    let stem = file
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_end_matches(".yaml").trim_end_matches(".yml"))
        .unwrap_or("")
        .to_string();
    let name = match top.get("name") {
        None => Some(stem.clone()),
        Some(Value::String(n)) if *n != stem => {
            cx.error(
                "/name",
                format!("action name `{n}` differs from its file name `{stem}`"),
                Some("an action's name is its file's name: rename one of them".into()),
            );
            None
        }
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => {
            cx.error("/name", "action `name` must be a string", None);
            None
        }
    };
    if let Some(n) = &name {
        if !is_identifier(n) {
            cx.error(
                "/name",
                format!("action name `{n}` must start with a lower-case letter and hold only lower-case letters, digits and `_`"),
                None,
            );
        }
    }
    let description = cx.opt_string(&top, "", "description");
    let parameters = read_parameters(cx, top.get("parameters"));
    let reference = format!("{pack}.{}", name.as_deref().unwrap_or(&stem));
    let body = match top.get("run") {
        Some(Value::Object(m)) => read_body(cx, m.clone()),
        Some(_) => {
            cx.error(
                "/run",
                "`run` must be one agent definition: `type` and its options",
                None,
            );
            None
        }
        None => {
            cx.error(
                "",
                "the action has no `run`",
                Some(
                    "add `run:` with `type: http_request` (or command, story, transform) and its options"
                        .into(),
                ),
            );
            None
        }
    };
    let (body_kind, body, timeout) = body?;
    Some(PackAction {
        pack: pack.to_string(),
        name: name?,
        reference,
        description,
        parameters,
        body_kind,
        body,
        timeout,
        resource_defaults: Arc::clone(resource_defaults),
        file: file.to_path_buf(),
    })
}

fn read_parameters(cx: &mut FileCx<'_>, v: Option<&Value>) -> Parameters {
    let map = match v {
        None | Some(Value::Null) => return Parameters::default(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            cx.error(
                "/parameters",
                "`parameters` must be a mapping of parameter name to `{type, required, default, enum, description, secret}`",
                None,
            );
            return Parameters::default();
        }
    };
    let mut list = Vec::with_capacity(map.len());
    for (name, spec) in map {
        let base = format!("/parameters/{}", yaml_segment(name));
        if !is_identifier(name) {
            cx.key_error(
                &base,
                format!("parameter name `{name}` must start with a lower-case letter and hold only lower-case letters, digits and `_`"),
                Some("templates read it as `params.NAME`".into()),
            );
            continue;
        }
        if let Some(spec) = read_param(cx, &base, spec) {
            list.push((name.clone(), spec));
        }
    }
    Parameters::new(list)
}

fn read_param(cx: &mut FileCx<'_>, base: &str, spec: &Value) -> Option<ParamSpec> {
    let Value::Object(m) = spec else {
        cx.error(
            base,
            "a parameter is a mapping: `{type: string, required: true, description: …}`",
            None,
        );
        return None;
    };
    cx.unknown_keys(base, m, PARAM_FIELDS, "a parameter");
    if !m.contains_key("type") {
        cx.error(
            base,
            "the parameter has no `type`",
            Some(format!("add `type:` — one of {}", PARAM_TYPES.join(", "))),
        );
        return None;
    }
    let known: Map<String, Value> = m
        .iter()
        .filter(|(k, _)| PARAM_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let spec: ParamSpec = match serde_path_to_error::deserialize(Value::Object(known)) {
        Ok(s) => s,
        Err(e) => {
            let field = e
                .path()
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("/");
            let message = e.inner().to_string();
            if field == "type" {
                let given = m.get("type").and_then(Value::as_str).unwrap_or("");
                let hint = best_match(given, PARAM_TYPES.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("types: {}", PARAM_TYPES.join(", ")));
                cx.error(
                    &format!("{base}/type"),
                    format!("unknown parameter type `{given}`"),
                    Some(hint),
                );
            } else {
                cx.error(&format!("{base}/{field}"), message, None);
            }
            return None;
        }
    };
    if let Some(d) = &spec.default {
        if spec.kind.accept(d).is_none() {
            cx.error(
                &format!("{base}/default"),
                format!("the default {d} is not of type {}", spec.kind),
                None,
            );
        }
    }
    if let Some(choices) = &spec.choices {
        for (i, c) in choices.iter().enumerate() {
            if spec.kind.accept(c).is_none() {
                cx.error(
                    &format!("{base}/enum/{i}"),
                    format!("{c} is not of type {}", spec.kind),
                    None,
                );
            }
        }
        if let Some(d) = &spec.default {
            if !choices.contains(d) {
                cx.error(
                    &format!("{base}/default"),
                    format!("the default {d} is not one of the `enum` values"),
                    None,
                );
            }
        }
    }
    if spec.required && spec.default.is_some() {
        cx.warning(
            &format!("{base}/required"),
            "a required parameter with a default is never missing",
            Some("drop `required: true` or the default".into()),
        );
    }
    Some(spec)
}

type Body = (
    String,
    Arc<dyn switchyard_agents::Agent>,
    Option<std::time::Duration>,
);

fn read_body(cx: &mut FileCx<'_>, mut map: Map<String, Value>) -> Option<Body> {
    let mut ok = true;
    for key in NOT_IN_BODY {
        if map.remove(*key).is_some() {
            let why = match *key {
                "retry" => "set `retry` on the story's `action` agent that runs this action",
                "description" => "describe the action at the top of the file",
                _ => "an action's body is run by the action, not wired in a story",
            };
            cx.key_error(
                &format!("/run/{key}"),
                format!("an action's body takes no `{key}`"),
                Some(why.into()),
            );
            ok = false;
        }
    }
    let timeout = match map.remove("timeout") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match Duration::parse(&s) {
            Ok(d) => Some(d.std()),
            Err(e) => {
                cx.error("/run/timeout", e.to_string(), None);
                ok = false;
                None
            }
        },
        Some(_) => {
            cx.error("/run/timeout", "`timeout` is a duration like `30s`", None);
            ok = false;
            None
        }
    };
    let kind = match map.remove("type") {
        Some(Value::String(k)) => k,
        Some(_) => {
            cx.error("/run/type", "`type` must be a string", None);
            return None;
        }
        None => {
            cx.error(
                "/run",
                "the body has no `type`",
                Some("add `type: http_request` (or command, story, transform)".into()),
            );
            return None;
        }
    };
    if kind == "action" {
        cx.error(
            "/run/type",
            "an action's body cannot be another action",
            Some("use the other action's body here, or chain the two in a story".into()),
        );
        return None;
    }
    if !registry::TYPES.contains(&kind.as_str()) {
        let hint = best_match(&kind, registry::TYPES.iter().copied())
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| format!("known types: {}", registry::TYPES.join(", ")));
        cx.error(
            "/run/type",
            format!("unknown agent type `{kind}`"),
            Some(hint),
        );
        return None;
    }
    let mut compiler = Compiler::new(Limits::default());
    let mut bcx = BuildContext::new(&mut compiler);
    // As for a story's agent: types that give `timeout` a meaning of their own (a
    // sub-story's wait) read it from the build context.
    bcx.timeout = timeout.map(Duration);
    let built = registry::build(&kind, Value::Object(map), &mut bcx);
    for p in bcx.into_problems() {
        let ptr = format!("/run{}", p.path);
        let at = if crate::load::points_at_key(&p.message) {
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
    compiler.finish();
    let agent = match built {
        Some(Ok(a)) => a,
        _ => return None,
    };
    if agent.source().is_some() {
        cx.error(
            "/run/type",
            format!("a `{kind}` agent starts runs; it cannot be an action's body"),
            Some("an action's body is http_request, command, story or transform".into()),
        );
        return None;
    }
    if !ok {
        return None;
    }
    Some((kind, agent, timeout))
}
