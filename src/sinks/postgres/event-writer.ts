import type pg from 'pg';
import { UPDATE_AGENT_METRICS_SQL } from '../../derive/agent-metrics.js';
import { LOCK_CLASS, LOCK_KEYS_SQL } from '../../derive/key-locks.js';
import { RECOMPUTE_TRACES_SQL } from '../../derive/task-state.js';
import { inertForSpans } from '../../events/lifecycle.js';
import { makeReject } from '../../events/normalize.js';
import type { CanonicalEvent, DlqEntry, Reject } from '../../events/schema.js';
import type { Sink, WriteResult } from '../../pipeline/contracts.js';
import { PartialWriteError, RetryableError, classify } from '../../pipeline/errors.js';
import {
  NO_TERMINAL,
  type RecordResult,
  type TerminalCounts,
  type WriteRecord,
} from '../../pipeline/records.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import { withTransaction } from '../../db/transaction.js';
import { ENTER_WRITE_GATE_SQL } from './write-gate.js';

/** The Postgres sink, by the name of what it does (createEventWriter returns it). */
export type EventWriter = Sink;

function addTerminal(a: TerminalCounts, b: TerminalCounts): TerminalCounts {
  return {
    completed: a.completed + b.completed,
    failed: a.failed + b.failed,
    timed_out: a.timed_out + b.timed_out,
  };
}

/** Places the outcome of a failed sub-batch (records[offset..]) into the outcome of its whole batch. */
function widen(err: RetryableError, known: WriteResult | undefined, offset: number, total: number): never {
  const results = new Array<RecordResult | undefined>(total).fill(undefined);
  known?.results.forEach((r, i) => (results[i] = r));
  let terminal = known?.terminalTasks ?? NO_TERMINAL;
  if (err instanceof PartialWriteError) {
    err.results.forEach((r, i) => (results[offset + i] = r));
    terminal = addTerminal(terminal, err.terminalTasks);
  }
  if (results.every((r) => r === undefined)) throw err;
  throw new PartialWriteError(err.message, results, { cause: err }, terminal);
}

export interface EventWriterDeps {
  pool: pg.Pool;
  logger: Logger;
  /** Where each flush's wait for the write gate is observed (none: not measured). */
  metrics?: Pick<Metrics, 'writeGateWaitSeconds'>;
}

/** The change of one agent_metrics key's totals, in METRIC_DELTA_COLUMNS order. */
interface MetricDelta {
  agentId: string;
  day: string;
  counts: number[];
}

const METRIC_DELTA_COLUMNS = [
  'completed',
  'failed',
  'timed_out',
  'duration_count',
  'duration_sum',
  'pickup_count',
  'pickup_sum',
] as const;

/** A row of RECOMPUTE_TRACES_SQL: a metric delta, or (kind terminal) the tasks made terminal, by status. */
type RecomputeRow = { kind: 'metric' | 'terminal'; agent_id: string; metric_date: string } & Record<
  (typeof METRIC_DELTA_COLUMNS)[number],
  number
>;

export const INSERT_EVENTS_SQL = `
WITH batch AS (
  SELECT * FROM json_to_recordset($1::json)
    AS b(event_id uuid, trace_id text, source text, event_type text, "timestamp" timestamptz, metadata jsonb)
),
fresh AS (
  -- Sorted so concurrent writers that share event_ids wait on each other in one order (no deadlock).
  INSERT INTO swarm_event_ids (event_id, "timestamp")
  SELECT event_id, "timestamp" FROM batch ORDER BY event_id
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id
),
stored AS (
  INSERT INTO swarm_events (event_id, trace_id, source, event_type, "timestamp", metadata)
  SELECT b.event_id, b.trace_id, b.source, b.event_type, b."timestamp", b.metadata
  FROM batch b JOIN fresh USING (event_id)
  RETURNING trace_id, "timestamp", chronicle_lifecycle_rank(event_type) IS NOT NULL AS lifecycle,
    CASE WHEN event_type = 'agent.heartbeat' THEN chronicle_heartbeat_agent(metadata, source) END AS heartbeat_agent
)
-- Summaries, not one row per event: per touched trace, the (agent, day) of each heartbeat, and the
-- event_ids that were already stored (the batch itself is deduplicated before it is sent).
SELECT 'trace' AS kind, trace_id AS key, NULL AS day, count(*)::int AS n, min("timestamp") AS first_at,
  max("timestamp") AS last_at, bool_or(lifecycle) AS lifecycle
FROM stored GROUP BY trace_id
UNION ALL
SELECT DISTINCT 'heartbeat', heartbeat_agent, ("timestamp" AT TIME ZONE 'UTC')::date::text, NULL::int, NULL::timestamptz,
  NULL::timestamptz, NULL::boolean
FROM stored WHERE heartbeat_agent IS NOT NULL
UNION ALL
SELECT 'duplicate', b.event_id::text, NULL, NULL, NULL, NULL, NULL
FROM batch b WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.event_id = b.event_id)`;

