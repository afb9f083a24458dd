/**
 * kill -9 of Chronicle at random moments under sustained NATS ingest, then a crash loop that spends
 * every delivery of the messages in flight (JETSTREAM_MAX_DELIVER=3, the default) followed by
 * `chronicle replay-rejects`. Nothing published may be missing or stored twice.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT } from '../support/build.js';
import {
  type ChronicleTestEnv,
  createChronicleTestEnv,
  sleep,
  subjectOf,
  waitFor,
} from '../support/chronicle.js';
import { type ChronicleProcess, killAllChronicleProcesses, waitReady } from './chronicle-process.js';
import { createRandom, generateTraffic } from '../support/generate.js';
import { type OtlpBackend, startOtlpBackend } from '../support/otlp-backend.js';
import { describeWithServices } from '../support/services.js';
import {
  RECENT_DAY,
  expectExportedAsStored,
  expectStoredExactly,
  publishSteadily,
  referenceSpans,
  spanContent,
  startOn,
  storedSpans,
  waitDrained,
} from './harness.js';
import { byProfile, mib, recordResult, secondsOf } from './profile.js';

const CLI = 'dist/cli/chronicle.js';

/** Whether this checkout's CLI has `replay-rejects` (built by another part of issue 13). */
function hasReplayRejects(): boolean {
  const help = spawnSync(process.execPath, [CLI, '--help'], { cwd: ROOT, encoding: 'utf8' });
  return `${help.stdout}${help.stderr}`.includes('replay-rejects');
}
const replayRejectsAvailable = hasReplayRejects();

interface ReplaySummary {
  matched: number;
  stored: number;
  duplicates: number;
  invalid: number;
}

function replayRejects(databaseUrl: string, args: string[]): ReplaySummary {
  const out = execFileSync(process.execPath, [CLI, 'replay-rejects', ...args, '--json'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', DATABASE_URL: databaseUrl },
    encoding: 'utf8',
    timeout: 120_000,
  });
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as ReplaySummary;
}

