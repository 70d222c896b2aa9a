//! Operator commands that talk to a running server.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{enc, Client};
use crate::output::{duration_ms, pretty, table, text, time};

/// `story …`
#[derive(Debug, Subcommand)]
pub enum StoryCommand {
    /// Stories the server has loaded.
    List,
    /// One story: its agents and webhooks.
    Show {
        /// Story name.
        name: String,
    },
    /// Let a story take events again.
    Enable {
        /// Story name.
        name: String,
    },
    /// Refuse a story's events (webhooks answer 409, schedules do not fire) until enabled.
    Disable {
        /// Story name.
        name: String,
    },
}

/// `runs …`
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        /// Only this story.
        #[arg(long)]
        story: Option<String>,
        /// Only runs with this status: running, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Runs older than this run id (the next page).
        #[arg(long)]
        before: Option<String>,
    },
    /// One run as a tree of events with each agent's status and timing.
    Show {
        /// Run id.
        run: String,
    },
}

/// `events …`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Follow events live.
    Tail {
        /// Only this story.
        #[arg(long)]
        story: Option<String>,
    },
    /// One event.
    Show {
        /// Event id.
        id: String,
    },
    /// Re-deliver an event to its downstream agents.
    Replay {
        /// Event id.
        id: String,
    },
}

/// `resource …`
#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Set a shared value.
    Set {
        /// Name (`resource.NAME` in templates).
        name: String,
        /// Value.
        value: String,
    },
    /// Print one value.
    Get {
        /// Name.
        name: String,
    },
    /// Every value.
    List,
    /// Remove a value.
    Delete {
        /// Name.
        name: String,
    },
}

fn print_json(v: &Value) {
    println!("{}", pretty(v));
}

