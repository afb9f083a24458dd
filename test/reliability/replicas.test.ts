/**
 * Two replicas on the same durables and database give the same tables as one: the same traffic (with
 * duplicates) through one Chronicle on one environment and through two on another.
 */
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { type ChronicleTestEnv, createChronicleTestEnv, waitFor } from '../support/chronicle.js';
import {
  type ChronicleProcess,
  killAllChronicleProcesses,
  metricValue,
  waitReady,
} from './chronicle-process.js';
import { createRandom, generateTraffic } from '../support/generate.js';
import { describeWithServices } from '../support/services.js';
import { storedRows } from '../support/stored-rows.js';
import {
  RECENT_DAY,
  expectStoredExactly,
  publishSteadily,
  referenceSpans,
  spanContent,
  startOn,
  storedSpans,
  waitDrained,
} from './harness.js';
import { byProfile, mib, recordResult, secondsOf } from './profile.js';

async function eventRows(pool: pg.Pool): Promise<unknown[]> {
  const { rows } = await pool.query<Record<string, unknown>>(
    `SELECT event_id, trace_id, source, event_type, "timestamp", metadata FROM swarm_events ORDER BY event_id`,
  );
  return rows;
}

describeWithServices('reliability - replicas', () => {
  const envs: ChronicleTestEnv[] = [];

  beforeAll(async () => {
    envs.push(await createChronicleTestEnv(), await createChronicleTestEnv());
  });

  afterAll(async () => {
    await killAllChronicleProcesses();
    for (const env of envs) await env.cleanup();
  });

  /** Publishes `published` to `env` with `replicas` Chronicles on it; spans are built once all is in. */
  async function run(
    env: ChronicleTestEnv,
    replicas: number,
    published: readonly CanonicalEvent[],
    distinct: number,
  ): Promise<{ drainMillis: number; peakRss: number; storedBy: number[] }> {
    const hold = { SPAN_SETTLE_MS: '600000', SPAN_MAX_DELAY_MS: '3600000' };
    let procs: ChronicleProcess[] = [];
    for (let i = 0; i < replicas; i++) procs.push(await startOn(env, hold));
    for (const p of procs) await waitReady(p);
    const started = Date.now();
    const publisher = publishSteadily(env, published, 1_000);
    await publisher.done;
    await waitDrained(env, distinct, 120_000);
    const drainMillis = Date.now() - started;
    let peakRss = Math.max(...procs.map((p) => p.peakRssBytes()));
    const storedBy = await Promise.all(procs.map((p) => metricValue(p, 'chronicle_events_stored_total')));
    // The same replicas again, now settling traces at once: they build the spans side by side.
    for (const p of procs) await p.stop();
    procs = [];
    for (let i = 0; i < replicas; i++) procs.push(await startOn(env, { SPAN_SETTLE_MS: '0' }));
    await waitFor(
      async () => (await env.db.pool.query('SELECT 1 FROM otel_pending LIMIT 1')).rowCount === 0,
      120_000,
      'every span built',
    );
    peakRss = Math.max(peakRss, ...procs.map((p) => p.peakRssBytes()));
    for (const p of procs) await p.stop();
    return { drainMillis, peakRss, storedBy };
  }

  it('two replicas on the same consumers and database give the same tables as one', async () => {
    const started = Date.now();
    const rnd = createRandom(8);
    const events = generateTraffic(8, {
      firstDay: RECENT_DAY,
      tasks: byProfile({ ci: 600, full: 3000 }),
      agents: 6,
    });
    // About 5 % sent twice, all in a shuffled order.
    const published = rnd.shuffle([...events, ...events.filter(() => rnd.chance(0.05))]);
    const [one, two] = envs as [ChronicleTestEnv, ChronicleTestEnv];
    const single = await run(one, 1, published, events.length);
    const pair = await run(two, 2, published, events.length);

    // Both replicas took their share of the stream, and between them stored each event once.
    expect(pair.storedBy.every((n) => n > 0)).toBe(true);
    expect(pair.storedBy.reduce((a, b) => a + b, 0)).toBe(events.length);
    await expectStoredExactly(one.db.pool, events);
    await expectStoredExactly(two.db.pool, events);
    expect(await eventRows(two.db.pool)).toEqual(await eventRows(one.db.pool));
    expect(await storedRows(two.db.pool)).toEqual(await storedRows(one.db.pool));
    const reference = spanContent(await referenceSpans(events));
    expect(spanContent(await storedSpans(one.db.pool))).toEqual(reference);
    expect(spanContent(await storedSpans(two.db.pool))).toEqual(reference);
    for (const env of envs) {
      expect((await env.db.pool.query('SELECT 1 FROM chronicle_rejects')).rowCount).toBe(0);
    }

    recordResult(
      {
        scenario: 'Two replicas give the same tables as one',
        asserted:
          'The same shuffled traffic with about 5 % duplicates, through one Chronicle and through two sharing ' +
          'the durables and the database: swarm_events, swarm_traces, agent_metrics and otel_spans are equal ' +
          'between the two runs and to the reference, with no reject.',
        figures: {
          events: events.length,
          published_with_duplicates: published.length,
          publish_rate_per_s: 1000,
          one_replica_ingest_s: secondsOf(single.drainMillis),
          two_replicas_ingest_s: secondsOf(pair.drainMillis),
          events_stored_by_each_of_two: pair.storedBy.join(' + '),
          spans: reference.length,
          peak_rss_mib_one: mib(single.peakRss),
          peak_rss_mib_two_max: mib(pair.peakRss),
        },
      },
      started,
    );
  });
});
