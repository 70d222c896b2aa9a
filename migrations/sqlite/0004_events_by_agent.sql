-- The latest events of one agent (the web view's agent panel): newest first by sequence.
CREATE INDEX events_by_agent ON events (story, agent, seq);
