//! Compiling a story's templates once, and rendering them per event.

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::Value as Json;

use crate::context::Context;
use crate::error::{Error, ErrorKind};
use crate::filters;
use crate::jsonpath::PathCache;
use crate::value::{json_to_string, value_to_json, JsonNode};

/// Bounds on the work and output of one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly: instructions) one render may use; `0` disables the bound.
    pub fuel: u64,
    /// Largest rendered text (or string result) in bytes.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 100_000,
            max_output_bytes: 1024 * 1024,
        }
    }
}

/// The variable that holds the result of a wrapped expression.
const RESULT_VAR: &str = "__switchyard_v";

/// What all handles of one compiler share: the sealed environment.
struct Shared {
    env: OnceLock<Environment<'static>>,
    limits: Limits,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("finished", &self.env.get().is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Shared {
    fn env(&self) -> Result<&Environment<'static>, Error> {
        self.env.get().ok_or_else(|| {
            Error::new(
                ErrorKind::Render,
                "internal error: template rendered before its compiler was finished",
            )
        })
    }
}

/// Compiles all templates of one story (or pack action). Create one per story load,
/// compile every option, then call [`Compiler::finish`]; the handles render afterwards.
pub struct Compiler {
    env: Environment<'static>,
    shared: Arc<Shared>,
    next: usize,
    /// Random part of template names, so templates cannot `include` each other.
    tag: String,
}

impl fmt::Debug for Compiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiler")
            .field("templates", &self.next)
            .field("limits", &self.shared.limits)
            .finish()
    }
}

impl Compiler {
    /// A compiler whose templates render within `limits`.
    pub fn new(limits: Limits) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel((limits.fuel > 0).then_some(limits.fuel));
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.set_debug(false);
        filters::register(&mut env, Arc::new(PathCache::default()));
        Compiler {
            env,
            shared: Arc::new(Shared {
                env: OnceLock::new(),
                limits,
            }),
            next: 0,
            tag: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    fn name(&mut self, prefix: &str) -> Arc<str> {
        self.next += 1;
        Arc::from(format!("{prefix}{}-{}", self.next, self.tag))
    }

    fn handle(&self, source: &str, kind: Kind) -> Template {
        Template {
            shared: self.shared.clone(),
            source: Arc::from(source),
            kind,
        }
    }

    /// Compiles a string option.
    ///
    /// A string without `{{` and `{%` is a literal. A string that is exactly one
    /// `{{ expr }}` (surrounding whitespace allowed) is typed: it renders to the JSON
    /// value of `expr`. Anything else is a text template rendering to a string.
    pub fn string(&mut self, source: &str) -> Result<Template, Error> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(self.handle(source, Kind::Literal));
        }
        let name = self.name("t");
        if let Some((start, end)) = single_expression(source) {
            let expr = &source[start..end];
            let parses = self.env.compile_expression_owned(expr.to_string()).is_ok();
            if parses
                && self
                    .env
                    .add_template_owned(name.to_string(), wrap(expr))
                    .is_ok()
            {
                let lines_before = source[..start].matches('\n').count();
                return Ok(self.handle(
                    source,
                    Kind::Expr {
                        name,
                        expr: Arc::from(expr.trim()),
                        lines_before,
                    },
                ));
            }
        }
        self.env
            .add_template_owned(name.to_string(), source.to_string())
            .map_err(|e| Error::from_minijinja(&e, source, 0))?;
        Ok(self.handle(source, Kind::Text { name }))
    }

    /// Compiles a JSON value tree: every string leaf (object values and array items,
    /// not keys) is compiled with [`Compiler::string`].
    pub fn value(&mut self, value: &Json) -> Result<TemplateValue, Error> {
        let node = self.node(value)?;
        Ok(TemplateValue(match node {
            Node::Literal(_) => Node::Literal(Arc::new(value.clone())),
            other => other,
        }))
    }

    fn node(&mut self, value: &Json) -> Result<Node, Error> {
        // Literal subtrees are represented by a placeholder; the caller keeps the value.
        Ok(match value {
            Json::String(s) => {
                let t = self.string(s)?;
                if t.is_literal() {
                    Node::Literal(Arc::new(Json::Null))
                } else {
                    Node::Template(t)
                }
            }
            Json::Array(items) => {
                let nodes = items
                    .iter()
                    .map(|v| self.node(v))
                    .collect::<Result<Vec<_>, _>>()?;
                if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
                    Node::Literal(Arc::new(Json::Null))
                } else {
                    Node::Array(
                        nodes
                            .into_iter()
                            .zip(items)
                            .map(|(n, v)| fill_literal(n, v))
                            .collect(),
                    )
                }
            }
            Json::Object(map) => {
                let mut nodes = Vec::with_capacity(map.len());
                for (k, v) in map {
                    nodes.push((k.clone(), self.node(v)?));
                }
                if nodes.iter().all(|(_, n)| matches!(n, Node::Literal(_))) {
                    Node::Literal(Arc::new(Json::Null))
                } else {
                    Node::Object(
                        nodes
                            .into_iter()
                            .zip(map.values())
                            .map(|((k, n), v)| (k, fill_literal(n, v)))
                            .collect(),
                    )
                }
            }
            _ => Node::Literal(Arc::new(Json::Null)),
        })
    }

    /// Compiles a condition: a minijinja expression without braces (an agent's `if:`),
    /// e.g. `inbound.body.count > 3 and event.ok`.
    pub fn condition(&mut self, expr: &str) -> Result<Condition, Error> {
        if let Err(e) = self.env.compile_expression_owned(expr.to_string()) {
            return Err(Error::from_minijinja(&e, expr, 0));
        }
        let name = self.name("c");
        self.env
            .add_template_owned(name.to_string(), wrap(expr))
            .map_err(|e| Error::from_minijinja(&e, expr, PREFIX_LEN))?;
        Ok(Condition(self.handle(
            expr,
            Kind::Expr {
                name,
                expr: Arc::from(expr.trim()),
                lines_before: 0,
            },
        )))
    }

    /// Seals the set: from now on the handles this compiler made can render.
    pub fn finish(self) {
        // The lock is fresh and only `finish` (which consumes the compiler) sets it.
        let _ = self.shared.env.set(self.env);
    }
}

