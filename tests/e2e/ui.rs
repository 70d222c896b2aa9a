//! The web view in a real headless Chromium (Debian's `chromium` + `chromium-driver`): open
//! the page, see a story's graph, post a webhook and watch the run appear live, open it,
//! replay an event and see the new jobs. Screenshots of each page go to tests/artifacts/.
//!
//! Without Chromium the test fails when `SWITCHYARD_REQUIRE_SERVICES=1` (as `tests/run`
//! sets, after installing it) and otherwise says loudly that it did not run.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{stories_dir, Server, Sink};
use crate::webdriver::{require_browser, Browser};

pub const ORDERS: &str = r#"
name: orders
description: Takes an order from the shop, shapes it and delivers it to the warehouse
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: shape
    type: transform
    from: inbound
    mode: message
    payload:
      order: "{{ inbound.body.id }}"
      qty: "{{ inbound.body.qty }}"
  - name: big
    type: trigger
    from: shape
    rules:
      - {value: "{{ shape.qty }}", op: ">", expected: 10}
  - name: deliver
    type: http_request
    from: shape
    url: "{{ resource.sink_url }}/orders"
    method: POST
    headers:
      Authorization: "Bearer {{ credential.warehouse_token }}"
    body: "{{ shape }}"
  - name: alert
    type: transform
    from: deliver.error
    mode: message
    payload: {failed: "{{ deliver.error.message }}"}
"#;

/// A story with a pack action in it: the graph shows it like any other agent.
const NOTIFY: &str = r#"
name: notify
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: note
    type: action
    from: inbound
    uses: core.echo
    with: {message: "order {{ inbound.body.id }}"}
"#;

pub const WAIT: Duration = Duration::from_secs(15);

