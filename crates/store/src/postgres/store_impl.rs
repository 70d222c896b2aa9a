//! [`Store`] for [`PgStore`]: writes through the writer tasks, reads from the pool.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_postgres::Postgres;
use switchyard_types::{Event, EventId, Job, JobId, Run, RunId, Timestamp};

use super::rows::{
    event_from_row, job_from_row, queued_from_row, resource_from_row, run_from_row, EVENT_COLUMNS,
    JOB_COLUMNS, QUEUED_COLUMNS, RUN_COLUMNS,
};
use super::{check_size, route_id, route_str, security, unavailable, PgStore};
use crate::ops::{SecurityOp, WriteOp, WriteReply};
use crate::{
    ApiToken, AuditEntry, CommitStatsSnapshot, Error, FinishJob, Finished, ImplodeAdd, NewJob,
    QueuedJob, Reschedule, Resource, Result, RunQuery, StartRun, Started, StateScope, Store,
    StoredCredential,
};

fn unexpected() -> Error {
    Error::Corrupt("unexpected writer reply".into())
}

#[async_trait]
impl Store for PgStore {
    async fn start_run(&self, start: StartRun) -> Result<Started> {
        self.check_size(std::slice::from_ref(&start.event))?;
        let route = route_id(start.run_id.as_bytes());
        match self.write(route, WriteOp::Start(start)).await? {
            WriteReply::Started(s) => Ok(s),
            _ => Err(unexpected()),
        }
    }

    async fn finish_job(&self, finish: FinishJob) -> Result<Finished> {
        self.check_size(&finish.events)?;
        let route = route_id(finish.run_id.as_bytes());
        match self.write(route, WriteOp::Finish(finish)).await? {
            WriteReply::Finished(f) => Ok(f),
            _ => Err(unexpected()),
        }
    }

    async fn reschedule(&self, reschedule: Reschedule) -> Result<()> {
        let route = route_id(reschedule.job_id.as_bytes());
        self.write(route, WriteOp::Reschedule(reschedule))
            .await
            .map(|_| ())
    }

    async fn replay(&self, run_id: RunId, jobs: Vec<NewJob>) -> Result<()> {
        self.write(route_id(run_id.as_bytes()), WriteOp::Replay(run_id, jobs))
            .await
            .map(|_| ())
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
        query::<Postgres>(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|r| event_from_row(&r))
            .transpose()
    }

