import type pg from 'pg';
import type { Component } from '../pipeline/contracts.js';
import { sleep } from '../pipeline/timing.js';
import { uuidV5 } from '../events/uuid.js';
import { withTransaction } from '../db/transaction.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { SpanRecord } from '../events/span-record.js';
import {
  type PlannedSpan,
  type SpanRole,
  type StoredSpan,
  type TraceEvent,
  type TraceSpansOptions,
  type TraceState,
  spansToEmit,
} from './trace-spans.js';

export interface SpanBuilderOptions extends TraceSpansOptions {
  /** Pending traces claimed per round. */
  batchTraces: number;
  /** A trace is built once no flush touched it for this long... */
  settleMillis: number;
  /** ...or once its oldest change has waited this long. */
  maxDelayMillis: number;
  /** How long a trace whose build failed on its own waits before it is tried again. */
  parkMillis: number;
  /** Rounds run at once (each claims different traces). */
  concurrency: number;
  /** Pause between rounds when there is nothing to build. */
  idleMillis: number;
  /**
   * While the oldest change not yet turned into spans is older than this, the builder takes full rounds
   * without pauses even while ingest is busy, so that spans stay current under sustained load. Default:
   * 5 s, and at least settleMillis + 1 s (a change that old is due unless its trace is still busy).
   */
  catchUpLagMillis?: number;
  /** How often the age of the oldest pending change is sampled (default 1 s). */
  lagSampleMillis?: number;
}

export interface SpanBuilderDeps {
  pool: pg.Pool;
  logger: Logger;
  metrics: Metrics;
  /**
   * True while ingest is saturated (a backlog is draining): the builder then takes small rounds with
   * pauses between them, leaving the CPU to ingest, as long as it is not behind (catchUpLagMillis).
   */
  ingestBusy?: () => boolean;
}

/** Traces per round while ingest is busy. */
const BUSY_BATCH_TRACES = 20;

export interface SpanBuilder extends Component {
  /** One round: claims up to `limit` pending traces, stores their new spans; returns how many it built. */
  buildOnce(limit?: number): Promise<number>;
}

// Lock up to $1 traces whose pending rows have settled: no flush touched them for settleMillis (events
// of one trace arriving out of order in a burst give one set of spans, not spans and then updates), or
// that have waited maxDelayMillis (a trace that never goes quiet, like an agent's heartbeats). Traces
// another round (here or on a replica) is building are skipped, not waited for: the lock taken here is
// the per-trace build lock (class 3, which the flush never takes), held until this round commits.
// $4: traces this round already tried (locked and found consumed), left out of a second look.
// Oldest change first: the traces are tried in the order of their oldest pending row, and the lock is
// tried row by row in that order until $1 are held (the sorted subquery, kept apart by OFFSET 0, is
// read in order and the LIMIT stops it). A DISTINCT here lost that order: of the 4 × $1 oldest rows'
// traces, the rounds took the first $1 by id, and an old change of a trace with a late id waited round
// after round while younger ones were built (bench:spans: its age grew a second a second, to 19 s).
const LOCK_SQL = `
WITH oldest AS (
  SELECT trace_id, min(queued_at) AS oldest_at
  FROM (SELECT trace_id, queued_at FROM otel_pending ORDER BY queued_at LIMIT $1 * 4) o
  GROUP BY trace_id
),
settled AS (
  SELECT o.trace_id FROM oldest o
  CROSS JOIN LATERAL (
    SELECT max(p.queued_at) AS latest, min(p.queued_at) AS earliest FROM otel_pending p WHERE p.trace_id = o.trace_id
  ) w
  WHERE (w.latest <= now() - $2 * interval '1 millisecond' OR w.earliest <= now() - $3 * interval '1 millisecond')
    AND o.trace_id <> ALL($4::text[])
  ORDER BY o.oldest_at
  OFFSET 0
)
SELECT trace_id FROM settled WHERE pg_try_advisory_xact_lock(3, hashtext(trace_id)) LIMIT $1`;

