-- Operations: stories switched off by operators, and what retention needs to prune fast.

CREATE TABLE story_settings (
    story      TEXT PRIMARY KEY,
    enabled    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX runs_by_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at);
