-- Security: encrypted credentials, API tokens, the audit log (mirrors
-- migrations/sqlite/0006_security.sql).

-- Secrets for templates (`credential.NAME`), encrypted with XChaCha20-Poly1305 under the
-- master key identified by `key_id`; the credential's name is the associated data, so a
-- ciphertext moved to another name does not decrypt. Values are never stored in clear.
CREATE TABLE credentials (
    name          text PRIMARY KEY,
    key_id        text NOT NULL,
    nonce         bytea NOT NULL,
    ciphertext    bytea NOT NULL,
    -- Host names the value may be sent to; empty: any host.
    allowed_hosts text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- API tokens: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    role       text NOT NULL,
    hash       bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

-- Every API call that changes something: who, what, on what, and how it ended.
CREATE TABLE audit (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    token_id   text,
    token_name text,
    role       text,
    action     text NOT NULL,
    target     text NOT NULL,
    outcome    text NOT NULL
);
