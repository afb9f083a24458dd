import type pg from 'pg';
import { parseTimestamp } from '../../events/timestamp.js';
import type { SpanRecord } from '../../events/span-record.js';
import { withTransaction } from '../../db/transaction.js';
import { RetryableError } from '../../pipeline/errors.js';

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
  /**
   * The event's place in the stream of committed events (GET /api/v1/stream): the id of the
   * transaction that stored it and its number from a sequence, as decimal strings; `0` and `0` for
   * events stored before the stream existed (migrations/0007_event_stream.sql).
   */
  txid: string;
  seq: string;
  /** The event's agent (chronicle_event_agent): metadata `agent`, else `agent_id`; a heartbeat's source. */
  agent: string | null;
  /** Whether it is an error event (chronicle_is_error_event; README, "Error events"). */
  is_error: boolean;
}

/** One row of swarm_traces: the task state of one trace_id. */
export interface TraceRow {
  trace_id: string;
  /** False for a trace with no lifecycle event (not a task). */
  is_task: boolean;
  task_title: string | null;
  owner: string | null;
  /** The source of the task's earliest task.created event: the service that created it. */
  created_by: string | null;
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
  /** `utf8`: the payload is the text received; `base64`: the bytes received (not text), base64. */
  payload_encoding: 'utf8' | 'base64';
  /** The time an input without a timestamp takes, kept for replay; null when unknown. */
  input_time: Date | null;
  /** When `chronicle replay-rejects` last replayed it, and what came of it. */
  replayed_at: Date | null;
  replay_result: string | null;
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
  /** Events of this agent: SQL chronicle_event_agent (migrations/0007_event_stream.sql). */
  agent?: string | undefined;
  /** true: only error events, false: none of them (SQL chronicle_is_error_event). */
  errors?: boolean | undefined;
}

/** The filters of the stream: those of the events list without paging. */
export type StreamFilter = Omit<EventFilter, keyof PageRequest>;

/**
 * A place in the stream of committed events: rows are ordered by (txid, seq). Every event is at a
 * position; a position need not be an event's (the horizon (xmin, 0) is one).
 */
export interface StreamPosition {
  /** The inserting transaction's id (xid8). */
  readonly txid: bigint;
  /** The row's number from swarm_events_seq; 0 with a horizon. */
  readonly seq: bigint;
}

/** An event read from the stream, with its position and the values the stream's filters test. */
export interface CommittedEvent {
  readonly position: StreamPosition;
  /** The row as the events list serves it; its agent and is_error are what the stream filters on. */
  readonly event: EventRow;
}

/** What readCommitted reads. */
export interface CommittedRead {
  /** Events after this position (exclusive). */
  after: StreamPosition;
  /** Events up to this position (inclusive); absent: up to the horizon. */
  through?: StreamPosition | undefined;
  /** At most this many events. */
  limit: number;
  /** Only the events that pass these filters; absent: every event. */
  filter?: StreamFilter | undefined;
  /**
   * Fails the read (a RetryableError: the database is unavailable) when Postgres has not answered
   * within this long; the connection is then dropped from the pool. Absent: no limit.
   */
  timeoutMillis?: number | undefined;
}

/** One read of the stream. */
export interface CommittedPage {
  /** In stream order; fewer than the limit when every matching event in the range was read. */
  events: CommittedEvent[];
  /**
   * (xmin of the statement's snapshot, 0): every transaction below it had ended, so every event
   * before this position that will ever exist was visible to the read.
   */
  horizon: StreamPosition;
  /** The snapshot's xmax: the next transaction id to be assigned. Equal to horizon.txid when none was running. */
  nextTxid: bigint;
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
  /** true: only tasks (is_task); false: only the traces that are not tasks; absent: both. */
  task?: boolean | undefined;
  /** true: the pinned traces, from the archive, as of their latest copy (migrations/0009_pinned_archive.sql). */
  pinned?: true | undefined;
}

export interface DlqFilter extends PageRequest {
  reason?: string | undefined;
  source?: string | undefined;
  recovered?: boolean | undefined;
  /** The entries whose original payload named this trace (exact). */
  trace_id?: string | undefined;
}

/** The filters of listTraces other than status and paging: which rows countTraces counts. */
export type TraceCountFilter = Omit<TraceFilter, 'status' | keyof PageRequest>;

