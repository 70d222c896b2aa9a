//! The SSRF guard through the binary: a server started without `--allow-private-networks`
//! refuses to call loopback, link-local and private addresses in every spelling, and after a
//! redirect; an allow-listed host works. Every refused target here is refused before any
//! connection is made (nothing is sent to 169.254.169.254).

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{redirector, stories_dir, Server, Sink};

const FETCH: &str = r#"
name: fetch
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: call
    type: http_request
    from: inbound
    method: POST
    url: "{{ inbound.body.url }}"
    body: {hello: "world"}
"#;

/// Posts `url` to the story and returns the finished run's `call` event (error or not).
async fn call(server: &Server, url: &str) -> (Value, Value) {
    let (status, ids) = server.post("fetch", "inbound", &json!({"url": url})).await;
    assert_eq!(status, 202, "{ids}");
    let detail = server
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(10))
        .await;
    let event = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["agent"] == "call")
        .cloned()
        .unwrap_or_else(|| panic!("no event of `call`: {detail}"));
    (detail["run"].clone(), event)
}

fn assert_ssrf(run: &Value, event: &Value, url: &str, address: &str) {
    assert_eq!(run["status"], "failed", "{url}: {run}");
    assert_eq!(event["kind"], "error", "{url}: {event}");
    assert_eq!(event["payload"]["error"]["kind"], "ssrf", "{url}: {event}");
    let message = event["payload"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(address) && message.contains("SSRF"),
        "{url}: the message names the address {address}: {message}"
    );
}

#[tokio::test]
async fn private_loopback_and_metadata_addresses_are_refused_in_every_spelling() {
    let stories = stories_dir(&[("fetch.yaml", FETCH)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let port = sink.url.rsplit(':').next().unwrap().to_string();
    // `rebound.test` stands for a name whose DNS answer is a private address: the guard in
    // the resolver refuses it at connection time.
    let server = Server::start_strict(
        stories.path(),
        &data.path().join("d"),
        &["--resolve", "rebound.test:127.0.0.1"],
    )
    .await;

    for (url, address) in [
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "169.254.169.254",
        ),
        (format!("http://127.0.0.1:{port}/x"), "127.0.0.1"),
        (format!("http://[::1]:{port}/x"), "::1"),
        (format!("http://0x7f000001:{port}/x"), "127.0.0.1"),
        (format!("http://2130706433:{port}/x"), "127.0.0.1"),
        (format!("http://017700000001:{port}/x"), "127.0.0.1"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/x"),
            "::ffff:127.0.0.1",
        ),
        (format!("http://localhost:{port}/x"), "`localhost`"),
        (format!("http://rebound.test:{port}/x"), "127.0.0.1"),
        ("http://10.1.2.3/".to_string(), "10.1.2.3"),
        ("http://[fd00::1]/".to_string(), "fd00::1"),
    ] {
        let (run, event) = call(&server, &url).await;
        assert_ssrf(&run, &event, &url, address);
    }
    assert!(sink.received().is_empty(), "nothing reached the sink");
}

#[tokio::test]
async fn a_redirect_to_a_private_address_is_refused_and_an_allow_listed_host_works() {
    let stories = stories_dir(&[("fetch.yaml", FETCH)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let sink_port = sink.url.rsplit(':').next().unwrap().to_string();
    let (hop_port, _hop) = redirector(format!("http://127.0.0.1:{sink_port}/after-redirect")).await;
    // `api.vendor.test` is a public-looking host mapped to the loopback servers and
    // allow-listed by name; 127.0.0.1 itself stays refused.
    let server = Server::start_strict(
        stories.path(),
        &data.path().join("d"),
        &[
            "--resolve",
            "api.vendor.test:127.0.0.1",
            "--allow-network",
            "api.vendor.test",
        ],
    )
    .await;

    let ok = format!("http://api.vendor.test:{sink_port}/allowed");
    let (run, event) = call(&server, &ok).await;
    assert_eq!(run["status"], "succeeded", "{run}\n{}", server.logs());
    assert_eq!(event["payload"]["status"], 200);
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].path, "/allowed");
    assert_eq!(got[0].json(), json!({"hello": "world"}));

    let via = format!("http://api.vendor.test:{hop_port}/start");
    let (run, event) = call(&server, &via).await;
    assert_ssrf(&run, &event, &via, "127.0.0.1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sink.received().len(),
        1,
        "the redirect target was never called"
    );
}

#[tokio::test]
async fn the_guard_is_off_with_allow_private_networks_and_bad_flags_are_refused() {
    let stories = stories_dir(&[("fetch.yaml", FETCH)]);
    let data = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    // Server::start passes --allow-private-networks.
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    let (run, _) = call(&server, &format!("{}/open", sink.url)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    drop(server);

    let out = std::process::Command::new(crate::support::bin())
        .args(["serve", "--stories"])
        .arg(stories.path())
        .arg("--data")
        .arg(data.path().join("e"))
        .args(["--listen", "127.0.0.1:0", "--allow-network", "not a host!"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-network") && err.contains("not a host!"),
        "{err}"
    );
}
