import type pg from 'pg';
import { parseTimestamp } from '../../events/timestamp.js';
import type { SpanRecord } from '../../events/span-record.js';
import { withTransaction } from '../../db/transaction.js';

/**
 * The reads the query API serves, with keyset pagination.
 *
 * Every list statement is a constant: an absent filter is passed as NULL and written
 * `($n IS NULL OR col = $n)`. node-postgres sends unnamed statements, which Postgres plans once with
 * the bound values, so those terms fold away and the remaining `col = value` and row comparison
 * `(sort_time, id) < (cursor_time, cursor_id)` match the (col, time DESC, id DESC) indexes of the
 * migration: a page costs one index range scan however deep it is.
 *
 * Cursors are opaque base64url strings holding the list name and the last row's sort key. The time
 * of the key is selected as text with microseconds (to_char in UTC) so it round-trips exactly;
 * JavaScript Dates hold only milliseconds.
 */

/** One row of swarm_events. */
export interface EventRow {
  event_id: string;
  trace_id: string;
  source: string;
  event_type: string;
  timestamp: Date;
  metadata: Record<string, unknown>;
  /** When Chronicle stored the event. */
  created_at: Date;
}

/** One row of swarm_traces: the task state of one trace_id. */
export interface TraceRow {
  trace_id: string;
  /** False for a trace with no lifecycle event (not a task). */
  is_task: boolean;
  task_title: string | null;
  owner: string | null;
  status: TraceStatus | null;
  assigned_agent: string | null;
  created_at: Date;
  assigned_at: Date | null;
  started_at: Date | null;
  completed_at: Date | null;
  duration_ms: number | null;
  time_to_pickup_ms: number | null;
  attempts: number;
  span_count: number;
  error: string | null;
  scoring_breakdown: unknown;
  first_event_at: Date;
  last_event_at: Date;
  updated_at: Date;
  /** When the row first had a terminal status (set once; kept if the task is retried). */
  first_terminal_at: Date | null;
}

export const TRACE_STATUSES = [
  'pending',
  'assigned',
  'in_progress',
  'completed',
  'failed',
  'timed_out',
] as const;
export type TraceStatus = (typeof TRACE_STATUSES)[number];

/** One row of agent_metrics: one agent on one UTC day. */
export interface AgentMetricsRow {
  agent_id: string;
  /** YYYY-MM-DD (UTC day). */
  metric_date: string;
  tasks_completed: number;
  tasks_failed: number;
  tasks_timed_out: number;
  avg_duration_ms: number | null;
  p95_duration_ms: number | null;
  min_duration_ms: number | null;
  max_duration_ms: number | null;
  time_to_pickup_avg_ms: number | null;
  uptime_ms: number | null;
  busy_ms: number | null;
  utilization_pct: number | null;
  /** Completed tasks with a duration, and the sum of their durations (behind avg_duration_ms). */
  duration_count: number;
  duration_sum: number;
  /** Tasks with a time to pickup, and its sum (behind time_to_pickup_avg_ms). */
  pickup_count: number;
  pickup_sum: number;
  updated_at: Date;
}

/** One row of swarm_dlq: a dead-letter entry published by the swarm. */
export interface DlqRow {
  dlq_id: string;
  trace_id: string | null;
  subject: string | null;
  original_subject: string | null;
  original_payload: unknown;
  reason: string | null;
  reason_detail: string | null;
  failed_at: Date | null;
  retry_count: number | null;
  max_retries: number | null;
  retry_history: unknown;
  source: string | null;
  recoverable: boolean | null;
  recovered: boolean;
  recovered_at: Date | null;
  received_at: Date;
}

export const REJECT_ORIGINS = ['nats', 'http', 'otlp'] as const;
export type RejectOrigin = (typeof REJECT_ORIGINS)[number];

/** One row of chronicle_rejects: input Chronicle could not accept. */
export interface RejectRow {
  id: number;
  rejected_at: Date;
  origin: RejectOrigin;
  subject: string | null;
  reason: string;
  detail: string;
  /** The raw payload, truncated to 64 KiB. */
  payload: string;
  /** Size of the raw payload before truncation. */
  payload_bytes: number;
  reject_key: string | null;
}

/** One page of a list. */
export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; null when this is the last page. */
  next_cursor: string | null;
}

