//! Building agents from their options: compiling templates once per story load and
//! collecting every problem with the option it concerns.

use serde_json::Value;
use switchyard_template::{Compiler, Condition, Template, TemplateValue};

use crate::action::ActionCatalog;

/// A problem with one option, located by a JSON pointer relative to the agent's mapping
/// (`/url`, `/headers/Authorization`), so the loader can point at line and column.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionError {
    /// JSON pointer relative to the agent.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// A warning rather than an error.
    pub warning: bool,
}

/// Marker returned by a failed build: the reasons were recorded in the [`BuildContext`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// What an agent's build step uses: the story's template compiler, the loaded pack actions
/// (for `action` agents), and a list of problems.
pub struct BuildContext<'a> {
    compiler: &'a mut Compiler,
    problems: Vec<OptionError>,
    actions: Option<&'a ActionCatalog>,
    /// The agent's common `timeout`, for types that give it a meaning of their own (a
    /// sub-story's wait).
    pub timeout: Option<switchyard_types::Duration>,
}

impl<'a> BuildContext<'a> {
    /// A context compiling into `compiler`.
    pub fn new(compiler: &'a mut Compiler) -> Self {
        BuildContext {
            compiler,
            problems: Vec::new(),
            actions: None,
            timeout: None,
        }
    }

    /// Makes the loaded pack actions available to `action` agents.
    pub fn with_actions(mut self, actions: &'a ActionCatalog) -> Self {
        self.actions = Some(actions);
        self
    }

    /// The loaded pack actions, when the loader provided them.
    pub fn actions(&self) -> Option<&'a ActionCatalog> {
        self.actions
    }

    /// Compiles a string option; records a problem at `path` when it is not a valid template.
    pub fn template(&mut self, path: &str, source: &str) -> Option<Template> {
        match self.compiler.string(source) {
            Ok(t) => Some(t),
            Err(e) => {
                self.template_error(path, e);
                None
            }
        }
    }

    /// Compiles a JSON value whose strings may be templates.
    pub fn value(&mut self, path: &str, value: &Value) -> Option<TemplateValue> {
        match self.compiler.value(value) {
            Ok(t) => Some(t),
            Err(e) => {
                self.template_error(path, e);
                None
            }
        }
    }

    /// Compiles a condition (an expression without braces).
    pub fn condition(&mut self, path: &str, expr: &str) -> Option<Condition> {
        match self.compiler.condition(expr) {
            Ok(c) => Some(c),
            Err(e) => {
                self.template_error(path, e);
                None
            }
        }
    }

    fn template_error(&mut self, path: &str, e: switchyard_template::Error) {
        self.problems.push(OptionError {
            path: path.to_string(),
            message: format!("bad template: {e}"),
            hint: Some(
                "templates use minijinja syntax: {{ agent.field }}, {% if … %}…{% endif %}".into(),
            ),
            warning: false,
        });
    }

    /// Records an error at `path`.
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(OptionError {
            path: path.to_string(),
            message: message.into(),
            hint: None,
            warning: false,
        });
    }

    /// Records an error with a hint.
    pub fn error_with_hint(
        &mut self,
        path: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems.push(OptionError {
            path: path.to_string(),
            message: message.into(),
            hint: Some(hint.into()),
            warning: false,
        });
    }

    /// Records a warning with a hint.
    pub fn warn(&mut self, path: &str, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(OptionError {
            path: path.to_string(),
            message: message.into(),
            hint: Some(hint.into()),
            warning: true,
        });
    }

    /// Whether an error (not a warning) has been recorded.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| !p.warning)
    }

    /// `Ok(value)` when no error has been recorded, else `Err(Invalid)`.
    pub fn finish_with<T>(&self, value: T) -> Result<T, Invalid> {
        if self.has_errors() {
            Err(Invalid)
        } else {
            Ok(value)
        }
    }

    /// The problems recorded so far.
    pub fn into_problems(self) -> Vec<OptionError> {
        self.problems
    }
}

/// JSON-pointer escaping of one path segment.
pub fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}
