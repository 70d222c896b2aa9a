//! The `switchyard-standins` binary prints the URLs and the setup commands read from packs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn prints_setup_commands_for_the_packs_resources_and_credentials() {
    let packs = std::env::temp_dir().join(format!("standins-packs-{}", std::process::id()));
    let pack = packs.join("digitalocean");
    std::fs::create_dir_all(&pack).expect("mkdir");
    std::fs::write(
        pack.join("pack.yaml"),
        "name: digitalocean\ncredentials:\n  digitalocean_token: A token.\n  digitalocean_spaces_key: Not stood in.\nresources:\n  digitalocean_api_url:\n    default: https://api.digitalocean.com\n",
    )
    .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-standins"))
        .arg("--packs")
        .arg(&packs)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn switchyard-standins");
    let stdout = child.stdout.take().expect("stdout");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let done = line.starts_with("# Requests");
        lines.push(line);
        if done || Instant::now() > deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&packs);
    let out = lines.join("\n");
    assert!(out.contains("# Requests"), "{out}");
    assert!(
        out.contains("switchyard resource set digitalocean_api_url 'http://127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains("| switchyard credential set digitalocean_token"),
        "{out}"
    );
    assert!(
        out.contains("# digitalocean: no stand-in value for digitalocean_spaces_key"),
        "{out}"
    );
    // Settings no pack declares are still printed, for stories.
    assert!(
        out.contains("switchyard resource set github_api_url"),
        "{out}"
    );
    assert!(
        out.contains("switchyard resource set tracker_api_url"),
        "{out}"
    );
}