/** Paging of every list. */
export interface PageRequest {
  /** Rows per page (the caller bounds it). */
  limit: number;
  /** next_cursor of the previous page; absent for the first page. */
  cursor?: string | undefined;
}

export interface EventFilter extends PageRequest {
  trace_id?: string | undefined;
  /** Events of the traces whose id starts with this (matched literally). */
  trace_prefix?: string | undefined;
  event_type?: string | undefined;
  source?: string | undefined;
  /** Inclusive lower bound on `timestamp`, RFC 3339. */
  since?: string | undefined;
  /** Exclusive upper bound on `timestamp`, RFC 3339. */
  until?: string | undefined;
}

export interface TraceFilter extends PageRequest {
  status?: TraceStatus | undefined;
  /** Traces whose id starts with this (matched literally). */
  trace_prefix?: string | undefined;
  /** assigned_agent. */
  agent?: string | undefined;
  owner?: string | undefined;
  /** Inclusive lower bound on created_at, RFC 3339. */
  since?: string | undefined;
  /** Exclusive upper bound on created_at, RFC 3339. */
  until?: string | undefined;
}

export interface DlqFilter extends PageRequest {
  reason?: string | undefined;
  source?: string | undefined;
  recovered?: boolean | undefined;
}

export interface RejectFilter extends PageRequest {
  reason?: string | undefined;
  origin?: RejectOrigin | undefined;
}

/** Reads of the store the query API serves. Every method is one or two indexed statements. */
export interface QueryStore {
  /** Events oldest first by (timestamp, event_id). Throws InvalidCursorError for a foreign or damaged cursor. */
  listEvents(filter: EventFilter): Promise<Page<EventRow>>;
  /** Traces newest first by (created_at DESC, trace_id DESC). Throws InvalidCursorError for a bad cursor. */
  listTraces(filter: TraceFilter): Promise<Page<TraceRow>>;
  /** One trace and all its events by (timestamp, event_id); null when the trace is unknown. */
  getTrace(traceId: string): Promise<{ trace: TraceRow; events: EventRow[]; spans: StoredSpanRow[] } | null>;
  /** The agent's row with the latest metric_date; null when the agent has none. */
  latestMetrics(agentId: string): Promise<AgentMetricsRow | null>;
  /** Every agent's row for one UTC day (YYYY-MM-DD), ordered by agent_id. */
  metricsSummary(date: string): Promise<AgentMetricsRow[]>;
  /** Dead-letter entries newest first by (received_at DESC, dlq_id DESC). Throws InvalidCursorError for a bad cursor. */
  listDlq(filter: DlqFilter): Promise<Page<DlqRow>>;
  /** Rejects newest first by (rejected_at DESC, id DESC). Throws InvalidCursorError for a bad cursor. */
  listRejects(filter: RejectFilter): Promise<Page<RejectRow>>;
}

/** One span of a trace as stored in otel_spans (and exported as it is), oldest start first. */
export interface StoredSpanRow {
  span: SpanRecord;
  /** When the OTLP backend accepted it; null while it waits (or when export is off). */
  exported_at: Date | null;
}

/** A cursor that this store did not issue for this list, or that was damaged on the way. */
export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError';
}

// The sort time of a row as text with all six fractional digits, in UTC.
const cursorTime = (column: string) =>
  `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_time`;

const EVENT_COLUMNS = `event_id::text AS event_id, trace_id, source, event_type, "timestamp", metadata, created_at`;

const LIST_EVENTS_SQL = `
SELECT ${EVENT_COLUMNS}, ${cursorTime('"timestamp"')}
FROM swarm_events
WHERE ($1::text IS NULL OR trace_id = $1)
  AND ($2::text IS NULL OR event_type = $2)
  AND ($3::text IS NULL OR source = $3)
  AND ($4::timestamptz IS NULL OR "timestamp" >= $4)
  AND ($5::timestamptz IS NULL OR "timestamp" < $5)
  AND ($6::timestamptz IS NULL OR ("timestamp", event_id) > ($6, $7::uuid))
  AND ($9::text IS NULL OR starts_with(trace_id, $9))
ORDER BY "timestamp", event_id
LIMIT $8`;

