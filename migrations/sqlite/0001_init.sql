-- Switchyard embedded store (SQLite). Ids are 16-byte UUIDv7 blobs; times are microseconds
-- since the Unix epoch; payloads are JSON text.

CREATE TABLE runs (
    id               BLOB PRIMARY KEY,
    story            TEXT NOT NULL,
    status           TEXT NOT NULL,
    trigger_event_id BLOB NOT NULL,
    trigger_agent    TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    pending_jobs     INTEGER NOT NULL,
    error            TEXT,
    started_by       TEXT,
    -- A run started by a `story` agent that waits for it: the waiting job and the agent
    -- of this run whose event wakes it.
    parent_job_id    BLOB,
    parent_exit      TEXT
) WITHOUT ROWID;
CREATE INDEX runs_by_story ON runs (story, id);
CREATE INDEX runs_by_status ON runs (status, id);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    id         BLOB NOT NULL UNIQUE,
    run_id     BLOB NOT NULL,
    parent_id  BLOB,
    story      TEXT NOT NULL,
    agent      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    payload    TEXT NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, seq);
CREATE INDEX events_by_story ON events (story, seq);

CREATE TABLE jobs (
    id             BLOB PRIMARY KEY,
    run_id         BLOB NOT NULL,
    story          TEXT NOT NULL,
    agent          TEXT NOT NULL,
    input_event_id BLOB NOT NULL,
    state          TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    deferred       INTEGER NOT NULL DEFAULT 0,
    -- Set when the agent asked to be woken again (a delay's second phase, a sub-story wait).
    resumed        INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    due_at         INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    error          TEXT
) WITHOUT ROWID;
CREATE INDEX jobs_by_run ON jobs (run_id);
CREATE INDEX jobs_queued ON jobs (deferred, due_at) WHERE state = 'queued';

-- Webhook deliveries seen with an idempotency header: a repeat is answered with these ids.
CREATE TABLE webhook_deliveries (
    story      TEXT NOT NULL,
    key        TEXT NOT NULL,
    event_id   BLOB NOT NULL,
    run_id     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (story, key)
) WITHOUT ROWID;

-- Shared values for templates (`resource.NAME`).
CREATE TABLE resources (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Admissions of `transform` deduplicate/throttle: one row per event let through, so a
-- window counts what passed; keyed by job so a re-executed job is admitted again.
CREATE TABLE agent_marks (
    story  TEXT NOT NULL,
    agent  TEXT NOT NULL,
    key    TEXT NOT NULL,
    job_id BLOB NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (story, agent, key, job_id)
) WITHOUT ROWID;
CREATE INDEX agent_marks_by_time ON agent_marks (story, agent, key, at);

-- Events gathered by `transform` implode, until their group is complete or times out.
CREATE TABLE implode_items (
    story       TEXT NOT NULL,
    agent       TEXT NOT NULL,
    key         TEXT NOT NULL,
    job_id      BLOB NOT NULL,
    at          INTEGER NOT NULL,
    item        TEXT NOT NULL,
    consumed_by BLOB,
    PRIMARY KEY (story, agent, key, job_id)
) WITHOUT ROWID;
