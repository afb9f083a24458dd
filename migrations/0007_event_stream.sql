-- The live stream (GET /api/v1/stream, docs/adr/0007-event-stream-by-commit-order.md): every event's
-- position in the order transactions end, and the two filters the events list and the stream share.

-- Position of a row: the id of the transaction that inserted it and a number from a sequence (its order
-- within that transaction). A reader takes rows at positions past its cursor whose txid is below the
-- xmin of its own snapshot: every such transaction has ended, so no row can appear behind the cursor
-- later. Added with constant defaults first, so the table is not rewritten (the defaults are kept in
-- the catalog); rows stored before this migration have position 0-0 and are before the stream.
ALTER TABLE swarm_events
  ADD COLUMN txid xid8 NOT NULL DEFAULT '0',
  ADD COLUMN seq bigint NOT NULL DEFAULT 0;
CREATE SEQUENCE swarm_events_seq AS bigint OWNED BY swarm_events.seq;
-- From now on every insert that leaves the columns out (the event writer does) gets them.
ALTER TABLE swarm_events
  ALTER COLUMN txid SET DEFAULT pg_current_xact_id(),
  ALTER COLUMN seq SET DEFAULT nextval('swarm_events_seq');
CREATE INDEX swarm_events_stream_idx ON swarm_events (txid, seq);

-- The agent of an event, for the `agent` filter: a heartbeat's agent as agent_metrics counts it
-- (metadata agent, else agent_id, else its source); any other event's metadata agent, else agent_id.
CREATE FUNCTION chronicle_event_agent(event_type text, metadata jsonb, source text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE WHEN event_type = 'agent.heartbeat' THEN chronicle_heartbeat_agent(metadata, source)
    ELSE chronicle_agent(metadata) END;

-- An error event, for the `errors` filter: a task that failed or timed out, a dead-letter entry
-- (dlq.*), an event whose metadata `error` is set (anything but absent, null, false or ""), and a span
-- received over OTLP whose status code is 2 (error). Never NULL.
CREATE FUNCTION chronicle_is_error_event(event_type text, metadata jsonb) RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN event_type IN ('task.failed', 'task.timeout')
    OR starts_with(event_type, 'dlq.')
    OR coalesce(metadata -> 'error' NOT IN ('null', 'false', '""'), false)
    OR coalesce(metadata -> 'status' -> 'code' = '2', false);

-- errors=true lists read this small index (error events are a few per cent of the log) instead of
-- filtering the whole time index.
CREATE INDEX swarm_events_error_idx ON swarm_events ("timestamp", event_id)
  WHERE chronicle_is_error_event(event_type, metadata);