    async fn lineage(&self, id: EventId, limit: usize) -> Result<Vec<Event>> {
        let sql = format!(
            "WITH RECURSIVE chain(id, depth) AS (
                SELECT $1::uuid, 0
                UNION ALL
                SELECT e.parent_id, chain.depth + 1 FROM events e JOIN chain ON e.id = chain.id
                WHERE e.parent_id IS NOT NULL AND chain.depth + 1 < $2)
             SELECT {EVENT_COLUMNS} FROM chain JOIN events ON events.id = chain.id ORDER BY chain.depth"
        );
        query::<Postgres>(&sql)
            .bind(id.0)
            .bind(i32::try_from(limit).unwrap_or(i32::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn runs(&self, q: RunQuery) -> Result<Vec<Run>> {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE true");
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if q.story.is_some() {
            sql.push_str(&format!(" AND story = {}", param()));
        }
        if q.status.is_some() {
            sql.push_str(&format!(" AND status = {}", param()));
        }
        if q.before.is_some() {
            sql.push_str(&format!(" AND id < {}", param()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", param()));
        let mut stmt = query::<Postgres>(&sql);
        if let Some(s) = &q.story {
            stmt = stmt.bind(s.as_str());
        }
        if let Some(s) = q.status {
            stmt = stmt.bind(s.as_str());
        }
        if let Some(b) = q.before {
            stmt = stmt.bind(b.0);
        }
        stmt.bind(q.limit.clamp(1, 1000) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(run_from_row)
            .collect()
    }

    async fn run(&self, id: RunId) -> Result<Option<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        query::<Postgres>(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|r| run_from_row(&r))
            .transpose()
    }

    async fn run_events(&self, id: RunId) -> Result<Vec<Event>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE run_id = $1 ORDER BY seq");
        query::<Postgres>(&sql)
            .bind(id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn run_jobs(&self, id: RunId) -> Result<Vec<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE run_id = $1 ORDER BY id");
        query::<Postgres>(&sql)
            .bind(id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(job_from_row)
            .collect()
    }

    async fn events_after(
        &self,
        seq: i64,
        story: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let limit = limit.clamp(1, 10_000) as i64;
        let rows = match story {
            Some(s) => {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE story = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                );
                query::<Postgres>(&sql)
                    .bind(s)
                    .bind(seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
                );
                query::<Postgres>(&sql)
                    .bind(seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        };
        rows.map_err(unavailable)?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn last_event_seq(&self) -> Result<i64> {
        query_scalar::<Postgres, i64>("SELECT COALESCE(MAX(seq), 0)::int8 FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn queued_jobs(
        &self,
        deferred: bool,
        after: Option<(Timestamp, JobId)>,
        until: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<QueuedJob>> {
        let mut sql = format!(
            "SELECT {QUEUED_COLUMNS} FROM jobs j JOIN runs r ON r.id = j.run_id
             WHERE j.state = 'queued' AND j.deferred = $1"
        );
        let mut n = 1;
        if after.is_some() {
            sql.push_str(&format!(" AND (j.due_at, j.id) > (${}, ${})", n + 1, n + 2));
            n += 2;
        }
        if until.is_some() {
            sql.push_str(&format!(" AND j.due_at <= ${}", n + 1));
            n += 1;
        }
        sql.push_str(&format!(" ORDER BY j.due_at, j.id LIMIT ${}", n + 1));
        let mut stmt = query::<Postgres>(&sql).bind(deferred);
        if let Some((at, id)) = after {
            stmt = stmt.bind(at).bind(id.0);
        }
        if let Some(until) = until {
            stmt = stmt.bind(until);
        }
        stmt.bind(limit.clamp(1, 100_000) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(queued_from_row)
            .collect()
    }

    async fn job(&self, id: JobId) -> Result<Option<QueuedJob>> {
        let sql = format!(
            "SELECT {QUEUED_COLUMNS} FROM jobs j JOIN runs r ON r.id = j.run_id
             WHERE j.id = $1 AND j.state = 'queued'"
        );
        query::<Postgres>(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|r| queued_from_row(&r))
            .transpose()
    }

    async fn latest_event(&self, run_id: RunId, agent: &str) -> Result<Option<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = $1 AND agent = $2 AND kind = 'event'
             ORDER BY seq DESC LIMIT 1"
        );
        query::<Postgres>(&sql)
            .bind(run_id.0)
            .bind(agent)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|r| event_from_row(&r))
            .transpose()
    }

    async fn admit(
        &self,
        scope: &StateScope,
        key: &str,
        job: JobId,
        now: Timestamp,
        window: std::time::Duration,
        limit: u32,
    ) -> Result<bool> {
        let op = WriteOp::Admit {
            scope: scope.clone(),
            key: key.to_string(),
            job,
            now: now.timestamp_micros(),
            window_micros: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
            limit,
        };
        match self
            .write(route_str(&[&scope.story, &scope.agent, key]), op)
            .await?
        {
            WriteReply::Admitted(b) => Ok(b),
            _ => Err(unexpected()),
        }
    }

    async fn implode_add(
        &self,
        scope: &StateScope,
        key: &str,
        job: JobId,
        now: Timestamp,
        item: Arc<str>,
        size: usize,
    ) -> Result<ImplodeAdd> {
        check_size(self.max_event_bytes, std::iter::once(item.len()))?;
        let op = WriteOp::ImplodeAdd {
            scope: scope.clone(),
            key: key.to_string(),
            job,
            now: now.timestamp_micros(),
            item,
            size,
        };
        match self
            .write(route_str(&[&scope.story, &scope.agent, key]), op)
            .await?
        {
            WriteReply::Imploded(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn implode_flush(
        &self,
        scope: &StateScope,
        key: &str,
        job: JobId,
    ) -> Result<Option<Vec<String>>> {
        let op = WriteOp::ImplodeFlush {
            scope: scope.clone(),
            key: key.to_string(),
            job,
        };
        match self
            .write(route_str(&[&scope.story, &scope.agent, key]), op)
            .await?
        {
            WriteReply::Flushed(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn last_idempotency_key(&self, story: &str, prefix: &str) -> Result<Option<String>> {
        query_scalar::<Postgres, String>(
            "SELECT key FROM webhook_deliveries WHERE story = $1 AND starts_with(key, $2) ORDER BY key DESC LIMIT 1",
        )
        .bind(story)
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)
    }

    async fn set_story_enabled(&self, story: &str, enabled: bool) -> Result<()> {
        let at = switchyard_types::now().timestamp_micros();
        let op = WriteOp::SetStoryEnabled(story.to_string(), enabled, at);
        self.write(route_str(&[story]), op).await.map(|_| ())
    }

    async fn disabled_stories(&self) -> Result<Vec<String>> {
        query_scalar::<Postgres, String>(
            "SELECT story FROM story_settings WHERE NOT enabled ORDER BY story",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)
    }

    async fn prune(&self, before: Timestamp, max_rows: usize) -> Result<crate::Pruned> {
        let op = WriteOp::Prune {
            before: before.timestamp_micros(),
            max_rows,
        };
        match self.write(0, op).await? {
            WriteReply::Pruned(p) => Ok(p),
            _ => Err(crate::Error::Corrupt("unexpected writer reply".into())),
        }
    }

    async fn run_counts(&self, since: Timestamp) -> Result<Vec<crate::RunCount>> {
        let bound = RunId::first_at(since);
        let rows = query::<Postgres>(
            "SELECT story, status, COUNT(*) FROM runs WHERE id >= $1 GROUP BY story, status",
        )
        .bind(bound.0)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            use sqlx_core::row::Row;
            let story: String = r.try_get(0).map_err(unavailable)?;
            let status: String = r.try_get(1).map_err(unavailable)?;
            let count: i64 = r.try_get(2).map_err(unavailable)?;
            if let Some(status) = switchyard_types::RunStatus::parse(&status) {
                out.push(crate::RunCount {
                    story,
                    status,
                    count: u64::try_from(count).unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    async fn agent_events(
        &self,
        story: &str,
        agent: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE story = $1 AND agent = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4");
        query::<Postgres>(&sql)
            .bind(story)
            .bind(agent)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit.clamp(1, 1000) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn set_resource(&self, name: &str, value: &str) -> Result<()> {
        let at = switchyard_types::now().timestamp_micros();
        let op = WriteOp::SetResource(name.to_string(), value.to_string(), at);
        self.write(route_str(&[name]), op).await.map(|_| ())
    }

    async fn delete_resource(&self, name: &str) -> Result<bool> {
        let op = WriteOp::DeleteResource(name.to_string());
        match self.write(route_str(&[name]), op).await? {
            WriteReply::Changed(n) => Ok(n > 0),
            _ => Ok(false),
        }
    }

    async fn resources(&self) -> Result<Vec<Resource>> {
        query::<Postgres>("SELECT name, value, updated_at FROM resources ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(resource_from_row)
            .collect()
    }

    async fn put_credentials(&self, credentials: Vec<StoredCredential>) -> Result<()> {
        let route = match credentials.as_slice() {
            [one] => route_str(&[&one.name]),
            _ => 0,
        };
        let op = WriteOp::Security(SecurityOp::PutCredentials(credentials));
        self.write(route, op).await.map(|_| ())
    }

    async fn delete_credential(&self, name: &str) -> Result<bool> {
        let op = WriteOp::Security(SecurityOp::DeleteCredential(name.to_string()));
        match self.write(route_str(&[name]), op).await? {
            WriteReply::Changed(n) => Ok(n > 0),
            _ => Err(unexpected()),
        }
    }

    async fn credentials(&self) -> Result<Vec<StoredCredential>> {
        security::credentials(&self.pool).await
    }

    async fn create_token(&self, token: ApiToken) -> Result<()> {
        let op = WriteOp::Security(SecurityOp::CreateToken(token));
        self.write(0, op).await.map(|_| ())
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        security::tokens(&self.pool).await
    }

    async fn token_by_hash(&self, hash: &[u8]) -> Result<Option<ApiToken>> {
        security::token_by_hash(&self.pool, hash).await
    }

    async fn revoke_token(&self, id_or_name: &str) -> Result<usize> {
        let at = switchyard_types::now().timestamp_micros();
        let op = WriteOp::Security(SecurityOp::RevokeToken(id_or_name.to_string(), at));
        match self.write(0, op).await? {
            WriteReply::Changed(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<()> {
        let op = WriteOp::Security(SecurityOp::RecordAudit(entry));
        self.write(0, op).await.map(|_| ())
    }

    async fn audit(&self, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>> {
        security::audit(&self.pool, before, limit).await
    }

    async fn ping(&self) -> Result<()> {
        if self.writers.iter().any(|w| w.is_closed()) {
            return Err(Error::Unavailable("a store writer has stopped".into()));
        }
        query::<Postgres>("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    fn commit_stats(&self) -> CommitStatsSnapshot {
        self.stats.snapshot()
    }

    fn coordination(&self) -> Option<&dyn crate::Coordination> {
        Some(self)
    }
}
