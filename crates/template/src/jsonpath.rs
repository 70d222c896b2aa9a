//! JSONPath (RFC 9535) expressions, parsed once and queried many times.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonpath_rust::parser::errors::JsonPathError;
use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value as Json;

use crate::error::{Error, ErrorKind};

/// A compiled JSONPath expression, e.g. `$.body.items[*].id`.
#[derive(Debug, Clone)]
pub struct JsonPath {
    source: Arc<str>,
    query: Arc<JpQuery>,
}

impl JsonPath {
    /// Parses `expr`; a syntax error says where the expression stops making sense.
    pub fn parse(expr: &str) -> Result<Self, Error> {
        let query = parse_json_path(expr).map_err(|e| parse_error(expr, e))?;
        Ok(JsonPath {
            source: Arc::from(expr),
            query: Arc::new(query),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every match, in document order (empty when nothing matches).
    pub fn query<'a>(&self, value: &'a Json) -> Vec<&'a Json> {
        match js_path_process(&self.query, value) {
            Ok(refs) => refs.into_iter().map(|r| r.val).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The first match, if any.
    pub fn first(&self, value: &Json) -> Option<Json> {
        self.query(value).first().map(|v| (*v).clone())
    }
}

fn parse_error(expr: &str, err: JsonPathError) -> Error {
    let detail = match err {
        JsonPathError::PestError(pest) => {
            let column = match pest.line_col {
                pest::error::LineColLocation::Pos((_, c)) => c,
                pest::error::LineColLocation::Span((_, c), _) => c,
            };
            format!("at column {column}: {}", pest.variant.message())
        }
        other => other.to_string(),
    };
    let hint = if expr.starts_with('$') {
        ""
    } else {
        " (a JSONPath starts with `$`)"
    };
    Error::new(
        ErrorKind::Syntax,
        format!("invalid JSONPath `{expr}`: {detail}{hint}"),
    )
}

/// Parsed paths used by the `jsonpath` filters, shared by one compiler's templates.
#[derive(Debug, Default)]
pub(crate) struct PathCache {
    paths: Mutex<HashMap<String, JsonPath>>,
}

impl PathCache {
    const MAX_ENTRIES: usize = 1024;

    /// The parsed form of `expr`, parsing it on first use.
    pub(crate) fn get(&self, expr: &str) -> Result<JsonPath, Error> {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = paths.get(expr) {
            return Ok(p.clone());
        }
        let parsed = JsonPath::parse(expr)?;
        if paths.len() >= Self::MAX_ENTRIES {
            paths.clear();
        }
        paths.insert(expr.to_string(), parsed.clone());
        Ok(parsed)
    }
}
