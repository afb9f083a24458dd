-- Pinned tasks (docs/adr/0012-pinned-tasks-archive.md): a pinned task's row, events, spans and dead-letter
-- entries are copied into these archive tables, which retention never touches. A row of archive_traces
-- is the pin itself: unpinning deletes it, and its copies go with it (ON DELETE CASCADE).
-- Pinning again merges the task's current rows into the copy: rows already archived are kept (their
-- originals may be gone), rows still stored replace them, new rows are added.

-- The task's swarm_traces row as of its latest pin (columns of 0001 and 0006), and the pin.
CREATE TABLE archive_traces (
  trace_id          text PRIMARY KEY,
  is_task           boolean     NOT NULL,
  task_title        text,
  owner             text,
  status            text,
  assigned_agent    text,
  created_at        timestamptz NOT NULL,
  assigned_at       timestamptz,
  started_at        timestamptz,
  completed_at      timestamptz,
  duration_ms       bigint,
  time_to_pickup_ms bigint,
  attempts          int         NOT NULL,
  span_count        int         NOT NULL,
  error             text,
  scoring_breakdown jsonb,
  first_event_at    timestamptz NOT NULL,
  last_event_at     timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL,
  first_terminal_at timestamptz,
  -- When the task was first pinned (kept by later pins), and when its copy was last refreshed.
  pinned_at         timestamptz NOT NULL DEFAULT now(),
  refreshed_at      timestamptz NOT NULL DEFAULT now(),
  -- Who pinned it (the API token's name when the API knows it) and why; the latest pin that said so.
  pinned_by         text,
  note              text
);
-- GET /api/v1/traces?pinned=true: newest first, keyset paging, as the live list.
CREATE INDEX archive_traces_created_idx ON archive_traces (created_at DESC, trace_id DESC);

-- The task's swarm_events rows, with their stream position (0007), so the archive serves them unchanged.
CREATE TABLE archive_events (
  trace_id    text        NOT NULL REFERENCES archive_traces (trace_id) ON DELETE CASCADE,
  event_id    uuid        NOT NULL,
  source      text        NOT NULL,
  event_type  text        NOT NULL,
  "timestamp" timestamptz NOT NULL,
  metadata    jsonb       NOT NULL,
  created_at  timestamptz NOT NULL,
  txid        xid8        NOT NULL,
  seq         bigint      NOT NULL,
  PRIMARY KEY (trace_id, event_id)
);

-- The task's otel_spans rows as the API serves them (the export queue's columns are not copied).
CREATE TABLE archive_spans (
  trace_id      text        NOT NULL REFERENCES archive_traces (trace_id) ON DELETE CASCADE,
  otel_trace_id text        NOT NULL,
  span_id       text        NOT NULL,
  role          text        NOT NULL,
  position      int         NOT NULL,
  span          json        NOT NULL,
  event_ids     uuid[]      NOT NULL,
  reported      jsonb,
  created_at    timestamptz NOT NULL,
  exported_at   timestamptz,
  PRIMARY KEY (trace_id, otel_trace_id, span_id)
);

-- The task's swarm_dlq entries (those whose original payload named the trace).
CREATE TABLE archive_dlq (
  trace_id         text        NOT NULL REFERENCES archive_traces (trace_id) ON DELETE CASCADE,
  dlq_id           text        NOT NULL,
  subject          text,
  original_subject text,
  original_payload jsonb,
  reason           text,
  reason_detail    text,
  failed_at        timestamptz,
  retry_count      int,
  max_retries      int,
  retry_history    jsonb,
  source           text,
  recoverable      boolean,
  recovered        boolean     NOT NULL,
  recovered_at     timestamptz,
  received_at      timestamptz NOT NULL,
  PRIMARY KEY (trace_id, dlq_id)
);
