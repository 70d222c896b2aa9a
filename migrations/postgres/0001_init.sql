-- Switchyard scaled-out store (PostgreSQL). Mirrors migrations/sqlite/0001_init.sql.
-- Ids are uuid (UUIDv7, time-ordered); times are timestamptz (microseconds, as the engine
-- keeps them); payloads are JSON *text*, not jsonb: the engine serializes a payload once and
-- reads it back verbatim, text inserts without a parse, and keeps the payload byte for byte.
-- (Cast to jsonb in a query when you want to look inside: payload::jsonb -> 'body'.)

CREATE TABLE runs (
    id               uuid PRIMARY KEY,
    story            text NOT NULL,
    status           text NOT NULL,
    trigger_event_id uuid NOT NULL,
    trigger_agent    text NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    pending_jobs     bigint NOT NULL,
    error            text,
    started_by       text,
    -- A run started by a `story` agent that waits for it: the waiting job and the agent
    -- of this run whose event wakes it.
    parent_job_id    uuid,
    parent_exit      text
) WITH (fillfactor = 80);
CREATE INDEX runs_by_story ON runs (story, id);
CREATE INDEX runs_by_status ON runs (status, id);

CREATE TABLE events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         uuid NOT NULL UNIQUE,
    run_id     uuid NOT NULL,
    parent_id  uuid,
    story      text NOT NULL,
    agent      text NOT NULL,
    kind       text NOT NULL,
    created_at timestamptz NOT NULL,
    payload    text NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, seq);
CREATE INDEX events_by_story ON events (story, seq);

CREATE TABLE jobs (
    id             uuid PRIMARY KEY,
    run_id         uuid NOT NULL,
    story          text NOT NULL,
    agent          text NOT NULL,
    input_event_id uuid NOT NULL,
    state          text NOT NULL,
    attempts       integer NOT NULL DEFAULT 0,
    deferred       boolean NOT NULL DEFAULT false,
    -- Set when the agent asked to be woken again (a delay's second phase, a sub-story wait).
    resumed        boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    started_at     timestamptz,
    finished_at    timestamptz,
    error          text
) WITH (fillfactor = 80);
CREATE INDEX jobs_by_run ON jobs (run_id);
CREATE INDEX jobs_queued ON jobs (deferred, due_at, id) WHERE state = 'queued';

-- Webhook deliveries seen with an idempotency header: a repeat is answered with these ids.
CREATE TABLE webhook_deliveries (
    story      text NOT NULL,
    key        text NOT NULL,
    event_id   uuid NOT NULL,
    run_id     uuid NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (story, key)
);

-- Shared values for templates (`resource.NAME`).
CREATE TABLE resources (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Admissions of `transform` deduplicate/throttle: one row per event let through, so a
-- window counts what passed; keyed by job so a re-executed job is admitted again.
CREATE TABLE agent_marks (
    story  text NOT NULL,
    agent  text NOT NULL,
    key    text NOT NULL,
    job_id uuid NOT NULL,
    at     timestamptz NOT NULL,
    PRIMARY KEY (story, agent, key, job_id)
);
CREATE INDEX agent_marks_by_time ON agent_marks (story, agent, key, at);

-- Events gathered by `transform` implode, until their group is complete or times out.
CREATE TABLE implode_items (
    story       text NOT NULL,
    agent       text NOT NULL,
    key         text NOT NULL,
    job_id      uuid NOT NULL,
    at          timestamptz NOT NULL,
    item        text NOT NULL,
    consumed_by uuid,
    PRIMARY KEY (story, agent, key, job_id)
);