// Take the pending rows of the locked traces. A statement of its own, so its snapshot is taken after
// the locks were granted: a round that built one of these traces and released its lock by committing
// is seen, and its consumed rows are not claimed again. (In one statement, a snapshot taken before
// that commit still showed the consumed rows: the round locked traces with nothing left to build and
// returned 0 while other traces waited.)
const TAKE_SQL = `
DELETE FROM otel_pending WHERE trace_id = ANY($1::text[])
RETURNING trace_id, first_at, last_at`;

/** Looks taken per round for traces with rows left: the second one only follows a stale first. */
const CLAIM_ATTEMPTS = 3;

const TRACES_SQL = `
SELECT trace_id, is_task, task_title, owner, status, assigned_agent, created_at, completed_at, duration_ms,
  time_to_pickup_ms, attempts, error, first_event_at, last_event_at
FROM swarm_traces WHERE trace_id = ANY($1::text[])`;

// A task's spans depend on all its events; a trace that is not a task only gets spans for its new
// events (a heartbeat trace can hold a very long history), read in the window the flushes queued.
// Either way the read is bounded in time ($3, $4: the window, or the trace row's first and last event,
// widened by a millisecond), so it probes only the day partitions of swarm_events in the bound.
const EVENTS_SQL = `
SELECT w.trace_id, e.event_id, e.source, e.event_type, e."timestamp", e.metadata
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS w(trace_id, first_at, last_at)
-- LATERAL with OFFSET 0: one index probe per trace, whatever stale statistics of a growing table suggest.
CROSS JOIN LATERAL (
  SELECT x.event_id, x.source, x.event_type, x."timestamp", x.metadata FROM swarm_events x
  WHERE x.trace_id = w.trace_id AND x."timestamp" BETWEEN w.first_at AND w.last_at
  OFFSET 0
) e`;

const STORED_SQL = `
SELECT t.trace_id, s.role, s.position, s.span, s.event_ids, s.reported
FROM unnest($1::text[]) AS t(trace_id)
CROSS JOIN LATERAL (
  SELECT x.role, x.position, x.span, x.event_ids, x.reported FROM otel_spans x
  WHERE x.trace_id = t.trace_id AND x.role NOT IN ('received', 'event')
  OFFSET 0
) s`;

// The age of the oldest pending change: one probe of otel_pending_queued_idx. A parked trace's rows
// are queued in the future and count from then.
const LAG_SQL = `
SELECT greatest(0, coalesce(extract(epoch FROM now() - min(queued_at)), 0))::float8 AS seconds
FROM otel_pending`;

const INSERT_SQL = `
INSERT INTO otel_spans (otel_trace_id, span_id, trace_id, role, position, span, event_ids, reported)
SELECT s.otel_trace_id, s.span_id, s.trace_id, s.role, s.position, s.span, s.event_ids, s.reported
FROM json_to_recordset($1::json) AS s(otel_trace_id text, span_id text, trace_id text, role text,
  position int, span json, event_ids uuid[], reported jsonb)
ORDER BY 1, 2
ON CONFLICT (otel_trace_id, span_id) DO NOTHING
RETURNING 1`;

interface EventRow extends TraceEvent {
  trace_id: string;
}

/** True for the event a span received over OTLP became: that span is forwarded as it is. */
function fromOtlp(event: TraceEvent): boolean {
  const { trace_id: traceId, span_id: spanId } = event.metadata;
  return (
    typeof traceId === 'string' &&
    typeof spanId === 'string' &&
    event.event_id === uuidV5(`otlp:${traceId}:${spanId}`)
  );
}

/**
 * Turns what flushes committed into spans: claims traces queued in otel_pending, reads their state and
 * events, and stores the spans spansToEmit() says are new (docs/spans.md). Out of the ingest path: a
 * flush only appends a row per touched trace.
 *
 * States: idle → running (a loop of rounds; a round that found work is followed at once by the next,
 * otherwise the loop waits idleMillis; while ingest is busy and the builder is not behind, rounds are
 * small with a pause after each; beside them a timer samples the age of the oldest pending change
 * every lagSampleMillis) → stopped (the timer is cleared, the rounds in progress finish).
 */
