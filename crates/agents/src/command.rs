//! `command`: runs a program and emits `{exit_code, stdout, stderr}`.
//!
//! Refused unless the server was started with `--allow-commands`. `argv` is a list (the
//! program and its arguments, each a template), never a shell string: nothing is parsed by a
//! shell unless the story names one (`argv: [sh, -c, "…"]`).
//!
//! The child does not inherit the server's environment (it holds secrets such as the master
//! key): it sees only `PATH`, `HOME` and `LANG` from the server, plus the agent's `env`.
//! It runs in its own process group; when the execution is abandoned (the agent's `timeout`,
//! or shutdown) the whole group is killed, grandchildren included. stdout and stderr are each
//! kept up to `ServicesConfig::max_command_output` bytes; the rest is read and dropped, and
//! the event's `truncated` says how much there was.

use std::collections::BTreeMap;
use std::process::Stdio;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use switchyard_template::Template;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::registry::AgentType;
use crate::{Agent, AgentError, BuildContext, ExecContext, Invalid, Outcome};

/// Variables of the server's environment passed on to commands; nothing else is inherited.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG"];

/// Bytes of stderr quoted in the error of a failed command.
const STDERR_TAIL: usize = 2000;

/// Options of a `command` agent. Its time limit is the common `timeout` option.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandOptions {
    /// The program and its arguments, each a template: `[git, -C, "{{ resource.repo }}", pull]`.
    /// A list, never a shell string; to use a shell say so: `[sh, -c, "…"]`.
    #[schemars(with = "Vec<String>")]
    pub argv: Value,
    /// Working directory (a template; default: the server's).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Environment variables added to `PATH`, `HOME` and `LANG` (values are templates).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Text written to the program's standard input (a template; default: none).
    #[serde(default)]
    pub stdin: Option<String>,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default)]
    pub expect_exit: Option<Vec<i32>>,
}

/// A built `command` agent.
#[derive(Debug)]
pub struct Command {
    argv: Vec<Template>,
    cwd: Option<Template>,
    env: Vec<(String, Template)>,
    stdin: Option<Template>,
    expect_exit: Vec<i32>,
}

impl AgentType for Command {
    type Options = CommandOptions;

    fn build(o: CommandOptions, cx: &mut BuildContext<'_>) -> Result<Self, Invalid> {
        let mut argv = Vec::new();
        match &o.argv {
            Value::Array(items) if items.is_empty() => cx.error_with_hint(
                "/argv",
                "`argv` is empty",
                "name the program: `argv: [echo, hello]`",
            ),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("/argv/{i}");
                    match item {
                        Value::String(s) => argv.extend(cx.template(&path, s)),
                        Value::Number(n) => argv.extend(cx.template(&path, &n.to_string())),
                        _ => cx.error(&path, "each element of `argv` is a string"),
                    }
                }
            }
            Value::String(s) => cx.error_with_hint(
                "/argv",
                "`argv` is a list of arguments, not a shell string",
                format!(
                    "write `argv: [{}]`, or run a shell explicitly: `argv: [sh, -c, {:?}]`",
                    s.split_whitespace().collect::<Vec<_>>().join(", "),
                    s
                ),
            ),
            _ => cx.error("/argv", "`argv` is a list of strings: `[program, arg, …]`"),
        }
        let cwd = o.cwd.as_deref().and_then(|c| cx.template("/cwd", c));
        let mut env = Vec::with_capacity(o.env.len());
        for (k, v) in &o.env {
            let path = format!("/env/{}", crate::build::pointer_segment(k));
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                cx.error(
                    &path,
                    format!("`{k}` is not a valid environment variable name"),
                );
                continue;
            }
            env.extend(cx.template(&path, v).map(|t| (k.clone(), t)));
        }
        let stdin = o.stdin.as_deref().and_then(|s| cx.template("/stdin", s));
        cx.finish_with(Command {
            argv,
            cwd,
            env,
            stdin,
            expect_exit: o.expect_exit.unwrap_or_else(|| vec![0]),
        })
    }
}