/** How many rows listTraces lists for a filter, by status. */
export interface TraceCounts {
  /** Rows of each status; 0 for a status without rows. */
  counts: Record<TraceStatus, number>;
  /** Rows that are not tasks (is_task false, no status): listed by listTraces, in no status. */
  not_tasks: number;
  /** Every row listTraces lists for the filter: the sum of counts and not_tasks. */
  total: number;
}

/** The span export queue (the otel_spans outbox) as the store holds it, for every replica. */
export interface ExportBacklog {
  /** Spans stored and not exported yet, counted up to EXPORT_BACKLOG_COUNT_CAP (the cap: at least that many). */
  spans: number;
  /** Age in seconds of the oldest of them (by created_at); 0 when none waits. */
  oldest_seconds: number;
}

/**
 * The backlog is counted up to this many spans: past it the count would read every waiting row (150 ms
 * every 5 s at 100,000 rows not yet vacuumed, 1.2 s at a million); the oldest span's age, exact at any
 * size, is what tells how far behind export is (and what ChronicleSpanExportBacklogOld watches).
 */
export const EXPORT_BACKLOG_COUNT_CAP = 100_000;

// Spans waiting (up to the cap) and the age of the oldest, 0 when none waits: two probes of the partial
// index on created_at (migration 0012), whatever the size of otel_spans or of its backlog.
export const EXPORT_BACKLOG_SQL = `
SELECT (SELECT count(*) FROM (SELECT FROM otel_spans WHERE exported_at IS NULL LIMIT ${EXPORT_BACKLOG_COUNT_CAP}) w)::int AS spans,
  greatest(0, coalesce(extract(epoch FROM now() -
    (SELECT min(created_at) FROM otel_spans WHERE exported_at IS NULL)), 0))::float8 AS oldest_seconds`;

/** The export backlog as every replica sees it: read by the export loop's gauges and /api/v1/pipeline. */
export async function readExportBacklog(pool: pg.Pool): Promise<ExportBacklog> {
  const { rows } = await pool.query<ExportBacklog>(EXPORT_BACKLOG_SQL);
  return rows[0]!;
}

export interface RejectFilter extends PageRequest {
  reason?: string | undefined;
  origin?: RejectOrigin | undefined;
}

/** Reads of the store the query API serves. Every method is one or two indexed statements. */
export interface QueryStore {
  /** Events oldest first by (timestamp, event_id). Throws InvalidCursorError for a foreign or damaged cursor. */
  listEvents(filter: EventFilter): Promise<Page<EventRow>>;
  /**
   * Events of committed transactions in stream order (txid, seq), after a position, from transactions
   * below the snapshot's xmin only: a later read never finds an event before what this one returned.
   */
  readCommitted(read: CommittedRead): Promise<CommittedPage>;
  /** Traces newest first by (created_at DESC, trace_id DESC). Throws InvalidCursorError for a bad cursor. */
  listTraces(filter: TraceFilter): Promise<Page<TraceRow>>;
  /**
   * One trace and all its events by (timestamp, event_id); null when the trace is unknown. A pinned
   * trace also has `pin`: what the archive adds to the stored rows, which it serves alone once retention
   * dropped them.
   */
  getTrace(traceId: string): Promise<TraceDetail | null>;
  /** The agent's row with the latest metric_date; null when the agent has none. */
  latestMetrics(agentId: string): Promise<AgentMetricsRow | null>;
  /** Every agent's row for one UTC day (YYYY-MM-DD), ordered by agent_id. */
  metricsSummary(date: string): Promise<AgentMetricsRow[]>;
  /** Rows of the UTC days from `from` to `to` (inclusive, YYYY-MM-DD), of one agent or all, by (agent_id, metric_date). */
  metricsDaily(range: { from: string; to: string; agent?: string | undefined }): Promise<AgentMetricsRow[]>;
  /** Rows listTraces lists for the filter, counted by status in one statement. */
  countTraces(filter: TraceCountFilter): Promise<TraceCounts>;
  /** The spans waiting for export and the age of the oldest. */
  exportBacklog(): Promise<ExportBacklog>;
  /** Dead-letter entries newest first by (received_at DESC, dlq_id DESC). Throws InvalidCursorError for a bad cursor. */
  listDlq(filter: DlqFilter): Promise<Page<DlqRow>>;
  /** Rejects newest first by (rejected_at DESC, id DESC). Throws InvalidCursorError for a bad cursor. */
  listRejects(filter: RejectFilter): Promise<Page<RejectRow>>;
}