export function createSpanBuilder(options: SpanBuilderOptions, deps: SpanBuilderDeps): SpanBuilder {
  const { pool, logger, metrics } = deps;
  const stop = new AbortController();
  let loop: Promise<void> | undefined;
  // The traces of the round in progress, and how many rounds still build one trace at a time.
  let claimedIds: string[] = [];
  let singleRounds = 0;
  // The last sampled age of the oldest pending change, in milliseconds.
  let lagMillis = 0;
  let lagTimer: NodeJS.Timeout | undefined;
  let sampling: Promise<void> | undefined;
  const catchUpLagMillis = options.catchUpLagMillis ?? Math.max(5_000, options.settleMillis + 1_000);

  async function readLag(): Promise<void> {
    try {
      const { rows } = await pool.query<{ seconds: number }>(LAG_SQL);
      lagMillis = rows[0]!.seconds * 1000;
      metrics.spanBuildLagSeconds.set(rows[0]!.seconds);
    } catch (err) {
      // The gauge keeps its last value; rounds report an unreachable database.
      logger.debug({ err }, 'cannot sample the span build lag');
    }
  }

  /** One sample at a time: a slow one is not overlapped by the next tick. */
  function sampleLag(): Promise<void> {
    sampling ??= readLag().finally(() => (sampling = undefined));
    return sampling;
  }

  /** A trace whose build fails on its own waits parkMillis before it is tried again. */
  async function park(traceId: string, err: unknown): Promise<void> {
    logger.error(
      { err, trace_id: traceId },
      'building the spans of this trace failed; parked and retried later',
    );
    metrics.spanBuildFailures.inc();
    await pool
      .query(
        `UPDATE otel_pending SET queued_at = now() + $2 * interval '1 millisecond' WHERE trace_id = $1`,
        [traceId, options.parkMillis],
      )
      .catch((parkErr: unknown) => logger.warn({ err: parkErr }, 'could not park a failing trace'));
  }

  async function buildOnce(limit = options.batchTraces): Promise<number> {
    return withTransaction(pool, async (client) => {
      const windows = new Map<string, { first: Date; last: Date }>();
      const tried: string[] = [];
      for (let attempt = 0; attempt < CLAIM_ATTEMPTS && windows.size < limit; attempt++) {
        const locked = (
          await client.query<{ trace_id: string }>(LOCK_SQL, [
            limit - windows.size,
            options.settleMillis,
            options.maxDelayMillis,
            tried,
          ])
        ).rows.map((r) => r.trace_id);
        if (locked.length === 0) break;
        tried.push(...locked);
        const before = windows.size;
        const taken = await client.query<{ trace_id: string; first_at: Date; last_at: Date }>(TAKE_SQL, [
          locked,
        ]);
        for (const row of taken.rows) {
          const w = windows.get(row.trace_id);
          if (!w) windows.set(row.trace_id, { first: row.first_at, last: row.last_at });
          else {
            if (row.first_at < w.first) w.first = row.first_at;
            if (row.last_at > w.last) w.last = row.last_at;
          }
        }
        // Every locked trace still had rows: the snapshot was current, there is nothing to look again for.
        if (windows.size - before === locked.length) break;
      }
      if (windows.size === 0) return 0;
      const ids = [...windows.keys()].sort();
      claimedIds = ids;

      const traces = new Map(
        (
          await client.query<TraceState & { first_event_at: Date; last_event_at: Date }>(TRACES_SQL, [ids])
        ).rows.map((t) => [t.trace_id, t]),
      );
      const present = ids.filter((id) => traces.has(id));
      // A task: all its events, between its row's first and last event (the row is read after the claim,
      // so it covers every event whose change this round claimed). Else the claimed window.
      const bounds = present.map((id) => {
        const trace = traces.get(id)!;
        return trace.is_task
          ? {
              first: new Date(trace.first_event_at.getTime() - 1),
              last: new Date(trace.last_event_at.getTime() + 1),
            }
          : windows.get(id)!;
      });
      const events = await client.query<EventRow>(EVENTS_SQL, [
        present,
        bounds.map((b) => b.first),
        bounds.map((b) => b.last),
      ]);
      const eventsOf = new Map<string, TraceEvent[]>();
      for (const e of events.rows) {
        if (!traces.get(e.trace_id)!.is_task && fromOtlp(e)) continue;
        const list = eventsOf.get(e.trace_id);
        if (list) list.push(e);
        else eventsOf.set(e.trace_id, [e]);
      }

      // Event spans never change, so they are not read back: storing one again is a no-op. A trace
      // that is not a task has no other built spans (spansToEmit), so its spans are not read at all:
      // probing its trace index would step over every event span of its history (an agent's
      // heartbeats: 7.5 ms a build at 6,000 of them, growing with the trace).
      const { rows: stored } = await client.query<{
        trace_id: string;
        role: SpanRole;
        position: number;
        span: SpanRecord;
        event_ids: string[];
        reported: Record<string, string> | null;
      }>(STORED_SQL, [present.filter((id) => traces.get(id)!.is_task)]);
      const storedOf = new Map<string, StoredSpan[]>();
      for (const s of stored) {
        const span: StoredSpan = {
          role: s.role,
          attempt: s.position,
          span: s.span,
          eventIds: s.event_ids,
          ...(s.reported ? { reported: s.reported } : {}),
        };
        const list = storedOf.get(s.trace_id);
        if (list) list.push(span);
        else storedOf.set(s.trace_id, [span]);
      }

      const fresh: (PlannedSpan & { traceId: string })[] = [];
      for (const [i, id] of present.entries()) {
        // Let acks, HTTP answers and flushes run between traces: the mapping is synchronous work.
        if (i > 0 && i % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
        const trace = traces.get(id)!;
        const evs = eventsOf.get(id) ?? [];
        if (evs.length === 0) continue;
        for (const p of spansToEmit(trace, evs, storedOf.get(id) ?? [], options))
          fresh.push({ ...p, traceId: id });
      }
      if (fresh.length > 0) {
        const inserted = await client.query(INSERT_SQL, [
          JSON.stringify(
            fresh.map((p) => ({
              otel_trace_id: p.span.traceId,
              span_id: p.span.spanId,
              trace_id: p.traceId,
              role: p.role,
              position: p.attempt,
              span: p.span,
              event_ids: p.eventIds,
              reported: p.reported ?? null,
            })),
          ),
        ]);
        metrics.spansBuilt.inc(inserted.rowCount ?? 0);
      }
      return ids.length;
    });
  }

  async function run(): Promise<void> {
    while (!stop.signal.aborted) {
      let built = 0;
      // Ingest first while a backlog drains, but never so long that spans fall behind without bound.
      const yieldToIngest = (deps.ingestBusy?.() ?? false) && lagMillis <= catchUpLagMillis;
      try {
        claimedIds = [];
        built = await buildOnce(
          singleRounds > 0
            ? 1
            : yieldToIngest
              ? Math.min(BUSY_BATCH_TRACES, options.batchTraces)
              : options.batchTraces,
        );
        if (singleRounds > 0) singleRounds -= 1;
      } catch (err) {
        // One bad trace must not stop every other: the failed round's traces are retried one at a
        // time, and a trace that fails alone is parked.
        if (claimedIds.length === 1) await park(claimedIds[0]!, err);
        else if (claimedIds.length > 1) singleRounds = claimedIds.length;
        else logger.warn({ err }, 'span build failed; retrying');
      }
      if ((built > 0 && !yieldToIngest) || stop.signal.aborted) continue;
      await sleep(options.idleMillis, stop.signal);
    }
  }

  return {
    name: 'span-builder',
    buildOnce,
    start() {
      // Two loops, so one builds in Node while the other's statements run in Postgres.
      if (loop || stop.signal.aborted) return Promise.resolve();
      // The first rounds know whether the builder is behind.
      loop = sampleLag()
        .then(() => Promise.all(Array.from({ length: options.concurrency }, () => run())))
        .then(() => undefined);
      lagTimer = setInterval(() => void sampleLag(), options.lagSampleMillis ?? 1_000);
      return Promise.resolve();
    },
    async shutdown() {
      stop.abort();
      if (lagTimer) clearInterval(lagTimer);
      await Promise.all([loop, sampling]);
    },
  };
}