const TRACE_COLUMNS = `trace_id, is_task, task_title, owner, status, assigned_agent, created_at, assigned_at,
  started_at, completed_at, duration_ms, time_to_pickup_ms, attempts, span_count, error, scoring_breakdown,
  first_event_at, last_event_at, updated_at, first_terminal_at`;

const LIST_TRACES_SQL = `
SELECT ${TRACE_COLUMNS}, ${cursorTime('created_at')}
FROM swarm_traces
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR assigned_agent = $2)
  AND ($3::text IS NULL OR owner = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::timestamptz IS NULL OR (created_at, trace_id) < ($6, $7::text))
  AND ($9::text IS NULL OR starts_with(trace_id, $9))
ORDER BY created_at DESC, trace_id DESC
LIMIT $8`;

const GET_TRACE_SQL = `SELECT ${TRACE_COLUMNS} FROM swarm_traces WHERE trace_id = $1`;

const TRACE_SPANS_SQL = `
SELECT span, exported_at FROM otel_spans
WHERE trace_id = $1
ORDER BY (span ->> 'startTimeUnixNano')::numeric, span ->> 'spanId'`;

const TRACE_EVENTS_SQL = `
SELECT ${EVENT_COLUMNS}
FROM swarm_events
WHERE trace_id = $1
ORDER BY "timestamp", event_id`;

const METRIC_COLUMNS = `agent_id, metric_date, tasks_completed, tasks_failed, tasks_timed_out, avg_duration_ms,
  p95_duration_ms, min_duration_ms, max_duration_ms, time_to_pickup_avg_ms, uptime_ms, busy_ms, utilization_pct,
  duration_count, duration_sum, pickup_count, pickup_sum, updated_at`;

const LATEST_METRICS_SQL = `
SELECT ${METRIC_COLUMNS}
FROM agent_metrics
WHERE agent_id = $1
ORDER BY metric_date DESC
LIMIT 1`;

const METRICS_SUMMARY_SQL = `
SELECT ${METRIC_COLUMNS}
FROM agent_metrics
WHERE metric_date = $1::date
ORDER BY agent_id`;

const LIST_DLQ_SQL = `
SELECT dlq_id, trace_id, subject, original_subject, original_payload, reason, reason_detail, failed_at,
  retry_count, max_retries, retry_history, source, recoverable, recovered, recovered_at, received_at,
  ${cursorTime('received_at')}
FROM swarm_dlq
WHERE ($1::text IS NULL OR reason = $1)
  AND ($2::text IS NULL OR source = $2)
  AND ($3::boolean IS NULL OR recovered = $3)
  AND ($4::timestamptz IS NULL OR (received_at, dlq_id) < ($4, $5::text))
ORDER BY received_at DESC, dlq_id DESC
LIMIT $6`;

const LIST_REJECTS_SQL = `
SELECT id, rejected_at, origin, subject, reason, detail, payload, payload_bytes, reject_key,
  ${cursorTime('rejected_at')}
FROM chronicle_rejects
WHERE ($1::text IS NULL OR reason = $1)
  AND ($2::text IS NULL OR origin = $2)
  AND ($3::timestamptz IS NULL OR (rejected_at, id) < ($3, $4::bigint))
ORDER BY rejected_at DESC, id DESC
LIMIT $5`;

type ListName = 'events' | 'traces' | 'dlq' | 'rejects';

const CURSOR_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BIGINT = /^[1-9]\d{0,17}$/;

// What a valid sort-key id looks like per list; anything else could fail inside Postgres (a 500).
const ID_SHAPE: Record<ListName, (id: string) => boolean> = {
  events: (id) => UUID.test(id),
  traces: (id) => id.length > 0 && !id.includes('\u0000'),
  dlq: (id) => id.length > 0 && !id.includes('\u0000'),
  rejects: (id) => BIGINT.test(id),
};

/** Encodes a sort key as an opaque cursor. */
function encodeCursor(list: ListName, time: string, id: string): string {
  return Buffer.from(JSON.stringify([list, time, id])).toString('base64url');
}

