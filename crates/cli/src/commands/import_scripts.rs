//! `switchyard pack import-scripts DIR --pack NAME`: turns a directory of scripts into a pack
//! with one `command` action per executable script (StackStorm's "turn our scripts into
//! actions").
//!
//! The header convention, read from the comment lines (`#`, `//` or `--`) of the first 100
//! lines of each script:
//!
//! ```text
//! # @description Restarts a service and waits until it is healthy.
//! # @param service string required The systemd unit to restart.
//! # @param timeout integer default=30 Seconds to wait.
//! # @param mode string default=soft enum=soft|hard How to restart.
//! # @param token string secret An API token.
//! # @timeout 10m
//! ```
//!
//! `@param NAME TYPE [required] [secret] [default=VALUE] [enum=A|B|…] DESCRIPTION`: TYPE is
//! string, integer, number, boolean, array or object; a default with spaces is quoted
//! (`default="two words"`). The script receives each parameter as the environment variable
//! `PARAM_NAME` (upper case): text as given, numbers and booleans as text, lists and
//! mappings as JSON, and an empty variable for an optional parameter that was not given.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde_json::Value;
use switchyard_agents::{ParamSpec, ParamType};

/// One `@param` line.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptParam {
    /// Name.
    pub name: String,
    /// Schema.
    pub spec: ParamSpec,
}

/// What a script's header says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    /// `@description`.
    pub description: Option<String>,
    /// `@param` lines, in order.
    pub params: Vec<ScriptParam>,
    /// `@timeout`.
    pub timeout: Option<String>,
}

/// Reads a script's header; an error names the line.
pub fn parse_header(text: &str) -> Result<Header, String> {
    let mut h = Header::default();
    for (i, line) in text.lines().take(100).enumerate() {
        let t = line.trim_start();
        let Some(comment) = ["#", "//", "--"].iter().find_map(|p| t.strip_prefix(p)) else {
            continue;
        };
        let comment = comment.trim();
        let Some(rest) = comment.strip_prefix('@') else {
            continue;
        };
        let (tag, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let rest = rest.trim();
        let at = |m: String| format!("line {}: {m}", i + 1);
        match tag {
            "description" => {
                let d = h.description.get_or_insert_with(String::new);
                if !d.is_empty() {
                    d.push(' ');
                }
                d.push_str(rest);
            }
            "timeout" => h.timeout = Some(rest.to_string()),
            "param" => h.params.push(parse_param(rest).map_err(at)?),
            _ => {}
        }
    }
    Ok(h)
}

fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_param(text: &str) -> Result<ScriptParam, String> {
    let w = words(text);
    let (Some(name), Some(kind)) = (w.first(), w.get(1)) else {
        return Err("`@param` needs a name and a type: `@param NAME TYPE [required] [default=…] description`".into());
    };
    let kind: ParamType = serde_json::from_value(Value::String(kind.clone())).map_err(|_| {
        format!(
            "`{kind}` is not a parameter type (string, integer, number, boolean, array, object)"
        )
    })?;
    let mut spec = ParamSpec {
        kind,
        required: false,
        default: None,
        choices: None,
        description: None,
        secret: false,
    };
    let mut description: Vec<&str> = Vec::new();
    for word in &w[2..] {
        if !description.is_empty() {
            description.push(word);
            continue;
        }
        match word.as_str() {
            "required" => spec.required = true,
            "secret" => spec.secret = true,
            other => {
                if let Some(d) = other.strip_prefix("default=") {
                    let v = kind
                        .parse_text(d)
                        .ok_or_else(|| format!("default `{d}` is not of type {kind}"))?;
                    spec.default = Some(v);
                } else if let Some(list) = other.strip_prefix("enum=") {
                    let mut choices = Vec::new();
                    for item in list.split('|') {
                        choices.push(
                            kind.parse_text(item).ok_or_else(|| {
                                format!("enum value `{item}` is not of type {kind}")
                            })?,
                        );
                    }
                    spec.choices = Some(choices);
                } else {
                    description.push(word);
                }
            }
        }
    }
    if !description.is_empty() {
        spec.description = Some(description.join(" "));
    }
    Ok(ScriptParam {
        name: name.clone(),
        spec,
    })
}

/// An action name from a file name: `restart-service.sh` → `restart_service`.
pub fn action_name(file_name: &str) -> String {
    let stem = file_name.split('.').next().unwrap_or(file_name);
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "script_");
    }
    name
}

