//! `http_request` `paginate` against a real HTTP server, and `transform` `explode`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{stories_dir, Server, Sink};

const PAGES: &str = r#"
name: pages
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: list
    type: http_request
    from: inbound
    url: "{{ resource.sink_url }}/items"
    query: {per_page: "2"}
    auth: {bearer: t0k}
    paginate: {next: link_header, items: $.items}
  - name: each
    type: transform
    from: list
    mode: explode
    path: $.items
"#;

const CURSORS: &str = r#"
name: cursors
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: list
    type: http_request
    from: inbound
    url: "{{ resource.sink_url }}/records"
    paginate: {next: $.links.next, max_pages: 2}
"#;

const SPLIT: &str = r#"
name: split
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: each
    type: transform
    from: inbound
    mode: explode
    path: $.body.items
"#;

async fn run(server: &Server, story: &str, body: Value) -> Value {
    let (status, ids) = server.post(story, "inbound", &body).await;
    assert_eq!(status, 202, "{ids}");
    server
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(20))
        .await
}

fn payloads(detail: &Value, agent: &str) -> Vec<Value> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["agent"] == agent)
        .map(|e| e["payload"].clone())
        .collect()
}

#[tokio::test]
async fn pages_follow_link_headers_and_body_paths_then_explode_into_items() {
    let stories = stories_dir(&[
        ("pages.yaml", PAGES),
        ("cursors.yaml", CURSORS),
        ("split.yaml", SPLIT),
    ]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    assert!(server
        .cli(&["resource", "set", "sink_url", &sink.url])
        .status
        .success());

    // Link headers: an absolute next URL, then a relative one, then none.
    let page2 = format!(
        "<{}/items?per_page=2&page=2>; rel=\"next\", <{}/items?page=3>; rel=\"last\"",
        sink.url, sink.url
    );
    sink.answer_with_headers(200, &[("link", &page2)], r#"{"items": ["a", "b"]}"#);
    sink.answer_with_headers(
        200,
        &[("link", "</items?per_page=2&page=3>; rel=\"next\"")],
        r#"{"items": ["c", "d"]}"#,
    );
    sink.answer(200, r#"{"items": ["e"]}"#);
    let detail = run(&server, "pages", json!({})).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let got = sink.received();
    let urls: Vec<String> = got
        .iter()
        .map(|r| format!("{}?{}", r.path, r.query.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        urls,
        [
            "/items?per_page=2",
            "/items?per_page=2&page=2",
            "/items?per_page=2&page=3"
        ]
    );
    assert!(
        got.iter()
            .all(|r| r.headers["authorization"] == "Bearer t0k"),
        "same-origin pages keep the Authorization header"
    );
    let list = &payloads(&detail, "list")[0];
    assert_eq!(list["status"], 200);
    assert_eq!(
        list["body"],
        json!({"items": ["a", "b"]}),
        "body is the first page"
    );
    assert_eq!(
        list["pages"],
        json!([{"items": ["a", "b"]}, {"items": ["c", "d"]}, {"items": ["e"]}])
    );
    assert_eq!(list["items"], json!(["a", "b", "c", "d", "e"]));
    assert_eq!(list["next"], Value::Null);
    let each = payloads(&detail, "each");
    assert_eq!(
        each,
        ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, x)| json!({"item": x, "index": i, "count": 5}))
            .collect::<Vec<_>>(),
        "explode: one event per element, in order"
    );

    // A next URL in the body; max_pages stops after two and says where it stopped.
    sink.answer(
        200,
        r#"{"data": [1], "links": {"next": "/records?cursor=b"}}"#,
    );
    sink.answer(
        200,
        r#"{"data": [2], "links": {"next": "/records?cursor=c"}}"#,
    );
    let detail = run(&server, "cursors", json!({})).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    assert_eq!(sink.received().len(), 5, "exactly two more requests");
    let list = &payloads(&detail, "list")[0];
    assert_eq!(list["pages"].as_array().unwrap().len(), 2);
    assert_eq!(list["pages"][1]["data"], json!([2]));
    assert_eq!(list["next"], format!("{}/records?cursor=c", sink.url));
    assert!(list.get("items").is_none());

    // A failing page fails the call.
    sink.answer(
        200,
        r#"{"data": [1], "links": {"next": "/records?cursor=b"}}"#,
    );
    sink.answer(500, r#"{"error": "boom"}"#);
    let detail = run(&server, "cursors", json!({})).await;
    assert_eq!(detail["run"]["status"], "failed");
    let error = &payloads(&detail, "list")[0]["error"];
    assert_eq!(error["kind"], "http_status");
    assert!(
        error["message"].as_str().unwrap().contains("cursor=b"),
        "{error}"
    );

    // explode on a webhook payload; a non-array is an error event that says so.
    let detail = run(&server, "split", json!({"items": [{"id": 1}, {"id": 2}]})).await;
    assert_eq!(
        payloads(&detail, "each"),
        [
            json!({"item": {"id": 1}, "index": 0, "count": 2}),
            json!({"item": {"id": 2}, "index": 1, "count": 2})
        ]
    );
    let detail = run(&server, "split", json!({"items": {"id": 1}})).await;
    assert_eq!(detail["run"]["status"], "failed");
    let error = &payloads(&detail, "each")[0]["error"];
    assert_eq!(error["kind"], "explode");
    assert_eq!(
        error["message"],
        "`$.body.items` is an object, not an array"
    );
    let detail = run(&server, "split", json!({"items": []})).await;
    assert_eq!(detail["run"]["status"], "succeeded");
    assert!(payloads(&detail, "each").is_empty());
}
