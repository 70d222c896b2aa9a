//! `switchyard action list | show | run`: pack actions, StackStorm `st2 run` style.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use switchyard_agents::Parameters;

use crate::client::{enc, Client};
use crate::output::{duration_ms, pretty, table, text};

/// `action …`
#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    /// Every loaded action.
    List,
    /// One action: what it calls, its parameters with types, defaults and descriptions.
    Show {
        /// `PACK.ACTION`.
        reference: String,
    },
    /// Run an action by hand: `action run digitalocean.list_droplets tag=trial --wait`.
    /// Parameters are typed by the action's schema (`count=3` is an integer when the
    /// parameter is; lists and mappings are JSON) and checked before anything runs.
    Run {
        /// `PACK.ACTION`.
        reference: String,
        /// Parameters as `key=value`.
        params: Vec<String>,
        /// Follow the run to its end and print the action's result; exit 1 if it fails.
        #[arg(long)]
        wait: bool,
    },
}

/// `switchyard action …`.
pub async fn run(client: &Client, cmd: ActionCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        ActionCommand::List => list(client, json).await,
        ActionCommand::Show { reference } => show(client, &reference, json).await,
        ActionCommand::Run {
            reference,
            params,
            wait,
        } => run_action(client, &reference, &params, wait, json).await,
    }
}

async fn list(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let v = client.get("/actions").await?;
    if json {
        println!("{}", pretty(&v));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = v["actions"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let description = text(&a["description"]);
            let first = description.lines().next().unwrap_or("").to_string();
            vec![text(&a["ref"]), text(&a["runs"]), first]
        })
        .collect();
    table(&["ACTION", "RUNS", "DESCRIPTION"], &rows);
    Ok(ExitCode::SUCCESS)
}

async fn show(client: &Client, reference: &str, json: bool) -> anyhow::Result<ExitCode> {
    let v = client.get(&format!("/actions/{}", enc(reference))).await?;
    if json {
        println!("{}", pretty(&v));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}  (runs {}, {})",
        text(&v["ref"]),
        text(&v["runs"]),
        text(&v["file"])
    );
    if !v["description"].is_null() {
        println!("{}", text(&v["description"]).trim_end());
    }
    let params: Parameters = serde_json::from_value(v["parameters"].clone())
        .context("the server sent parameters this CLI cannot read")?;
    println!();
    if params.is_empty() {
        println!("no parameters");
    } else {
        let rows: Vec<Vec<String>> = params
            .iter()
            .map(|(name, s)| {
                let mut kind = s.kind.to_string();
                if let Some(choices) = &s.choices {
                    let list: Vec<String> = choices.iter().map(text).collect();
                    kind = format!("{kind} ({})", list.join("|"));
                }
                if s.secret {
                    kind.push_str(" secret");
                }
                vec![
                    name.to_string(),
                    kind,
                    if s.required { "yes" } else { "" }.to_string(),
                    s.default
                        .as_ref()
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    s.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(
            &["PARAMETER", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"],
            &rows,
        );
    }
    let info = &v["pack_info"];
    let credentials: Vec<String> = info["credentials"]
        .as_array()
        .map(|a| a.iter().map(|c| text(&c["name"])).collect())
        .unwrap_or_default();
    if !credentials.is_empty() {
        println!("\ncredentials the pack reads: {}", credentials.join(", "));
    }
    if let Some(resources) = info["resources"].as_array().filter(|r| !r.is_empty()) {
        println!("resources the pack reads:");
        for r in resources {
            let default = r["default"]
                .as_str()
                .map(|d| format!(" (default {d})"))
                .unwrap_or_default();
            println!("  {}{default}", text(&r["name"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Splits `key=value` arguments.
fn split_args(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("`{a}` is not a parameter: write key=value"),
        })
        .collect()
}

async fn run_action(
    client: &Client,
    reference: &str,
    args: &[String],
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let args = split_args(args)?;
    let v = client.get(&format!("/actions/{}", enc(reference))).await?;
    let schema: Parameters = serde_json::from_value(v["parameters"].clone())
        .context("the server sent parameters this CLI cannot read")?;
    let params = match schema.from_args(reference, &args) {
        Ok(p) => p,
        Err(problems) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!(
                "action `{reference}` was not run (`switchyard action show {reference}` lists its parameters)"
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let ids = client
        .call(
            Method::POST,
            &format!("/actions/{}/run", enc(reference)),
            Some(json!({"params": params})),
        )
        .await?;
    let run_id = text(&ids["run_id"]);
    if !wait {
        if json {
            println!("{}", pretty(&ids));
        } else {
            println!("run   {run_id}\nevent {}", text(&ids["event_id"]));
            println!("follow it with: switchyard runs show {run_id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let detail = loop {
        let detail = client.get(&format!("/runs/{}", enc(&run_id))).await?;
        if detail["run"]["status"] != "running" {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let run = &detail["run"];
    let status = text(&run["status"]);
    let emitted: Vec<&Value> = detail["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["agent"] == "action").collect())
        .unwrap_or_default();
    let result = emitted
        .iter()
        .find(|e| e["kind"] == "event")
        .map(|e| e["payload"].clone());
    let error = emitted
        .iter()
        .find(|e| e["kind"] == "error")
        .map(|e| e["payload"]["error"].clone())
        .or_else(|| run["error"].as_str().map(|m| json!({"message": m})));
    if json {
        let mut out = json!({"run_id": run_id, "action": reference, "status": status});
        match (&result, &error) {
            (Some(r), _) => out["result"] = r.clone(),
            (None, Some(e)) => out["error"] = e.clone(),
            (None, None) => {}
        }
        println!("{}", pretty(&out));
    } else {
        let took = duration_ms(&run["started_at"], &run["finished_at"])
            .map(|ms| format!(" in {ms} ms"))
            .unwrap_or_default();
        println!(
            "{reference}  {}{took}  (run {run_id})",
            status.to_uppercase()
        );
        if let Some(r) = &result {
            println!("{}", pretty(r));
        } else if let Some(e) = &error {
            println!("error: {}", text(&e["message"]));
        }
    }
    Ok(if status == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_key_value_pairs() {
        let got = split_args(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(
            got,
            [
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x=y".to_string()),
                ("c".to_string(), String::new())
            ]
        );
        assert!(split_args(&["oops".into()]).is_err());
        assert!(split_args(&["=1".into()]).is_err());
    }
}