fn fill_literal(node: Node, value: &Json) -> Node {
    match node {
        Node::Literal(_) => Node::Literal(Arc::new(value.clone())),
        other => other,
    }
}

const PREFIX: &str = "{% set __switchyard_v = (";
const PREFIX_LEN: usize = PREFIX.len();

/// The template that evaluates `expr` once and keeps its value.
fn wrap(expr: &str) -> String {
    debug_assert!(PREFIX.contains(RESULT_VAR));
    format!("{PREFIX}{expr}) %}}")
}

/// If `source` is exactly one `{{ expr }}` (surrounding whitespace allowed), the byte
/// range of `expr` (whitespace-control markers `-`/`+` excluded).
pub(crate) fn single_expression(source: &str) -> Option<(usize, usize)> {
    let start = source.len() - source.trim_start().len();
    let end = source.trim_end().len();
    let body = source.get(start..end)?;
    if !body.starts_with("{{") || !body.ends_with("}}") || body.len() < 4 {
        return None;
    }
    let bytes = source.as_bytes();
    let mut i = start + 2;
    let mut quote: Option<u8> = None;
    let mut close = None;
    while i < end {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    close = Some(i);
                    break;
                }
                b'{' if matches!(bytes.get(i + 1), Some(b'{' | b'%' | b'#')) => return None,
                _ => {}
            },
        }
        i += 1;
    }
    let close = close?;
    if close + 2 != end {
        return None;
    }
    let mut s = start + 2;
    let mut e = close;
    if matches!(bytes.get(s), Some(b'-' | b'+')) {
        s += 1;
    }
    if e > s && matches!(bytes[e - 1], b'-' | b'+') {
        e -= 1;
    }
    Some((s, e))
}

