//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use switchyard_template::{
    Compiler, Condition, Context, ContextBuilder, Error, Limits, Lookup, Template,
};

/// A fixed time used as `now` and `run.started_at`.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
        .single()
        .expect("valid time")
}

/// A lookup backed by a map.
pub fn lookup(pairs: &[(&str, &str)]) -> Arc<dyn Lookup> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(map)
}

/// The context most tests use: `inbound` (a webhook event), `shape`, `event`, `run`,
/// `params`, resources and credentials.
pub fn ctx() -> Context {
    ContextBuilder::new()
        .agent(
            "inbound",
            Arc::new(json!({
                "method": "POST",
                "headers": {"x-id": "abc"},
                "body": {
                    "name": "Ada",
                    "count": 2,
                    "price": 1.5,
                    "ok": true,
                    "none": null,
                    "tags": ["a", "b", "c"],
                    "items": [{"id": 1, "n": "x"}, {"id": 2, "n": "y"}],
                    "empty": {},
                    "text": "Feature/ABC_12 x"
                }
            })),
        )
        .agent("shape", Arc::new(json!({"greeting": "hi", "n": 3})))
        .event(Arc::new(json!({"ok": true, "n": 7})))
        .run("run-1", "hello", t0())
        .params(Arc::new(json!({"tag": "web", "size": 2})))
        .resources(lookup(&[("greeter_url", "https://greeter.example")]))
        .credentials(lookup(&[("token", "s3cr3t-t0ken"), ("key", "k")]))
        .now(t0())
        .build()
}

/// Compiles one string template and finishes the compiler.
pub fn compile(source: &str) -> Result<Template, Error> {
    let mut c = Compiler::new(Limits::default());
    let t = c.string(source)?;
    c.finish();
    Ok(t)
}

/// Compiles one condition and finishes the compiler.
pub fn compile_condition(expr: &str) -> Result<Condition, Error> {
    let mut c = Compiler::new(Limits::default());
    let t = c.condition(expr)?;
    c.finish();
    Ok(t)
}

/// Renders `source` with [`ctx`].
pub fn render(source: &str) -> Result<Value, Error> {
    compile(source)?.render(&ctx())
}

/// Renders `source` with [`ctx`], expecting success.
pub fn ok(source: &str) -> Value {
    match render(source) {
        Ok(v) => v,
        Err(e) => panic!("{source:?} failed: {e} ({:?})", e.kind),
    }
}

/// Renders `source` with [`ctx`], expecting an error.
pub fn err(source: &str) -> Error {
    match render(source) {
        Ok(v) => panic!("{source:?} rendered {v} but should fail"),
        Err(e) => e,
    }
}