// A change that can make no span is not queued (on live traffic, the lone task.created of each task: a
// quarter of the builds, bench/build-count.ts). It holds nothing but inert events (no assignment, start
// or end, no event shown at once such as a dead-letter entry or an error: inertForSpans), and its trace
// was, before this flush (read before the recompute, under the flush's key lock), a task with no
// assignment, no start and never a terminal status, or unknown with the change making it a task and no
// span stored for it. Such a task has no ended span to plan (its root ends with it, its attempts begin
// with an assignment or a start) and nothing to report on an update. A trace that was not a task is
// queued: its error may have been built as a span of its own, which only a build as a task shows on an
// update. Its events are not lost to the spans: a task's build reads all its events.
const SPANLESS_SQL = `
SELECT u.trace_id
FROM unnest($1::text[], $2::boolean[]) AS u(trace_id, lifecycle)
LEFT JOIN swarm_traces t ON t.trace_id = u.trace_id
WHERE CASE WHEN t.trace_id IS NULL
  THEN u.lifecycle AND NOT EXISTS (SELECT 1 FROM otel_spans s WHERE s.trace_id = u.trace_id)
  ELSE t.is_task AND t.attempts = 0 AND t.started_at IS NULL AND t.first_terminal_at IS NULL END`;

// After the recompute: every touched trace but those SPANLESS_SQL found ($4), unless the recompute made
// one of them a trace that is not a task (its task events gone with their partitions under retention:
// its new events then become event spans).
const QUEUE_SPAN_BUILD_SQL = `
INSERT INTO otel_pending (trace_id, first_at, last_at)
SELECT u.trace_id, u.first_at, u.last_at
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::boolean[]) AS u(trace_id, first_at, last_at, spanless)
WHERE NOT (u.spanless AND EXISTS (SELECT 1 FROM swarm_traces t WHERE t.trace_id = u.trace_id AND t.is_task))`;

// A span received over OTLP is kept as it came and exported unchanged; a client's retry is a no-op.
const INSERT_RECEIVED_SPANS_SQL = `
INSERT INTO otel_spans (otel_trace_id, span_id, trace_id, role, span)
SELECT r.span ->> 'traceId', r.span ->> 'spanId', r.trace_id, 'received', r.span
FROM json_to_recordset($1::json) AS r(trace_id text, span jsonb)
ORDER BY 1, 2
ON CONFLICT (otel_trace_id, span_id) DO NOTHING`;

const INSERT_REJECTS_SQL = `
INSERT INTO chronicle_rejects (origin, subject, reason, detail, payload, payload_bytes, reject_key,
  payload_encoding, input_time)
SELECT origin, subject, reason, detail, payload, "payloadBytes", "rejectKey", coalesce(encoding, 'utf8'),
  "inputTime"
FROM json_to_recordset($1::json)
  AS r(origin text, subject text, reason text, detail text, payload text, "payloadBytes" int, "rejectKey" text,
    encoding text, "inputTime" timestamptz)
ON CONFLICT (reject_key) DO NOTHING`;

const INSERT_DLQ_SQL = `
INSERT INTO swarm_dlq AS d (dlq_id, trace_id, subject, original_subject, original_payload, reason, reason_detail,
  failed_at, retry_count, max_retries, retry_history, source, recoverable, recovered, recovered_at)
SELECT dlq_id, trace_id, subject, original_subject, original_payload, reason, reason_detail, failed_at,
  retry_count, max_retries, retry_history, source, recoverable, recovered, CASE WHEN recovered THEN now() END
FROM json_to_recordset($1::json) AS r(dlq_id text, trace_id text, subject text, original_subject text,
  original_payload jsonb, reason text, reason_detail text, failed_at timestamptz, retry_count int, max_retries int,
  retry_history jsonb, source text, recoverable boolean, recovered boolean)
ON CONFLICT (dlq_id) DO UPDATE SET recovered = true, recovered_at = now()
  WHERE excluded.recovered AND NOT d.recovered
RETURNING dlq_id`;

