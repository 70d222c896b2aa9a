//! SQLite statements for credentials, API tokens and the audit log.

use rusqlite::{params, Connection, OptionalExtension, Row};
use switchyard_types::from_micros;

use super::rows::micros;
use crate::ops::{SecurityOp, WriteReply};
use crate::{ApiToken, AuditEntry, StoredCredential};

/// Applies a security write (on the single writer thread).
pub fn apply(tx: &Connection, op: &SecurityOp) -> rusqlite::Result<WriteReply> {
    match op {
        SecurityOp::PutCredentials(all) => {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO credentials (name, key_id, nonce, ciphertext, allowed_hosts, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
                    ciphertext = excluded.ciphertext, allowed_hosts = excluded.allowed_hosts,
                    updated_at = excluded.updated_at",
            )?;
            for c in all {
                let hosts = serde_json::to_string(&c.allowed_hosts)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                stmt.execute(params![
                    c.name,
                    c.key_id,
                    c.nonce,
                    c.ciphertext,
                    hosts,
                    micros(c.created_at),
                    micros(c.updated_at)
                ])?;
            }
            Ok(WriteReply::Done)
        }
        SecurityOp::DeleteCredential(name) => {
            let n = tx
                .prepare_cached("DELETE FROM credentials WHERE name = ?1")?
                .execute([name])?;
            Ok(WriteReply::Changed(n))
        }
        SecurityOp::CreateToken(t) => {
            tx.prepare_cached(
                "INSERT INTO api_tokens (id, name, role, hash, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                t.id,
                t.name,
                t.role,
                t.hash,
                micros(t.created_at),
                t.revoked_at.map(micros)
            ])?;
            Ok(WriteReply::Done)
        }
        SecurityOp::RevokeToken(id_or_name, at) => {
            let n = tx
                .prepare_cached(
                    "UPDATE api_tokens SET revoked_at = ?2
                     WHERE revoked_at IS NULL AND (id = ?1 OR name = ?1)",
                )?
                .execute(params![id_or_name, at])?;
            Ok(WriteReply::Changed(n))
        }
        SecurityOp::RecordAudit(e) => {
            tx.prepare_cached(
                "INSERT INTO audit (at, token_id, token_name, role, action, target, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                micros(e.at),
                e.token_id,
                e.token_name,
                e.role,
                e.action,
                e.target,
                e.outcome
            ])?;
            Ok(WriteReply::Done)
        }
    }
}

pub fn credentials(c: &Connection) -> rusqlite::Result<Vec<StoredCredential>> {
    let mut stmt = c.prepare_cached(
        "SELECT name, key_id, nonce, ciphertext, allowed_hosts, created_at, updated_at
         FROM credentials ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        let hosts: String = r.get(4)?;
        Ok(StoredCredential {
            name: r.get(0)?,
            key_id: r.get(1)?,
            nonce: r.get(2)?,
            ciphertext: r.get(3)?,
            allowed_hosts: serde_json::from_str(&hosts).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    4,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            created_at: from_micros(r.get(5)?),
            updated_at: from_micros(r.get(6)?),
        })
    })?;
    rows.collect()
}

const TOKEN_COLUMNS: &str = "id, name, role, hash, created_at, revoked_at";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        hash: r.get(3)?,
        created_at: from_micros(r.get(4)?),
        revoked_at: r.get::<_, Option<i64>>(5)?.map(from_micros),
    })
}

pub fn tokens(c: &Connection) -> rusqlite::Result<Vec<ApiToken>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([], token_from_row)?;
    rows.collect()
}

pub fn token_by_hash(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<ApiToken>> {
    c.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"
    ))?
    .query_row([hash], token_from_row)
    .optional()
}

pub fn audit(
    c: &Connection,
    before: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, at, token_id, token_name, role, action, target, outcome FROM audit
         WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![before.unwrap_or(i64::MAX), limit.clamp(1, 10_000) as i64],
        |r| {
            Ok(AuditEntry {
                seq: r.get(0)?,
                at: from_micros(r.get(1)?),
                token_id: r.get(2)?,
                token_name: r.get(3)?,
                role: r.get(4)?,
                action: r.get(5)?,
                target: r.get(6)?,
                outcome: r.get(7)?,
            })
        },
    )?;
    rows.collect()
}
