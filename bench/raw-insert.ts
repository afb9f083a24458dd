/**
 * The raw insert both benchmarks measure: a batch of canonical events (a JSON array) into an empty
 * copy of swarm_events keyed by event_id (dedup, nothing else): no NATS, no processing, no derive.
 */
export const RAW_INSERT_SQL = `INSERT INTO raw_events (event_id, trace_id, source, event_type, "timestamp", metadata)
  SELECT event_id, trace_id, source, event_type, "timestamp", metadata
  FROM json_to_recordset($1::json) AS b(event_id uuid, trace_id text, source text, event_type text,
    "timestamp" timestamptz, metadata jsonb)
  ON CONFLICT (event_id) DO NOTHING`;
