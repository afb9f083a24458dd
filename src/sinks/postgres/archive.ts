import type pg from 'pg';
import { withTransaction } from '../../db/transaction.js';
import { TRACE_COLUMNS } from './queries.js';

/**
 * Pinned tasks (docs/adr/0012-pinned-tasks-archive.md, migrations/0009_pinned_archive.sql): pinning copies
 * a trace's swarm_traces row, its swarm_events, otel_spans and swarm_dlq entries into archive_traces,
 * archive_events, archive_spans and archive_dlq, which retention never touches. The archive_traces row is
 * the pin; unpinning deletes it and its copies (ON DELETE CASCADE). The reads that serve a pinned trace
 * are in queries.ts (getTrace, listTraces with pinned).
 *
 * A pin copies in one REPEATABLE READ transaction: every part is read from one snapshot, which the event
 * writer's flushes (events, row and dead letters in one transaction) and the span builder commit whole,
 * so the copy is consistent however ingest runs beside it. Pinning again merges: rows still stored
 * replace their copies, new rows are added, and copies whose originals retention dropped are kept. The
 * archived row is replaced only while every archived event is still stored (a stored row derived after
 * retention dropped some of them would be worse than the copy). refreshPinned pins again the pinned
 * traces whose stored rows hold something new (src/sinks/postgres/pin-refresher.ts runs it every five minutes).
 */

/** Who pins, and why; null or absent keeps what an earlier pin said. */
export interface PinOptions {
  pinnedBy?: string | null | undefined;
  note?: string | null | undefined;
}

/** A pinned trace after a pin. */
export interface PinResult {
  trace_id: string;
  /** True when this pin created the pin; false when it refreshed an existing one. */
  created: boolean;
  pinned_at: Date;
  refreshed_at: Date;
  pinned_by: string | null;
  note: string | null;
  /** True when the trace's row is no longer stored: the archive alone serves it. */
  archived: boolean;
  /** Rows the archive now holds for the trace. */
  events: number;
  spans: number;
  dlq: number;
}

/** Which traces a bulk pin or unpin takes: the meaning of GET /api/v1/traces's parameters of the same names. */
export interface PinFilter {
  /** Traces whose id starts with this (matched literally). */
  trace_prefix?: string | undefined;
  /** Inclusive lower bound on created_at, RFC 3339. */
  since?: string | undefined;
  /** Exclusive upper bound on created_at, RFC 3339. */
  until?: string | undefined;
  /** At most this many traces, newest first by (created_at, trace_id); at most MAX_BULK_PINS. */
  limit: number;
}

export interface BulkPinResult {
  /** Stored traces that match the filter. */
  matched: number;
  /** Traces this request pinned for the first time. */
  pinned: number;
  /** Traces that were pinned already; their copies were refreshed. */
  already_pinned: number;
  /** True when more traces matched than the limit: the newest `limit` were pinned. */
  truncated: boolean;
  limit: number;
}

export interface BulkUnpinResult {
  /** Pinned traces that match the filter (their copies). */
  matched: number;
  unpinned: number;
  /** True when more pinned traces matched than the limit: the newest `limit` were unpinned. */
  truncated: boolean;
  limit: number;
}

/** The most traces one bulk pin or unpin takes. */
export const MAX_BULK_PINS = 10_000;
/** Traces per transaction of a bulk pin or unpin, so that none holds its locks long. */
export const PIN_BATCH_TRACES = 500;

/** Pins and unpins traces; the pinned traces are read through the QueryStore. */
export interface PinStore {
  /** Pins a trace or refreshes its pin; null when the trace is neither stored nor pinned. */
  pin(traceId: string, options?: PinOptions): Promise<PinResult | null>;
  /** Unpins a trace and deletes its copies; false when it was not pinned. */
  unpin(traceId: string): Promise<boolean>;
  /** Pins the stored traces matching the filter (newest first, up to its limit), in batches. */
  pinMatching(filter: PinFilter, options?: PinOptions): Promise<BulkPinResult>;
  /** Unpins the pinned traces matching the filter (newest first, up to its limit), in batches. */
  unpinMatching(filter: PinFilter): Promise<BulkUnpinResult>;
  /** How many traces are pinned. */
  countPinned(): Promise<number>;
}

const TRACE_COLUMN_NAMES = TRACE_COLUMNS.split(',').map((c) => c.trim());

