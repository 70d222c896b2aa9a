//! `action`: runs a pack action — `uses: PACK.ACTION`, `with: {params}`.
//!
//! A pack action ([`PackAction`]) is a parameter schema plus one built agent (its body:
//! `http_request`, `command`, `story`, or a pure `transform`). Packs are loaded by the story
//! crate into an [`ActionCatalog`], which the story loader hands to the build step through
//! [`BuildContext::with_actions`]; an `action` agent holds the action it uses, so a story
//! keeps running the version it was built with until it is reloaded.
//!
//! At execution the `with` templates are rendered with the story's context, defaults are
//! applied and types checked, and the body runs with a context of its own: `params`, plus
//! `resource` (with the pack's resource defaults beneath it), `credential`, `run` and `now`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_template::{Lookup, TemplateValue};

use crate::registry::{best_match, AgentType};
use crate::{Agent, AgentError, BuildContext, ExecContext, Invalid, Outcome, Parameters};

/// One action of a pack, built once per pack load.
#[derive(Debug)]
pub struct PackAction {
    /// The pack's name.
    pub pack: String,
    /// The action's name.
    pub name: String,
    /// `PACK.ACTION`.
    pub reference: String,
    /// What it does (and the vendor endpoint it calls).
    pub description: Option<String>,
    /// Its parameters.
    pub parameters: Parameters,
    /// The body's agent type.
    pub body_kind: String,
    /// The body, built.
    pub body: Arc<dyn Agent>,
    /// Time limit of one run of the body (`timeout` in the body).
    pub timeout: Option<Duration>,
    /// The pack's resources and their defaults, beneath the resources that are set.
    pub resource_defaults: Arc<BTreeMap<String, String>>,
    /// The action file.
    pub file: PathBuf,
}

/// Every loaded action, by `PACK.ACTION`.
#[derive(Debug, Default, Clone)]
pub struct ActionCatalog {
    actions: BTreeMap<String, Arc<PackAction>>,
}

impl ActionCatalog {
    /// Adds an action (replacing one with the same reference).
    pub fn insert(&mut self, action: PackAction) {
        self.actions
            .insert(action.reference.clone(), Arc::new(action));
    }

    /// An action by `PACK.ACTION`.
    pub fn get(&self, reference: &str) -> Option<&Arc<PackAction>> {
        self.actions.get(reference)
    }

    /// Every action, sorted by reference.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<PackAction>> {
        self.actions.values()
    }

    /// How many actions.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Options of an `action` agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionOptions {
    /// The action to run: `PACK.ACTION` (`digitalocean.create_droplet`).
    pub uses: String,
    /// Its parameters: a mapping whose values are templates
    /// (`name: "{{ shape.host }}"`), or one template that renders to a mapping
    /// (`"{{ shape.params }}"`). Literal values are checked against the action's schema
    /// when the story loads.
    #[serde(default)]
    pub with: Option<Value>,
}

/// A built `action` agent.
#[derive(Debug)]
pub struct Action {
    action: Arc<PackAction>,
    with: Option<TemplateValue>,
}

impl Action {
    /// The action this agent runs.
    pub fn action(&self) -> &Arc<PackAction> {
        &self.action
    }
}

fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        _ => false,
    }
}

impl AgentType for Action {
    type Options = ActionOptions;

    fn build(o: ActionOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        let Some(catalog) = cx.actions() else {
            cx.error_with_hint(
                "/uses",
                format!("no packs are loaded here, so action `{}` cannot be found", o.uses),
                "put the pack in the packs directory (`serve --packs DIR`; `validate` and `test` read ./packs or --packs DIR)",
            );
            return Err(Invalid);
        };
        let Some(action) = catalog.get(&o.uses).cloned() else {
            let hint = match best_match(&o.uses, catalog.iter().map(|a| a.reference.as_str())) {
                Some(s) => format!("did you mean `{s}`?"),
                None if !o.uses.contains('.') => "write `uses: PACK.ACTION`".to_string(),
                None if catalog.is_empty() => "no actions are loaded".to_string(),
                None => "`switchyard action list` shows the actions".to_string(),
            };
            cx.error_with_hint("/uses", format!("unknown action `{}`", o.uses), hint);
            return Err(Invalid);
        };
        let with = match &o.with {
            None | Some(Value::Null) => {
                report(cx, "/uses", &action, &Map::new());
                None
            }
            Some(Value::Object(map)) => {
                report(cx, "/with", &action, map);
                cx.value("/with", &Value::Object(map.clone()))
            }
            Some(v) if has_template(v) => cx.value("/with", v),
            Some(_) => {
                cx.error_with_hint(
                    "/with",
                    "`with` must be a mapping of parameters",
                    "write `with: {name: value}`, or one template that renders to a mapping",
                );
                None
            }
        };
        cx.finish_with(Action { action, with })
    }
}

