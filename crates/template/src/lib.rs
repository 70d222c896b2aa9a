//! Story templates for Switchyard: minijinja with Switchyard's variables and filters,
//! compiled once per story load and rendered per event, plus JSONPath.
//!
//! This is the only crate that names `minijinja` and `jsonpath-rust`.
//!
//! ```
//! use std::sync::Arc;
//! use switchyard_template::{Compiler, ContextBuilder, Limits};
//!
//! let mut compiler = Compiler::new(Limits::default());
//! let n = compiler.string("{{ inbound.body.count + 1 }}").unwrap();
//! let greeting = compiler.string("Hello {{ inbound.body.name }}").unwrap();
//! compiler.finish();
//!
//! let payload = Arc::new(serde_json::json!({"body": {"name": "Ada", "count": 2}}));
//! let ctx = ContextBuilder::new().agent("inbound", payload).build();
//! assert_eq!(n.render(&ctx).unwrap(), serde_json::json!(3));
//! assert_eq!(greeting.render_string(&ctx).unwrap(), "Hello Ada");
//! ```
//!
//! Rendering is sandboxed: strict undefined, no loader (no file access), no environment
//! access, bounded work (fuel) and bounded output size.

#![warn(missing_docs)]

mod compile;
mod context;
mod error;
mod filters;
mod jsonpath;
mod value;

pub use compile::{Compiler, Condition, Limits, Template, TemplateValue};
pub use context::{redact, redact_str, Context, ContextBuilder, Lookup};
pub use error::{Error, ErrorKind};
pub use jsonpath::JsonPath;