/// How a compiled string renders.
#[derive(Debug, Clone)]
enum Kind {
    /// No template syntax: the source itself.
    Literal,
    /// A text template rendering to a string.
    Text { name: Arc<str> },
    /// One expression keeping its JSON type (typed templates and conditions).
    Expr {
        name: Arc<str>,
        expr: Arc<str>,
        lines_before: usize,
    },
}

/// A compiled string option. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Template {
    shared: Arc<Shared>,
    source: Arc<str>,
    kind: Kind,
}

impl Template {
    /// Renders: the JSON value of a single-expression template, a string for text
    /// templates, the literal string for literals.
    pub fn render(&self, ctx: &Context) -> Result<Json, Error> {
        match &self.kind {
            Kind::Literal => Ok(Json::String(self.source.to_string())),
            Kind::Text { name } => self.render_text(name, ctx).map(Json::String),
            Kind::Expr { .. } => {
                let v = self.eval(ctx)?;
                let json = value_to_json(&v).map_err(|e| self.located(e))?;
                if let Json::String(s) = &json {
                    self.check_size(s.len())?;
                }
                Ok(json)
            }
        }
    }

    /// Renders and calls `f` with the result. The same JSON as [`Template::render`], but
    /// when the expression is a payload (or a part of one), `f` borrows it instead of a
    /// deep copy: `{{ shape }}` serializes straight from the upstream event.
    pub fn render_with<R>(&self, ctx: &Context, f: impl FnOnce(&Json) -> R) -> Result<R, Error> {
        if let Kind::Expr { .. } = &self.kind {
            let v = self.eval(ctx)?;
            if let Some(node) = v.downcast_object_ref::<JsonNode>() {
                return Ok(f(node.get()));
            }
            let json = value_to_json(&v).map_err(|e| self.located(e))?;
            if let Json::String(s) = &json {
                self.check_size(s.len())?;
            }
            return Ok(f(&json));
        }
        self.render(ctx).map(|json| f(&json))
    }

    /// Renders to text: strings as-is; numbers and booleans plain; null as "";
    /// arrays and objects as compact JSON.
    pub fn render_string(&self, ctx: &Context) -> Result<String, Error> {
        match &self.kind {
            Kind::Literal => Ok(self.source.to_string()),
            Kind::Text { name } => self.render_text(name, ctx),
            Kind::Expr { .. } => self.render(ctx).map(json_to_string),
        }
    }

    /// Whether this is a plain string with no template syntax.
    pub fn is_literal(&self) -> bool {
        matches!(self.kind, Kind::Literal)
    }

    /// The source as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn check_size(&self, len: usize) -> Result<(), Error> {
        let max = self.shared.limits.max_output_bytes;
        if len > max {
            return Err(Error::new(
                ErrorKind::OutputTooLarge,
                format!("rendered output is larger than the limit of {max} bytes"),
            ));
        }
        Ok(())
    }

    fn render_text(&self, name: &str, ctx: &Context) -> Result<String, Error> {
        let env = self.shared.env()?;
        let tmpl = env
            .get_template(name)
            .map_err(|e| Error::from_minijinja(&e, &self.source, 0))?;
        let mut out = Limited {
            buf: Vec::new(),
            max: self.shared.limits.max_output_bytes,
            exceeded: false,
        };
        let result = tmpl.render_captured_to(ctx.root(), &mut out);
        if out.exceeded {
            return Err(Error::new(
                ErrorKind::OutputTooLarge,
                format!(
                    "rendered output is larger than the limit of {} bytes",
                    out.max
                ),
            ));
        }
        result.map_err(|e| Error::from_minijinja(&e, &self.source, 0))?;
        String::from_utf8(out.buf)
            .map_err(|_| Error::new(ErrorKind::Render, "rendered output is not UTF-8"))
    }

    /// Evaluates a wrapped expression to its minijinja value.
    fn eval(&self, ctx: &Context) -> Result<minijinja::Value, Error> {
        let Kind::Expr {
            name,
            expr,
            lines_before,
        } = &self.kind
        else {
            return Err(Error::new(ErrorKind::Render, "not an expression"));
        };
        let env = self.shared.env()?;
        let tmpl = env
            .get_template(name)
            .map_err(|e| Error::from_minijinja(&e, &self.source, 0))?;
        let captured = tmpl.render_captured(ctx.root()).map_err(|e| {
            let mut err = Error::from_minijinja(&e, tmpl.source(), 0);
            err.set_line(
                err.line.map(|l| l + lines_before),
                self.source.contains('\n'),
            );
            err
        })?;
        let value = captured
            .state()
            .lookup(RESULT_VAR)
            .unwrap_or(minijinja::Value::UNDEFINED);
        if value.is_undefined() {
            return Err(self.located(Error::new(
                ErrorKind::Undefined,
                format!("undefined value `{expr}`"),
            )));
        }
        Ok(value)
    }

    fn located(&self, mut err: Error) -> Error {
        if let Kind::Expr { lines_before, .. } = &self.kind {
            if err.line.is_none() {
                err.set_line(Some(lines_before + 1), self.source.contains('\n'));
            }
        }
        err
    }
}