/// Reports the literal-parameter problems of `with` at the right places.
fn report(cx: &mut BuildContext<'_>, at: &str, action: &PackAction, given: &Map<String, Value>) {
    for p in action
        .parameters
        .check_literal(&action.reference, given, has_template)
    {
        let path = match p.kind {
            crate::ProblemKind::Missing => at.to_string(),
            _ => format!("/with/{}", crate::build::pointer_segment(&p.param)),
        };
        match p.hint {
            Some(h) => cx.error_with_hint(&path, p.message, h),
            None => cx.error(&path, p.message),
        }
    }
}

#[async_trait]
impl Agent for Action {
    async fn execute(&self, cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        let action = &self.action;
        let given = match &self.with {
            None => Map::new(),
            Some(t) => match t.render(cx.templates)? {
                Value::Object(m) => m,
                Value::Null => Map::new(),
                other => {
                    return Err(AgentError::permanent(
                        "invalid_params",
                        format!(
                            "`with` rendered {}, not a mapping of parameters for `{}`",
                            kind_of(&other),
                            action.reference
                        ),
                    ))
                }
            },
        };
        run(action, given, cx).await
    }
}

/// Runs `action` with the `given` parameters (checked, defaults applied) in the caller's
/// execution context.
pub async fn run(
    action: &PackAction,
    given: Map<String, Value>,
    cx: &ExecContext<'_>,
) -> Result<Outcome, AgentError> {
    let params = action
        .parameters
        .resolve(&action.reference, given)
        .map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            AgentError::permanent(
                "invalid_params",
                format!("action `{}`: {}", action.reference, list.join("; ")),
            )
        })?;
    for (name, value) in action.parameters.secrets(&params) {
        cx.templates.record_secret(&name, &value);
    }
    let defaults = Arc::clone(&action.resource_defaults) as Arc<dyn Lookup>;
    let templates = cx
        .templates
        .for_action(Arc::new(Value::Object(params)), Some(defaults));
    let inner = cx.with_templates(&templates);
    let work = action.body.execute(&inner);
    match action.timeout {
        None => work.await,
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(AgentError::transient(
                "timeout",
                format!(
                    "action `{}` gave no result within {}",
                    action.reference,
                    switchyard_types::Duration(limit)
                ),
            )),
        },
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use switchyard_template::{Compiler, ContextBuilder, Limits};
    use switchyard_types::JobId;

    use super::*;
    use crate::{registry, Services, ServicesConfig};

    fn catalog() -> ActionCatalog {
        let mut compiler = Compiler::new(Limits::default());
        let mut cx = BuildContext::new(&mut compiler);
        let body = registry::build(
            "transform",
            json!({"mode": "message", "payload": {
                "params": "{{ params }}",
                "url": "{{ resource.demo_api_url }}",
                "token": "{{ credential.token }}",
            }}),
            &mut cx,
        )
        .unwrap()
        .unwrap();
        let later = registry::build("delay", json!({"for": "{{ params.wait }}"}), &mut cx)
            .unwrap()
            .unwrap();
        compiler.finish();
        let mut catalog = ActionCatalog::default();
        catalog.insert(PackAction {
            pack: "demo".into(),
            name: "later".into(),
            reference: "demo.later".into(),
            description: None,
            parameters: serde_json::from_value(json!({"wait": {"type": "string"}})).unwrap(),
            body_kind: "delay".into(),
            body: later,
            timeout: None,
            resource_defaults: Arc::new(BTreeMap::new()),
            file: "demo/actions/later.yaml".into(),
        });
        let parameters: Parameters = serde_json::from_value(json!({
            "name": {"type": "string", "required": true},
            "count": {"type": "integer", "default": 1},
            "password": {"type": "string", "secret": true},
        }))
        .unwrap();
        catalog.insert(PackAction {
            pack: "demo".into(),
            name: "show".into(),
            reference: "demo.show".into(),
            description: None,
            parameters,
            body_kind: "transform".into(),
            body,
            timeout: None,
            resource_defaults: Arc::new(BTreeMap::from([(
                "demo_api_url".to_string(),
                "https://api.demo.example".to_string(),
            )])),
            file: "demo/actions/show.yaml".into(),
        });
        catalog
    }

    async fn run_with(with: Value) -> (Result<Outcome, AgentError>, Vec<(String, String)>) {
        run_action("demo.show", with, false).await
    }

    async fn run_action(
        uses: &str,
        with: Value,
        resumed: bool,
    ) -> (Result<Outcome, AgentError>, Vec<(String, String)>) {
        let catalog = catalog();
        let mut compiler = Compiler::new(Limits::default());
        let mut cx = BuildContext::new(&mut compiler).with_actions(&catalog);
        let agent = registry::build("action", json!({"uses": uses, "with": with}), &mut cx)
            .unwrap()
            .unwrap();
        compiler.finish();
        let input = Arc::new(json!({"body": {"name": "web", "n": "3", "pw": "hunter22"}}));
        let templates = ContextBuilder::new()
            .agent("inbound", Arc::clone(&input))
            .event(Arc::clone(&input))
            .credentials(Arc::new(BTreeMap::from([(
                "token".to_string(),
                "s3cret".to_string(),
            )])))
            .build();
        let services = Services::new(ServicesConfig::default()).unwrap();
        let cx = ExecContext {
            templates: &templates,
            input: &input,
            services: &services,
            job_id: JobId::new(),
            attempt: 1,
            story: "s",
            agent: "a",
            resumed,
            host: &crate::NoHost,
        };
        let out = agent.execute(&cx).await;
        (out, templates.credentials_used())
    }

    #[tokio::test]
    async fn renders_with_applies_defaults_and_runs_the_body_with_params() {
        let (out, used) = run_with(json!({
            "name": "{{ inbound.body.name }}",
            "count": "{{ inbound.body.n }}",
            "password": "{{ inbound.body.pw }}",
        }))
        .await;
        let Ok(Outcome::Emit(v)) = out else {
            panic!("{out:?}")
        };
        assert_eq!(
            v[0],
            json!({
                "params": {"name": "web", "count": 3, "password": "hunter22"},
                "url": "https://api.demo.example",
                "token": "s3cret",
            })
        );
        // The credential read and the secret parameter are recorded for redaction.
        assert!(used.contains(&("token".to_string(), "s3cret".to_string())));
        assert!(used.contains(&("params.password".to_string(), "hunter22".to_string())));
    }

    #[tokio::test]
    async fn rendered_parameters_that_do_not_fit_fail_the_agent() {
        // One template rendering the whole mapping: nothing to check when the story loads.
        let (out, _) = run_with(json!("{{ {'count': inbound.body.name} }}")).await;
        let e = out.unwrap_err();
        assert_eq!(e.kind, "invalid_params");
        assert!(!e.retryable);
        assert!(
            e.message.contains("missing required parameter `name`")
                && e.message
                    .contains("parameter `count` must be an integer, got \"web\""),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn a_body_that_defers_defers_the_action_and_emits_when_woken() {
        let before = switchyard_types::now();
        let (out, _) = run_action("demo.later", json!({"wait": "1h"}), false).await;
        let Ok(Outcome::Defer { until }) = out else {
            panic!("{out:?}")
        };
        let waited = until - before;
        assert!(
            waited >= chrono::Duration::minutes(59) && waited <= chrono::Duration::minutes(61),
            "{waited}"
        );
        // Woken, the body passes its input on: the action's result.
        let (out, _) = run_action("demo.later", json!({"wait": "1h"}), true).await;
        let Ok(Outcome::Emit(v)) = out else {
            panic!("{out:?}")
        };
        assert_eq!(
            v,
            [json!({"body": {"name": "web", "n": "3", "pw": "hunter22"}})]
        );
    }
}
