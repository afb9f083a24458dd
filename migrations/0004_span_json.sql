-- Spans are stored and read back whole, never queried inside: json (checked text) costs a fraction of
-- jsonb (parsed and re-encoded) to insert, and keeps the span exactly as built.
ALTER TABLE otel_spans ALTER COLUMN span TYPE json USING span::json;
ALTER TABLE otel_spans SET (toast_tuple_target = 8160);

-- The span builder takes the oldest pending rows, then checks each of their traces for having settled.
CREATE INDEX otel_pending_queued_idx ON otel_pending (queued_at);
CREATE INDEX otel_pending_trace_idx ON otel_pending (trace_id, queued_at);