// The stored rows of the given traces into the archive. $1 trace ids, $2 pinned_by, $3 note.
// A trace with an archived event no longer stored keeps its archived row (the module comment). Every
// read is bounded by the batch's trace ids (set differences of index ranges): never a scan of a table.
const PIN_TRACES_SQL = `
WITH incomplete AS (
  SELECT DISTINCT trace_id FROM (
    SELECT trace_id, event_id FROM archive_events WHERE trace_id = ANY($1::text[])
    EXCEPT
    SELECT trace_id, event_id FROM swarm_events WHERE trace_id = ANY($1::text[])
  ) dropped
)
INSERT INTO archive_traces (${TRACE_COLUMNS}, pinned_by, note)
SELECT ${TRACE_COLUMNS}, $2::text, $3::text FROM swarm_traces
WHERE trace_id = ANY($1::text[]) AND trace_id NOT IN (SELECT trace_id FROM incomplete)
ON CONFLICT (trace_id) DO UPDATE SET
  ${TRACE_COLUMN_NAMES.filter((c) => c !== 'trace_id')
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(', ')},
  refreshed_at = now(),
  pinned_by = coalesce(EXCLUDED.pinned_by, archive_traces.pinned_by),
  note = coalesce(EXCLUDED.note, archive_traces.note)`;

// A pinned trace whose stored row is gone (or not taken: see above) keeps its copy; its pin's note and
// author still follow the latest pin.
const TOUCH_PINS_SQL = `
UPDATE archive_traces SET pinned_by = coalesce($2, pinned_by), note = coalesce($3, note)
WHERE trace_id = ANY($1::text[]) AND ($2::text IS NOT NULL OR $3::text IS NOT NULL)`;

// Events never change once stored: a copy is added once.
const PIN_EVENTS_SQL = `
INSERT INTO archive_events (trace_id, event_id, source, event_type, "timestamp", metadata, created_at, txid, seq)
SELECT e.trace_id, e.event_id, e.source, e.event_type, e."timestamp", e.metadata, e.created_at, e.txid, e.seq
FROM swarm_events e JOIN archive_traces a ON a.trace_id = e.trace_id
WHERE e.trace_id = ANY($1::text[])
ON CONFLICT (trace_id, event_id) DO NOTHING`;

// A span's content never changes; when it was exported does.
const PIN_SPANS_SQL = `
INSERT INTO archive_spans (trace_id, otel_trace_id, span_id, role, position, span, event_ids, reported, created_at, exported_at)
SELECT s.trace_id, s.otel_trace_id, s.span_id, s.role, s.position, s.span, s.event_ids, s.reported, s.created_at, s.exported_at
FROM otel_spans s JOIN archive_traces a ON a.trace_id = s.trace_id
WHERE s.trace_id = ANY($1::text[])
ON CONFLICT (trace_id, otel_trace_id, span_id) DO UPDATE SET exported_at = EXCLUDED.exported_at`;

const DLQ_COLUMN_NAMES = [
  'dlq_id',
  'subject',
  'original_subject',
  'original_payload',
  'reason',
  'reason_detail',
  'failed_at',
  'retry_count',
  'max_retries',
  'retry_history',
  'source',
  'recoverable',
  'recovered',
  'recovered_at',
  'received_at',
];

// A dead-letter entry is updated in place when it is recovered: the copy follows.
const PIN_DLQ_SQL = `
INSERT INTO archive_dlq (trace_id, ${DLQ_COLUMN_NAMES.join(', ')})
SELECT d.trace_id, ${DLQ_COLUMN_NAMES.map((c) => `d.${c}`).join(', ')}
FROM swarm_dlq d JOIN archive_traces a ON a.trace_id = d.trace_id
WHERE d.trace_id = ANY($1::text[])
ON CONFLICT (trace_id, dlq_id) DO UPDATE SET
  ${DLQ_COLUMN_NAMES.filter((c) => c !== 'dlq_id')
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(', ')}`;

const PINNED_AMONG_SQL = `SELECT trace_id FROM archive_traces WHERE trace_id = ANY($1::text[])`;

