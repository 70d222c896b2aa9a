-- When a waiting `story` agent's job was last woken by its child run (the exit agent emitted,
-- or the run ended). A wake that lands while the job is still deciding to wait must not be
-- undone by that decision: the reschedule keeps the job due at its wake.
ALTER TABLE jobs ADD COLUMN woken_at INTEGER;
