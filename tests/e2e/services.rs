//! Services of a test's own: a PostgreSQL server or a RabbitMQ broker that only this test
//! uses, so stopping and restarting it disturbs no other test. Run by the scripts in
//! `tests/services/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private PostgreSQL server or RabbitMQ broker, destroyed when dropped.
pub(crate) struct PrivateService {
    script: &'static str,
    dir: PathBuf,
    /// Its URL (`postgres://…` or `amqp://…`).
    pub url: String,
}

impl PrivateService {
    /// A PostgreSQL server (`tests/services/postgres.sh`).
    pub(crate) fn postgres() -> PrivateService {
        Self::start(
            "postgres.sh",
            "switchyard-pg",
            "SWITCHYARD_TEST_DATABASE_URL",
        )
    }

    /// A RabbitMQ broker (`tests/services/rabbitmq.sh`).
    pub(crate) fn rabbitmq() -> PrivateService {
        Self::start("rabbitmq.sh", "switchyard-rmq", "SWITCHYARD_TEST_AMQP_URL")
    }

    fn start(script: &'static str, prefix: &str, url_variable: &str) -> PrivateService {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid_like()));
        let out = run(script, "start", &dir);
        let export = format!("export {url_variable}=");
        let url = out
            .lines()
            .find_map(|l| l.strip_prefix(export.as_str()))
            .unwrap_or_else(|| panic!("{script} printed no URL: {out}"))
            .trim()
            .to_string();
        PrivateService { script, dir, url }
    }

    /// Stops it (its data stays).
    pub(crate) fn stop(&self) {
        run(self.script, "stop", &self.dir);
    }

    /// Starts it again on the same port and data.
    pub(crate) fn restart(&self) {
        run(self.script, "start", &self.dir);
    }
}

impl Drop for PrivateService {
    fn drop(&mut self) {
        let _ = Command::new(script_path(self.script))
            .arg("destroy")
            .arg(&self.dir)
            .output();
    }
}

fn script_path(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/services")
        .join(script)
}

fn run(script: &str, command: &str, dir: &Path) -> String {
    let out = Command::new(script_path(script))
        .arg(command)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("run tests/services/{script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {command} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A string unique to this process and moment.
pub(crate) fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}