pub fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/artifacts")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn web_view_shows_the_graph_follows_runs_live_and_replays() {
    let Some((chromium, chromedriver)) = require_browser() else {
        return;
    };
    let stories = stories_dir(&[("orders.yaml", ORDERS), ("notify.yaml", NOTIFY)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let packs = crate::actions::shipped_packs();
    let server = Server::start_with(
        stories.path(),
        &data.path().join("d"),
        &["--packs", packs.to_str().unwrap()],
    )
    .await;
    server.cli_json(&["resource", "set", "sink_url", &sink.url]);
    // One run before the page opens, so the lists have something in them.
    let (status, first) = server
        .post("orders", "inbound", &json!({"id": "A-1", "qty": 3}))
        .await;
    assert_eq!(status, 202, "{first}");
    server
        .wait_run(first["run_id"].as_str().unwrap(), WAIT)
        .await;

    let out = artifacts();
    let browser = Browser::start(
        &chromium,
        &chromedriver,
        &data.path().join("chromedriver.log"),
    )
    .await;

    // The page and its headers: a strict CSP, no inline code.
    let page = reqwest::get(format!("{}/", server.url)).await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );

    // Stories: name, webhook URL, counts of the last hour.
    browser.goto(&format!("{}/", server.url)).await;
    browser
        .wait_css("tr[data-story='orders'] .stat-hour .count", WAIT)
        .await;
    let row = browser
        .js(
            "return document.querySelector(\"tr[data-story='orders']\").innerText",
            json!([]),
        )
        .await;
    let row = row.as_str().unwrap_or_default();
    assert!(row.contains("/webhook/orders/inbound"), "{row}");
    assert!(row.contains("enabled"), "{row}");
    browser.screenshot(&out.join("1-stories.png")).await;

    // The story's graph: every agent a node, the error edge marked as such.
    browser.click("tr[data-story='orders'] a.story-name").await;
    browser.wait_css("svg.graph g.node[data-agent]", WAIT).await;
    let nodes = browser
        .js(
            "return [...document.querySelectorAll('svg.graph g.node')].map(n => n.dataset.agent)",
            json!([]),
        )
        .await;
    let mut nodes = strings(&nodes);
    nodes.sort();
    assert_eq!(nodes, ["alert", "big", "deliver", "inbound", "shape"]);
    let error_edges = browser
        .js("return [...document.querySelectorAll('svg.graph .edge-error')].map(e => e.dataset.from + '>' + e.dataset.to)", json!([]))
        .await;
    assert_eq!(strings(&error_edges), ["deliver>alert"]);
    let plain_edges = browser
        .js(
            "return document.querySelectorAll('svg.graph .edge:not(.edge-error)').length",
            json!([]),
        )
        .await;
    assert_eq!(plain_edges, 3);
    // Selecting an agent shows its options, the credential redacted, and its events.
    browser
        .click("svg.graph g.node[data-agent='deliver']")
        .await;
    browser
        .wait_css(".agent-panel[data-agent='deliver'] .event-item", WAIT)
        .await;
    let options = browser
        .js(
            "return document.querySelector('.agent-panel pre.options').textContent",
            json!([]),
        )
        .await;
    let options = options.as_str().unwrap_or_default();
    assert!(
        options.contains("Bearer [redacted:warehouse_token]"),
        "{options}"
    );
    assert!(!options.contains("credential."), "{options}");
    assert!(browser
        .url()
        .await
        .ends_with("#/stories/orders/agents/deliver"));
    browser.screenshot(&out.join("2-story-graph.png")).await;

    // Runs: the list is live. A marker on `window` proves the page never reloads.
    browser.click("a[data-nav='runs']").await;
    browser.wait_css("tr[data-run]", WAIT).await;
    browser
        .wait_for(
            "the live stream",
            "return document.getElementById('live').dataset.state === 'live'",
            json!([]),
            WAIT,
        )
        .await;
    browser.js("window.__sameDocument = true", json!([])).await;
    let (status, ids) = server
        .post("orders", "inbound", &json!({"id": "B-7", "qty": 12}))
        .await;
    assert_eq!(status, 202, "{ids}");
    let run_id = ids["run_id"].as_str().unwrap().to_string();
    let row = format!("tr[data-run='{run_id}']");
    browser
        .wait_for(
            "the new run in the list, finished",
            "const r = document.querySelector(arguments[0]); return r && r.dataset.status !== 'running' && r.dataset.status",
            json!([row]),
            WAIT,
        )
        .await;
    assert_eq!(
        browser
            .js("return window.__sameDocument === true", json!([]))
            .await,
        true
    );
    let first_row = browser
        .js(
            "return document.querySelector('tbody tr[data-run]').dataset.run",
            json!([]),
        )
        .await;
    assert_eq!(first_row, run_id.as_str(), "the newest run is on top");
    browser.screenshot(&out.join("3-runs.png")).await;

    // The run: each agent's status, tries and duration; the failure of `deliver` (its
    // credential is not set) handled by `alert`.
    browser.click(&format!("{row} a.mono")).await;
    browser
        .wait_css(".tree-job[data-agent='alert']", WAIT)
        .await;
    let states = browser
        .js("return Object.fromEntries([...document.querySelectorAll('table.timeline tr[data-agent]')].map(r => [r.dataset.agent, r.dataset.state]))", json!([]))
        .await;
    assert_eq!(
        states,
        json!({"shape": "succeeded", "big": "succeeded", "deliver": "failed", "alert": "succeeded"})
    );
    let deliver_error = browser
        .js("return document.querySelector(\".tree-job[data-agent='deliver'] .job-error\").textContent", json!([]))
        .await;
    assert!(
        deliver_error
            .as_str()
            .unwrap_or_default()
            .contains("warehouse_token"),
        "{deliver_error}"
    );
    let payloads = browser
        .js(
            "return document.querySelector('.tree-root > .tree-event pre.json').textContent",
            json!([]),
        )
        .await;
    assert!(
        payloads
            .as_str()
            .unwrap_or_default()
            .contains("\"qty\": 12"),
        "pretty-printed: {payloads}"
    );
    browser.resize(1400, 2000).await;
    browser.screenshot(&out.join("4-run.png")).await;

    // Replay `shape`'s event: two new jobs (big and deliver) appear without a reload.
    let detail = server.api(&format!("/runs/{run_id}")).await;
    let shape_event = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["agent"] == "shape")
        .expect("shape event")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let jobs_before = browser
        .js(
            "return document.querySelectorAll('.tree-job').length",
            json!([]),
        )
        .await;
    assert_eq!(jobs_before, 4);
    browser
        .click(&format!(
            "[data-event='{shape_event}'] > .event-card button.replay"
        ))
        .await;
    browser
        .wait_for(
            "the replayed jobs, finished",
            "const jobs = document.querySelectorAll('.tree-job'); return jobs.length >= 7 && ![...jobs].some(j => j.dataset.state === 'queued')",
            json!([]),
            WAIT,
        )
        .await;
    let replayed = browser
        .js("return [...document.querySelectorAll(\".tree-job[data-agent='deliver']\")].map(j => j.dataset.state)", json!([]))
        .await;
    assert_eq!(
        strings(&replayed),
        ["failed", "failed"],
        "the replayed delivery ran again"
    );
    assert_eq!(
        browser
            .js("return window.__sameDocument === true", json!([]))
            .await,
        true
    );
    browser.screenshot(&out.join("5-run-replayed.png")).await;

    // A story with a pack action: the action is a node like any other, and its panel says
    // which action it runs.
    // Followed inside the app, as a link in it does (a WebDriver navigation that changes
    // only the fragment was once not acted on by a loaded Chromium within 15 s).
    browser
        .js(
            "location.hash = arguments[0]",
            json!(["#/stories/notify/agents/note"]),
        )
        .await;
    browser
        .wait_css(".agent-panel[data-agent='note'] .action-ref", WAIT)
        .await;
    let node = browser
        .js(
            "const n = document.querySelector(\"svg.graph g.node[data-agent='note']\"); return [n.dataset.type, n.querySelector('.node-type').textContent]",
            json!([]),
        )
        .await;
    assert_eq!(node, json!(["action", "ACTION"]));
    let edges = browser
        .js("return [...document.querySelectorAll('svg.graph .edge')].map(e => e.dataset.from + '>' + e.dataset.to)", json!([]))
        .await;
    assert_eq!(strings(&edges), ["inbound>note"]);
    let uses = browser
        .js(
            "return document.querySelector('.agent-panel .action-ref').textContent",
            json!([]),
        )
        .await;
    assert_eq!(uses, "core.echo");
    browser.screenshot(&out.join("7-story-action.png")).await;

    // A narrow screen: the runs list still reads well.
    browser.resize(420, 900).await;
    browser.click("a[data-nav='runs']").await;
    browser.wait_css("tr[data-run]", WAIT).await;
    browser.screenshot(&out.join("6-runs-narrow.png")).await;

    // Nothing went wrong in the page: no script errors, no CSP violations.
    let problems: Vec<String> = browser
        .console()
        .await
        .iter()
        .filter(|m| m["level"] == "SEVERE")
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(problems.is_empty(), "browser console errors: {problems:#?}");
    browser.quit().await;
}
