-- Operations: stories switched off by operators, what retention prunes by, and the web
-- view's per-agent event lookup (mirrors migrations/sqlite/0003 and 0004).

CREATE TABLE story_settings (
    story      text PRIMARY KEY,
    enabled    boolean NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE INDEX runs_by_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at);
CREATE INDEX events_by_agent ON events (story, agent, seq);
