//! Read endpoints behind the web view: run counts per story, an agent's latest events.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_store::RunCount;
use switchyard_types::RunStatus;

use crate::error::ApiError;
use crate::AppState;

const STATUSES: [RunStatus; 3] = [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed];

fn zero_counts() -> Value {
    Value::Object(
        STATUSES
            .iter()
            .map(|s| (s.as_str().to_string(), json!(0)))
            .collect(),
    )
}

/// `GET /api/v1/runs/stats`: for every story, the runs started in the last hour and the
/// last day, by status (as they stand now).
pub async fn run_stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let now = switchyard_types::now();
    let hour = now - chrono::Duration::hours(1);
    let day = now - chrono::Duration::days(1);
    let store = state.engine.store();
    let (last_hour, last_day) = tokio::try_join!(store.run_counts(hour), store.run_counts(day))?;
    let mut stories: BTreeMap<String, Value> = state
        .engine
        .catalog()
        .stories()
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                json!({"hour": zero_counts(), "day": zero_counts()}),
            )
        })
        .collect();
    let mut add = |window: &str, counts: Vec<RunCount>| {
        for c in counts {
            let entry = stories
                .entry(c.story)
                .or_insert_with(|| json!({"hour": zero_counts(), "day": zero_counts()}));
            entry[window][c.status.as_str()] = json!(c.count);
        }
    };
    add("hour", last_hour);
    add("day", last_day);
    Ok(Json(json!({
        "now": now,
        "hour_since": hour,
        "day_since": day,
        "stories": stories,
    })))
}

/// Query of `GET /api/v1/stories/{name}/agents/{agent}/events`.
#[derive(Debug, Deserialize)]
pub struct AgentEventsQuery {
    before: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/v1/stories/{name}/agents/{agent}/events?limit=N&before=SEQ`: the agent's latest
/// events, newest first; `next_before` pages to older ones.
pub async fn agent_events(
    State(state): State<AppState>,
    Path((story, agent)): Path<(String, String)>,
    Query(q): Query<AgentEventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let events = state
        .engine
        .store()
        .agent_events(&story, &agent, q.before, limit)
        .await?;
    let next = if events.len() == limit {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(json!({"events": events, "next_before": next})))
}