/// `switchyard trigger STORY AGENT [--data JSON|@FILE] [--wait]`.
pub async fn trigger(
    client: &Client,
    story: &str,
    agent: &str,
    data: Option<&str>,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let body: Value = match data {
        None => Value::Null,
        Some(d) => {
            let text = match d.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
                }
                None => d.to_string(),
            };
            serde_json::from_str(&text).with_context(|| "--data is not valid JSON")?
        }
    };
    let ids = client
        .call(
            Method::POST,
            &format!("/stories/{}/agents/{}/trigger", enc(story), enc(agent)),
            Some(body),
        )
        .await?;
    let run_id = text(&ids["run_id"]);
    if !wait {
        if json {
            print_json(&ids);
        } else {
            println!("event {}\nrun   {}", text(&ids["event_id"]), run_id);
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
    if json {
        print_json(&detail);
    } else {
        print_run(&detail);
    }
    Ok(if detail["run"]["status"] == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `switchyard story …`.
pub async fn story(client: &Client, cmd: StoryCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        StoryCommand::List => {
            let v = client.get("/stories").await?;
            if json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["stories"]
                    .as_array()
                    .map(|a| a.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|s| {
                        let hooks: Vec<String> = s["webhooks"]
                            .as_array()
                            .map(|a| a.iter().map(|w| text(&w["path"])).collect())
                            .unwrap_or_default();
                        vec![
                            text(&s["name"]),
                            text(&s["agents"]),
                            hooks.join(" "),
                            text(&s["description"]),
                        ]
                    })
                    .collect();
                table(
                    &["NAME", "STATE", "AGENTS", "WEBHOOKS", "DESCRIPTION"],
                    &rows,
                );
            }
        }
        StoryCommand::Enable { name } => switch(client, &name, true, json).await?,
        StoryCommand::Disable { name } => switch(client, &name, false, json).await?,
        StoryCommand::Show { name } => {
            let v = client.get(&format!("/stories/{}", enc(&name))).await?;
            if json {
                print_json(&v);
            } else {
                println!("{}  ({})", text(&v["name"]), text(&v["file"]));
                if !v["description"].is_null() {
                    println!("{}", text(&v["description"]));
                }
                println!();
                let rows: Vec<Vec<String>> = v["agents"]
                    .as_array()
                    .map(|a| a.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|a| {
                        let from: Vec<String> = a["from"]
                            .as_array()
                            .map(|f| f.iter().map(text).collect())
                            .unwrap_or_default();
                        vec![text(&a["name"]), text(&a["type"]), from.join(", ")]
                    })
                    .collect();
                table(&["AGENT", "TYPE", "FROM"], &rows);
                if let Some(hooks) = v["webhooks"].as_array() {
                    println!();
                    for h in hooks {
                        println!("webhook {}: POST {}", text(&h["agent"]), text(&h["path"]));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn switch(client: &Client, name: &str, enabled: bool, json: bool) -> anyhow::Result<()> {
    let action = if enabled { "enable" } else { "disable" };
    let v = client
        .call(
            Method::POST,
            &format!("/stories/{}/{action}", enc(name)),
            None,
        )
        .await?;
    if json {
        print_json(&v);
    } else {
        println!("story {name} {action}d");
    }
    Ok(())
}

/// `switchyard runs …`.
pub async fn runs(client: &Client, cmd: RunsCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List {
            story,
            status,
            limit,
            before,
        } => {
            let mut q = format!("/runs?limit={limit}");
            if let Some(s) = story {
                q.push_str(&format!("&story={}", enc(&s)));
            }
            if let Some(s) = status {
                q.push_str(&format!("&status={}", enc(&s)));
            }
            if let Some(b) = before {
                q.push_str(&format!("&before={}", enc(&b)));
            }
            let v = client.get(&q).await?;
            if json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = v["runs"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    let took = duration_ms(&r["started_at"], &r["finished_at"])
                        .map(|ms| format!("{ms} ms"))
                        .unwrap_or_default();
                    vec![
                        text(&r["id"]),
                        text(&r["story"]),
                        text(&r["status"]),
                        time(&r["started_at"]),
                        took,
                        text(&r["started_by"]),
                        text(&r["error"]),
                    ]
                })
                .collect();
            table(
                &["RUN", "STORY", "STATUS", "STARTED", "TOOK", "BY", "ERROR"],
                &rows,
            );
            if let Some(next) = v["next_before"].as_str() {
                println!("\nmore: switchyard runs list --before {next}");
            }
        }
        RunsCommand::Show { run } => {
            let v = client.get(&format!("/runs/{}", enc(&run))).await?;
            if json {
                print_json(&v);
            } else {
                print_run(&v);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a run as a tree: each event, the jobs it caused, their events.
fn print_run(detail: &Value) {
    let run = &detail["run"];
    let took = duration_ms(&run["started_at"], &run["finished_at"])
        .map(|ms| format!(", took {ms} ms"))
        .unwrap_or_default();
    println!(
        "run {}  story {}  {}  started {}{}",
        text(&run["id"]),
        text(&run["story"]),
        text(&run["status"]).to_uppercase(),
        time(&run["started_at"]),
        took
    );
    if !run["error"].is_null() {
        println!("error: {}", text(&run["error"]));
    }
    let empty = Vec::new();
    let events = detail["events"].as_array().unwrap_or(&empty);
    let jobs = detail["jobs"].as_array().unwrap_or(&empty);
    for root in events.iter().filter(|e| e["parent_id"].is_null()) {
        println!("● {} (event {})", text(&root["agent"]), text(&root["id"]));
        print_children(root, events, jobs, "  ");
    }
}

fn print_children(event: &Value, events: &[Value], jobs: &[Value], indent: &str) {
    let children: Vec<&Value> = jobs
        .iter()
        .filter(|j| j["input_event_id"] == event["id"])
        .collect();
    for (i, job) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let branch = if last { "└─" } else { "├─" };
        let took = duration_ms(&job["started_at"], &job["finished_at"])
            .map(|ms| format!(" {ms} ms"))
            .unwrap_or_default();
        let attempts = job["attempts"].as_u64().unwrap_or(0);
        let tries = if attempts == 1 {
            "1 try".to_string()
        } else {
            format!("{attempts} tries")
        };
        println!(
            "{indent}{branch} {} [{}] {tries}{took}",
            text(&job["agent"]),
            text(&job["state"])
        );
        let next_indent = format!("{indent}{}", if last { "   " } else { "│  " });
        if let Some(err) = job["error"].as_str() {
            println!("{next_indent}error: {err}");
        }
        for e in events
            .iter()
            .filter(|e| e["parent_id"] == event["id"] && e["agent"] == job["agent"])
        {
            let payload = e["payload"].to_string();
            let short: String = payload.chars().take(100).collect();
            let marker = if e["kind"] == "error" { "✗" } else { "→" };
            println!(
                "{next_indent}{marker} event {} {}{}",
                text(&e["id"]),
                short,
                if payload.len() > 100 { "…" } else { "" }
            );
            print_children(e, events, jobs, &format!("{next_indent}  "));
        }
    }
}

/// `switchyard events …`.
pub async fn events(client: &Client, cmd: EventsCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        EventsCommand::Show { id } => {
            let v = client.get(&format!("/events/{}", enc(&id))).await?;
            if json {
                print_json(&v);
            } else {
                println!(
                    "event {}  {}.{}  {}  run {}",
                    text(&v["id"]),
                    text(&v["story"]),
                    text(&v["agent"]),
                    time(&v["created_at"]),
                    text(&v["run_id"])
                );
                println!("{}", pretty(&v["payload"]));
            }
        }
        EventsCommand::Replay { id } => {
            let v = client
                .call(Method::POST, &format!("/events/{}/replay", enc(&id)), None)
                .await?;
            if json {
                print_json(&v);
            } else {
                let n = v["jobs"].as_array().map_or(0, Vec::len);
                println!("replayed to {n} agent(s) in run {}", text(&v["run_id"]));
            }
        }
        EventsCommand::Tail { story } => {
            let filter = story
                .map(|s| format!("&story={}", enc(&s)))
                .unwrap_or_default();
            let start = client.get("/events").await?;
            let mut after = start["last_seq"].as_i64().unwrap_or(0);
            loop {
                let page = client
                    .get(&format!("/events?after={after}{filter}&limit=500"))
                    .await?;
                if let Some(events) = page["events"].as_array() {
                    for e in events {
                        if json {
                            println!("{}", e);
                        } else {
                            let payload = e["payload"].to_string();
                            let short: String = payload.chars().take(120).collect();
                            println!(
                                "{}  {}.{}  run {}  {}",
                                time(&e["created_at"]),
                                text(&e["story"]),
                                text(&e["agent"]),
                                text(&e["run_id"]),
                                short
                            );
                        }
                    }
                    if events.is_empty() {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
                after = page["last_seq"].as_i64().unwrap_or(after);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `switchyard resource …`.
pub async fn resource(
    client: &Client,
    cmd: ResourceCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match cmd {
        ResourceCommand::Set { name, value } => {
            client
                .call(
                    Method::PUT,
                    &format!("/resources/{}", enc(&name)),
                    Some(json!({"value": value})),
                )
                .await?;
            if json {
                print_json(&json!({"name": name, "value": value}));
            } else {
                println!("resource {name} set");
            }
        }
        ResourceCommand::Get { name } => {
            let v = client.get(&format!("/resources/{}", enc(&name))).await?;
            if json {
                print_json(&v);
            } else {
                println!("{}", text(&v["value"]));
            }
        }
        ResourceCommand::List => {
            let v = client.get("/resources").await?;
            if json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["resources"]
                    .as_array()
                    .map(|a| a.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|r| vec![text(&r["name"]), text(&r["value"]), time(&r["updated_at"])])
                    .collect();
                table(&["NAME", "VALUE", "UPDATED"], &rows);
            }
        }
        ResourceCommand::Delete { name } => {
            client
                .call(Method::DELETE, &format!("/resources/{}", enc(&name)), None)
                .await?;
            if !json {
                println!("resource {name} deleted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
