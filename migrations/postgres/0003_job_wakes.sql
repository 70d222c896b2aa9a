-- When a waiting job (a `story` agent with `wait: true`) was woken by its child run. A wake
-- that arrives while the job is still executing must survive that execution's deferral.
ALTER TABLE jobs ADD COLUMN woken_at timestamptz;
