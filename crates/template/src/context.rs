//! The variables a template sees during one agent execution, and secret redaction.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use serde_json::Value as Json;

use crate::error::unknown_name;
use crate::value::json_to_value;

/// A source of named string values looked up lazily by templates (resources, credentials).
pub trait Lookup: Send + Sync + fmt::Debug {
    /// The value named `name`, or `None` when there is no such value.
    fn get(&self, name: &str) -> Option<String>;
}

impl Lookup for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Lookup for std::collections::BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::BTreeMap::get(self, name).cloned()
    }
}

type Used = Arc<Mutex<Vec<(String, String)>>>;

/// Template variables for one agent execution. Cheap to share: `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Context {
    root: Value,
    used: Used,
    credentials: Option<Arc<dyn Lookup>>,
}

impl Context {
    /// Credentials that templates rendered with this context have read so far: (name, value).
    /// Used by the engine to redact stored payloads.
    pub fn credentials_used(&self) -> Vec<(String, String)> {
        lock(&self.used).clone()
    }

    /// Credential `name` for an agent that uses one itself rather than through a template
    /// (`email`'s `smtp` URL). The read is recorded like a template's `credential.NAME`, so
    /// the value is redacted from what the execution stores and its host rules apply.
    pub fn credential(&self, name: &str) -> Option<String> {
        let value = self.credentials.as_ref()?.get(name)?;
        record(&self.used, name, &value);
        Some(value)
    }

    /// The root value passed to minijinja.
    pub(crate) fn root(&self) -> &Value {
        &self.root
    }

    /// The context of a pack action's body: `params`, plus this context's `credential`,
    /// `run` and `now`, and its `resource` with `resource_defaults` beneath it (a default
    /// applies when the resource is not set). Upstream agents and `event` are not visible.
    /// Credential reads are recorded with this context's, so its redaction covers them.
    pub fn for_action(
        &self,
        params: Arc<Json>,
        resource_defaults: Option<Arc<dyn Lookup>>,
    ) -> Context {
        let root = self.root.downcast_object_ref::<Root>();
        let resource_lookup = root
            .and_then(|r| r.resource.as_ref())
            .and_then(|v| v.downcast_object_ref::<Named>())
            .map(|n| Arc::clone(&n.lookup));
        let resource = match (resource_lookup, resource_defaults) {
            (Some(first), Some(then)) => Some(Arc::new(Layered { first, then }) as Arc<dyn Lookup>),
            (one, other) => one.or(other),
        };
        let derived = Root {
            agents: HashMap::new(),
            event: None,
            params: Some(json_to_value(params)),
            run: root.and_then(|r| r.run.clone()),
            now: root.map_or_else(|| Value::from(rfc3339(Utc::now())), |r| r.now.clone()),
            resource: resource.map(|lookup| {
                Value::from_object(Named {
                    what: "resource",
                    lookup,
                    used: None,
                })
            }),
            credential: root.and_then(|r| r.credential.clone()),
        };
        Context {
            root: Value::from_object(derived),
            used: Arc::clone(&self.used),
            credentials: self.credentials.clone(),
        }
    }

    /// Records a secret that is not a credential (a pack action's `secret` parameter), so
    /// that it is redacted like one (see [`Context::credentials_used`]).
    pub fn record_secret(&self, name: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut used = lock(&self.used);
        if !used.iter().any(|(n, v)| n == name && v == value) {
            used.push((name.to_string(), value.to_string()));
        }
    }
}

/// A lookup that falls back to a second one.
#[derive(Debug)]
struct Layered {
    first: Arc<dyn Lookup>,
    then: Arc<dyn Lookup>,
}

impl Lookup for Layered {
    fn get(&self, name: &str) -> Option<String> {
        self.first.get(name).or_else(|| self.then.get(name))
    }
}

fn lock(used: &Used) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
    used.lock().unwrap_or_else(|e| e.into_inner())
}

fn record(used: &Used, name: &str, value: &str) {
    let mut used = lock(used);
    if !used.iter().any(|(n, v)| n == name && v == value) {
        used.push((name.to_string(), value.to_string()));
    }
}

/// Builds a [`Context`].
#[derive(Debug, Default)]
pub struct ContextBuilder {
    agents: Vec<(String, Arc<Json>)>,
    event: Option<Arc<Json>>,
    run: Option<(String, String, DateTime<Utc>)>,
    params: Option<Arc<Json>>,
    resources: Option<Arc<dyn Lookup>>,
    credentials: Option<Arc<dyn Lookup>>,
    now: Option<DateTime<Utc>>,
}

