//! The context of a pack action's body: `params`, resources with pack defaults beneath them,
//! credentials shared with the caller's redaction; upstream agents hidden.

mod common;

use std::sync::Arc;

use common::{compile, ctx, lookup, t0};
use serde_json::json;
use switchyard_template::{redact, ContextBuilder};

#[test]
fn action_body_sees_params_resources_with_defaults_credentials_run_and_now() {
    let outer = ctx();
    let defaults = lookup(&[
        ("greeter_url", "https://default.example"),
        ("digitalocean_api_url", "https://api.digitalocean.com"),
    ]);
    let inner = outer.for_action(Arc::new(json!({"tag": "trial", "n": 2})), Some(defaults));
    let render = |s: &str| compile(s).unwrap().render(&inner).unwrap();
    assert_eq!(render("{{ params.n + 1 }}"), json!(3));
    assert_eq!(render("{{ params.tag }}"), json!("trial"));
    // A set resource wins over the pack's default; an unset one falls back to it.
    assert_eq!(
        render("{{ resource.greeter_url }}"),
        json!("https://greeter.example")
    );
    assert_eq!(
        render("{{ resource.digitalocean_api_url }}/v2/droplets"),
        json!("https://api.digitalocean.com/v2/droplets")
    );
    assert_eq!(render("{{ credential.token }}"), json!("s3cr3t-t0ken"));
    assert_eq!(render("{{ run.story }}"), json!("hello"));
    assert_eq!(render("{{ now }}"), json!("2024-05-06T07:08:09Z"));
    // The caller's agents and event are not part of an action's interface.
    assert!(compile("{{ inbound.body.name }}")
        .unwrap()
        .render(&inner)
        .is_err());
    assert!(compile("{{ event.n }}").unwrap().render(&inner).is_err());
}

#[test]
fn credential_reads_and_secret_params_are_redacted_through_the_outer_context() {
    let outer = ctx();
    let inner = outer.for_action(Arc::new(json!({"password": "hunter22"})), None);
    compile("{{ credential.token }}")
        .unwrap()
        .render(&inner)
        .unwrap();
    inner.record_secret("params.password", "hunter22");
    let used = outer.credentials_used();
    let mut v = json!({"a": "Bearer s3cr3t-t0ken", "b": "pw=hunter22"});
    redact(&mut v, &used);
    assert_eq!(
        v,
        json!({"a": "Bearer [redacted:token]", "b": "pw=[redacted:params.password]"})
    );
}

#[test]
fn defaults_alone_serve_when_the_caller_has_no_resources() {
    let outer = ContextBuilder::new().now(t0()).build();
    let inner = outer.for_action(
        Arc::new(json!({})),
        Some(lookup(&[("chat_api_url", "https://hooks.example")])),
    );
    assert_eq!(
        compile("{{ resource.chat_api_url }}")
            .unwrap()
            .render(&inner)
            .unwrap(),
        json!("https://hooks.example")
    );
}

#[test]
fn omit_drops_path_parameters_from_a_body_and_optional_fields_can_be_left_out() {
    let inner = ctx().for_action(
        Arc::new(json!({"owner": "acme", "repo": "web", "ref": "main", "task": "deploy"})),
        None,
    );
    let render = |s: &str| compile(s).unwrap().render(&inner).unwrap();
    assert_eq!(
        render("{{ params | omit('owner', 'repo') }}"),
        json!({"ref": "main", "task": "deploy"})
    );
    // An optional parameter that was not given is undefined; `default(none)` and `is
    // defined` let a body or a URL leave it out.
    assert_eq!(
        render("{{ params.environment | default(none) }}"),
        json!(null)
    );
    assert_eq!(
        render("/records{% if params.name is defined %}?name={{ params.name }}{% endif %}"),
        json!("/records")
    );
    assert_eq!(
        render("{{ 'feature/a b' | urlencode }}"),
        json!("feature/a%20b")
    );
    assert!(compile("{{ 3 | omit('a') }}")
        .unwrap()
        .render(&inner)
        .is_err());
}
