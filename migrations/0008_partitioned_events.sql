-- swarm_events partitioned by UTC day on "timestamp" (docs/adr/0011-events-partitioned-by-day.md).
--
-- The table that held the events becomes the DEFAULT partition of a new partitioned swarm_events, as it
-- is: no row is copied, moved or rewritten here, so the upgrade holds its locks for milliseconds whatever
-- the table's size. Its rows keep their event_id, ledger entry and stream position (txid, seq). The
-- maintenance pass (src/sinks/postgres/partition-maintenance.ts) then creates the day partitions ahead of
-- time, moves the rows of each day still within retention out of the default into that day's partition
-- (one short transaction per day), and trims what is past retention. A fresh install gets the same shape:
-- an empty default partition, which holds only events of days that have no partition (yet).

ALTER TABLE swarm_events RENAME TO swarm_events_default;
ALTER INDEX swarm_events_trace_idx RENAME TO swarm_events_default_trace_idx;
ALTER INDEX swarm_events_time_idx RENAME TO swarm_events_default_time_idx;
ALTER INDEX swarm_events_type_idx RENAME TO swarm_events_default_type_idx;
ALTER INDEX swarm_events_source_idx RENAME TO swarm_events_default_source_idx;
ALTER INDEX swarm_events_heartbeat_idx RENAME TO swarm_events_default_heartbeat_idx;
ALTER INDEX swarm_events_stream_idx RENAME TO swarm_events_default_stream_idx;
ALTER INDEX swarm_events_error_idx RENAME TO swarm_events_default_error_idx;

-- The same columns in the same order, with the same defaults (0007: the stream position).
CREATE TABLE swarm_events (
  event_id    uuid        NOT NULL,
  trace_id    text        NOT NULL,
  source      text        NOT NULL,
  event_type  text        NOT NULL,
  "timestamp" timestamptz NOT NULL,
  metadata    jsonb       NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  txid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
  seq         bigint      NOT NULL DEFAULT nextval('swarm_events_seq')
) PARTITION BY RANGE ("timestamp");
ALTER SEQUENCE swarm_events_seq OWNED BY swarm_events.seq;

-- With no other partition yet, attaching the default checks nothing: no scan.
ALTER TABLE swarm_events ATTACH PARTITION swarm_events_default DEFAULT;

-- Every index of the old table, on the partitioned one. Each finds its equal on the default partition
-- (the old table's index) and adopts it instead of building a new one.
CREATE INDEX swarm_events_trace_idx ON swarm_events (trace_id, "timestamp", event_id);
CREATE INDEX swarm_events_time_idx ON swarm_events ("timestamp", event_id);
CREATE INDEX swarm_events_type_idx ON swarm_events (event_type, "timestamp", event_id);
CREATE INDEX swarm_events_source_idx ON swarm_events (source, "timestamp", event_id);
CREATE INDEX swarm_events_heartbeat_idx ON swarm_events (chronicle_heartbeat_agent(metadata, source), "timestamp", event_id)
  WHERE event_type = 'agent.heartbeat';
CREATE INDEX swarm_events_stream_idx ON swarm_events (txid, seq);
CREATE INDEX swarm_events_error_idx ON swarm_events ("timestamp", event_id)
  WHERE chronicle_is_error_event(event_type, metadata);
