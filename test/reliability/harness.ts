/**
 * What the fault scenarios share: Chronicle as a process on a test environment's database and NATS
 * namespace, acked publishing at a steady rate, waiting for the drain, and the reference every outcome
 * is compared with (test/support/reference.ts for traces and metrics, the span builder on a fresh
 * database for spans).
 */
import type pg from 'pg';
import { expect } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import type { SpanRecord } from '../../src/events/span-record.js';
import { type ChronicleTestEnv, sleep, subjectOf, waitFor } from '../support/chronicle.js';
import { type ChronicleProcess, startChronicleProcess } from './chronicle-process.js';
import { createTestDatabase } from '../support/db.js';
import { referenceRows } from '../support/reference.js';
import { NATS_URL } from '../support/services.js';
import { storeWithSpans } from '../support/spans.js';
import { storedRows } from '../support/stored-rows.js';

/**
 * The first day of a scenario's traffic: three days ago (UTC), within the default retention, so the
 * maintenance pass that runs a minute after each start (moving those days out of the default
 * partition while the fault goes on) keeps every event the reference expects.
 */
export const RECENT_DAY = new Date(Date.now() - 3 * 86_400_000).toISOString().slice(0, 10);

/** Starts Chronicle as a process on `env`'s database and NATS namespace; `extra` adds or overrides. */
export function startOn(
  env: ChronicleTestEnv,
  extra: Record<string, string> = {},
): Promise<ChronicleProcess> {
  return startChronicleProcess({
    DATABASE_URL: env.db.url,
    NATS_URL,
    CHRONICLE_NATS_NAMESPACE: env.namespace,
    ...extra,
  });
}

/** A publisher running in the background: acked JetStream publishes at `perSecond`, in order. */
export interface SteadyPublisher {
  /** Events whose publish was acked by the stream so far. */
  readonly acked: CanonicalEvent[];
  /** Settles once every event is acked (or stop() was called and the publishes in flight ended). */
  readonly done: Promise<void>;
  stop(): void;
}

export function publishSteadily(
  env: ChronicleTestEnv,
  events: readonly CanonicalEvent[],
  perSecond: number,
): SteadyPublisher {
  const acked: CanonicalEvent[] = [];
  let stopped = false;
  const tickMillis = 100;
  const perTick = Math.max(1, Math.round((perSecond * tickMillis) / 1000));
  const done = (async () => {
    for (let i = 0; i < events.length && !stopped; i += perTick) {
      const started = Date.now();
      const chunk = events.slice(i, i + perTick);
      await Promise.all(
        chunk.map(async (e) => {
          await env.publish(subjectOf(e), e);
          acked.push(e);
        }),
      );
      await sleep(Math.max(0, tickMillis - (Date.now() - started)));
    }
  })();
  return {
    acked,
    done,
    stop: () => {
      stopped = true;
    },
  };
}

/** Events stored in swarm_events whose trace id does not start with `chronicle` (Chronicle's own alerts). */
export async function storedEventIds(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `SELECT event_id::text AS id FROM swarm_events WHERE trace_id <> 'chronicle' ORDER BY event_id`,
  );
  return rows.map((r) => r.id);
}

