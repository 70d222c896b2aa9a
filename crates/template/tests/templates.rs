//! Compiling and rendering: literal, text and typed templates, values, conditions,
//! errors, limits and contexts.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{compile, compile_condition, ctx, err, lookup, ok, t0};
use serde_json::json;
use switchyard_template::{
    Compiler, Condition, Context, ContextBuilder, ErrorKind, Limits, Template, TemplateValue,
};

#[test]
fn literal_text_and_typed_are_told_apart() {
    // (source, is_literal, expected render)
    let cases = [
        ("plain text", true, json!("plain text")),
        ("", true, json!("")),
        ("a } b { c", true, json!("a } b { c")),
        // Only `{{` and `{%` make a template (the contract); a lone comment stays text.
        (
            "{# only a comment #}x",
            true,
            json!("{# only a comment #}x"),
        ),
        ("{# comment #}{{ inbound.body.count }}", false, json!("2")),
        ("{{ inbound.body.count + 1 }}", false, json!(3)),
        ("  {{ inbound.body.count }}\n", false, json!(2)),
        ("{{- inbound.body.price -}}", false, json!(1.5)),
        ("{{ inbound.body.ok }}", false, json!(true)),
        ("{{ inbound.body.none }}", false, json!(null)),
        ("{{ inbound.body.tags }}", false, json!(["a", "b", "c"])),
        (
            "{{ inbound.body.items[1] }}",
            false,
            json!({"id": 2, "n": "y"}),
        ),
        ("{{ inbound.body.tags[-1] }}", false, json!("c")),
        ("{{ inbound.body.name }}", false, json!("Ada")),
        ("{{ '}}' ~ inbound.body.name }}", false, json!("}}Ada")),
        ("{{ [1, inbound.body.count] }}", false, json!([1, 2])),
        ("{{ {'a': inbound.body.count} }}", false, json!({"a": 2})),
        ("n={{ inbound.body.count }}", false, json!("n=2")),
        (
            "{{ inbound.body.count }}{{ inbound.body.count }}",
            false,
            json!("22"),
        ),
        ("{{ inbound.body.count }} ", false, json!(2)),
        ("{% if event.ok %}yes{% endif %}", false, json!("yes")),
        ("{{ shape }}", false, json!({"greeting": "hi", "n": 3})),
    ];
    for (source, literal, want) in cases {
        let t = compile(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
        assert_eq!(t.is_literal(), literal, "is_literal of {source:?}");
        assert_eq!(t.source(), source);
        assert_eq!(ok(source), want, "render of {source:?}");
    }
}

#[test]
fn render_string_formats_every_type() {
    let cases = [
        ("literal", "literal"),
        ("{{ inbound.body.count }}", "2"),
        ("{{ inbound.body.price }}", "1.5"),
        ("{{ inbound.body.ok }}", "true"),
        ("{{ inbound.body.none }}", ""),
        ("{{ inbound.body.tags }}", r#"["a","b","c"]"#),
        ("{{ inbound.body.items[0] }}", r#"{"id":1,"n":"x"}"#),
        ("Hello {{ inbound.body.name }}", "Hello Ada"),
    ];
    for (source, want) in cases {
        let t = compile(source).expect("compiles");
        assert_eq!(
            t.render_string(&ctx()).expect("renders"),
            want,
            "{source:?}"
        );
    }
}

#[test]
fn all_variables_are_visible() {
    let cases = [
        ("{{ event.n }}", json!(7)),
        ("{{ run.id }}", json!("run-1")),
        ("{{ run.story }}", json!("hello")),
        ("{{ run.started_at }}", json!("2024-05-06T07:08:09Z")),
        ("{{ now }}", json!("2024-05-06T07:08:09Z")),
        ("{{ params.tag }}", json!("web")),
        (
            "{{ resource.greeter_url }}/greetings",
            json!("https://greeter.example/greetings"),
        ),
        ("{{ credential.token }}", json!("s3cr3t-t0ken")),
        ("{{ credential['token'] }}", json!("s3cr3t-t0ken")),
        ("{{ inbound.headers['x-id'] }}", json!("abc")),
        (
            "{{ inbound.body.items | map(attribute='id') | list }}",
            json!([1, 2]),
        ),
        ("{{ inbound.body.tags | length }}", json!(3)),
        ("{{ inbound.body.empty | length }}", json!(0)),
        (
            "{% for t in inbound.body.tags %}{{ loop.index }}{{ t }}{% endfor %}",
            json!("1a2b3c"),
        ),
        (
            "{% for k, v in inbound.headers | items %}{{ k }}={{ v }}{% endfor %}",
            json!("x-id=abc"),
        ),
        ("{{ 'name' in inbound.body }}", json!(true)),
        ("{{ inbound.body.tags | join(',') }}", json!("a,b,c")),
        ("{{ inbound.body.name | upper }}", json!("ADA")),
        ("{{ inbound.body.nope | default('dflt') }}", json!("dflt")),
        ("{{ inbound.body.nope is defined }}", json!(false)),
        ("{{ inbound.body.name is defined }}", json!(true)),
        ("{{ params is defined }}", json!(true)),
    ];
    for (source, want) in cases {
        assert_eq!(ok(source), want, "{source:?}");
    }
}

#[test]
fn first_binding_of_an_agent_wins() {
    let t = compile("{{ a.v }}").expect("compiles");
    let ctx = ContextBuilder::new()
        .agent("a", Arc::new(json!({"v": "latest"})))
        .agent("a", Arc::new(json!({"v": "older"})))
        .build();
    assert_eq!(t.render(&ctx).expect("renders"), json!("latest"));
}

#[test]
fn strict_undefined_errors_name_the_expression() {
    for (source, mention) in [
        ("{{ inbound.body.nope }}", "inbound.body.nope"),
        ("x {{ inbound.body.nope }} y", "inbound.body.nope"),
        ("{{ nope }}", "nope"),
        ("{{ nope.deeper }}", "nope.deeper"),
        ("{{ inbound.body.nope.deeper }}", "inbound.body.nope.deeper"),
        (
            "a {{ inbound.body.nope.deeper }}",
            "inbound.body.nope.deeper",
        ),
        (
            "a {{ inbound.headers['x-id'].nope.deeper }}",
            "inbound.headers['x-id'].nope.deeper",
        ),
        (
            "a {{ inbound.body.items[0].nope }}",
            "inbound.body.items[0].nope",
        ),
        ("{% for x in nope %}{% endfor %}", "nope"),
        ("{{ params.nope }}", "params.nope"),
    ] {
        let e = err(source);
        assert_eq!(e.kind, ErrorKind::Undefined, "{source:?}: {e}");
        assert!(e.message.contains("undefined value"), "{source:?}: {e}");
        assert!(
            e.message.contains(mention),
            "{source:?}: {e} should mention {mention}"
        );
        assert_eq!(e.line, Some(1), "{source:?}");
    }
    // `params` and `event` are undefined when not given.
    let t = compile("{{ params.x }}").expect("compiles");
    let e = t
        .render(&ContextBuilder::new().build())
        .expect_err("no params");
    assert_eq!(e.kind, ErrorKind::Undefined);
}

#[test]
fn unknown_credentials_and_resources_are_errors() {
    let e = err("{{ credential.missing }}");
    assert_eq!(e.kind, ErrorKind::Undefined);
    assert!(e.message.contains("unknown credential missing"), "{e}");
    let e = err("url: {{ resource.nope }}/x");
    assert_eq!(e.kind, ErrorKind::Undefined);
    assert!(e.message.contains("unknown resource nope"), "{e}");
    // An unset resource is undefined: it may be tested and given a default.
    assert_eq!(
        ok("{{ resource.nope is defined }} {{ resource.nope | default('5m') }}"),
        json!("False 5m")
    );
    let e = err("{{ resource.nope ~ '/x' }}");
    assert!(e.message.contains("`resource.nope ~ '/x'`"), "{e}");
    // Without any credential source, `credential` itself is undefined.
    let t = compile("{{ credential.token }}").expect("compiles");
    let e = t
        .render(&ContextBuilder::new().build())
        .expect_err("no credentials");
    assert_eq!(e.kind, ErrorKind::Undefined);
}

#[test]
fn syntax_errors_are_clear_and_located() {
    let e = compile("Hello {{ inbound.body.name").expect_err("unclosed");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(
        e.message,
        "syntax error: unexpected end of input, expected end of variable block"
    );
    assert_eq!(e.line, Some(1));

    let e = compile("line one\nline two\n{% if x %}never closed").expect_err("unclosed if");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(e.message.starts_with("syntax error:"), "{e}");
    assert!(e.to_string().contains("(line 3)"), "{e}");

    let e = compile("{{ inbound.body.count + }}").expect_err("bad expression");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(e.message.contains("unexpected"), "{e}");

    let e = compile("{{ x ) + ( y }}").expect_err("unbalanced");
    assert_eq!(e.kind, ErrorKind::Syntax);

    let e = compile("{% endfor %}").expect_err("stray end");
    assert_eq!(e.kind, ErrorKind::Syntax);
}

#[test]
fn render_errors_keep_lines_of_multiline_templates() {
    let e = err("first\nsecond {{ inbound.body.nope }}\nthird");
    assert_eq!(e.kind, ErrorKind::Undefined);
    assert_eq!(e.line, Some(2));
    assert!(e.to_string().ends_with("(line 2)"), "{e}");
    let e = err("\n\n{{ inbound.body.nope }}");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn type_errors_are_render_errors() {
    let e = err("{{ inbound.body.name + 1 }}");
    assert_eq!(e.kind, ErrorKind::Render, "{e}");
    assert!(e.message.contains("inbound.body.name + 1"), "{e}");
    let e = err("{{ nosuchfilter_value | nosuchfilter }}");
    assert!(
        matches!(e.kind, ErrorKind::Filter | ErrorKind::Undefined),
        "{e}"
    );
    let e = err("{{ inbound.body.name | nosuchfilter }}");
    assert_eq!(e.kind, ErrorKind::Filter, "{e}");
    assert!(e.message.contains("unknown filter"), "{e}");
}

#[test]
fn fuel_bounds_work_promptly() {
    let started = Instant::now();
    let e = err("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
    assert_eq!(e.kind, ErrorKind::Fuel, "{e}");
    assert!(e.message.contains("fuel"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Loops inside a typed expression's macro-free filters are bounded by the data, and a
    // text template inside a value tree is bounded like any other.
    let mut c = Compiler::new(Limits::default());
    let v = c
        .value(&json!({"a": ["{% for i in range(100000) %}{{ i }}{% endfor %}"]}))
        .expect("compiles");
    c.finish();
    assert_eq!(v.render(&ctx()).expect_err("fuel").kind, ErrorKind::Fuel);

    // A small budget still renders small templates.
    let mut c = Compiler::new(Limits {
        fuel: 50,
        max_output_bytes: 1024,
    });
    let small = c.string("{{ inbound.body.name }}!").expect("compiles");
    let big = c
        .string("{% for i in range(1000) %}{{ i }}{% endfor %}")
        .expect("compiles");
    c.finish();
    assert_eq!(small.render(&ctx()).expect("renders"), json!("Ada!"));
    assert_eq!(
        big.render(&ctx()).expect_err("too much").kind,
        ErrorKind::Fuel
    );
}

#[test]
fn output_is_bounded() {
    let mut c = Compiler::new(Limits {
        fuel: 1_000_000,
        max_output_bytes: 100,
    });
    let text = c
        .string("{% for i in range(200) %}x{% endfor %}")
        .expect("compiles");
    let fits = c
        .string("{% for i in range(100) %}x{% endfor %}")
        .expect("compiles");
    let typed = c.string("{{ 'x' * 500 }}").expect("compiles");
    c.finish();
    let e = text.render(&ctx()).expect_err("too large");
    assert_eq!(e.kind, ErrorKind::OutputTooLarge);
    assert!(e.message.contains("100 bytes"), "{e}");
    assert_eq!(fits.render_string(&ctx()).expect("fits").len(), 100);
    assert_eq!(
        typed.render(&ctx()).expect_err("too large").kind,
        ErrorKind::OutputTooLarge
    );
}

#[test]
fn no_autoescape_and_trailing_newline_kept() {
    assert_eq!(ok("<b>{{ '<&>' }}</b>\n"), json!("<b><&></b>\n"));
    assert_eq!(ok("{{ inbound.body.name }}\n\n"), json!("Ada"));
    assert_eq!(ok("a{{ inbound.body.name }}\n"), json!("aAda\n"));
}

#[test]
fn sandbox_has_no_includes_or_environment() {
    let e = err("{% include 'etc/passwd' %}");
    assert_eq!(e.kind, ErrorKind::Render, "{e}");
    assert!(e.message.contains("template not found"), "{e}");
    // Templates of one story cannot reach each other by their internal names.
    for name in ["t1", "t2", "c1"] {
        let mut c = Compiler::new(Limits::default());
        let _other = c.string("{{ credential.token }}").expect("compiles");
        let t = c
            .string(&format!("{{% include '{name}' %}}"))
            .expect("compiles");
        c.finish();
        let e = t.render(&ctx()).expect_err("no include");
        assert!(e.message.contains("template not found"), "{e}");
    }
    let e = err("{{ env.HOME }}");
    assert_eq!(e.kind, ErrorKind::Undefined, "{e}");
}

#[test]
fn rendering_twice_with_different_contexts() {
    let mut c = Compiler::new(Limits::default());
    let text = c.string("Hello {{ inbound.body.name }}").expect("compiles");
    let typed = c.string("{{ inbound.body.n * 2 }}").expect("compiles");
    c.finish();
    for (name, n) in [("Ada", 1), ("Grace", 21)] {
        let ctx = ContextBuilder::new()
            .agent("inbound", Arc::new(json!({"body": {"name": name, "n": n}})))
            .build();
        assert_eq!(
            text.render(&ctx).expect("renders"),
            json!(format!("Hello {name}"))
        );
        assert_eq!(typed.render(&ctx).expect("renders"), json!(n * 2));
    }
}

#[test]
fn handles_are_send_sync_clone_debug_and_work_across_threads() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_traits::<Template>();
    assert_traits::<TemplateValue>();
    assert_traits::<Condition>();
    assert_traits::<switchyard_template::JsonPath>();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Context>();

    let t = compile("{{ inbound.body.count + 1 }}").expect("compiles");
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                let ctx = ContextBuilder::new()
                    .agent("inbound", Arc::new(json!({"body": {"count": i}})))
                    .build();
                t.render(&ctx).expect("renders")
            })
        })
        .collect();
    for (i, h) in threads.into_iter().enumerate() {
        assert_eq!(h.join().expect("thread"), json!(i + 1));
    }
}

#[test]
fn rendering_before_finish_is_an_error() {
    let mut c = Compiler::new(Limits::default());
    let t = c.string("{{ inbound.body.name }}").expect("compiles");
    let lit = c.string("plain").expect("compiles");
    let cond = c.condition("event.ok").expect("compiles");
    assert!(t.render(&ctx()).is_err());
    assert!(cond.eval(&ctx()).is_err());
    assert_eq!(lit.render(&ctx()).expect("literal"), json!("plain"));
    c.finish();
    assert_eq!(t.render(&ctx()).expect("renders"), json!("Ada"));
    assert!(cond.eval(&ctx()).expect("evaluates"));
}

#[test]
fn template_values_render_trees() {
    let mut c = Compiler::new(Limits::default());
    let v = c
        .value(&json!({
            "greeting": "Hello {{ inbound.body.name }}",
            "n": "{{ inbound.body.count + 1 }}",
            "fixed": {"a": [1, "two", null]},
            "list": ["{{ inbound.body.ok }}", "lit", 3],
            "{{ not_a_template_key }}": "x"
        }))
        .expect("compiles");
    let lit = c
        .value(&json!({"a": [1, "b"], "c": true}))
        .expect("compiles");
    let bad = c.value(&json!({"a": ["{{ oops"]}));
    c.finish();
    assert!(!v.is_literal());
    assert!(lit.is_literal());
    assert_eq!(
        lit.render(&ctx()).expect("renders"),
        json!({"a": [1, "b"], "c": true})
    );
    assert_eq!(
        v.render(&ctx()).expect("renders"),
        json!({
            "greeting": "Hello Ada",
            "n": 3,
            "fixed": {"a": [1, "two", null]},
            "list": [true, "lit", 3],
            "{{ not_a_template_key }}": "x"
        })
    );
    assert_eq!(bad.expect_err("syntax").kind, ErrorKind::Syntax);
}

#[test]
fn conditions_use_jinja_truthiness() {
    let cases = [
        ("inbound.body.count > 1 and event.ok", true),
        ("inbound.body.count > 3", false),
        ("inbound.body.name == 'Ada'", true),
        ("inbound.body.tags", true),
        ("inbound.body.empty", false),
        ("inbound.body.none", false),
        ("''", false),
        ("0", false),
        ("'b' in inbound.body.tags", true),
        ("inbound.body.nope is defined", false),
        ("not inbound.body.ok", false),
        (
            "inbound.body.items | selectattr('id', 'eq', 2) | list | length == 1",
            true,
        ),
        ("params.size >= 2\n  and run.story == 'hello'", true),
    ];
    for (expr, want) in cases {
        let c = compile_condition(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
        assert_eq!(
            c.eval(&ctx()).unwrap_or_else(|e| panic!("{expr:?}: {e}")),
            want,
            "{expr:?}"
        );
        assert_eq!(c.source(), expr);
    }
}

#[test]
fn condition_errors() {
    let e = compile_condition("inbound.body.count >").expect_err("syntax");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(e.message.starts_with("syntax error:"), "{e}");
    let e = compile_condition("").expect_err("empty");
    assert_eq!(e.kind, ErrorKind::Syntax);
    // No smuggling of template blocks through a condition.
    assert!(compile_condition("x %}{% for i in range(9) %}{% endfor %}{% set y = (1").is_err());
    assert!(compile_condition("{{ x }}").is_err());

    let c = compile_condition("inbound.body.nope").expect("compiles");
    let e = c.eval(&ctx()).expect_err("undefined");
    assert_eq!(e.kind, ErrorKind::Undefined);
    assert!(e.message.contains("inbound.body.nope"), "{e}");
    let c = compile_condition("nope.x > 1").expect("compiles");
    assert_eq!(
        c.eval(&ctx()).expect_err("undefined").kind,
        ErrorKind::Undefined
    );
}

#[test]
fn credentials_used_are_recorded_and_redacted() {
    let ctx = ctx();
    assert!(ctx.credentials_used().is_empty());
    let mut c = Compiler::new(Limits::default());
    let auth = c.string("Bearer {{ credential.token }}").expect("compiles");
    let again = c.string("{{ credential.token }}").expect("compiles");
    let other = c.string("{{ resource.greeter_url }}").expect("compiles");
    c.finish();
    let header = auth.render_string(&ctx).expect("renders");
    again.render(&ctx).expect("renders");
    other.render(&ctx).expect("renders");
    let used = ctx.credentials_used();
    assert_eq!(
        used,
        vec![("token".to_string(), "s3cr3t-t0ken".to_string())]
    );

    let mut payload = json!({
        "headers": {"authorization": header},
        "list": ["s3cr3t-t0ken", 1, null],
        "s3cr3t-t0ken": "key too"
    });
    switchyard_template::redact(&mut payload, &used);
    assert_eq!(
        payload,
        json!({
            "headers": {"authorization": "Bearer [redacted:token]"},
            "list": ["[redacted:token]", 1, null],
            "[redacted:token]": "key too"
        })
    );
}

#[test]
fn redact_str_cases() {
    let secrets = vec![
        ("a".to_string(), "abc".to_string()),
        ("long".to_string(), "abcdef".to_string()),
        ("empty".to_string(), String::new()),
    ];
    assert_eq!(
        switchyard_template::redact_str("x abcdef y abc z", &secrets),
        "x [redacted:long] y [redacted:a] z"
    );
    assert_eq!(
        switchyard_template::redact_str("nothing here", &secrets),
        "nothing here"
    );
    assert_eq!(switchyard_template::redact_str("", &secrets), "");
    let mut v = json!("abc");
    switchyard_template::redact(&mut v, &[("e".into(), String::new())]);
    assert_eq!(v, json!("abc"));
}

#[test]
fn lookups_can_be_custom_types() {
    #[derive(Debug)]
    struct Upper;
    impl switchyard_template::Lookup for Upper {
        fn get(&self, name: &str) -> Option<String> {
            Some(name.to_uppercase())
        }
    }
    let t = compile("{{ resource.abc }}-{{ credential.xyz }}").expect("compiles");
    let ctx = ContextBuilder::new()
        .resources(Arc::new(Upper))
        .credentials(lookup(&[("xyz", "1")]))
        .now(t0())
        .build();
    assert_eq!(t.render(&ctx).expect("renders"), json!("ABC-1"));
}

#[test]
fn a_credential_read_by_an_agent_is_recorded_like_a_templates() {
    let ctx = ctx();
    assert_eq!(ctx.credential("nope"), None);
    assert!(ctx.credentials_used().is_empty(), "a missing one is not");
    assert_eq!(ctx.credential("token").as_deref(), Some("s3cr3t-t0ken"));
    assert_eq!(ctx.credential("token").as_deref(), Some("s3cr3t-t0ken"));
    assert_eq!(
        ctx.credentials_used(),
        vec![("token".to_string(), "s3cr3t-t0ken".to_string())],
        "recorded once"
    );
    let bare = switchyard_template::ContextBuilder::new().build();
    assert_eq!(bare.credential("token"), None, "no credential store");
}

#[test]
fn render_with_borrows_payloads_and_serializes_byte_identically_to_render() {
    // Whole payloads, parts of them, built values, scalars, literals, text, trees.
    let sources = [
        json!("{{ shape }}"),
        json!("{{ inbound.body }}"),
        json!("{{ inbound.body.items[1] }}"),
        json!("{{ inbound.body.tags }}"),
        json!("{{ inbound.body.empty }}"),
        json!("{{ inbound.body | merge({\"seen\": true}) }}"),
        json!("{{ inbound.body.name }}"),
        json!("{{ inbound.body.none }}"),
        json!("{{ inbound.body.price }}"),
        json!("Hello {{ inbound.body.name }}"),
        json!("plain"),
        json!({"a": [1, "b"], "c": null}),
        json!({"who": "{{ inbound.body.name }}", "all": "{{ shape }}"}),
        json!(42),
        json!(null),
    ];
    let mut c = Compiler::new(Limits::default());
    let values: Vec<TemplateValue> = sources
        .iter()
        .map(|s| c.value(s).expect("compiles"))
        .collect();
    c.finish();
    let cx = ctx();
    for (source, v) in sources.iter().zip(&values) {
        let old = serde_json::to_vec(&v.render(&cx).expect("renders")).expect("json");
        let new = v
            .render_with(&cx, |json| serde_json::to_vec(json).expect("json"))
            .expect("renders");
        assert_eq!(
            String::from_utf8_lossy(&new),
            String::from_utf8_lossy(&old),
            "{source}"
        );
    }
    // Errors are the same too.
    let mut c = Compiler::new(Limits::default());
    let missing = c.value(&json!("{{ nowhere }}")).expect("compiles");
    c.finish();
    let old = missing.render(&cx).expect_err("undefined");
    let new = missing.render_with(&cx, |_| ()).expect_err("undefined");
    assert_eq!((old.kind, old.to_string()), (new.kind, new.to_string()));
}
