//! Hot reload: added, changed and removed story files take effect; an invalid file keeps
//! the previous version running.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{stories_dir, Server};

const V1: &str = "name: live\nagents:\n  - name: inbound\n    type: webhook\n    auth: none\n    response: {status: 200, body: {version: 1}}\n";
const V2: &str = "name: live\nagents:\n  - name: inbound\n    type: webhook\n    auth: none\n    response: {status: 200, body: {version: 2}}\n";
const BROKEN: &str = "name: live\nagents:\n  - name: inbound\n    type: webhok\n";

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 10s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn changes_to_the_stories_directory_take_effect() {
    let stories = stories_dir(&[]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    let file = stories.path().join("live.yaml");
    assert_eq!(server.post("live", "inbound", &json!({})).await.0, 404);

    std::fs::write(&file, V1).unwrap();
    eventually("adding a story", || async {
        server.post("live", "inbound", &json!({})).await == (200, json!({"version": 1}))
    })
    .await;

    std::fs::write(&file, V2).unwrap();
    eventually("changing a story", || async {
        server.post("live", "inbound", &json!({})).await == (200, json!({"version": 2}))
    })
    .await;

    std::fs::write(&file, BROKEN).unwrap();
    eventually("reporting the invalid file", || async {
        server.logs().contains("unknown agent type `webhok`")
    })
    .await;
    assert_eq!(
        server.post("live", "inbound", &json!({})).await,
        (200, json!({"version": 2})),
        "the previous version keeps running"
    );

    std::fs::remove_file(&file).unwrap();
    eventually("removing a story", || async {
        server.post("live", "inbound", &json!({})).await.0 == 404
    })
    .await;
}
