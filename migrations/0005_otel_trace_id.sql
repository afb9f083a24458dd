-- The OpenTelemetry trace id Chronicle exports for a swarm trace_id, in SQL: the same value as
-- otelTraceId() in src/spans/ids.ts, so a dashboard row can link to the task's trace in Tempo or Jaeger.
--   32 hex digits (any case, not all zero): lower-cased;
--   a UUID (any case, not all zero): its 32 hex digits, lower-cased;
--   anything else: the first 16 bytes of SHA-256 over the UTF-8 bytes of trace_id, the all-zero id
--   (invalid in OTLP) replaced by ...01.
-- IMMUTABLE although convert_to() is only STABLE (a user-defined conversion could change it): the
-- conversion to UTF-8 is the built-in one, the same for every call in a database.
CREATE FUNCTION chronicle_otel_trace_id(trace_id text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN CASE
    WHEN trace_id ~ '^[0-9a-fA-F]{32}$' AND trace_id <> repeat('0', 32) THEN lower(trace_id)
    WHEN trace_id ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
      AND replace(trace_id, '-', '') <> repeat('0', 32) THEN lower(replace(trace_id, '-', ''))
    ELSE (
      SELECT CASE WHEN h = repeat('0', 32) THEN repeat('0', 30) || '01' ELSE h END
      FROM (SELECT left(encode(sha256(convert_to(trace_id, 'UTF8')), 'hex'), 32) AS h) AS digest
    )
  END;