#[async_trait]
impl Agent for Command {
    async fn execute(&self, cx: &ExecContext<'_>) -> Result<Outcome, AgentError> {
        if !cx.services.config.allow_commands {
            return Err(AgentError::permanent(
                "commands_disabled",
                "command agents are disabled on this server: start it with `switchyard serve --allow-commands` to let stories run programs",
            ));
        }
        let t = cx.templates;
        let argv = self
            .argv
            .iter()
            .map(|a| a.render_string(t))
            .collect::<Result<Vec<_>, _>>()?;
        let Some((program, args)) = argv.split_first() else {
            return Err(AgentError::permanent("spawn", "`argv` is empty"));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).env_clear();
        for name in INHERITED_ENV {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v.render_string(t)?);
        }
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd.render_string(t)?);
        }
        let stdin = match &self.stdin {
            Some(s) => Some(s.render_string(t)?),
            None => None,
        };
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);

        let mut child = cmd
            .spawn()
            .map_err(|e| AgentError::permanent("spawn", format!("cannot run `{program}`: {e}")))?;
        // Dropped before the end (timeout, shutdown): the whole process group is killed.
        let mut group = GroupGuard(child.id());

        let limit = cx.services.config.max_command_output;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let input = child.stdin.take();
        let feed = async move {
            if let (Some(mut pipe), Some(text)) = (input, stdin) {
                // A program that exits without reading its input is not an error here.
                let _ = pipe.write_all(text.as_bytes()).await;
                let _ = pipe.shutdown().await;
            }
        };
        let (_, out, err, status) = tokio::join!(
            feed,
            read_capped(stdout, limit),
            read_capped(stderr, limit),
            child.wait()
        );
        let status = status
            .map_err(|e| AgentError::transient("spawn", format!("waiting for `{program}`: {e}")))?;
        group.0 = None;
        let (out, err) = (
            out.map_err(|e| read_error(program, "stdout", e))?,
            err.map_err(|e| read_error(program, "stderr", e))?,
        );

        let code = status.code();
        let ok = code.is_some_and(|c| self.expect_exit.contains(&c));
        if !ok {
            let tail = tail(&err.kept, STDERR_TAIL);
            let what = match code {
                Some(c) => format!("`{program}` exited with {c}"),
                None => format!("`{program}` was ended by {}", signal_name(&status)),
            };
            let message = if tail.trim().is_empty() {
                what
            } else {
                format!("{what}: {}", tail.trim_end())
            };
            return Err(AgentError::transient("exit_status", message));
        }
        let mut outv = Map::with_capacity(4);
        outv.insert("exit_code".into(), code.map_or(Value::Null, Value::from));
        outv.insert(
            "stdout".into(),
            Value::String(String::from_utf8_lossy(&out.kept).into_owned()),
        );
        outv.insert(
            "stderr".into(),
            Value::String(String::from_utf8_lossy(&err.kept).into_owned()),
        );
        let mut truncated = Map::new();
        for (name, c) in [("stdout", &out), ("stderr", &err)] {
            if c.total > c.kept.len() as u64 {
                truncated.insert(
                    name.into(),
                    json!({"kept_bytes": c.kept.len(), "total_bytes": c.total}),
                );
            }
        }
        if !truncated.is_empty() {
            tracing::warn!(
                story = cx.story,
                agent = cx.agent,
                limit,
                "command output truncated"
            );
            outv.insert("truncated".into(), Value::Object(truncated));
        }
        Ok(Outcome::Emit(vec![Value::Object(outv)]))
    }
}

/// Kills the child's process group when dropped while set.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) has no memory effects; a negative pid names the process group
            // the child leads (it was spawned with `process_group(0)`).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

/// A stream read to its end, keeping at most the limit.
struct Captured {
    kept: Vec<u8>,
    total: u64,
}

async fn read_capped<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    limit: usize,
) -> std::io::Result<Captured> {
    let mut out = Captured {
        kept: Vec::new(),
        total: 0,
    };
    let Some(mut pipe) = pipe else {
        return Ok(out);
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.total += n as u64;
        let room = limit.saturating_sub(out.kept.len());
        out.kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

fn read_error(program: &str, stream: &str, e: std::io::Error) -> AgentError {
    AgentError::transient("spawn", format!("reading the {stream} of `{program}`: {e}"))
}

/// The last `max` bytes of `bytes` as text (starting at a character boundary).
fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let text = String::from_utf8_lossy(&bytes[start..]);
    text.trim_start_matches('\u{FFFD}').to_string()
}

fn signal_name(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("signal {sig}");
        }
    }
    status.to_string()
}

#[cfg(test)]
mod tests;
