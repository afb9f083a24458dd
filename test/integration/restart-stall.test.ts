/**
 * After a crash, the dead process's messages hold the durable's ack-pending slots until their ack
 * deadline passes: a restarted Chronicle stalls that long. Measured here with Chronicle as a process,
 * killed -9 with a full buffer of messages delivered and unacked; and the other side of a short
 * ack_wait: a Postgres outage far longer than max_deliver × ack_wait spends no delivery.
 *
 * CHRONICLE_STALL_ACK_WAIT_MS runs the measurement with another JETSTREAM_ACK_WAIT_MS (the figure is
 * printed; the default must stay under 10 s).
 */
import { randomUUID } from 'node:crypto';
import { nanos } from 'nats';
import pg from 'pg';
import { afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { buildDist } from '../support/build.js';
import { type ChronicleTestEnv, createChronicleTestEnv, sleep, waitFor } from '../support/chronicle.js';
import { killChronicleProcesses, startChronicleProcess } from '../support/chronicle-process.js';
import { DATABASE_URL, describeWithServices } from '../support/services.js';

const BUFFER = 2_000;
const ACK_WAIT_ENV: Record<string, string> = process.env.CHRONICLE_STALL_ACK_WAIT_MS
  ? { JETSTREAM_ACK_WAIT_MS: process.env.CHRONICLE_STALL_ACK_WAIT_MS }
  : {};
const PROCESS_ENV = { BUFFER_MAX_SIZE: String(BUFFER), BATCH_FLUSH_INTERVAL_MS: '50', ...ACK_WAIT_ENV };

beforeAll(() => {
  buildDist();
}, 120_000);

function events(n: number, prefix: string) {
  return Array.from({ length: n }, (_, i) => ({
    subject: 'swarm.task.created',
    payload: {
      event_id: randomUUID(),
      trace_id: `${prefix}-${i}`,
      source: 'test',
      event_type: 'task.created',
    },
  }));
}

describeWithServices('restart stall', () => {
  let env: ChronicleTestEnv;

  beforeEach(async () => {
    env = await createChronicleTestEnv();
  });

  afterEach(async () => {
    await killChronicleProcesses();
    await env?.cleanup();
  });

  const storedCount = async (): Promise<number> =>
    (
      await env.db.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM swarm_events WHERE trace_id <> 'chronicle'",
      )
    ).rows[0]!.n;

  it('restart stall - after kill -9 with a full buffer in flight, the restarted Chronicle stores within 10 s', async () => {
    // Streams and durables in place first, as an older Chronicle left them (ack_wait 30 s).
    await (
      await startChronicleProcess(env.db.url, env.namespace, {
        ...PROCESS_ENV,
        JETSTREAM_ACK_WAIT_MS: '30000',
      })
    ).stop();
    expect((await env.consumerInfo('TASK_EVENTS')).config.ack_wait).toBe(nanos(30_000));
    const published = events(BUFFER + BUFFER / 2, 'stall');
    const locker = new pg.Client({ connectionString: env.db.url });
    await locker.connect();
    try {
      // Writes block: the process holds a full buffer (max_ack_pending) delivered and unacked.
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE swarm_event_ids IN ACCESS EXCLUSIVE MODE');
      await env.publishBulk(published);
      const doomed = await startChronicleProcess(env.db.url, env.namespace, PROCESS_ENV, { ready: false });
      await waitFor(
        async () => (await env.consumerInfo('TASK_EVENTS')).num_ack_pending === BUFFER,
        30_000,
        `${BUFFER} messages in flight`,
      );
      await doomed.kill();
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }

    const restarted = await startChronicleProcess(env.db.url, env.namespace, PROCESS_ENV);
    const ready = Date.now();
    // The durable was updated to the configured ack_wait on start.
    const ackWaitMillis = Number(ACK_WAIT_ENV.JETSTREAM_ACK_WAIT_MS ?? 5_000);
    expect((await env.consumerInfo('TASK_EVENTS')).config.ack_wait).toBe(nanos(ackWaitMillis));
    await waitFor(async () => (await storedCount()) > 0, 60_000, 'the first event stored after the restart');
    const stallMillis = Date.now() - ready;
    console.log(
      `restart stall: ${stallMillis} ms from /ready to the first event stored (JETSTREAM_ACK_WAIT_MS ${ACK_WAIT_ENV.JETSTREAM_ACK_WAIT_MS ?? 'default'})`,
    );
    // Everything lands, once.
    await waitFor(async () => (await storedCount()) === published.length, 60_000, 'every event stored');
    await waitFor(() => env.consumersSettled(), 30_000, 'every message settled');
    expect(await storedCount()).toBe(published.length);
    expect((await env.db.pool.query('SELECT 1 FROM chronicle_rejects')).rowCount).toBe(0);
    await restarted.stop();
    if (ACK_WAIT_ENV.JETSTREAM_ACK_WAIT_MS === undefined) expect(stallMillis).toBeLessThan(10_000);
  }, 180_000);

  it('Postgres outage of 2 × max_deliver × ack_wait - no delivery is spent, every message lands once', async () => {
    const ackWaitMillis = Number(ACK_WAIT_ENV.JETSTREAM_ACK_WAIT_MS ?? 5_000);
    const chronicle = await startChronicleProcess(env.db.url, env.namespace, {
      ...PROCESS_ENV,
      JETSTREAM_MAX_DELIVER: '2',
    });
    const published = events(500, 'outage');
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE ${env.db.name} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [
        env.db.name,
      ]);
      await env.publishBulk(published);
      await waitFor(
        async () => (await env.consumerInfo('TASK_EVENTS')).num_ack_pending === published.length,
        10_000,
        'every message delivered and held',
      );
      // Four ack_waits: without working() every message would be exhausted twice over by now.
      await sleep(2 * 2 * ackWaitMillis);
      const info = await env.consumerInfo('TASK_EVENTS');
      expect(info.num_redelivered).toBe(0);
      expect(info.delivered.consumer_seq).toBe(published.length);
    } finally {
      await admin.query(`ALTER DATABASE ${env.db.name} ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    await waitFor(async () => (await storedCount()) === published.length, 60_000, 'every event stored');
    await waitFor(() => env.consumersSettled(), 30_000, 'every message settled');
    const info = await env.consumerInfo('TASK_EVENTS');
    expect(info.num_redelivered).toBe(0);
    expect(info.delivered.consumer_seq).toBe(published.length);
    expect((await env.db.pool.query('SELECT 1 FROM chronicle_rejects')).rowCount).toBe(0);
    await chronicle.stop();
  }, 180_000);
});
