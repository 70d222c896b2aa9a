-- Security: encrypted credentials, API tokens, the audit log.

-- Secrets for templates (`credential.NAME`), encrypted with XChaCha20-Poly1305 under the
-- master key identified by `key_id`; the credential's name is the associated data, so a
-- ciphertext moved to another name does not decrypt. Values are never stored in clear.
CREATE TABLE credentials (
    name          TEXT PRIMARY KEY,
    key_id        TEXT NOT NULL,
    nonce         BLOB NOT NULL,
    ciphertext    BLOB NOT NULL,
    -- JSON list of host names the value may be sent to; empty: any host.
    allowed_hosts TEXT NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- API tokens: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;

-- Every API call that changes something: who, what, on what, and how it ended.
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    token_id   TEXT,
    token_name TEXT,
    role       TEXT,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    outcome    TEXT NOT NULL
);
