//! PostgreSQL statements for credentials, API tokens and the audit log (the twin of
//! `sqlite/security.rs`).

use sqlx_core::query::query;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, PgPool, PgRow, Postgres};
use switchyard_types::{from_micros, Timestamp};

use super::batch::BatchError;
use super::unavailable;
use crate::ops::{SecurityOp, WriteReply};
use crate::{ApiToken, AuditEntry, Error, Result, StoredCredential};

/// Applies a security write inside the writer's transaction.
pub async fn apply(
    conn: &mut PgConnection,
    op: &SecurityOp,
) -> std::result::Result<WriteReply, BatchError> {
    match op {
        SecurityOp::PutCredentials(all) => {
            for c in all {
                query::<Postgres>(
                    "INSERT INTO credentials (name, key_id, nonce, ciphertext, allowed_hosts, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
                        ciphertext = excluded.ciphertext, allowed_hosts = excluded.allowed_hosts,
                        updated_at = excluded.updated_at",
                )
                .bind(&c.name)
                .bind(&c.key_id)
                .bind(&c.nonce)
                .bind(&c.ciphertext)
                .bind(&c.allowed_hosts)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&mut *conn)
                .await?;
            }
            Ok(WriteReply::Done)
        }
        SecurityOp::DeleteCredential(name) => {
            let done = query::<Postgres>("DELETE FROM credentials WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            Ok(WriteReply::Changed(done.rows_affected() as usize))
        }
        SecurityOp::CreateToken(t) => {
            query::<Postgres>(
                "INSERT INTO api_tokens (id, name, role, hash, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.role)
            .bind(&t.hash)
            .bind(t.created_at)
            .bind(t.revoked_at)
            .execute(&mut *conn)
            .await?;
            Ok(WriteReply::Done)
        }
        SecurityOp::RevokeToken(id_or_name, at) => {
            let done = query::<Postgres>(
                "UPDATE api_tokens SET revoked_at = $2
                 WHERE revoked_at IS NULL AND (id = $1 OR name = $1)",
            )
            .bind(id_or_name)
            .bind(from_micros(*at))
            .execute(&mut *conn)
            .await?;
            Ok(WriteReply::Changed(done.rows_affected() as usize))
        }
        SecurityOp::RecordAudit(e) => {
            query::<Postgres>(
                "INSERT INTO audit (at, token_id, token_name, role, action, target, outcome)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(e.at)
            .bind(&e.token_id)
            .bind(&e.token_name)
            .bind(&e.role)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.outcome)
            .execute(&mut *conn)
            .await?;
            Ok(WriteReply::Done)
        }
    }
}

fn corrupt(e: sqlx_core::Error) -> Error {
    Error::Corrupt(e.to_string())
}

/// Every credential (encrypted), by name.
pub async fn credentials(pool: &PgPool) -> Result<Vec<StoredCredential>> {
    query::<Postgres>(
        "SELECT name, key_id, nonce, ciphertext, allowed_hosts, created_at, updated_at
         FROM credentials ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(|r| {
        Ok(StoredCredential {
            name: r.try_get(0).map_err(corrupt)?,
            key_id: r.try_get(1).map_err(corrupt)?,
            nonce: r.try_get(2).map_err(corrupt)?,
            ciphertext: r.try_get(3).map_err(corrupt)?,
            allowed_hosts: r.try_get(4).map_err(corrupt)?,
            created_at: r.try_get(5).map_err(corrupt)?,
            updated_at: r.try_get(6).map_err(corrupt)?,
        })
    })
    .collect()
}

const TOKEN_COLUMNS: &str = "id, name, role, hash, created_at, revoked_at";

fn token_from_row(r: &PgRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: r.try_get(0).map_err(corrupt)?,
        name: r.try_get(1).map_err(corrupt)?,
        role: r.try_get(2).map_err(corrupt)?,
        hash: r.try_get(3).map_err(corrupt)?,
        created_at: r.try_get(4).map_err(corrupt)?,
        revoked_at: r.try_get::<Option<Timestamp>, _>(5).map_err(corrupt)?,
    })
}

/// Every API token, oldest first.
pub async fn tokens(pool: &PgPool) -> Result<Vec<ApiToken>> {
    query::<Postgres>(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(token_from_row)
    .collect()
}

/// The token with this SHA-256.
pub async fn token_by_hash(pool: &PgPool, hash: &[u8]) -> Result<Option<ApiToken>> {
    query::<Postgres>(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = $1"
    ))
    .bind(hash)
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?
    .map(|r| token_from_row(&r))
    .transpose()
}

/// The audit log, newest first, before `before`, at most `limit`.
pub async fn audit(pool: &PgPool, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>> {
    query::<Postgres>(
        "SELECT seq, at, token_id, token_name, role, action, target, outcome FROM audit
         WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
    )
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit.clamp(1, 10_000) as i64)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(|r| {
        Ok(AuditEntry {
            seq: r.try_get(0).map_err(corrupt)?,
            at: r.try_get(1).map_err(corrupt)?,
            token_id: r.try_get(2).map_err(corrupt)?,
            token_name: r.try_get(3).map_err(corrupt)?,
            role: r.try_get(4).map_err(corrupt)?,
            action: r.try_get(5).map_err(corrupt)?,
            target: r.try_get(6).map_err(corrupt)?,
            outcome: r.try_get(7).map_err(corrupt)?,
        })
    })
    .collect()
}