/** Decodes a cursor issued for `list` into its sort key, or throws InvalidCursorError. */
function decodeCursor(list: ListName, cursor: string): { time: string; id: string } {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError('cursor is not valid');
  }
  if (!Array.isArray(value) || value.length !== 3) throw new InvalidCursorError('cursor is not valid');
  const [name, time, id] = value as unknown[];
  if (name !== list) throw new InvalidCursorError(`cursor was not issued for ${list}`);
  if (typeof time !== 'string' || !CURSOR_TIME.test(time) || parseTimestamp(time) === undefined) {
    throw new InvalidCursorError('cursor is not valid');
  }
  if (typeof id !== 'string' || !ID_SHAPE[list](id)) throw new InvalidCursorError('cursor is not valid');
  return { time, id };
}

/** Trims the probe row (limit + 1) and builds the next cursor from the last row kept. */
function toPage<R extends { cursor_time: string }, T>(
  list: ListName,
  rows: R[],
  limit: number,
  idOf: (row: R) => string | number,
): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept[kept.length - 1];
  const items = kept.map((row) => {
    const item: Partial<R> = { ...row };
    delete item.cursor_time;
    return item as unknown as T;
  });
  return {
    items,
    next_cursor: more && last !== undefined ? encodeCursor(list, last.cursor_time, String(idOf(last))) : null,
  };
}

type WithCursor<T> = T & { cursor_time: string };

export function createQueryStore(pool: pg.Pool): QueryStore {
  // Decoded before any query, so a bad cursor never reaches Postgres.
  const keyOf = (list: ListName, cursor: string | undefined) =>
    cursor === undefined ? { time: null, id: null } : decodeCursor(list, cursor);

  return {
    async listEvents(f) {
      const key = keyOf('events', f.cursor);
      const { rows } = await pool.query<WithCursor<EventRow>>(LIST_EVENTS_SQL, [
        f.trace_id ?? null,
        f.event_type ?? null,
        f.source ?? null,
        f.since ?? null,
        f.until ?? null,
        key.time,
        key.id,
        f.limit + 1,
        f.trace_prefix ?? null,
      ]);
      return toPage('events', rows, f.limit, (r) => r.event_id);
    },

    async listTraces(f) {
      const key = keyOf('traces', f.cursor);
      const { rows } = await pool.query<WithCursor<TraceRow>>(LIST_TRACES_SQL, [
        f.status ?? null,
        f.agent ?? null,
        f.owner ?? null,
        f.since ?? null,
        f.until ?? null,
        key.time,
        key.id,
        f.limit + 1,
        f.trace_prefix ?? null,
      ]);
      return toPage('traces', rows, f.limit, (r) => r.trace_id);
    },

    async getTrace(traceId) {
      // One snapshot for both reads, so span_count and the events listed agree under concurrent writes.
      return withTransaction(
        pool,
        async (client) => {
          const { rows } = await client.query<TraceRow>(GET_TRACE_SQL, [traceId]);
          const trace = rows[0];
          if (trace === undefined) return null;
          const events = await client.query<EventRow>(TRACE_EVENTS_SQL, [traceId]);
          const spans = await client.query<StoredSpanRow>(TRACE_SPANS_SQL, [traceId]);
          return { trace, events: events.rows, spans: spans.rows };
        },
        // One snapshot, so span_count matches the events returned.
        'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
      );
    },

    async latestMetrics(agentId) {
      const { rows } = await pool.query<AgentMetricsRow>(LATEST_METRICS_SQL, [agentId]);
      return rows[0] ?? null;
    },

    async metricsSummary(date) {
      const { rows } = await pool.query<AgentMetricsRow>(METRICS_SUMMARY_SQL, [date]);
      return rows;
    },

    async listDlq(f) {
      const key = keyOf('dlq', f.cursor);
      const { rows } = await pool.query<WithCursor<DlqRow>>(LIST_DLQ_SQL, [
        f.reason ?? null,
        f.source ?? null,
        f.recovered ?? null,
        key.time,
        key.id,
        f.limit + 1,
      ]);
      return toPage('dlq', rows, f.limit, (r) => r.dlq_id);
    },

    async listRejects(f) {
      const key = keyOf('rejects', f.cursor);
      const { rows } = await pool.query<WithCursor<RejectRow>>(LIST_REJECTS_SQL, [
        f.reason ?? null,
        f.origin ?? null,
        key.time,
        key.id,
        f.limit + 1,
      ]);
      return toPage('rejects', rows, f.limit, (r) => r.id);
    },
  };
}
