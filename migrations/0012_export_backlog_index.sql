-- The export backlog's sample (docs/adr/0015-performance-on-live-traffic.md): every replica reads the
-- age of the oldest span not yet exported every 5 s, and /api/v1/pipeline reads it on each request.
-- The queue's index is ordered by next_attempt_at, so min(created_at) read every waiting row: once export
-- fell behind (930,000 waiting spans in a 5 GB table in bench:scale) that was a parallel scan of the whole
-- table every 5 s. Ordered by created_at, the oldest is the index's first entry; the count stops at a cap
-- (src/spans/export-backlog.ts).
CREATE INDEX otel_spans_unexported_idx ON otel_spans (created_at) WHERE exported_at IS NULL;
