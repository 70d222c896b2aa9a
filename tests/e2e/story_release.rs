//! The shipped `release-pipeline` story end to end: the real binary with `--allow-commands`
//! runs the shipped demo build (examples/release-build-demo.sh), signs with a real openssl
//! key, publishes with a real curl to the artifact repository stand-in, and asks the GitHub,
//! tracker and chat stand-ins; the release is started with `switchyard trigger`.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::story_env::StoryEnv;

const STORY: &str = "release-pipeline";
const REPO: &str = "acme/shop";

struct Fixture {
    env: StoryEnv,
    dir: tempfile::TempDir,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the release tests need openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

async fn start() -> Fixture {
    let env = StoryEnv::start(&[STORY], &["--allow-commands"]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("release.pem");
    let public = dir.path().join("release.pub");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/release-build-demo.sh");
    env.resource("release_build_script", build.to_str().unwrap());
    env.resource("release_signing_key", key.to_str().unwrap());
    env.credential("release_token", "release-secret");

    let g = env.standins.github();
    g.add_repo(REPO, "main");
    g.commit(REPO, "release-1.4", "Prepare 1.4.0", "ada");
    g.add_tag(REPO, "v1.4.0", "release-1.4");
    g.set_status(REPO, "v1.4.0", "ci/build", "success");
    g.set_status(REPO, "v1.4.0", "ci/test", "success");
    g.add_pull(REPO, 42, "release-1.4", "main", "Release 1.4.0");
    g.add_review(REPO, 42, "grace", "CHANGES_REQUESTED");
    g.add_review(REPO, 42, "grace", "APPROVED");
    g.add_review(REPO, 42, "linus", "COMMENTED");
    env.standins
        .tracker()
        .set_ticket("REL-7", "Ready for Release");
    Fixture { env, dir }
}

fn release(f: &Fixture) -> Value {
    let data = json!({
        "repository": REPO, "pull_request": 42, "ref": "v1.4.0", "version": "1.4.0",
        "ticket": "REL-7", "requested_by": "ada"
    })
    .to_string();
    f.env
        .server
        .cli_json(&["trigger", STORY, "release", "--data", &data, "--wait"])
}

fn chat_texts(env: &StoryEnv) -> Vec<String> {
    env.standins
        .chat()
        .messages()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_release_is_built_signed_published_recorded_and_announced() {
    let f = start().await;
    let env = &f.env;
    let detail = release(&f);
    assert_eq!(detail["run"]["status"], "succeeded", "{detail:#}");

    // Both files are in the repository, and the signature verifies the artifact.
    let a = env.standins.artifacts();
    let artifact = a
        .artifact("acme/shop/1.4.0/shop-1.4.0.tar.gz")
        .unwrap_or_else(|| panic!("published: {:?}", a.artifacts()));
    let signature = a
        .artifact("acme/shop/1.4.0/shop-1.4.0.tar.gz.sig")
        .expect("the signature is published");
    let file = f.dir.path().join("downloaded.tar.gz");
    let sig = f.dir.path().join("downloaded.tar.gz.sig");
    std::fs::write(&file, &artifact.bytes).unwrap();
    std::fs::write(&sig, &signature.bytes).unwrap();
    openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        f.dir.path().join("release.pub").to_str().unwrap(),
        "-signature",
        sig.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let listing = Command::new("tar")
        .args(["-tzf", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("shop-1.4.0/VERSION"),
        "{listing:?}"
    );

    // Recorded on GitHub, announced in chat.
    let deployments = env.standins.github().deployments(REPO);
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let d = &deployments[0];
    assert_eq!(
        (d.task.as_str(), d.environment.as_str()),
        ("release", "production")
    );
    assert_eq!(d.git_ref, "v1.4.0");
    assert_eq!(d.payload["ticket"], "REL-7");
    assert_eq!(d.state(), Some("success"));
    let texts = chat_texts(env);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains("Released acme/shop 1.4.0")
            && texts[0].contains("/acme/shop/1.4.0/shop-1.4.0.tar.gz"),
        "{texts:?}"
    );
    // The artifact repository's token was never stored in an event.
    assert!(!detail
        .to_string()
        .contains(env.standins.artifacts().token()));
    env.assert_nothing_refused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_gate_stops_the_release_with_its_reason_in_chat() {
    let f = start().await;
    let env = &f.env;

    // The ticket is not ready.
    env.standins.tracker().set_ticket("REL-7", "In Review");
    let detail = release(&f);
    assert_eq!(detail["run"]["status"], "succeeded", "{detail:#}");
    let texts = chat_texts(env);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains("stopped") && texts[0].contains("ticket REL-7 is “In Review”"),
        "{texts:?}"
    );

    // CI went red.
    env.standins
        .tracker()
        .set_ticket("REL-7", "ready for release");
    env.standins
        .github()
        .set_status(REPO, "v1.4.0", "ci/test", "failure");
    release(&f);
    let texts = chat_texts(env);
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[1].contains("the commit status of v1.4.0 is failure (ci/test: failure)"),
        "{texts:?}"
    );

    // A reviewer asks for changes again.
    env.standins
        .github()
        .set_status(REPO, "v1.4.0", "ci/test", "success");
    env.standins
        .github()
        .add_review(REPO, 42, "linus", "CHANGES_REQUESTED");
    release(&f);
    let texts = chat_texts(env);
    assert!(
        texts[2].contains("pull request #42 is not approved"),
        "{texts:?}"
    );

    // Nothing was built, published or recorded.
    assert!(env.standins.artifacts().artifacts().is_empty());
    assert!(env.standins.github().deployments(REPO).is_empty());
    env.assert_nothing_refused();
}
