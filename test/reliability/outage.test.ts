/**
 * Postgres cut, then NATS cut, mid-stream, each behind a TCP proxy of the test's own (the machine's
 * servers keep running): /ready answers 503 during each cut, the write-failure alert is published while
 * Postgres is gone, and Chronicle recovers with no manual step and exact counts.
 */
import type { Subscription } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WRITE_FAILURE_SUBJECT } from '../../src/chronicle.js';
import { type ChronicleTestEnv, createChronicleTestEnv, sleep, waitFor } from '../support/chronicle.js';
import { killAllChronicleProcesses, waitReady } from './chronicle-process.js';
import { generateTraffic } from '../support/generate.js';
import { DATABASE_URL, NATS_URL, describeWithServices } from '../support/services.js';
import { type TcpProxy, startTcpProxy } from '../support/tcp-proxy.js';
import {
  RECENT_DAY,
  expectStoredExactly,
  publishSteadily,
  sampleEvery,
  startOn,
  waitDrained,
} from './harness.js';
import { byProfile, mib, recordResult, secondsOf } from './profile.js';

describeWithServices('reliability - dependency outages', () => {
  let env: ChronicleTestEnv;
  let pgProxy: TcpProxy;
  let natsProxy: TcpProxy;

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    const pgTarget = new URL(DATABASE_URL);
    pgProxy = await startTcpProxy({ host: pgTarget.hostname, port: Number(pgTarget.port || 5432) });
    const natsTarget = new URL(NATS_URL);
    natsProxy = await startTcpProxy({ host: natsTarget.hostname, port: Number(natsTarget.port || 4222) });
  });

  afterAll(async () => {
    await killAllChronicleProcesses();
    await pgProxy?.close();
    await natsProxy?.close();
    await env?.cleanup();
  });

  it('Postgres cut, then NATS cut, under sustained ingest: /ready 503 during each, the write-failure alert, recovery on its own, exact counts', async () => {
    const started = Date.now();
    const pgCutMillis = byProfile({ ci: 6_000, full: 20_000 });
    const natsCutMillis = byProfile({ ci: 4_000, full: 10_000 });
    const perSecond = 150;
    const events = generateTraffic(4242, {
      firstDay: RECENT_DAY,
      tasks: byProfile({ ci: 900, full: 2000 }),
    }).map((e) => ({
      ...e,
      trace_id: `cut-${e.trace_id}`,
    }));
    const viaProxy = new URL(env.db.url);
    viaProxy.port = String(pgProxy.port);
    const proc = await startOn(env, {
      DATABASE_URL: viaProxy.toString(),
      NATS_URL: `nats://127.0.0.1:${natsProxy.port}`,
    });
    await waitReady(proc);

    const alerts: unknown[] = [];
    const subscription: Subscription = env.nc!.subscribe(
      `${env.namespace.toLowerCase()}${WRITE_FAILURE_SUBJECT}`,
      { callback: (_err, msg) => alerts.push(msg.json()) },
    );
    const readiness = sampleEvery(250, async () => ({
      at: Date.now(),
      status: (await fetch(`${proc.url}/ready`, { signal: AbortSignal.timeout(2_000) })).status,
    }));
    const publisher = publishSteadily(env, events, perSecond);
    const statusesBetween = (from: number, to: number) =>
      readiness.values.filter((v) => v.at >= from && v.at <= to).map((v) => v.status);
    const waitStatus = async (status: number, after: number) => {
      await waitFor(
        () => readiness.values.some((v) => v.at > after && v.status === status),
        90_000,
        `/ready ${status}`,
      );
      return readiness.values.find((v) => v.at > after && v.status === status)!.at;
    };

    // Postgres.
    await sleep(2_000);
    const pgCutAt = Date.now();
    pgProxy.cut();
    const pgNotReadyAt = await waitStatus(503, pgCutAt);
    await waitFor(() => alerts.length > 0, pgCutMillis + 5_000, 'the write_failure alert');
    const alertAfterMillis = Date.now() - pgCutAt;
    await sleep(Math.max(0, pgCutMillis - (Date.now() - pgCutAt)));
    const pgRestoredAt = Date.now();
    const alertsDuringPgCut = alerts.length;
    pgProxy.restore();
    const pgReadyAt = await waitStatus(200, pgRestoredAt);
    expect(statusesBetween(pgNotReadyAt, pgRestoredAt).every((s) => s === 503)).toBe(true);

    // NATS.
    await sleep(2_000);
    const natsCutAt = Date.now();
    natsProxy.cut();
    const natsNotReadyAt = await waitStatus(503, natsCutAt);
    await sleep(Math.max(0, natsCutMillis - (Date.now() - natsCutAt)));
    const natsRestoredAt = Date.now();
    natsProxy.restore();
    const natsReadyAt = await waitStatus(200, natsRestoredAt);
    expect(statusesBetween(natsNotReadyAt, natsRestoredAt).every((s) => s === 503)).toBe(true);

    await publisher.done;
    expect(publisher.acked).toHaveLength(events.length);
    const drainMillis = await waitDrained(env, events.length, 120_000);
    await readiness.stop();
    await subscription.drain();
    expect(proc.running()).toBe(true);
    await expectStoredExactly(env.db.pool, events);
    // One alert for a cut shorter than a minute (3 failures in a row, then at most one a minute), and
    // each alert published is also stored, once, as an event of trace `chronicle`.
    expect(alertsDuringPgCut).toBe(1);
    const storedAlerts = await env.db.pool.query(`SELECT 1 FROM swarm_events WHERE trace_id = 'chronicle'`);
    expect(storedAlerts.rowCount).toBe(alerts.length);
    const notReady = readiness.values.filter((v) => v.status === 503).length;

    recordResult(
      {
        scenario: 'Postgres cut, then NATS cut (TCP proxies), under sustained NATS ingest',
        asserted:
          '/ready answers 503 from shortly after each cut until it ends, 200 again after it with the same ' +
          'process (no restart, no manual step); the write_failure alert is published once during the Postgres ' +
          'cut and stored as an event; afterwards swarm_events holds exactly the acked published set and ' +
          'swarm_traces and agent_metrics equal the reference.',
        figures: {
          events_published: events.length,
          publish_rate_per_s: perSecond,
          postgres_cut_s: secondsOf(pgCutMillis),
          postgres_cut_to_ready_503_s: secondsOf(pgNotReadyAt - pgCutAt),
          postgres_cut_to_alert_s: secondsOf(alertAfterMillis),
          alerts_published: alerts.length,
          postgres_restore_to_ready_200_s: secondsOf(pgReadyAt - pgRestoredAt),
          nats_cut_s: secondsOf(natsCutMillis),
          nats_cut_to_ready_503_s: secondsOf(natsNotReadyAt - natsCutAt),
          nats_restore_to_ready_200_s: secondsOf(natsReadyAt - natsRestoredAt),
          ready_503_answers: notReady,
          drain_after_last_publish_s: secondsOf(drainMillis),
          events_stored: events.length,
          peak_rss_mib: mib(proc.peakRssBytes()),
        },
      },
      started,
    );
  });
});
