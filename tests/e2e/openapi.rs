//! The OpenAPI document validates with an independent validator, and requests built from it
//! get answers that match its schemas.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{stories_dir, Server};

const STORY: &str = "name: doc\nagents:\n  - name: inbound\n    type: webhook\n    auth: none\n";

fn python_with(module: &str, package: &str) {
    let have = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", package])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "cannot install the Python package {package}");
    }
}

/// Validates the document with openapi-spec-validator, then each (operation, status, body)
/// sample against the document's response schema with jsonschema (2020-12).
fn validate(doc: &Value, samples: &[(String, String, u16, Value)]) {
    python_with("openapi_spec_validator", "openapi-spec-validator");
    let script = r##"
import json, sys
from openapi_spec_validator import validate
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
data = json.load(sys.stdin)
doc = data["doc"]
validate(doc)
registry = Registry().with_resource("urn:doc", Resource.from_contents(doc, default_specification=__import__("referencing.jsonschema").jsonschema.DRAFT202012))
for path, method, status, body in data["samples"]:
    op = doc["paths"][path][method]
    resp = op["responses"][str(status)]
    schema = resp["content"]["application/json"]["schema"]
    ref = schema["$ref"].replace("#/", "urn:doc#/")
    Draft202012Validator({"$ref": ref}, registry=registry).validate(body)
print("ok")
"##;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"doc": doc, "samples": samples.iter().map(|(p, m, s, b)| json!([p, m, s, b])).collect::<Vec<_>>()});
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
    assert!(
        out.status.success(),
        "OpenAPI validation failed: {}",
        tail.into_iter()
            .rev()
            .map(|l| l.chars().take(400).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn the_openapi_document_validates_and_describes_real_answers() {
    let stories = stories_dir(&[("doc.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    let packs = crate::actions::shipped_packs();
    let server = Server::start_with(
        stories.path(),
        &data.path().join("d"),
        &["--packs", packs.to_str().unwrap()],
    )
    .await;
    let doc = server.api("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");

    // Build requests from the document itself: its server URL and paths.
    let base = format!(
        "{}{}",
        server.url,
        doc["servers"][0]["url"].as_str().unwrap()
    );
    let (_, ids) = server.post("doc", "inbound", &json!({"x": 1})).await;
    let run_id = ids["run_id"].as_str().unwrap();
    server.wait_run(run_id, Duration::from_secs(5)).await;
    let http = reqwest::Client::new();
    let mut samples = Vec::new();
    for (path, concrete, method) in [
        ("/stories", "/stories".to_string(), "get"),
        ("/stories/{name}", "/stories/doc".to_string(), "get"),
        ("/runs", "/runs?story=doc".to_string(), "get"),
        ("/runs/{id}", format!("/runs/{run_id}"), "get"),
        ("/events", "/events?after=0".to_string(), "get"),
        (
            "/events/{id}",
            format!("/events/{}", ids["event_id"].as_str().unwrap()),
            "get",
        ),
        ("/resources", "/resources".to_string(), "get"),
        ("/actions", "/actions".to_string(), "get"),
        ("/actions/{ref}", "/actions/core.echo".to_string(), "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
        let r = http.get(format!("{base}{concrete}")).send().await.unwrap();
        let status = r.status().as_u16();
        assert!(
            doc["paths"][path][method]["responses"][status.to_string()].is_object(),
            "{path} answered an undocumented {status}"
        );
        samples.push((
            path.to_string(),
            method.to_string(),
            status,
            r.json::<Value>().await.unwrap(),
        ));
    }
    // Errors answer with the documented error shape and status.
    let r = http
        .get(format!("{base}/runs/not-an-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    samples.push((
        "/runs/{id}".into(),
        "get".into(),
        400,
        r.json().await.unwrap(),
    ));
    let r = http
        .get(format!("{base}/stories/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    samples.push((
        "/stories/{name}".into(),
        "get".into(),
        404,
        r.json().await.unwrap(),
    ));
    let r = http
        .post(format!("{base}/stories/doc/agents/inbound/trigger"))
        .json(&json!({"y": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    samples.push((
        "/stories/{name}/agents/{agent}/trigger".into(),
        "post".into(),
        202,
        r.json().await.unwrap(),
    ));
    // Actions: a run, parameters refused by the schema (with the problems), an unknown one.
    for (reference, body, status) in [
        ("core.echo", json!({"params": {"message": "hi"}}), 202),
        ("core.echo", json!({"params": {"data": 3}}), 400),
        ("nope.nothing", json!({"params": {}}), 404),
    ] {
        let r = http
            .post(format!("{base}/actions/{reference}/run"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "POST /actions/{reference}/run {body}");
        let answer: Value = r.json().await.unwrap();
        if status == 400 {
            assert_eq!(answer["error"]["code"], "invalid_params", "{answer}");
            assert_eq!(answer["error"]["problems"].as_array().unwrap().len(), 2);
        }
        samples.push(("/actions/{ref}/run".into(), "post".into(), status, answer));
    }

    // The security endpoints, and the 401/403 answers once tokens exist. The first token is
    // made while the loopback server is still open; from then on calls need one.
    let created = http
        .post(format!("{base}/tokens"))
        .json(&json!({"role": "admin", "name": "doc-admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let admin = created["token"].as_str().unwrap().to_string();
    samples.push(("/tokens".into(), "post".into(), 201, created));
    let anonymous = http.get(format!("{base}/runs")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    samples.push((
        "/runs".into(),
        "get".into(),
        401,
        anonymous.json().await.unwrap(),
    ));
    let public = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200, "the document needs no token");
    let put = http
        .put(format!("{base}/credentials/doc_key"))
        .bearer_auth(&admin)
        .json(&json!({"value": "doc-secret-1", "allowed_hosts": ["api.example.com"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    assert!(doc["paths"]["/credentials/{name}"]["put"]["responses"]["204"].is_object());
    let bad = http
        .put(format!("{base}/credentials/doc_key"))
        .bearer_auth(&admin)
        .json(&json!({"allowed_hosts": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "a body without a value");
    samples.push((
        "/credentials/{name}".into(),
        "put".into(),
        400,
        bad.json().await.unwrap(),
    ));
    let viewer = http
        .post(format!("{base}/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let forbidden = http
        .get(format!("{base}/credentials"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    samples.push((
        "/credentials".into(),
        "get".into(),
        403,
        forbidden.json().await.unwrap(),
    ));
    for (path, concrete, method, token) in [
        ("/whoami", "/whoami", "get", &viewer),
        ("/credentials", "/credentials", "get", &admin),
        ("/tokens", "/tokens", "get", &admin),
        ("/audit", "/audit?limit=5", "get", &admin),
        (
            "/credentials/rotate-key",
            "/credentials/rotate-key",
            "post",
            &admin,
        ),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is documented");
        let request = match method {
            "post" => http.post(format!("{base}{concrete}")),
            _ => http.get(format!("{base}{concrete}")),
        };
        let r = request.bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        assert!(
            op["responses"][status.to_string()].is_object(),
            "{method} {path} answered an undocumented {status}"
        );
        assert!(status < 300, "{method} {path}: {status}");
        samples.push((
            path.to_string(),
            method.to_string(),
            status,
            r.json::<Value>().await.unwrap(),
        ));
    }
    let revoke = http
        .delete(format!("{base}/tokens/doc-admin"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let gone = http
        .get(format!("{base}/whoami"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401, "a revoked token is refused");
    samples.push((
        "/whoami".into(),
        "get".into(),
        401,
        gone.json().await.unwrap(),
    ));
    validate(&doc, &samples);
}