/// A YAML scalar: JSON's double-quoted form is valid YAML.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The action file of one script.
pub fn action_yaml(pack: &str, name: &str, script: &str, header: &Header) -> String {
    let mut y = format!("name: {name}\n");
    let description = header
        .description
        .clone()
        .unwrap_or_else(|| format!("Runs the script {script}."));
    y.push_str(&format!(
        "description: {}\n",
        q(&format!(
            "{description} (imported script {script}; parameters arrive as PARAM_* environment variables)"
        ))
    ));
    if !header.params.is_empty() {
        y.push_str("parameters:\n");
    }
    for p in &header.params {
        y.push_str(&format!("  {}:\n    type: {}\n", p.name, p.spec.kind));
        if p.spec.required {
            y.push_str("    required: true\n");
        }
        if let Some(d) = &p.spec.default {
            y.push_str(&format!("    default: {d}\n"));
        }
        if let Some(c) = &p.spec.choices {
            y.push_str(&format!("    enum: {}\n", Value::Array(c.clone())));
        }
        if let Some(d) = &p.spec.description {
            y.push_str(&format!("    description: {}\n", q(d)));
        }
        if p.spec.secret {
            y.push_str("    secret: true\n");
        }
    }
    y.push_str("run:\n  type: command\n");
    y.push_str(&format!(
        "  argv: [{}]\n",
        q(&format!("{{{{ resource.{pack}_scripts_dir }}}}/{script}"))
    ));
    if !header.params.is_empty() {
        y.push_str("  env:\n");
    }
    for p in &header.params {
        let value = match p.spec.kind {
            ParamType::Array | ParamType::Object => format!(
                "{{{{ (params.{0} | json) if params.{0} is defined else '' }}}}",
                p.name
            ),
            _ => format!("{{{{ params.{} | default('') }}}}", p.name),
        };
        y.push_str(&format!(
            "    PARAM_{}: {}\n",
            p.name.to_ascii_uppercase(),
            q(&value)
        ));
    }
    if let Some(t) = &header.timeout {
        y.push_str(&format!("  timeout: {}\n", q(t)));
    }
    y
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Writes `PACKS/NAME/pack.yaml`, `PACKS/NAME/scripts/*` (copies) and one action per
/// executable script in `dir`, then validates the pack.
pub fn run(dir: &Path, pack: &str, packs_dir: &Path, force: bool) -> anyhow::Result<ExitCode> {
    if !switchyard_story::pack::is_identifier(pack) {
        bail!("pack name `{pack}` must start with a lower-case letter and hold only lower-case letters, digits and `_`");
    }
    let target = packs_dir.join(pack);
    if target.exists() && !force {
        bail!(
            "{} already exists; give --force to replace its pack.yaml, actions and scripts",
            target.display()
        );
    }
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            is_executable(p)
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    scripts.sort();
    if scripts.is_empty() {
        bail!(
            "no executable scripts in {} (chmod +x the ones to import)",
            dir.display()
        );
    }
    let scripts_dir = target.join("scripts");
    std::fs::create_dir_all(target.join("actions"))?;
    std::fs::create_dir_all(&scripts_dir)?;
    let mut imported: Vec<(String, usize)> = Vec::new();
    for script in &scripts {
        let file_name = script
            .file_name()
            .and_then(|n| n.to_str())
            .context("a script name is not UTF-8")?
            .to_string();
        let text = std::fs::read(script)?;
        let header = parse_header(&String::from_utf8_lossy(&text))
            .map_err(|e| anyhow::anyhow!("{}: {e}", script.display()))?;
        let name = action_name(&file_name);
        if imported.iter().any(|(n, _)| *n == name) {
            bail!("two scripts would both be action `{name}`; rename one");
        }
        let copy = scripts_dir.join(&file_name);
        std::fs::copy(script, &copy)
            .with_context(|| format!("cannot copy {}", script.display()))?;
        std::fs::write(
            target.join("actions").join(format!("{name}.yaml")),
            action_yaml(pack, &name, &file_name, &header),
        )?;
        imported.push((name, header.params.len()));
    }
    let manifest = format!(
        "name: {pack}\nversion: \"0.1.0\"\ndescription: {}\nresources:\n  {pack}_scripts_dir:\n    default: {}\n    description: {}\n",
        q(&format!("Scripts imported from {}", dir.display())),
        q(&scripts_dir.display().to_string()),
        q("Where the scripts are, relative to the server's working directory or absolute"),
    );
    std::fs::write(target.join("pack.yaml"), manifest)?;
    for (name, params) in &imported {
        println!("{pack}.{name}  ({params} parameter(s))");
    }
    println!(
        "wrote {} with {} action(s); the server runs them only with --allow-commands",
        target.display(),
        imported.len()
    );
    let (_, diagnostics) = switchyard_story::pack::load_pack_dirs(&[target]);
    for d in &diagnostics {
        eprintln!("{d}");
    }
    Ok(if diagnostics.iter().any(|d| d.is_error()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SCRIPT: &str = r#"#!/usr/bin/env bash
# @description Restarts a service
# @description and waits until it is healthy.
# @param service string required The systemd unit to restart.
# @param wait integer default=30 Seconds to wait.
# @param mode string default=soft enum=soft|hard How to restart.
# @param note string default="two words" A note.
# @param hosts array Where.
# @param token string secret An API token.
# @timeout 10m
set -eu
# @param ignored string this is past nothing, still read
"#;

    #[test]
    fn reads_the_header_convention() {
        let h = parse_header(SCRIPT).unwrap();
        assert_eq!(
            h.description.as_deref(),
            Some("Restarts a service and waits until it is healthy.")
        );
        assert_eq!(h.timeout.as_deref(), Some("10m"));
        let names: Vec<&str> = h.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["service", "wait", "mode", "note", "hosts", "token", "ignored"]
        );
        assert!(h.params[0].spec.required);
        assert_eq!(
            h.params[0].spec.description.as_deref(),
            Some("The systemd unit to restart.")
        );
        assert_eq!(h.params[1].spec.default, Some(json!(30)));
        assert_eq!(
            h.params[2].spec.choices,
            Some(vec![json!("soft"), json!("hard")])
        );
        assert_eq!(h.params[3].spec.default, Some(json!("two words")));
        assert_eq!(h.params[4].spec.kind, ParamType::Array);
        assert!(h.params[5].spec.secret);
    }

    #[test]
    fn bad_headers_name_the_line() {
        let e = parse_header("#!/bin/sh\n# @param count int\n").unwrap_err();
        assert!(
            e.starts_with("line 2: `int` is not a parameter type"),
            "{e}"
        );
        let e = parse_header("# @param n integer default=x\n").unwrap_err();
        assert!(e.contains("default `x` is not of type integer"), "{e}");
    }

    #[test]
    fn action_names_come_from_file_names() {
        assert_eq!(action_name("restart-service.sh"), "restart_service");
        assert_eq!(action_name("Backup.DB.py"), "backup");
        assert_eq!(action_name("01-init"), "script_01_init");
    }

    #[test]
    fn the_action_file_passes_params_as_environment_variables() {
        let h = parse_header(SCRIPT).unwrap();
        let y = action_yaml("ops", "restart_service", "restart-service.sh", &h);
        assert!(y.contains("  type: command\n"), "{y}");
        assert!(
            y.contains(r#"  argv: ["{{ resource.ops_scripts_dir }}/restart-service.sh"]"#),
            "{y}"
        );
        assert!(
            y.contains(r#"    PARAM_SERVICE: "{{ params.service | default('') }}""#),
            "{y}"
        );
        assert!(
            y.contains(r#"    PARAM_HOSTS: "{{ (params.hosts | json) if params.hosts is defined else '' }}""#),
            "{y}"
        );
        assert!(y.contains("    enum: [\"soft\",\"hard\"]\n"), "{y}");
        assert!(y.contains("  timeout: \"10m\"\n"), "{y}");
    }
}