export function createEventWriter(deps: EventWriterDeps): Sink {
  const { pool, logger, metrics } = deps;

  async function apply(client: pg.PoolClient, records: readonly WriteRecord[]): Promise<WriteResult> {
    const results: RecordResult[] = new Array<RecordResult>(records.length);
    const rejects: Reject[] = [];
    const dlqEntries = new Map<string, DlqEntry>();
    const events: CanonicalEvent[] = [];
    // The first record with an event_id owns it; later ones in the batch are duplicates.
    const owner = new Map<string, number>();

    records.forEach((record, i) => {
      if (record.kind === 'reject') {
        rejects.push(record.reject);
        results[i] = { status: 'rejected', reason: record.reject.reason, detail: record.reject.detail };
        return;
      }
      if (record.kind === 'dlq') {
        // One row per dlq_id per statement (ON CONFLICT DO UPDATE cannot touch a row twice).
        const seen = dlqEntries.get(record.entry.dlq_id);
        if (seen) seen.recovered ||= record.entry.recovered;
        else dlqEntries.set(record.entry.dlq_id, { ...record.entry });
      }
      const event = record.event;
      if (event === null) return;
      if (owner.has(event.event_id)) {
        results[i] = { status: 'duplicate' };
      } else {
        owner.set(event.event_id, i);
        events.push(event);
      }
    });

    if (events.length > 0) {
      // First, before any lock: a partition change waits for this flush to commit, and holds the next
      // ones back here until it has attached or dropped its partition (src/sinks/postgres/write-gate.ts).
      const started = process.hrtime.bigint();
      await client.query(ENTER_WRITE_GATE_SQL);
      metrics?.writeGateWaitSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }

    // Sorted by key, like events, so concurrent writers sharing keys wait on each other in one order.
    const byKey = (a: string | null, b: string | null): number =>
      (a ?? '') < (b ?? '') ? -1 : a === b ? 0 : 1;
    if (rejects.length > 0) {
      await client.query(INSERT_REJECTS_SQL, [
        JSON.stringify(rejects.sort((a, b) => byKey(a.rejectKey, b.rejectKey))),
      ]);
    }

    let freshDlq = new Set<string>();
    if (dlqEntries.size > 0) {
      const entries = [...dlqEntries.values()].sort((a, b) => byKey(a.dlq_id, b.dlq_id));
      const { rows } = await client.query<{ dlq_id: string }>(INSERT_DLQ_SQL, [JSON.stringify(entries)]);
      freshDlq = new Set(rows.map((r) => r.dlq_id));
    }

    // Per touched trace: new events, earliest and latest new timestamp, whether one is a lifecycle event.
    const touched = new Map<string, { n: number; first: Date; last: Date; lifecycle: boolean }>();
    // Per (agent, day) key of agent_metrics: the change of its totals (zero for a heartbeat's key).
    const metricDeltas = new Map<string, MetricDelta>();
    const deltaOf = (agentId: string, day: string): MetricDelta => {
      const key = `${day}/${agentId}`;
      let delta = metricDeltas.get(key);
      if (delta === undefined) {
        delta = { agentId, day, counts: [0, 0, 0, 0, 0, 0, 0] };
        metricDeltas.set(key, delta);
      }
      return delta;
    };
    const alreadyStored = new Set<string>();
    let terminalTasks: TerminalCounts = NO_TERMINAL;
    if (events.length > 0) {
      const { rows } = await client.query<{
        kind: 'trace' | 'heartbeat' | 'duplicate';
        key: string;
        day: string | null;
        n: number;
        first_at: Date;
        last_at: Date;
        lifecycle: boolean;
      }>(INSERT_EVENTS_SQL, [JSON.stringify(events)]);
      for (const row of rows) {
        if (row.kind === 'trace') {
          touched.set(row.key, {
            n: row.n,
            first: row.first_at,
            last: row.last_at,
            lifecycle: row.lifecycle,
          });
        } else if (row.kind === 'heartbeat') {
          deltaOf(row.key, row.day!);
        } else {
          alreadyStored.add(row.key);
        }
      }
    }

    if (touched.size > 0) {
      const ids = [...touched.keys()].sort();
      const stats = ids.map((id) => touched.get(id)!);
      await client.query(LOCK_KEYS_SQL, [LOCK_CLASS.trace, ids]);
      const active = new Set(events.filter((e) => !inertForSpans(e.event_type)).map((e) => e.trace_id));
      const inert = ids.filter((id) => !active.has(id));
      const spanless = new Set(
        inert.length === 0
          ? []
          : (
              await client.query<{ trace_id: string }>(SPANLESS_SQL, [
                inert,
                inert.map((id) => touched.get(id)!.lifecycle),
              ])
            ).rows.map((r) => r.trace_id),
      );
      const { rows } = await client.query<RecomputeRow>(RECOMPUTE_TRACES_SQL, [
        ids,
        stats.map((t) => t.n),
        stats.map((t) => t.first),
        stats.map((t) => t.last),
        stats.map((t) => t.lifecycle),
      ]);
      for (const row of rows) {
        if (row.kind === 'terminal') {
          terminalTasks = { completed: row.completed, failed: row.failed, timed_out: row.timed_out };
          continue;
        }
        const counts = deltaOf(row.agent_id, row.metric_date).counts;
        METRIC_DELTA_COLUMNS.forEach((column, i) => (counts[i]! += row[column]));
      }
      // The span builder rebuilds these traces' spans after the commit (src/spans/span-builder.ts).
      await client.query(QUEUE_SPAN_BUILD_SQL, [
        ids,
        stats.map((t) => t.first),
        stats.map((t) => t.last),
        ids.map((id) => spanless.has(id)),
      ]);
    }

    if (metricDeltas.size > 0) {
      // Sorted by lock key, so concurrent flushes lock shared keys in one order.
      const keys = [...metricDeltas.keys()].sort();
      const deltas = keys.map((k) => metricDeltas.get(k)!);
      await client.query(LOCK_KEYS_SQL, [LOCK_CLASS.agentDay, keys]);
      await client.query(UPDATE_AGENT_METRICS_SQL, [
        deltas.map((d) => d.agentId),
        deltas.map((d) => d.day),
        ...METRIC_DELTA_COLUMNS.map((_, i) => deltas.map((d) => d.counts[i]!)),
      ]);
    }

    const forwarded =
      events.length > 0 ? records.flatMap((r) => (r.kind === 'event' && r.forward ? [r] : [])) : [];
    if (forwarded.length > 0) {
      await client.query(INSERT_RECEIVED_SPANS_SQL, [
        JSON.stringify(forwarded.map((r) => ({ trace_id: r.event.trace_id, span: r.forward }))),
      ]);
    }

    records.forEach((record, i) => {
      if (results[i] !== undefined) return;
      if (record.kind === 'dlq') {
        results[i] = { status: freshDlq.has(record.entry.dlq_id) ? 'stored' : 'duplicate' };
      } else if (record.kind === 'event') {
        results[i] = { status: alreadyStored.has(record.event.event_id) ? 'duplicate' : 'stored' };
      }
    });
    return { results, terminalTasks };
  }

  async function writeSplitting(records: readonly WriteRecord[]): Promise<WriteResult> {
    try {
      return await withTransaction(pool, (client) => apply(client, records));
    } catch (err) {
      // Only a row the database refuses for its data is isolated (split down to it, then rejected).
      // Anything else (connection, resources, shutdown, and a bug in our own SQL such as a syntax
      // error) is retried with the batch kept whole and alerted on: turning every input into a reject
      // because of a bug would lose nothing but bury everything.
      if (classify(err) !== 'permanent') {
        if (err instanceof RetryableError) throw err;
        throw new RetryableError(`write failed: ${(err as Error).message}`, { cause: err });
      }
      if (records.length > 1) {
        const mid = Math.ceil(records.length / 2);
        // Each half commits on its own; if a later half fails transiently, say what already committed.
        let left: WriteResult | undefined;
        try {
          left = await writeSplitting(records.slice(0, mid));
          const right = await writeSplitting(records.slice(mid));
          return {
            results: [...left.results, ...right.results],
            terminalTasks: addTerminal(left.terminalTasks, right.terminalTasks),
          };
        } catch (splitErr) {
          if (!(splitErr instanceof RetryableError)) throw splitErr;
          widen(splitErr, left, left === undefined ? 0 : mid, records.length);
        }
      }
      const record = records[0]!;
      if (record.kind === 'reject') {
        if (record.reject.reason === 'unstorable') {
          throw new RetryableError(`cannot record reject: ${(err as Error).message}`, { cause: err });
        }
        // Even the reject is refused: keep what certainly stores (ASCII), so the batch can move on.
        logger.error(
          { err, key: record.input.key },
          'reject refused by Postgres; recording it in a safe form',
        );
        const safe: Reject = {
          ...record.reject,
          subject: null,
          reason: 'unstorable',
          detail: `${record.reject.reason}; the reject itself was refused: ${(err as Error).message.replace(/[^\x20-\x7e]/g, '?')}`,
          // Bytes of the payload as held (base64 of base64 when it already was): decoded once, it is.
          payload: Buffer.from(record.reject.payload).toString('base64').slice(0, 65536),
          encoding: 'base64',
        };
        return writeSplitting([{ kind: 'reject', input: record.input, reject: safe }]);
      }
      const detail = `Postgres refused the row: ${(err as Error).message}`;
      logger.warn({ err, key: record.input.key }, 'row refused by Postgres; recorded as reject');
      const value = record.kind === 'event' ? record.event : record.entry;
      const reject = makeReject(
        JSON.stringify(value),
        record.input,
        'write_failed',
        detail,
        // Keyed by what was refused, so a retried or redelivered write records it once.
        record.input.key ??
          (record.kind === 'event'
            ? `write_failed:${record.event.event_id}`
            : `write_failed:dlq:${record.entry.dlq_id}`),
      );
      return writeSplitting([{ kind: 'reject', input: record.input, reject }]);
    }
  }

  return {
    async write(records) {
      if (records.length === 0) return { results: [], terminalTasks: NO_TERMINAL };
      return writeSplitting(records);
    },
  };
}
