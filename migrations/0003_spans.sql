-- OpenTelemetry spans (docs/spans.md, ADR 0004): every span Chronicle built from a trace's events or
-- received over OTLP, stored once and never changed. The rows not yet exported are the export queue
-- (an outbox): an export loop leases them (SKIP LOCKED, so replicas share the work), exports, and marks
-- them exported only on success.
CREATE TABLE otel_spans (
  otel_trace_id   text        NOT NULL,
  span_id         text        NOT NULL,
  -- The swarm trace the span belongs to.
  trace_id        text        NOT NULL,
  -- root, queue_wait, pickup, execution, event, update (built by Chronicle) or received (over OTLP).
  role            text        NOT NULL,
  -- Attempt of an attempt span, sequence number of an update span, else 0.
  position        int         NOT NULL DEFAULT 0,
  span            jsonb       NOT NULL,
  -- Events the span shows as span events (root and update spans).
  event_ids       uuid[]      NOT NULL DEFAULT '{}',
  -- Update spans: the content they reported for each changed span id.
  reported        jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  exported_at     timestamptz,
  export_attempts int         NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,
  last_error      text,
  PRIMARY KEY (otel_trace_id, span_id)
);
CREATE INDEX otel_spans_trace_idx ON otel_spans (trace_id);
CREATE INDEX otel_spans_queue_idx ON otel_spans (next_attempt_at) WHERE exported_at IS NULL;

-- Traces whose spans need building: appended by every flush (with the time window of its new events),
-- consumed by the span builder. No key, so a flush never waits on a builder.
CREATE TABLE otel_pending (
  trace_id  text        NOT NULL,
  first_at  timestamptz NOT NULL,
  last_at   timestamptz NOT NULL,
  queued_at timestamptz NOT NULL DEFAULT now()
);
