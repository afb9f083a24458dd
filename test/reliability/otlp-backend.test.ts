/**
 * The OTLP trace backend down for minutes, then refusing 70 % of requests with 503 (the OpenTelemetry
 * Collector testbed's failing mock backend), while HTTP ingest goes on: ingest is unaffected, every span
 * arrives exactly as stored, the backlog drains.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ChronicleTestEnv, createChronicleTestEnv, sleep, waitFor } from '../support/chronicle.js';
import { killAllChronicleProcesses, waitReady } from './chronicle-process.js';
import { generateTraffic } from '../support/generate.js';
import { type OtlpBackend, startOtlpBackend } from '../support/otlp-backend.js';
import { describeWithPostgres } from '../support/services.js';
import { type TcpProxy, startTcpProxy } from '../support/tcp-proxy.js';
import {
  RECENT_DAY,
  expectExportedAsStored,
  expectStoredExactly,
  percentile,
  postSteadily,
  referenceSpans,
  spanContent,
  startOn,
  storedSpans,
} from './harness.js';
import { byProfile, mib, recordResult, secondsOf } from './profile.js';

describeWithPostgres('reliability - OTLP backend outage', () => {
  let env: ChronicleTestEnv;
  let backend: OtlpBackend;
  let proxy: TcpProxy;

  beforeAll(async () => {
    env = await createChronicleTestEnv({ nats: false });
    backend = await startOtlpBackend(7);
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(backend.url).port) });
  });

  afterAll(async () => {
    await killAllChronicleProcesses();
    await proxy?.close();
    await backend?.close();
    await env?.cleanup();
  });

  it('backend down for minutes, then failing 70 % with 503: ingest unaffected, every span arrives as stored, the backlog drains', async () => {
    const started = Date.now();
    const baselineMillis = byProfile({ ci: 5_000, full: 20_000 });
    const downMillis = byProfile({ ci: 15_000, full: 180_000 });
    const failingMillis = byProfile({ ci: 10_000, full: 60_000 });
    const perSecond = 100;
    const events = generateTraffic(515, {
      firstDay: RECENT_DAY,
      tasks: byProfile({ ci: 1_500, full: 15_000 }),
      days: 3,
    }).map((e) => ({ ...e, trace_id: `otlp-${e.trace_id}` }));
    const proc = await startOn(env, {
      NATS_URL: 'none',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${proxy.port}/v1/traces`,
      OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
      SPAN_SETTLE_MS: '1000',
    });
    await waitReady(proc);
    const poster = postSteadily(proc.url, events, { perSecond, batchEvents: 20 });

    // Backend up: the baseline ingest latency.
    await sleep(baselineMillis);
    const baseline = poster.latencies.length;
    const pendingAt = async () =>
      (
        await env.db.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM otel_spans WHERE exported_at IS NULL',
        )
      ).rows[0]!.n;

    // Down: connections refused.
    proxy.cut();
    await sleep(downMillis);
    const duringOutage = poster.latencies.length;
    const backlogAtRestore = await pendingAt();

    // Back, but refusing 70 % of requests with 503.
    backend.failRatio = 0.7;
    proxy.restore();
    await sleep(failingMillis);
    poster.stop();
    await poster.done;
    const ingestEndedAt = Date.now();
    expect(poster.statuses).toEqual(new Map([[200, poster.latencies.length]]));
    expect(poster.accepted.length).toBeGreaterThan(0);
    await expectStoredExactly(env.db.pool, poster.accepted);

    const reference = await referenceSpans(poster.accepted);
    await waitFor(
      async () => {
        const pending = await env.db.pool.query('SELECT 1 FROM otel_pending LIMIT 1');
        const stored = await storedSpans(env.db.pool);
        return pending.rowCount === 0 && stored.length >= reference.length && stored.every((s) => s.exported);
      },
      byProfile({ ci: 180_000, full: 600_000 }),
      'the export backlog to drain',
    );
    const drainMillis = Date.now() - ingestEndedAt;
    const stored = await storedSpans(env.db.pool);
    expect(spanContent(stored)).toEqual(spanContent(reference));
    const resent = expectExportedAsStored(stored, backend.received);

    const lat = poster.latencies;
    recordResult(
      {
        scenario: 'OTLP backend down, then failing 70 % with 503, under HTTP ingest',
        asserted:
          'Every ingest request during the outage and the failures is answered 200 (none refused, none ' +
          'rejected); swarm_events, swarm_traces and agent_metrics equal the reference of the accepted events; ' +
          'the spans stored equal the span builder run on them at once, each reached the backend with exactly ' +
          'the stored content, and nothing is left to export.',
        figures: {
          backend_up_s: secondsOf(baselineMillis),
          backend_down_s: secondsOf(downMillis),
          backend_failing_70pct_s: secondsOf(failingMillis),
          ingest_rate_per_s: perSecond,
          events_accepted: poster.accepted.length,
          ingest_requests: lat.length,
          ingest_p50_ms_backend_up: percentile(lat.slice(0, baseline), 50),
          ingest_p95_ms_backend_up: percentile(lat.slice(0, baseline), 95),
          ingest_p50_ms_backend_down: percentile(lat.slice(baseline, duringOutage), 50),
          ingest_p95_ms_backend_down: percentile(lat.slice(baseline, duringOutage), 95),
          ingest_p95_ms_backend_failing: percentile(lat.slice(duringOutage), 95),
          spans_waiting_when_backend_came_back: backlogAtRestore,
          export_requests: backend.requests,
          export_requests_refused_503: backend.refused,
          spans: stored.length,
          spans_sent_again: resent,
          backlog_drained_after_ingest_end_s: secondsOf(drainMillis),
          peak_rss_mib: mib(proc.peakRssBytes()),
        },
      },
      started,
    );
  });
});