const PIN_DETAIL_SQL = `
SELECT a.trace_id, a.pinned_at, a.refreshed_at, a.pinned_by, a.note,
  NOT EXISTS (SELECT 1 FROM swarm_traces t WHERE t.trace_id = a.trace_id) AS archived,
  (SELECT count(*) FROM archive_events e WHERE e.trace_id = a.trace_id)::int AS events,
  (SELECT count(*) FROM archive_spans s WHERE s.trace_id = a.trace_id)::int AS spans,
  (SELECT count(*) FROM archive_dlq d WHERE d.trace_id = a.trace_id)::int AS dlq
FROM archive_traces a WHERE a.trace_id = $1`;

// The filter of a bulk pin or unpin over a table of traces: $1 trace_prefix, $2 since, $3 until.
const FILTER_SQL = `($1::text IS NULL OR starts_with(trace_id, $1))
  AND ($2::timestamptz IS NULL OR created_at >= $2)
  AND ($3::timestamptz IS NULL OR created_at < $3)`;

const matchSql = (table: string) => `
SELECT trace_id FROM ${table} WHERE ${FILTER_SQL}
ORDER BY created_at DESC, trace_id DESC
LIMIT $4`;

const countSql = (table: string) => `SELECT count(*)::int AS n FROM ${table} WHERE ${FILTER_SQL}`;

const UNPIN_SQL = `DELETE FROM archive_traces WHERE trace_id = ANY($1::text[])`;

const COUNT_PINNED_SQL = `SELECT count(*)::int AS n FROM archive_traces`;

// The next pins in trace_id order, after $1 (keyset), $2 at most.
const NEXT_PINS_SQL = `SELECT trace_id FROM archive_traces WHERE trace_id > $1 ORDER BY trace_id LIMIT $2`;

// The pinned traces among $1 whose stored rows hold something their copy does not: an event not copied,
// a span not copied or exported since, a dead letter not copied or recovered since. The row of
// swarm_traces changes only with new events (one flush writes both), so a new event stands for it.
// Set differences of the batch's index ranges, so a round costs what the pinned traces hold, whatever
// the size of the tables.
const STALE_PINS_SQL = `
SELECT DISTINCT trace_id FROM (
  (SELECT trace_id, event_id::text AS k, NULL::timestamptz AS v FROM swarm_events WHERE trace_id = ANY($1::text[])
   EXCEPT
   SELECT trace_id, event_id::text, NULL FROM archive_events WHERE trace_id = ANY($1::text[]))
  UNION ALL
  (SELECT trace_id, otel_trace_id || '/' || span_id, exported_at FROM otel_spans WHERE trace_id = ANY($1::text[])
   EXCEPT
   SELECT trace_id, otel_trace_id || '/' || span_id, exported_at FROM archive_spans WHERE trace_id = ANY($1::text[]))
  UNION ALL
  (SELECT trace_id, dlq_id || '/' || recovered::text, recovered_at FROM swarm_dlq WHERE trace_id = ANY($1::text[])
   EXCEPT
   SELECT trace_id, dlq_id || '/' || recovered::text, recovered_at FROM archive_dlq WHERE trace_id = ANY($1::text[]))
) stale`;

/** How many traces are pinned (GET /api/v1/retention shows it). */
export async function countPinned(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(COUNT_PINNED_SQL);
  return rows[0]!.n;
}

/** What one refresh of the pinned copies did. */
export interface RefreshResult {
  /** Pinned traces looked at (every one). */
  checked: number;
  /** Those whose stored rows held something new, pinned again. */
  refreshed: number;
}

/**
 * Pins again every pinned trace whose stored rows hold something its copy does not (what reached it
 * after its latest pin), in batches of `batchTraces` pins, each batch its own transactions. Walks the
 * pins in trace_id order, so pins added meanwhile are seen by this round or the next.
 */
export async function refreshPinned(
  pool: pg.Pool,
  options: { batchTraces?: number; signal?: AbortSignal } = {},
): Promise<RefreshResult> {
  const batchTraces = options.batchTraces ?? PIN_BATCH_TRACES;
  let after = '';
  let checked = 0;
  let refreshed = 0;
  for (;;) {
    if (options.signal?.aborted) break;
    const ids = (await pool.query<{ trace_id: string }>(NEXT_PINS_SQL, [after, batchTraces])).rows.map(
      (r) => r.trace_id,
    );
    if (ids.length === 0) break;
    checked += ids.length;
    after = ids[ids.length - 1]!;
    const stale = (await pool.query<{ trace_id: string }>(STALE_PINS_SQL, [ids])).rows.map((r) => r.trace_id);
    if (stale.length > 0) {
      await pinBatch(pool, stale, {});
      refreshed += stale.length;
    }
  }
  return { checked, refreshed };
}

