-- Chronicle's store. Columns of swarm_events, swarm_traces and agent_metrics follow the Go service
-- this design comes from; everything past them is documented in docs/schema.md.

-- Helpers shared by the derive SQL and its indexes. IMMUTABLE so indexes can use them.

-- The agent named by an event's metadata: `agent`, else `agent_id`; empty strings do not count.
CREATE FUNCTION chronicle_agent(metadata jsonb) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN coalesce(nullif(metadata ->> 'agent', ''), nullif(metadata ->> 'agent_id', ''));

-- The agent of a heartbeat: its metadata agent, else the event's source.
CREATE FUNCTION chronicle_heartbeat_agent(metadata jsonb, source text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN coalesce(chronicle_agent(metadata), source);

-- Rank of a lifecycle event within one timestamp; NULL for every other type.
CREATE FUNCTION chronicle_lifecycle_rank(event_type text) RETURNS int
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE event_type
    WHEN 'task.created' THEN 0
    WHEN 'task.assigned' THEN 1
    WHEN 'task.started' THEN 2
    WHEN 'task.completed' THEN 3
    WHEN 'task.failed' THEN 3
    WHEN 'task.timeout' THEN 3
  END;

-- A JSON number as bigint milliseconds (rounded); NULL for anything else, negative, or beyond 2^53.
CREATE FUNCTION chronicle_json_ms(value jsonb) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE WHEN jsonb_typeof(value) = 'number'
    AND (value #>> '{}')::numeric BETWEEN 0 AND 9007199254740991
    THEN round((value #>> '{}')::numeric)::bigint END;

-- The dedup ledger: one row per event_id ever stored. It is the dedup key, kept apart from
-- swarm_events so that swarm_events can later be partitioned by day (its partition key then
-- need not be part of a unique event_id constraint) and old partitions dropped.
CREATE TABLE swarm_event_ids (
  event_id    uuid PRIMARY KEY,
  "timestamp" timestamptz NOT NULL
);

-- The raw log: every distinct event exactly once (the ledger decides which insert wins).
CREATE TABLE swarm_events (
  event_id    uuid        NOT NULL,
  trace_id    text        NOT NULL,
  source      text        NOT NULL,
  event_type  text        NOT NULL,
  "timestamp" timestamptz NOT NULL,
  metadata    jsonb       NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX swarm_events_trace_idx ON swarm_events (trace_id, "timestamp", event_id);
CREATE INDEX swarm_events_time_idx ON swarm_events ("timestamp", event_id);
CREATE INDEX swarm_events_type_idx ON swarm_events (event_type, "timestamp", event_id);
CREATE INDEX swarm_events_source_idx ON swarm_events (source, "timestamp", event_id);
-- The latest heartbeat of an agent on a day, found by one backward index probe.
CREATE INDEX swarm_events_heartbeat_idx ON swarm_events (chronicle_heartbeat_agent(metadata, source), "timestamp", event_id)
  WHERE event_type = 'agent.heartbeat';

-- One row per trace_id, recomputed from the trace's distinct events on every flush that touches it.
CREATE TABLE swarm_traces (
  trace_id          text PRIMARY KEY,
  is_task           boolean     NOT NULL,
  task_title        text,
  owner             text,
  status            text CHECK (status IN ('pending', 'assigned', 'in_progress', 'completed', 'failed', 'timed_out')),
  assigned_agent    text,
  created_at        timestamptz NOT NULL,
  assigned_at       timestamptz,
  started_at        timestamptz,
  completed_at      timestamptz,
  duration_ms       bigint,
  time_to_pickup_ms bigint,
  attempts          int         NOT NULL DEFAULT 0,
  span_count        int         NOT NULL,
  error             text,
  scoring_breakdown jsonb,
  first_event_at    timestamptz NOT NULL,
  last_event_at     timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX swarm_traces_created_idx ON swarm_traces (created_at DESC, trace_id DESC);
CREATE INDEX swarm_traces_status_idx ON swarm_traces (status, created_at DESC, trace_id DESC);
CREATE INDEX swarm_traces_agent_idx ON swarm_traces (assigned_agent, created_at DESC, trace_id DESC);
CREATE INDEX swarm_traces_owner_idx ON swarm_traces (owner, created_at DESC, trace_id DESC);
-- The task side of agent_metrics: terminal tasks of one agent on one UTC day.
-- INCLUDE: the metric recompute can read a day from the index alone once pages are all-visible.
CREATE INDEX swarm_traces_agent_day_idx ON swarm_traces (assigned_agent, completed_at)
  INCLUDE (status, duration_ms, time_to_pickup_ms)
  WHERE is_task AND status IN ('completed', 'failed', 'timed_out');

-- One row per (agent, UTC day).
CREATE TABLE agent_metrics (
  agent_id              text        NOT NULL,
  metric_date           date        NOT NULL,
  tasks_completed       int         NOT NULL DEFAULT 0,
  tasks_failed          int         NOT NULL DEFAULT 0,
  tasks_timed_out       int         NOT NULL DEFAULT 0,
  avg_duration_ms       bigint,
  p95_duration_ms       bigint,
  min_duration_ms       bigint,
  max_duration_ms       bigint,
  time_to_pickup_avg_ms bigint,
  uptime_ms             bigint,
  busy_ms               bigint,
  utilization_pct       numeric,
  updated_at            timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id, metric_date)
);
CREATE INDEX agent_metrics_date_idx ON agent_metrics (metric_date, agent_id);

-- Dead-letter entries published by the swarm on dlq.>.
CREATE TABLE swarm_dlq (
  dlq_id           text PRIMARY KEY,
  trace_id         text,
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
  recovered        boolean     NOT NULL DEFAULT false,
  recovered_at     timestamptz,
  received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX swarm_dlq_received_idx ON swarm_dlq (received_at DESC, dlq_id DESC);
CREATE INDEX swarm_dlq_reason_idx ON swarm_dlq (reason, received_at DESC, dlq_id DESC);
CREATE INDEX swarm_dlq_source_idx ON swarm_dlq (source, received_at DESC, dlq_id DESC);
CREATE INDEX swarm_dlq_recovered_idx ON swarm_dlq (recovered, received_at DESC, dlq_id DESC);
CREATE INDEX swarm_dlq_trace_idx ON swarm_dlq (trace_id);

-- Input Chronicle could not accept, with the reason: nothing is dropped silently.
CREATE TABLE chronicle_rejects (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rejected_at   timestamptz NOT NULL DEFAULT now(),
  origin        text        NOT NULL CHECK (origin IN ('nats', 'http', 'otlp')),
  subject       text,
  reason        text        NOT NULL,
  detail        text        NOT NULL,
  payload       text        NOT NULL,
  payload_bytes int         NOT NULL,
  -- Set for redeliverable input (stream and sequence) so a redelivered reject is recorded once.
  reject_key    text UNIQUE
);
CREATE INDEX chronicle_rejects_time_idx ON chronicle_rejects (rejected_at DESC, id DESC);
CREATE INDEX chronicle_rejects_reason_idx ON chronicle_rejects (reason, rejected_at DESC, id DESC);
CREATE INDEX chronicle_rejects_origin_idx ON chronicle_rejects (origin, rejected_at DESC, id DESC);