/// A writer that refuses to grow past `max` bytes.
struct Limited {
    buf: Vec<u8>,
    max: usize,
    exceeded: bool,
}

impl io::Write for Limited {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            self.exceeded = true;
            return Err(io::Error::other("output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Node {
    Literal(Arc<Json>),
    Template(Template),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    fn render(&self, ctx: &Context) -> Result<Json, Error> {
        Ok(match self {
            Node::Literal(v) => (**v).clone(),
            Node::Template(t) => t.render(ctx)?,
            Node::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|n| n.render(ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Object(entries) => {
                let mut map = serde_json::Map::with_capacity(entries.len());
                for (k, n) in entries {
                    map.insert(k.clone(), n.render(ctx)?);
                }
                Json::Object(map)
            }
        })
    }
}

/// A compiled JSON value whose strings may be templates. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct TemplateValue(Node);

impl TemplateValue {
    /// Renders every template in the tree; literal parts are copied.
    pub fn render(&self, ctx: &Context) -> Result<Json, Error> {
        self.0.render(ctx)
    }

    /// Renders and calls `f` with the result, which it borrows (no copy) when the whole
    /// value is a literal or a single expression naming a payload; see
    /// [`Template::render_with`].
    pub fn render_with<R>(&self, ctx: &Context, f: impl FnOnce(&Json) -> R) -> Result<R, Error> {
        match &self.0 {
            Node::Literal(v) => Ok(f(v)),
            Node::Template(t) => t.render_with(ctx, f),
            node => node.render(ctx).map(|json| f(&json)),
        }
    }

    /// Whether the whole value has no template syntax.
    pub fn is_literal(&self) -> bool {
        matches!(self.0, Node::Literal(_))
    }
}

/// A compiled condition (an agent's `if:`). Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Condition(Template);

impl Condition {
    /// Evaluates with Jinja truthiness (`0`, `""`, empty lists and maps, none are false).
    /// An undefined result is an error.
    pub fn eval(&self, ctx: &Context) -> Result<bool, Error> {
        self.0.eval(ctx).map(|v| v.is_true())
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::single_expression;

    #[test]
    fn single_expression_detection() {
        fn inner(s: &str) -> Option<&str> {
            single_expression(s).map(|(a, b)| &s[a..b])
        }
        assert_eq!(inner("{{ x }}"), Some(" x "));
        assert_eq!(inner("  {{x}}\n"), Some("x"));
        assert_eq!(inner("{{- x -}}"), Some(" x "));
        assert_eq!(inner("{{ '}}' }}"), Some(" '}}' "));
        assert_eq!(inner(r#"{{ "a\"}}" }}"#), Some(r#" "a\"}}" "#));
        assert_eq!(inner("{{ -x }}"), Some(" -x "));
        assert_eq!(inner("{{ x }}{{ y }}"), None);
        assert_eq!(inner("{{ x }} y"), None);
        assert_eq!(inner("a {{ x }}"), None);
        assert_eq!(inner("{{ x {# c #} }}"), None);
        assert_eq!(inner("{% if x %}{{ x }}{% endif %}"), None);
        assert_eq!(inner("{{}}"), Some(""));
        assert_eq!(inner("{{ x"), None);
    }
}
