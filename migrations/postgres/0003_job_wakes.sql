-- When a waiting `story` agent's job was last woken by its child run (mirrors
-- migrations/sqlite/0005): a wake that lands while the job is still deciding to wait is
-- not undone by the reschedule that follows.
ALTER TABLE jobs ADD COLUMN woken_at timestamptz;