// serialization_failure (two pins of one trace at once under REPEATABLE READ) and deadlock_detected.
const RETRIED_CODES = new Set(['40001', '40P01']);
const MAX_ATTEMPTS = 10;

/** Runs `work` again (after a short random pause) when it failed to serialize with a concurrent pin. */
async function withRetry<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code !== 'string' || !RETRIED_CODES.has(code) || attempt >= MAX_ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
    }
  }
}

/** Pins the given traces in one transaction; returns the ids that were pinned before it. */
async function pinBatch(pool: pg.Pool, traceIds: string[], options: PinOptions): Promise<Set<string>> {
  return withRetry(() =>
    withTransaction(
      pool,
      async (client) => {
        const before = await client.query<{ trace_id: string }>(PINNED_AMONG_SQL, [traceIds]);
        const params = [traceIds, options.pinnedBy ?? null, options.note ?? null];
        await client.query(TOUCH_PINS_SQL, params);
        await client.query(PIN_TRACES_SQL, params);
        await client.query(PIN_EVENTS_SQL, [traceIds]);
        await client.query(PIN_SPANS_SQL, [traceIds]);
        await client.query(PIN_DLQ_SQL, [traceIds]);
        return new Set(before.rows.map((r) => r.trace_id));
      },
      'BEGIN ISOLATION LEVEL REPEATABLE READ',
    ),
  );
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const filterValues = (f: PinFilter) => [f.trace_prefix ?? null, f.since ?? null, f.until ?? null];

export function createPinStore(pool: pg.Pool, options: { batchTraces?: number } = {}): PinStore {
  const batchTraces = options.batchTraces ?? PIN_BATCH_TRACES;

  const detail = async (traceId: string) =>
    (await pool.query<Omit<PinResult, 'created'>>(PIN_DETAIL_SQL, [traceId])).rows[0];

  return {
    async pin(traceId, pinOptions = {}) {
      const before = await pinBatch(pool, [traceId], pinOptions);
      const row = await detail(traceId);
      // Not stored and not pinned (or unpinned meanwhile): nothing to pin.
      if (row === undefined) return null;
      return { ...row, created: !before.has(traceId) };
    },

    async unpin(traceId) {
      const { rowCount } = await pool.query(UNPIN_SQL, [[traceId]]);
      return (rowCount ?? 0) > 0;
    },

    async pinMatching(filter, pinOptions = {}) {
      const values = filterValues(filter);
      const matched = (await pool.query<{ n: number }>(countSql('swarm_traces'), values)).rows[0]!.n;
      const ids = (
        await pool.query<{ trace_id: string }>(matchSql('swarm_traces'), [...values, filter.limit])
      ).rows.map((r) => r.trace_id);
      let pinned = 0;
      let alreadyPinned = 0;
      for (const batch of chunks(ids, batchTraces)) {
        const before = await pinBatch(pool, batch, pinOptions);
        const now = new Set(
          (await pool.query<{ trace_id: string }>(PINNED_AMONG_SQL, [batch])).rows.map((r) => r.trace_id),
        );
        for (const id of now) {
          if (before.has(id)) alreadyPinned++;
          else pinned++;
        }
      }
      return {
        matched,
        pinned,
        already_pinned: alreadyPinned,
        truncated: matched > filter.limit,
        limit: filter.limit,
      };
    },

    async unpinMatching(filter) {
      const values = filterValues(filter);
      const matched = (await pool.query<{ n: number }>(countSql('archive_traces'), values)).rows[0]!.n;
      const ids = (
        await pool.query<{ trace_id: string }>(matchSql('archive_traces'), [...values, filter.limit])
      ).rows.map((r) => r.trace_id);
      let unpinned = 0;
      for (const batch of chunks(ids, batchTraces)) {
        unpinned += (await pool.query(UNPIN_SQL, [batch])).rowCount ?? 0;
      }
      return { matched, unpinned, truncated: matched > filter.limit, limit: filter.limit };
    },

    countPinned: () => countPinned(pool),
  };
}
