/**
 * Overload: HTTP and NATS traffic faster than Postgres can take (Postgres behind a TCP proxy that delays
 * every chunk sent to it, as a distant or saturated server would) for 30 s. Nothing acknowledged may be
 * lost, JetStream pulling pauses, HTTP answers 429 with Retry-After, and peak RSS stays under a ceiling.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ChronicleTestEnv, createChronicleTestEnv, sleep } from '../support/chronicle.js';
import { killAllChronicleProcesses, metricValue, waitReady } from './chronicle-process.js';
import { generateTraffic } from '../support/generate.js';
import { DATABASE_URL, describeWithServices } from '../support/services.js';
import { type TcpProxy, startTcpProxy } from '../support/tcp-proxy.js';
import {
  RECENT_DAY,
  expectStoredExactly,
  percentile,
  postSteadily,
  publishSteadily,
  sampleEvery,
  startOn,
  waitDrained,
} from './harness.js';
import { byProfile, mib, recordResult, secondsOf } from './profile.js';

/** The peak RSS the scenario allows Chronicle (BUFFER_MAX_SIZE 3000, default BUFFER_MAX_BYTES 64 MiB). */
export const RSS_CEILING_MIB = 400;

describeWithServices('reliability - overload', () => {
  let env: ChronicleTestEnv;
  let pgProxy: TcpProxy;

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    const target = new URL(DATABASE_URL);
    pgProxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  });

  afterAll(async () => {
    await killAllChronicleProcesses();
    await pgProxy?.close();
    await env?.cleanup();
  });

  it('traffic faster than Postgres takes: nothing acknowledged lost, JetStream pauses, HTTP 429 with Retry-After, RSS under the ceiling', async () => {
    const started = Date.now();
    const overloadMillis = byProfile({ ci: 10_000, full: 30_000 });
    const latencyMillis = 80;
    const viaProxy = new URL(env.db.url);
    viaProxy.port = String(pgProxy.port);
    const proc = await startOn(env, {
      DATABASE_URL: viaProxy.toString(),
      BUFFER_MAX_SIZE: '3000',
      BATCH_FLUSH_THRESHOLD: '500',
      FLUSH_CONCURRENCY: '2',
    });
    await waitReady(proc);
    const httpEvents = generateTraffic(31, { firstDay: RECENT_DAY, tasks: 40_000, days: 3 }).map((e) => ({
      ...e,
      trace_id: `over-h-${e.trace_id}`,
    }));
    const natsEvents = generateTraffic(32, { firstDay: RECENT_DAY, tasks: 40_000, days: 3 }).map((e) => ({
      ...e,
      trace_id: `over-n-${e.trace_id}`,
    }));

    pgProxy.setLatency(latencyMillis);
    const paused = sampleEvery(200, () => metricValue(proc, 'chronicle_jetstream_paused'));
    const rss = sampleEvery(500, () => Promise.resolve(proc.peakRssBytes()));
    // The short profile posts harder (32 requests of 500 in flight against a 3,000-event buffer), so its
    // 10 s always meet a full buffer; the full profile's 30 s do with 8 requests of 200.
    const httpClients = byProfile({ ci: 32, full: 8 });
    const poster = postSteadily(proc.url, httpEvents, {
      perSecond: 0,
      concurrency: httpClients,
      batchEvents: byProfile({ ci: 500, full: 200 }),
    });
    const publisher = publishSteadily(env, natsEvents, 2_000);
    await sleep(overloadMillis);
    poster.stop();
    publisher.stop();
    await Promise.all([poster.done, publisher.done]);
    const trafficEndedAt = Date.now();
    await paused.stop();

    pgProxy.setLatency(0);
    const accepted = [...poster.accepted, ...publisher.acked];
    await waitDrained(env, accepted.length, 300_000);
    const drainMillis = Date.now() - trafficEndedAt;
    await rss.stop();
    const peakRss = Math.max(proc.peakRssBytes(), ...rss.values);

    expect(proc.running()).toBe(true);
    await expectStoredExactly(env.db.pool, accepted);
    // Only 200 and 429, every 429 with Retry-After; pulling paused at least once while the buffer was full.
    expect([...poster.statuses.keys()].sort()).toEqual([200, 429]);
    expect(poster.withoutRetryAfter).toBe(0);
    expect(paused.values.some((v) => v > 0)).toBe(true);
    expect(mib(peakRss)).toBeLessThan(RSS_CEILING_MIB);

    recordResult(
      {
        scenario: 'Overload: HTTP and NATS faster than Postgres takes',
        asserted:
          `For the overload, Postgres sits behind a proxy adding ${latencyMillis} ms to every chunk sent to it. ` +
          'HTTP is answered only 200 or 429, every 429 with Retry-After (the client retries after it); ' +
          'chronicle_jetstream_paused reads 1 during the overload; afterwards swarm_events holds exactly the ' +
          'events answered 200 plus those acked by JetStream, with reference traces and metrics; peak RSS ' +
          `stays under ${RSS_CEILING_MIB} MiB.`,
        figures: {
          overload_s: secondsOf(overloadMillis),
          postgres_added_latency_ms: latencyMillis,
          buffer_max_size: 3000,
          http_clients: httpClients,
          http_events_accepted: poster.accepted.length,
          http_200: poster.statuses.get(200) ?? 0,
          http_429: poster.statuses.get(429) ?? 0,
          http_p95_ms_accepted: percentile(poster.latencies, 95),
          nats_events_acked: publisher.acked.length,
          jetstream_paused_samples: `${paused.values.filter((v) => v > 0).length} of ${paused.values.length}`,
          events_stored: accepted.length,
          drain_after_traffic_s: secondsOf(drainMillis),
          peak_rss_mib: mib(peakRss),
          rss_ceiling_mib: RSS_CEILING_MIB,
        },
      },
      started,
    );
  });
});
