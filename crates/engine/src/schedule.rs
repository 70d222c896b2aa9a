//! Fires `schedule` agents. Each tick is stored with the idempotency key
//! `schedule:AGENT:TIME`, so a tick fires once however many processes run, and a restart
//! knows the last tick fired (for `catch_up`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use switchyard_agents::schedule::Schedule;
use switchyard_agents::Source;
use switchyard_story::Story;
use switchyard_types::Timestamp;

use crate::{Engine, IngestError};

/// The idempotency key of a tick: fixed-width UTC, so keys sort like times.
pub fn tick_key(agent: &str, tick: Timestamp) -> String {
    format!("schedule:{agent}:{}", tick.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// Scaled out: a last tick this recent was fired by the previous coordinator.
const HANDOVER_SECS: i64 = 30;

fn parse_tick(key: &str) -> Option<Timestamp> {
    // `schedule:AGENT:TIME`; agent names hold no `:`.
    let (_agent, time) = key.strip_prefix("schedule:")?.split_once(':')?;
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

impl Engine {
    /// The scheduler loop: fires due ticks, then sleeps until the next one (at most 1 s, so
    /// reloads and enable/disable are seen promptly).
    pub(crate) async fn run_scheduler(&self) {
        let cancel = self.inner.cancel.clone();
        let mut next: HashMap<(Arc<str>, Arc<str>), Timestamp> = HashMap::new();
        loop {
            // Scaled out, only the coordinator fires ticks (the per-tick key makes a tick fire
            // once even when two processes briefly both think they coordinate).
            if !self.is_coordinator() {
                next.clear();
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
            let catalog = self.catalog();
            let now = switchyard_types::now();
            let mut wake = now + chrono::Duration::seconds(1);
            let mut live = HashSet::new();
            for story in catalog.stories() {
                let enabled = self.is_enabled(&story.name);
                for (index, def) in story.agents.iter().enumerate() {
                    let Some(Source::Schedule(schedule)) = def.agent.source() else {
                        continue;
                    };
                    let key = (Arc::clone(&story.name), Arc::clone(&def.name));
                    live.insert(key.clone());
                    if !enabled {
                        // A disabled story's schedule does not fire; it resumes from now.
                        next.remove(&key);
                        continue;
                    }
                    let mut due = match next.get(&key) {
                        Some(t) => *t,
                        None => match self.first_tick(story, &def.name, schedule, now).await {
                            Some(t) => t,
                            None => continue,
                        },
                    };
                    while due <= now {
                        self.fire(story, index, schedule, due).await;
                        let from = if schedule.catch_up() {
                            due
                        } else {
                            due.max(now)
                        };
                        match schedule.next_after(from) {
                            Some(t) => due = t,
                            None => break,
                        }
                    }
                    if due > now {
                        wake = wake.min(due);
                        next.insert(key, due);
                    }
                }
            }
            next.retain(|k, _| live.contains(k));
            let sleep = (wake - switchyard_types::now())
                .to_std()
                .unwrap_or_default()
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// The first tick to consider for an agent seen for the first time: after the last tick
    /// fired when it catches up, else the next one from now. Scaled out, a process that
    /// takes over as coordinator also continues after the last tick when that tick is recent
    /// (another coordinator fired it moments ago), so a handover skips no tick.
    async fn first_tick(
        &self,
        story: &Story,
        agent: &str,
        schedule: &Schedule,
        now: Timestamp,
    ) -> Option<Timestamp> {
        if schedule.catch_up() || self.is_scaled_out() {
            match self
                .inner
                .store
                .last_idempotency_key(&story.name, &format!("schedule:{agent}:"))
                .await
            {
                Ok(Some(key)) => {
                    if let Some(last) = parse_tick(&key) {
                        let recent = now - last < chrono::Duration::seconds(HANDOVER_SECS);
                        if schedule.catch_up() || recent {
                            return schedule.next_after(last);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(story = %story.name, agent, error = %e, "cannot read the last tick; starting from now")
                }
            }
        }
        schedule.next_after(now)
    }

    async fn fire(&self, story: &Arc<Story>, index: usize, schedule: &Schedule, tick: Timestamp) {
        let def = &story.agents[index];
        let cx = self.template_context().build();
        let payload = match schedule.event(tick, &cx) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(story = %story.name, agent = %def.name, error = %e.message, "schedule payload failed; tick skipped");
                return;
            }
        };
        let key = tick_key(&def.name, tick);
        match self
            .ingest(story, index, payload, Some(key), Some("schedule".into()))
            .await
        {
            Ok(i) if i.duplicate => {
                tracing::debug!(story = %story.name, agent = %def.name, %tick, "tick already fired by another process")
            }
            Ok(i) => {
                tracing::debug!(story = %story.name, agent = %def.name, %tick, run_id = %i.run_id, "schedule fired")
            }
            Err(IngestError::Disabled(_)) => {}
            Err(e) => {
                tracing::error!(story = %story.name, agent = %def.name, %tick, error = %e, "schedule tick could not be stored")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_keys_sort_like_times_and_parse_back() {
        let a = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let b = a + chrono::Duration::milliseconds(1500);
        let (ka, kb) = (tick_key("every_sec", a), tick_key("every_sec", b));
        assert_eq!(ka, "schedule:every_sec:2026-01-02T03:04:05.000000Z");
        assert!(ka < kb);
        assert_eq!(parse_tick(&ka), Some(a));
        assert_eq!(parse_tick(&kb), Some(b));
    }
}
