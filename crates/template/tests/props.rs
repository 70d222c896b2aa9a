//! Property tests.

mod common;

use proptest::prelude::*;
use serde_json::{json, Value};
use switchyard_template::{redact, redact_str, Compiler, Limits};

proptest! {
    /// Any string without `{{` and `{%` is a literal that renders to itself.
    #[test]
    fn literals_render_to_themselves(s in "\\PC*") {
        prop_assume!(!s.contains("{{") && !s.contains("{%"));
        let mut c = Compiler::new(Limits::default());
        let t = c.string(&s).expect("a literal always compiles");
        c.finish();
        prop_assert!(t.is_literal());
        prop_assert_eq!(t.render(&common::ctx()).expect("renders"), Value::String(s.clone()));
        prop_assert_eq!(t.render_string(&common::ctx()).expect("renders"), s);
    }

    /// A value put into a payload comes back unchanged through a typed template.
    #[test]
    fn typed_templates_round_trip_payload_values(s in "\\PC*", n in any::<i64>(), b in any::<bool>()) {
        let ctx = switchyard_template::ContextBuilder::new()
            .event(std::sync::Arc::new(json!({"s": s, "n": n, "b": b, "l": [s, n]})))
            .build();
        let mut c = Compiler::new(Limits::default());
        let whole = c.string("{{ event }}").expect("compiles");
        let text = c.string("{{ event.s }}!").expect("compiles");
        c.finish();
        prop_assert_eq!(
            whole.render(&ctx).expect("renders"),
            json!({"s": s, "n": n, "b": b, "l": [s, n]})
        );
        prop_assert_eq!(text.render_string(&ctx).expect("renders"), format!("{s}!"));
    }

    /// Redaction never leaves a secret in the output.
    #[test]
    fn redact_never_leaves_the_secret(
        prefix in "\\PC{0,20}",
        suffix in "\\PC{0,20}",
        secret in "[a-z0-9]{6,16}",
        name in "[A-Z_]{1,8}",
        repeat in 1usize..4,
    ) {
        prop_assume!(!"[redacted:]".contains(secret.as_str()) && !"redacted".contains(secret.as_str()));
        let text = format!("{prefix}{}{suffix}", secret.repeat(repeat));
        let secrets = vec![(name.clone(), secret.clone())];
        let out = redact_str(&text, &secrets);
        prop_assert!(!out.contains(&secret), "{} still has the secret", out);
        let marker = format!("[redacted:{name}]");
        prop_assert!(out.contains(&marker));

        let mut v = json!({"a": [text.clone(), {text.clone(): text}], "n": 1});
        redact(&mut v, &secrets);
        prop_assert!(!v.to_string().contains(&secret));
    }
}