/** A trace as GET /api/v1/traces/:id serves it. */
export interface TraceDetail {
  trace: TraceRow;
  events: EventRow[];
  spans: StoredSpanRow[];
  /** Present when the trace is pinned. */
  pin?: PinnedParts;
}

/**
 * What a pinned trace's detail adds: the pin, and its dead-letter entries. Its rows are the stored ones
 * and the archived ones whose originals are gone (by key; a stored row wins): the row of swarm_traces
 * while it is stored, else the archived one.
 */
export interface PinnedParts {
  /** When the trace was first pinned. */
  pinned_at: Date;
  /** When its copy was last refreshed from the stored rows (the latest pin or refresh). */
  refreshed_at: Date;
  pinned_by: string | null;
  note: string | null;
  /** True when some of the answer comes from the archive alone: retention dropped its originals. */
  archived: boolean;
  /** Its dead-letter entries, newest first by (received_at, dlq_id), as GET /api/v1/dlq lists them. */
  dlq: DlqRow[];
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

// agent and is_error: the rules of chronicle_event_agent and chronicle_is_error_event (migration 0007),
// served with each event so that no client recomputes them.
export const EVENT_COLUMNS = `event_id::text AS event_id, trace_id, source, event_type, "timestamp", metadata, created_at,
  txid::text AS txid, seq::text AS seq, chronicle_event_agent(event_type, metadata, source) AS agent,
  chronicle_is_error_event(event_type, metadata) AS is_error`;

/**
 * The event filters, one definition for the events list and the stream's reads: parameters $first to
 * $first+7 are trace_id, event_type, source, since, until, trace_prefix, agent, errors (eventFilterValues).
 * The stream's clients test the same filters in memory on what Postgres computed for each row
 * (src/api/stream/event-filter.ts).
 */
function eventFilterSql(first: number): string {
  const [traceId, type, source, since, until, prefix, agent, errors] = Array.from(
    { length: 8 },
    (_, i) => `$${first + i}`,
  );
  return `(${traceId}::text IS NULL OR trace_id = ${traceId})
  AND (${type}::text IS NULL OR event_type = ${type})
  AND (${source}::text IS NULL OR source = ${source})
  AND (${since}::timestamptz IS NULL OR "timestamp" >= ${since})
  AND (${until}::timestamptz IS NULL OR "timestamp" < ${until})
  AND (${prefix}::text IS NULL OR starts_with(trace_id, ${prefix}))
  AND (${agent}::text IS NULL OR chronicle_event_agent(event_type, metadata, source) = ${agent})
  AND (${errors}::boolean IS NULL OR chronicle_is_error_event(event_type, metadata) = ${errors})`;
}

/** The values of eventFilterSql's parameters, in its order. */
function eventFilterValues(f: StreamFilter): unknown[] {
  return [
    f.trace_id ?? null,
    f.event_type ?? null,
    f.source ?? null,
    f.since ?? null,
    f.until ?? null,
    f.trace_prefix ?? null,
    f.agent ?? null,
    f.errors ?? null,
  ];
}

// errors=true reads swarm_events_error_idx: the planner sees `chronicle_is_error_event(...) = true`
// with the bound value and matches the partial index's predicate.
const LIST_EVENTS_SQL = `
SELECT ${EVENT_COLUMNS}, ${cursorTime('"timestamp"')}
FROM swarm_events
WHERE ${eventFilterSql(4)}
  AND ($1::timestamptz IS NULL OR ("timestamp", event_id) > ($1, $2::uuid))
ORDER BY "timestamp", event_id
LIMIT $3`;

// The horizon is the xmin of the statement's own snapshot (pg_current_snapshot() is the snapshot the
// statement reads with): every transaction below it has ended, and what it wrote is visible now or never.
const READ_COMMITTED_SQL = `
WITH snapshot AS MATERIALIZED (SELECT pg_current_snapshot() AS s)
SELECT pg_snapshot_xmin(snapshot.s)::text AS horizon, pg_snapshot_xmax(snapshot.s)::text AS next_txid, e.*
FROM snapshot LEFT JOIN LATERAL (
  SELECT ${EVENT_COLUMNS}
  FROM swarm_events s
  WHERE (txid, seq) > ($1::xid8, $2::bigint)
    AND txid < pg_snapshot_xmin(snapshot.s)
    AND ($3::xid8 IS NULL OR (txid, seq) <= ($3, $4::bigint))
    AND ${eventFilterSql(6)}
  -- Qualified: a bare name would sort by the text columns of the same names.
  ORDER BY s.txid, s.seq
  LIMIT $5
) e ON true`;

export const TRACE_COLUMNS = `trace_id, is_task, task_title, owner, created_by, status, assigned_agent, created_at,
  assigned_at, started_at, completed_at, duration_ms, time_to_pickup_ms, attempts, span_count, error, scoring_breakdown,
  first_event_at, last_event_at, updated_at, first_terminal_at`;

// The list and counts of traces read swarm_traces, or with pinned=true the archive's copies
// (archive_traces, as of their latest copy): the same filters and order on either.
const listTracesSql = (table: string) => `
SELECT ${TRACE_COLUMNS}, ${cursorTime('created_at')}
FROM ${table}
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR assigned_agent = $2)
  AND ($3::text IS NULL OR owner = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::timestamptz IS NULL OR (created_at, trace_id) < ($6, $7::text))
  AND ($9::text IS NULL OR starts_with(trace_id, $9))
  AND ($10::boolean IS NULL OR is_task = $10)
ORDER BY created_at DESC, trace_id DESC
LIMIT $8`;
const LIST_TRACES_SQL = listTracesSql('swarm_traces');
// A pinned row also says when it was pinned and whether its original is gone.
const LIST_PINNED_TRACES_SQL = listTracesSql('archive_traces a').replace(
  'SELECT ',
  `SELECT a.pinned_at, NOT EXISTS (SELECT 1 FROM swarm_traces t WHERE t.trace_id = a.trace_id) AS archived, `,
);

// The WHERE of LIST_TRACES_SQL without status and cursor, so the counts are of exactly the rows the list
// shows; the same (col, created_at) indexes serve a time window. NULL status: the traces that are not tasks.
const countTracesSql = (table: string) => `
SELECT status, count(*) AS n
FROM ${table}
WHERE ($1::text IS NULL OR assigned_agent = $1)
  AND ($2::text IS NULL OR owner = $2)
  AND ($3::timestamptz IS NULL OR created_at >= $3)
  AND ($4::timestamptz IS NULL OR created_at < $4)
  AND ($5::text IS NULL OR starts_with(trace_id, $5))
  AND ($6::boolean IS NULL OR is_task = $6)
GROUP BY status`;
const COUNT_TRACES_SQL = countTracesSql('swarm_traces');
const COUNT_PINNED_TRACES_SQL = countTracesSql('archive_traces');

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

// A pinned trace (migrations/0009_pinned_archive.sql): its pin, its archived row, and each of its parts as
// the stored rows plus the archived rows whose originals are gone (by key), in the order the unpinned
// reads give. `archived_only` marks a row served from the archive alone.
const GET_PIN_SQL = `SELECT pinned_at, refreshed_at, pinned_by, note FROM archive_traces WHERE trace_id = $1`;

const GET_ARCHIVED_TRACE_SQL = `SELECT ${TRACE_COLUMNS} FROM archive_traces WHERE trace_id = $1`;

const PINNED_EVENTS_SQL = `
SELECT * FROM (
  SELECT ${EVENT_COLUMNS}, false AS archived_only FROM swarm_events WHERE trace_id = $1
  UNION ALL
  SELECT ${EVENT_COLUMNS}, true FROM archive_events a
  WHERE a.trace_id = $1
    AND NOT EXISTS (SELECT 1 FROM swarm_events e WHERE e.trace_id = $1 AND e.event_id = a.event_id)
) u
ORDER BY "timestamp", event_id`;

const PINNED_SPANS_SQL = `
SELECT * FROM (
  SELECT span, exported_at, false AS archived_only FROM otel_spans WHERE trace_id = $1
  UNION ALL
  SELECT span, exported_at, true FROM archive_spans a
  WHERE a.trace_id = $1
    AND NOT EXISTS (SELECT 1 FROM otel_spans s WHERE s.otel_trace_id = a.otel_trace_id AND s.span_id = a.span_id)
) u
ORDER BY (span ->> 'startTimeUnixNano')::numeric, span ->> 'spanId'`;

const DLQ_COLUMNS = `dlq_id, trace_id, subject, original_subject, original_payload, reason, reason_detail, failed_at,
  retry_count, max_retries, retry_history, source, recoverable, recovered, recovered_at, received_at`;

const PINNED_DLQ_SQL = `
SELECT * FROM (
  SELECT ${DLQ_COLUMNS}, false AS archived_only FROM swarm_dlq WHERE trace_id = $1
  UNION ALL
  SELECT ${DLQ_COLUMNS}, true FROM archive_dlq a
  WHERE a.trace_id = $1 AND NOT EXISTS (SELECT 1 FROM swarm_dlq d WHERE d.dlq_id = a.dlq_id)
) u
ORDER BY received_at DESC, dlq_id DESC`;

/** Rows of the pinned reads, each with whether it came from the archive alone. */
type MaybeArchived<T> = T & { archived_only: boolean };

/** The rows without their archived_only column, and whether any had it set. */
function unmark<T>(rows: MaybeArchived<T>[]): { rows: T[]; archivedOnly: boolean } {
  let archivedOnly = false;
  const kept = rows.map((row) => {
    const { archived_only, ...rest } = row;
    if (archived_only) archivedOnly = true;
    return rest as T;
  });
  return { rows: kept, archivedOnly };
}

/**
 * A pinned trace's detail, read in the caller's snapshot. The row is the stored one while every
 * archived event is still stored; once retention dropped any of them, the stored row (if any: a late
 * event makes a new one) was derived without them, and the archived row, as of the latest copy, is served.
 */
async function readPinnedTrace(
  client: pg.PoolClient,
  traceId: string,
  pin: Omit<PinnedParts, 'archived' | 'dlq'>,
  stored: TraceRow | undefined,
): Promise<TraceDetail> {
  const events = unmark((await client.query<MaybeArchived<EventRow>>(PINNED_EVENTS_SQL, [traceId])).rows);
  const spans = unmark((await client.query<MaybeArchived<StoredSpanRow>>(PINNED_SPANS_SQL, [traceId])).rows);
  const dlq = unmark((await client.query<MaybeArchived<DlqRow>>(PINNED_DLQ_SQL, [traceId])).rows);
  let trace = stored;
  if (trace === undefined || events.archivedOnly) {
    trace = (await client.query<TraceRow>(GET_ARCHIVED_TRACE_SQL, [traceId])).rows[0]!;
  }
  const archived = trace !== stored || spans.archivedOnly || dlq.archivedOnly;
  return { trace, events: events.rows, spans: spans.rows, pin: { ...pin, archived, dlq: dlq.rows } };
}

// failure_rate: failed and timed-out tasks over every finished one (the Grafana dashboards' definition).
const METRIC_COLUMNS = `agent_id, metric_date, tasks_completed, tasks_failed, tasks_timed_out, avg_duration_ms,
  p95_duration_ms, min_duration_ms, max_duration_ms, time_to_pickup_avg_ms, uptime_ms, busy_ms, utilization_pct,
  duration_count, duration_sum, pickup_count, pickup_sum, updated_at,
  (tasks_failed + tasks_timed_out)::float8
    / nullif(tasks_completed + tasks_failed + tasks_timed_out, 0) AS failure_rate`;

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

// The primary key (agent_id, metric_date) serves one agent; agent_metrics_date_idx all of them.
const METRICS_DAILY_SQL = `
SELECT ${METRIC_COLUMNS}
FROM agent_metrics
WHERE metric_date >= $1::date AND metric_date <= $2::date
  AND ($3::text IS NULL OR agent_id = $3)
ORDER BY agent_id, metric_date`;

const LIST_DLQ_SQL = `
SELECT dlq_id, trace_id, subject, original_subject, original_payload, reason, reason_detail, failed_at,
  retry_count, max_retries, retry_history, source, recoverable, recovered, recovered_at, received_at,
  ${cursorTime('received_at')}
FROM swarm_dlq
WHERE ($1::text IS NULL OR reason = $1)
  AND ($2::text IS NULL OR source = $2)
  AND ($3::boolean IS NULL OR recovered = $3)
  AND ($4::timestamptz IS NULL OR (received_at, dlq_id) < ($4, $5::text))
  AND ($7::text IS NULL OR trace_id = $7)
ORDER BY received_at DESC, dlq_id DESC
LIMIT $6`;

const LIST_REJECTS_SQL = `
SELECT id, rejected_at, origin, subject, reason, detail, payload, payload_bytes, reject_key,
  payload_encoding, input_time, replayed_at, replay_result, ${cursorTime('rejected_at')}
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
        key.time,
        key.id,
        f.limit + 1,
        ...eventFilterValues(f),
      ]);
      return toPage('events', rows, f.limit, (r) => r.event_id);
    },

    async readCommitted({ after, through, limit, filter, timeoutMillis }) {
      // node-postgres's query_timeout (not in @types/pg's QueryConfig): the query fails with "Query read
      // timeout" and the pool drops its connection.
      const query: pg.QueryConfig & { query_timeout?: number } = {
        text: READ_COMMITTED_SQL,
        values: [
          String(after.txid),
          String(after.seq),
          through === undefined ? null : String(through.txid),
          through === undefined ? null : String(through.seq),
          limit,
          ...eventFilterValues(filter ?? {}),
        ],
      };
      if (timeoutMillis !== undefined) query.query_timeout = timeoutMillis;
      let result: pg.QueryResult<
        { horizon: string; next_txid: string } & (EventRow | Record<keyof EventRow, null>)
      >;
      try {
        result = await pool.query(query);
      } catch (err) {
        if (timeoutMillis !== undefined && err instanceof Error && err.message === 'Query read timeout') {
          const message = `the database did not answer a read of the stream within ${timeoutMillis} ms`;
          throw new RetryableError(message, { cause: err });
        }
        throw err;
      }
      const { rows } = result;
      const first = rows[0]!;
      const events: CommittedEvent[] = [];
      for (const row of rows) {
        // The LEFT JOIN gives one row of NULLs when no event is in range.
        if (row.event_id === null) continue;
        const { event_id, trace_id, source, event_type, timestamp, metadata, created_at, txid, seq } = row;
        const { agent, is_error } = row;
        events.push({
          position: { txid: BigInt(txid), seq: BigInt(seq) },
          event: {
            event_id,
            trace_id,
            source,
            event_type,
            timestamp,
            metadata,
            created_at,
            txid,
            seq,
            agent,
            is_error,
          },
        });
      }
      return { events, horizon: { txid: BigInt(first.horizon), seq: 0n }, nextTxid: BigInt(first.next_txid) };
    },

    async listTraces(f) {
      const key = keyOf('traces', f.cursor);
      const sql = f.pinned ? LIST_PINNED_TRACES_SQL : LIST_TRACES_SQL;
      const { rows } = await pool.query<WithCursor<TraceRow>>(sql, [
        f.status ?? null,
        f.agent ?? null,
        f.owner ?? null,
        f.since ?? null,
        f.until ?? null,
        key.time,
        key.id,
        f.limit + 1,
        f.trace_prefix ?? null,
        f.task ?? null,
      ]);
      return toPage('traces', rows, f.limit, (r) => r.trace_id);
    },

    async getTrace(traceId) {
      // One snapshot for every read, so span_count and the events listed agree under concurrent writes.
      return withTransaction(
        pool,
        async (client): Promise<TraceDetail | null> => {
          const { rows } = await client.query<TraceRow>(GET_TRACE_SQL, [traceId]);
          const trace = rows[0];
          const pin = (await client.query<Omit<PinnedParts, 'archived' | 'dlq'>>(GET_PIN_SQL, [traceId]))
            .rows[0];
          if (pin !== undefined) return readPinnedTrace(client, traceId, pin, trace);
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

    async metricsDaily({ from, to, agent }) {
      const { rows } = await pool.query<AgentMetricsRow>(METRICS_DAILY_SQL, [from, to, agent ?? null]);
      return rows;
    },

    async countTraces(f) {
      const sql = f.pinned ? COUNT_PINNED_TRACES_SQL : COUNT_TRACES_SQL;
      const { rows } = await pool.query<{ status: TraceStatus | null; n: number }>(sql, [
        f.agent ?? null,
        f.owner ?? null,
        f.since ?? null,
        f.until ?? null,
        f.trace_prefix ?? null,
        f.task ?? null,
      ]);
      const counts = Object.fromEntries(TRACE_STATUSES.map((s) => [s, 0])) as Record<TraceStatus, number>;
      let notTasks = 0;
      for (const { status, n } of rows) {
        if (status === null) notTasks = n;
        else counts[status] = n;
      }
      return { counts, not_tasks: notTasks, total: rows.reduce((sum, r) => sum + r.n, 0) };
    },

    exportBacklog: () => readExportBacklog(pool),

    async listDlq(f) {
      const key = keyOf('dlq', f.cursor);
      const { rows } = await pool.query<WithCursor<DlqRow>>(LIST_DLQ_SQL, [
        f.reason ?? null,
        f.source ?? null,
        f.recovered ?? null,
        key.time,
        key.id,
        f.limit + 1,
        f.trace_id ?? null,
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