describeWithServices('reliability - kill -9', () => {
  let env: ChronicleTestEnv;
  let backend: OtlpBackend;

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    backend = await startOtlpBackend();
  });

  afterAll(async () => {
    await killAllChronicleProcesses();
    await backend?.close();
    await env?.cleanup();
  });

  it('kill -9 at random moments under sustained NATS ingest: exactly the published set, reference traces, metrics and exported spans', async () => {
    const started = Date.now();
    const seed = Number(process.env.RELIABILITY_SEED ?? started % 1_000_000);
    const rnd = createRandom(seed);
    const kills = byProfile({ ci: 2, full: 6 });
    const perSecond = 300;
    const events = generateTraffic(seed, {
      firstDay: RECENT_DAY,
      ...byProfile({ ci: { tasks: 700 }, full: { tasks: 2500 } }),
    }).map((e) => ({ ...e, trace_id: `k${seed}-${e.trace_id}` }));
    const common = {
      JETSTREAM_ACK_WAIT_MS: '5000',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: backend.url,
      // While the crashes go on, no trace is considered settled, so its spans are built once, from
      // every event, as the reference builds them (an early build would add update spans, also correct).
      SPAN_SETTLE_MS: '600000',
      SPAN_MAX_DELAY_MS: '3600000',
    };

    let proc: ChronicleProcess = await startOn(env, common);
    await waitReady(proc);
    const publisher = publishSteadily(env, events, perSecond);
    const killAtSeconds: number[] = [];
    let peakRss = 0;
    for (let i = 0; i < kills; i++) {
      // A random moment: 1–6 s after the previous start, whether or not it was ready by then.
      await sleep(rnd.int(1_000, 6_000));
      peakRss = Math.max(peakRss, proc.peakRssBytes());
      await proc.kill();
      killAtSeconds.push(secondsOf(Date.now() - started));
      proc = await startOn(env, common);
    }
    await publisher.done;
    expect(publisher.acked).toHaveLength(events.length);
    const publishedAt = Date.now();
    // The last instance settles traces 15 s after their last event (beyond ack_wait, so redeliveries are in).
    await proc.kill();
    proc = await startOn(env, { ...common, SPAN_SETTLE_MS: '15000' });
    await waitReady(proc);
    await waitDrained(env, events.length, 180_000);
    const drainMillis = Date.now() - publishedAt;
    await expectStoredExactly(env.db.pool, events);
    expect((await env.db.pool.query('SELECT 1 FROM chronicle_rejects')).rowCount).toBe(0);

    const reference = await referenceSpans(events);
    await waitFor(
      async () => {
        const pending = await env.db.pool.query('SELECT 1 FROM otel_pending LIMIT 1');
        const stored = await storedSpans(env.db.pool);
        return pending.rowCount === 0 && stored.length >= reference.length && stored.every((s) => s.exported);
      },
      120_000,
      'every span built and exported',
    );
    const stored = await storedSpans(env.db.pool);
    expect(spanContent(stored)).toEqual(spanContent(reference));
    const resent = expectExportedAsStored(stored, backend.received);
    // Deliveries beyond one per message: what the kills left in flight.
    let redelivered = 0;
    for (const stream of ['TASK_EVENTS', 'SYSTEM_EVENTS']) {
      redelivered +=
        (await env.consumerInfo(stream)).delivered.consumer_seq - (await env.streamMessages(stream));
    }
    peakRss = Math.max(peakRss, proc.peakRssBytes());
    await proc.kill();

    recordResult(
      {
        scenario: 'kill -9 under sustained NATS ingest',
        asserted:
          'After the drain, swarm_events holds exactly the acked published set (by event_id, none twice), ' +
          'swarm_traces and agent_metrics equal the reference computed from it, no reject, and the spans ' +
          'stored and received by the OTLP backend equal the span builder run on the same events at once.',
        figures: {
          seed,
          kills: kills + 1,
          kill_at_s: killAtSeconds.join(', '),
          events_published: events.length,
          publish_rate_per_s: perSecond,
          events_stored: events.length,
          messages_redelivered: redelivered,
          drain_after_last_publish_s: secondsOf(drainMillis),
          spans: stored.length,
          spans_sent_again: resent,
          peak_rss_mib: mib(peakRss),
        },
      },
      started,
    );
  });

  it.skipIf(!replayRejectsAvailable)(
    'crash loop at max_deliver with messages in flight, then replay-rejects: nothing missing, a second replay stores nothing',
    async () => {
      const started = Date.now();
      // No instance of the previous test may hold (and keep extending) these messages.
      await killAllChronicleProcesses();
      const maxDeliver = 3;
      // Task events only: all on one stream, so one consumer's counts say where each delivery is.
      const events = generateTraffic(99, { firstDay: RECENT_DAY, tasks: byProfile({ ci: 15, full: 60 }) })
        .filter((e) => e.event_type.startsWith('task.'))
        .map((e) => ({ ...e, trace_id: `loop-${e.trace_id}` }));
      const common = { JETSTREAM_ACK_WAIT_MS: '2000', JETSTREAM_MAX_DELIVER: String(maxDeliver) };
      let proc = await startOn(env, common);
      await waitReady(proc);
      await env.db.pool.query(
        'TRUNCATE swarm_event_ids, swarm_events, swarm_traces, agent_metrics, chronicle_rejects',
      );
      const taskStream = 'TASK_EVENTS';
      const before = (await env.consumerInfo(taskStream)).delivered.consumer_seq;
      const taskEvents = events;

      // The test holds the ledger's lock: every flush waits, so the messages stay in flight.
      const blocker = new pg.Client({ connectionString: env.db.url });
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE swarm_event_ids IN ACCESS EXCLUSIVE MODE');
      try {
        for (const e of events) await env.publish(subjectOf(e), e);
        for (let round = 1; round <= maxDeliver; round++) {
          await waitFor(
            async () => {
              const info = await env.consumerInfo(taskStream);
              return (
                info.num_ack_pending === taskEvents.length &&
                info.delivered.consumer_seq - before >= taskEvents.length * round
              );
            },
            30_000,
            `delivery ${round} of every task event`,
          );
          await proc.kill();
          if (round < maxDeliver) proc = await startOn(env, common);
        }
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      // Every delivery spent; the server's MAX_DELIVERIES advisories wait in CHRONICLE_ADVISORIES.
      proc = await startOn(env, common);
      await waitReady(proc);
      const rejects = async () =>
        (
          await env.db.pool.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM chronicle_rejects WHERE reason = 'max_deliver'`,
          )
        ).rows[0]!.n;
      await waitFor(
        async () => (await rejects()) === taskEvents.length,
        60_000,
        'a max_deliver reject per task event',
      );
      await waitFor(() => env.consumersSettled(), 30_000, 'every message settled');
      const missingBefore = taskEvents.length;

      const first = replayRejects(env.db.url, ['--reason', 'max_deliver']);
      expect(first).toMatchObject({ matched: taskEvents.length, stored: taskEvents.length, invalid: 0 });
      await expectStoredExactly(env.db.pool, events);
      const second = replayRejects(env.db.url, ['--reason', 'max_deliver']);
      expect(second.stored).toBe(0);
      await expectStoredExactly(env.db.pool, events);

      recordResult(
        {
          scenario: 'crash loop at max_deliver, then replay-rejects',
          asserted:
            'With the ledger locked by the test, Chronicle is killed with the task events in flight at each of ' +
            'their 3 deliveries; restarted, it records one max_deliver reject per message; replay-rejects ' +
            'stores every one, after which swarm_events, swarm_traces and agent_metrics equal the reference; ' +
            'a second replay stores 0.',
          figures: {
            events_published: events.length,
            in_flight_at_each_kill: taskEvents.length,
            kills: maxDeliver,
            max_deliver_rejects: missingBefore,
            first_replay_stored: first.stored,
            second_replay_stored: second.stored,
            second_replay_duplicates: second.duplicates,
          },
        },
        started,
      );
    },
  );
});