impl ContextBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An upstream agent's latest payload in the run's ancestry. Call latest-first; the
    /// first binding of a name wins.
    pub fn agent(mut self, name: &str, payload: Arc<Json>) -> Self {
        if !self.agents.iter().any(|(n, _)| n == name) {
            self.agents.push((name.to_string(), payload));
        }
        self
    }

    /// The incoming payload: `event`.
    pub fn event(mut self, payload: Arc<Json>) -> Self {
        self.event = Some(payload);
        self
    }

    /// The run: `run.id`, `run.story`, `run.started_at` (RFC 3339).
    pub fn run(mut self, id: &str, story: &str, started_at: DateTime<Utc>) -> Self {
        self.run = Some((id.to_string(), story.to_string(), started_at));
        self
    }

    /// A pack action's parameters: `params`.
    pub fn params(mut self, params: Arc<Json>) -> Self {
        self.params = Some(params);
        self
    }

    /// Shared values: `resource.NAME`.
    pub fn resources(mut self, resources: Arc<dyn Lookup>) -> Self {
        self.resources = Some(resources);
        self
    }

    /// Secrets: `credential.NAME`. Reads are recorded (see [`Context::credentials_used`]).
    pub fn credentials(mut self, credentials: Arc<dyn Lookup>) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The time templates see as `now` (RFC 3339); default: the time of `build`.
    pub fn now(mut self, now: DateTime<Utc>) -> Self {
        self.now = Some(now);
        self
    }

    /// Finishes the context.
    pub fn build(self) -> Context {
        let used: Used = Arc::default();
        let now = rfc3339(self.now.unwrap_or_else(Utc::now));
        let run = self.run.map(|(id, story, started)| {
            Value::from_iter([
                ("id", Value::from(id)),
                ("story", Value::from(story)),
                ("started_at", Value::from(rfc3339(started))),
            ])
        });
        let root = Root {
            agents: self
                .agents
                .into_iter()
                .map(|(n, p)| (n, json_to_value(p)))
                .collect(),
            event: self.event.map(json_to_value),
            params: self.params.map(json_to_value),
            run,
            now: Value::from(now),
            resource: self.resources.map(|l| {
                Value::from_object(Named {
                    what: "resource",
                    lookup: l,
                    used: None,
                })
            }),
            credential: self.credentials.clone().map(|l| {
                Value::from_object(Named {
                    what: "credential",
                    lookup: l,
                    used: Some(used.clone()),
                })
            }),
        };
        Context {
            root: Value::from_object(root),
            used,
            credentials: self.credentials,
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The top-level variables.
#[derive(Debug)]
struct Root {
    agents: HashMap<String, Value>,
    event: Option<Value>,
    params: Option<Value>,
    run: Option<Value>,
    now: Value,
    resource: Option<Value>,
    credential: Option<Value>,
}

impl Object for Root {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        match key {
            "event" => self.event.clone(),
            "params" => self.params.clone(),
            "run" => self.run.clone(),
            "now" => Some(self.now.clone()),
            "resource" => self.resource.clone(),
            "credential" => self.credential.clone(),
            name => self.agents.get(name).cloned(),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = self
            .agents
            .keys()
            .map(|k| Value::from(k.as_str()))
            .collect();
        keys.push(Value::from("now"));
        for (name, present) in [
            ("event", self.event.is_some()),
            ("params", self.params.is_some()),
            ("run", self.run.is_some()),
            ("resource", self.resource.is_some()),
            ("credential", self.credential.is_some()),
        ] {
            if present {
                keys.push(Value::from(name));
            }
        }
        Enumerator::Values(keys)
    }
}

/// `resource` / `credential`: named values looked up on use.
struct Named {
    what: &'static str,
    lookup: Arc<dyn Lookup>,
    used: Option<Used>,
}

impl fmt::Debug for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}s>", self.what)
    }
}

impl Object for Named {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str() {
            Some(name) => self.get_value_by_str(name),
            None => Some(Value::from(unknown_name(self.what, &key.to_string()))),
        }
    }

    fn get_value_by_str(self: &Arc<Self>, name: &str) -> Option<Value> {
        match self.lookup.get(name) {
            Some(value) => {
                if let Some(used) = &self.used {
                    record(used, name, &value);
                }
                Some(Value::from(value))
            }
            // An invalid value: using it fails with this message.
            None => Some(Value::from(unknown_name(self.what, name))),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}

/// Replaces every occurrence of each secret value in every string of `value`
/// (recursively, object keys included) by `[redacted:NAME]`. Empty secrets are skipped.
pub fn redact(value: &mut Json, secrets: &[(String, String)]) {
    if secrets.iter().all(|(_, s)| s.is_empty()) {
        return;
    }
    match value {
        Json::String(s) => {
            if needs_redaction(s, secrets) {
                *s = redact_str(s, secrets);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|v| redact(v, secrets)),
        Json::Object(map) => {
            if map.keys().any(|k| needs_redaction(k, secrets)) {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    redact(&mut v, secrets);
                    map.insert(redact_str(&k, secrets), v);
                }
            } else {
                map.values_mut().for_each(|v| redact(v, secrets));
            }
        }
        Json::Null | Json::Bool(_) | Json::Number(_) => {}
    }
}

fn needs_redaction(text: &str, secrets: &[(String, String)]) -> bool {
    secrets
        .iter()
        .any(|(_, s)| !s.is_empty() && text.contains(s.as_str()))
}

/// Replaces every occurrence of each secret value in `text` by `[redacted:NAME]`.
///
/// One left-to-right pass: at each point the earliest (then longest) secret is replaced,
/// and the inserted markers are never searched again.
pub fn redact_str(text: &str, secrets: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let best = secrets
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .filter_map(|(name, s)| rest.find(s.as_str()).map(|at| (at, s.len(), name)))
            .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        match best {
            None => {
                out.push_str(rest);
                return out;
            }
            Some((at, len, name)) => {
                out.push_str(&rest[..at]);
                out.push_str("[redacted:");
                out.push_str(name);
                out.push(']');
                rest = &rest[at + len..];
            }
        }
    }
}
