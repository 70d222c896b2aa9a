-- The scaled-out mode (RabbitMQ + workers): what each job's message and lease look like, and
-- named leases for the one-at-a-time duties (timer, scheduler, sweeper).
--
-- published_at: when a message for the job was last confirmed by RabbitMQ (or the job was
--   taken by a worker). NULL while the job is in the outbox: committed but not yet published,
--   or rescheduled (a retry or a delay) and not yet due.
-- lease_owner, lease_until: the worker process running the job, until when (renewed while it
--   runs). A lease that runs out belongs to a process that died: the job is taken back.
-- rescues: how often the job was taken back from a dead worker; after a few the job fails
--   as `lost_worker` instead of crashing workers for ever.
ALTER TABLE jobs
    ADD COLUMN published_at timestamptz,
    ADD COLUMN lease_owner  text,
    ADD COLUMN lease_until  timestamptz,
    ADD COLUMN rescues      integer NOT NULL DEFAULT 0;

CREATE TABLE leases (
    name  text PRIMARY KEY,
    owner text NOT NULL,
    until timestamptz NOT NULL
);
