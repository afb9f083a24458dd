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
import { type ChronicleProcess, startChronicleProcess } from '../support/chronicle-process.js';
import { createTestDatabase } from '../support/db.js';
import { referenceRows } from '../support/reference.js';
import { NATS_URL } from '../support/services.js';
import { storeWithSpans } from '../support/spans.js';
import { storedRows } from '../support/stored-rows.js';

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
