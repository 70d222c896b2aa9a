//! Stored security records: encrypted credentials, API tokens (hashed), the audit log.

use serde::Serialize;
use switchyard_types::Timestamp;

/// A credential as stored: only its ciphertext, never its value.
#[derive(Clone, Debug)]
pub struct StoredCredential {
    /// Name (`credential.NAME`); also the associated data of the encryption.
    pub name: String,
    /// Id of the master key that encrypted it.
    pub key_id: String,
    /// The AEAD nonce.
    pub nonce: Vec<u8>,
    /// The encrypted value with its tag.
    pub ciphertext: Vec<u8>,
    /// Hosts the value may be sent to; empty: any host.
    pub allowed_hosts: Vec<String>,
    /// First stored.
    pub created_at: Timestamp,
    /// Last changed (set or re-encrypted).
    pub updated_at: Timestamp,
}

/// An API token: its SHA-256, never the token itself.
#[derive(Clone, Debug, Serialize)]
pub struct ApiToken {
    /// Id.
    pub id: String,
    /// Name given at creation (who or what uses it).
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// SHA-256 of the token.
    #[serde(skip)]
    pub hash: Vec<u8>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Set once revoked; a revoked token is refused.
    pub revoked_at: Option<Timestamp>,
}

/// One entry of the audit log.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    /// Position in the log (0 for an entry not yet stored).
    pub seq: i64,
    /// Time.
    pub at: Timestamp,
    /// The token used, if any.
    pub token_id: Option<String>,
    /// Its name.
    pub token_name: Option<String>,
    /// Its role.
    pub role: Option<String>,
    /// What was asked: `credential.set`, `token.create`, `story.trigger`, …
    pub action: String,
    /// What it was asked on (a name, an id), or empty.
    pub target: String,
    /// `ok`, `denied`, or an HTTP status.
    pub outcome: String,
}
