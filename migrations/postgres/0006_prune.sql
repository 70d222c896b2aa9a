-- Retention pruning sweeps expired agent marks and consumed implode items in bounded
-- batches; without these indexes each sweep read the whole table.
CREATE INDEX agent_marks_by_age ON agent_marks (at);
CREATE INDEX implode_items_consumed_by_age ON implode_items (at) WHERE consumed_by IS NOT NULL;