/** Waits until swarm_events holds `count` events (alerts aside) and every durable has settled. */
export async function waitDrained(
  env: ChronicleTestEnv,
  count: number,
  timeoutMillis: number,
): Promise<number> {
  const started = Date.now();
  await waitFor(
    async () =>
      (
        await env.db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM swarm_events WHERE trace_id <> 'chronicle'`,
        )
      ).rows[0]!.n >= count && (await env.consumersSettled()),
    timeoutMillis,
    `${count} events stored and every message settled`,
  );
  return Date.now() - started;
}

/**
 * The exact outcome: swarm_events holds each of `events` once and nothing else (alerts aside), and
 * swarm_traces and agent_metrics equal the reference computed from them.
 */
export async function expectStoredExactly(pool: pg.Pool, events: readonly CanonicalEvent[]): Promise<void> {
  const expectedIds = [...new Set(events.map((e) => e.event_id))].sort();
  expect(await storedEventIds(pool)).toEqual(expectedIds);
  const stored = await storedRows(pool);
  stored.traces = stored.traces.filter((t) => t.trace_id !== 'chronicle');
  stored.metrics = stored.metrics.filter((m) => m.agent_id !== 'chronicle');
  expect(stored).toEqual(referenceRows(events));
}

export interface StoredSpan {
  key: string;
  role: string;
  position: number;
  span: SpanRecord;
  exported: boolean;
}

/** otel_spans (Chronicle's own spans: not those received over OTLP), keyed `traceId/spanId`, sorted. */
export async function storedSpans(pool: pg.Pool): Promise<StoredSpan[]> {
  const { rows } = await pool.query<{ role: string; position: number; span: SpanRecord; exported: boolean }>(
    `SELECT role, position, span, exported_at IS NOT NULL AS exported FROM otel_spans
     WHERE trace_id <> 'chronicle' ORDER BY otel_trace_id, span_id`,
  );
  return rows.map((r) => ({ ...r, key: `${r.span.traceId}/${r.span.spanId}` }));
}

/** The spans the span builder makes from `events` stored at once on a fresh database: the reference. */
export async function referenceSpans(events: readonly CanonicalEvent[]): Promise<StoredSpan[]> {
  const db = await createTestDatabase();
  try {
    await storeWithSpans(db.pool, events);
    return await storedSpans(db.pool);
  } finally {
    await db.drop();
  }
}

/** Spans as compared with the reference: everything but whether they were exported yet. */
export const spanContent = (spans: readonly StoredSpan[]) =>
  spans.map(({ key, role, position, span }) => ({ key, role, position, span }));

/**
 * Each stored span arrived at the backend, as stored (Chronicle's own spans go out with flags 0x101);
 * returns how many arrived more than once (at-least-once export: a crash between the backend's answer
 * and the mark re-sends the same content).
 */
export function expectExportedAsStored(
  stored: readonly StoredSpan[],
  received: readonly SpanRecord[],
): number {
  const byKey = new Map<string, SpanRecord>();
  let repeats = 0;
  for (const s of received) {
    const key = `${s.traceId}/${s.spanId}`;
    const seen = byKey.get(key);
    if (seen) {
      repeats++;
      expect(s, `${key} sent again with other content`).toEqual(seen);
    }
    byKey.set(key, s);
  }
  expect([...byKey.keys()].sort()).toEqual(stored.map((s) => s.key));
  for (const s of stored) expect(byKey.get(s.key), s.key).toEqual({ ...s.span, flags: 0x101 });
  return repeats;
}

/** Polls `sample` every `everyMillis` until stop() and returns the values seen. */
export function sampleEvery<T>(
  everyMillis: number,
  sample: () => Promise<T>,
): { values: T[]; stop(): Promise<void> } {
  const values: T[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        values.push(await sample());
      } catch {
        // a sample that failed (the process is down, a fetch timed out) is simply not taken
      }
      await sleep(everyMillis);
    }
  })();
  return {
    values,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** An HTTP ingest client running in the background (see postSteadily). */
export interface SteadyPoster {
  /** Events of every request answered 200 (each accepted, none rejected). */
  readonly accepted: CanonicalEvent[];
  /** Answers by status (network failures as 0). */
  readonly statuses: Map<number, number>;
  /** Answers 429 or 503 that carried no Retry-After header. */
  readonly withoutRetryAfter: number;
  /** Latency of each request answered 200, in ms. */
  readonly latencies: number[];
  readonly done: Promise<void>;
  /** Stops sending; the requests in flight still end (and count). */
  stop(): void;
}

/**
 * POSTs `events` to /api/v1/events, whole traces per request (about `batchEvents` events), at about
 * `perSecond` events per second over `concurrency` clients (0: as fast as answered). A 429 or 503 is
 * retried after its Retry-After, like a well-behaved client; nothing is counted accepted before its 200.
 */
export function postSteadily(
  url: string,
  events: readonly CanonicalEvent[],
  options: { perSecond: number; concurrency?: number; batchEvents?: number; timeoutMillis?: number },
): SteadyPoster {
  const byTrace = new Map<string, CanonicalEvent[]>();
  for (const e of events) byTrace.set(e.trace_id, [...(byTrace.get(e.trace_id) ?? []), e]);
  const batches: CanonicalEvent[][] = [];
  let batch: CanonicalEvent[] = [];
  for (const trace of byTrace.values()) {
    batch.push(...trace);
    if (batch.length >= (options.batchEvents ?? 20)) {
      batches.push(batch);
      batch = [];
    }
  }
  if (batch.length > 0) batches.push(batch);

  const poster = {
    accepted: [] as CanonicalEvent[],
    statuses: new Map<number, number>(),
    withoutRetryAfter: 0,
    latencies: [] as number[],
  };
  let stopped = false;
  let next = 0;
  const concurrency = options.concurrency ?? 1;
  const client = async () => {
    while (!stopped && next < batches.length) {
      const body = batches[next++]!;
      const intervalMillis =
        options.perSecond > 0 ? (body.length * 1000 * concurrency) / options.perSecond : 0;
      const started = Date.now();
      for (;;) {
        let status = 0;
        let retryAfterMillis = 500;
        try {
          const res = await fetch(`${url}/api/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(options.timeoutMillis ?? 60_000),
          });
          status = res.status;
          const answer = (await res.json()) as { accepted?: number; rejected?: unknown[] };
          if (status === 200) {
            expect(answer.rejected).toEqual([]);
            poster.latencies.push(Date.now() - started);
          }
          const retryAfter = res.headers.get('retry-after');
          if ((status === 429 || status === 503) && retryAfter === null) poster.withoutRetryAfter++;
          if (retryAfter !== null) retryAfterMillis = Number(retryAfter) * 1000;
        } catch {
          // status 0: no answer (refused, reset, timed out): retried like a 503
        }
        poster.statuses.set(status, (poster.statuses.get(status) ?? 0) + 1);
        if (status === 200) {
          poster.accepted.push(...body);
          break;
        }
        if (status !== 0 && status !== 429 && status !== 503) throw new Error(`POST answered ${status}`);
        await sleep(retryAfterMillis);
      }
      await sleep(Math.max(0, intervalMillis - (Date.now() - started)));
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, client)).then(() => undefined);
  return Object.assign(poster, {
    done,
    stop: () => {
      stopped = true;
    },
  });
}

/** The p-th percentile (0–100) of `values`, nearest rank; 0 for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
