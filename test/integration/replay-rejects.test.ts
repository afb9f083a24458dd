/**
 * The crash loop, end to end with Chronicle as a process: messages in flight while it is killed -9
 * three times (max_deliver 3) are recorded as max_deliver rejects with their payloads, and
 * `chronicle replay-rejects` stores exactly the published set, once however often it runs.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { uuidV5 } from '../../src/events/uuid.js';
import { buildDist } from '../support/build.js';
import { type ChronicleTestEnv, createChronicleTestEnv, waitFor } from '../support/chronicle.js';
import {
  chronicleEnv,
  killChronicleProcesses,
  runCliProcess,
  startChronicleProcess,
} from '../support/chronicle-process.js';
import { describeWithServices } from '../support/services.js';

const ACK_WAIT_MS = 2_000;
const PROCESS_ENV = {
  JETSTREAM_MAX_DELIVER: '3',
  JETSTREAM_ACK_WAIT_MS: String(ACK_WAIT_MS),
  BATCH_FLUSH_INTERVAL_MS: '20',
};

interface ReplayJson {
  matched: number;
  stored: number;
  duplicates: number;
  invalid: number;
  skipped: number;
}

beforeAll(() => {
  buildDist();
}, 120_000);

describeWithServices('replay-rejects', () => {
  let env: ChronicleTestEnv;

  beforeEach(async () => {
    env = await createChronicleTestEnv();
  });

  afterEach(async () => {
    await killChronicleProcesses();
    await env?.cleanup();
  });

  async function replayCli(args: string[]): Promise<ReplayJson> {
    const result = await runCliProcess(
      ['replay-rejects', '--json', ...args],
      chronicleEnv(env.db.url, env.namespace),
    );
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    return JSON.parse(lines[0]!) as ReplayJson;
  }

  it('crash loop - messages killed in flight 3 times become max_deliver rejects, and a replay stores each once', async () => {
    const stream = env.streamName('TASK_EVENTS');
    // Half carry their own id and time; the other half get both from the message (stream, sequence, time).
    const withId = Array.from({ length: 3 }, (_, i) => ({
      event_id: randomUUID(),
      trace_id: `crash-${i}`,
      source: 'test',
      event_type: 'task.created',
      timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      metadata: { n: i },
    }));
    const withoutId = Array.from({ length: 3 }, (_, i) => ({
      trace_id: `crash-bare-${i}`,
      metadata: { n: i },
    }));
    const expected: { event_id: string; trace_id: string; timestamp: string }[] = [];
    // The stream is created by Chronicle: start once (writes working) so the topology exists.
    const first = await startChronicleProcess(env.db.url, env.namespace, PROCESS_ENV);
    await first.stop();

    // Writes block from here: Chronicle holds every message delivered and unacked until it is killed.
    const locker = new pg.Client({ connectionString: env.db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE swarm_event_ids IN ACCESS EXCLUSIVE MODE');
      for (const e of withId) {
        await env.publish('swarm.task.created', e);
        expected.push({ event_id: e.event_id, trace_id: e.trace_id, timestamp: e.timestamp });
      }
      for (const e of withoutId) {
        const ack = await env.publish('swarm.task.started', e);
        const stored = await env.jsm().streams.getMessage(stream, { seq: ack.seq });
        expected.push({
          event_id: uuidV5(`jetstream:${stream}:${ack.seq}`),
          trace_id: e.trace_id,
          timestamp: new Date(stored.time.getTime()).toISOString(),
        });
      }
      const total = expected.length;
      const deliveredBefore = (await env.consumerInfo('TASK_EVENTS')).delivered.consumer_seq;
      for (let round = 1; round <= 3; round++) {
        const proc = await startChronicleProcess(env.db.url, env.namespace, PROCESS_ENV, { ready: false });
        // Every message delivered once more (a redelivery after the last one's ack_wait), none acked.
        await waitFor(
          async () => {
            const info = await env.consumerInfo('TASK_EVENTS');
            return (
              info.delivered.consumer_seq - deliveredBefore >= round * total && info.num_ack_pending === total
            );
          },
          20_000,
          `delivery round ${round}`,
        );
        await proc.kill();
      }
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }

    // A normal restart: once the third delivery's ack_wait is over the server gives up on each message
    // (an advisory, not a fourth delivery), and Chronicle records it with its raw payload.
    const restarted = await startChronicleProcess(env.db.url, env.namespace, PROCESS_ENV);
    await waitFor(
      async () =>
        (await env.db.pool.query(`SELECT 1 FROM chronicle_rejects WHERE reason = 'max_deliver'`)).rowCount ===
        expected.length,
      30_000,
      'the max_deliver rejects',
    );
    const rejects = await env.db.pool.query<{ subject: string; payload: string; payload_encoding: string }>(
      `SELECT subject, payload, payload_encoding FROM chronicle_rejects WHERE reason = 'max_deliver' ORDER BY id`,
    );
    expect(rejects.rows.map((r) => JSON.parse(r.payload) as unknown).sort(byTrace)).toEqual(
      [...withId, ...withoutId].sort(byTrace),
    );
    expect(new Set(rejects.rows.map((r) => r.payload_encoding))).toEqual(new Set(['utf8']));
    const count = await env.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM swarm_events');
    expect(count.rows[0]!.n).toBe(0);

    // A dry run writes nothing and says what a replay would do.
    expect(await replayCli(['--dry-run'])).toMatchObject({
      matched: 6,
      stored: 6,
      duplicates: 0,
      invalid: 0,
    });
    expect((await env.db.pool.query('SELECT 1 FROM swarm_events')).rowCount).toBe(0);

    // Replayed beside the running Chronicle: exactly the published set.
    expect(await replayCli([])).toEqual(
      expect.objectContaining({ matched: 6, stored: 6, duplicates: 0, invalid: 0, skipped: 0 }),
    );
    const stored = await env.db.pool.query<{ event_id: string; trace_id: string; timestamp: Date }>(
      'SELECT event_id::text, trace_id, "timestamp" FROM swarm_events ORDER BY trace_id',
    );
    expect(
      stored.rows.map((r) => ({
        event_id: r.event_id,
        trace_id: r.trace_id,
        timestamp: r.timestamp.toISOString(),
      })),
    ).toEqual([...expected].sort((a, b) => (a.trace_id < b.trace_id ? -1 : 1)));
    const marked = await env.db.pool.query<{ replay_result: string }>(
      `SELECT replay_result FROM chronicle_rejects WHERE reason = 'max_deliver' AND replayed_at IS NOT NULL`,
    );
    expect(marked.rows.map((r) => r.replay_result)).toEqual(Array(6).fill('stored'));

    // Again: nothing stored twice.
    expect(await replayCli(['--reason', 'max_deliver', '--origin', 'nats'])).toEqual(
      expect.objectContaining({ matched: 6, stored: 0, duplicates: 6, invalid: 0, skipped: 0 }),
    );
    const after = await env.db.pool.query<{ n: number; ids: number }>(
      'SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS ids FROM swarm_events',
    );
    expect(after.rows[0]).toEqual({ n: 6, ids: 6 });
    // The traces were derived from the replayed events, as from any write.
    const traces = await env.db.pool.query<{ trace_id: string; status: string | null }>(
      'SELECT trace_id, status FROM swarm_traces ORDER BY trace_id',
    );
    expect(traces.rows).toHaveLength(6);
    await restarted.stop();
  }, 180_000);

  it('replay-rejects - bad flags are a usage error (exit 2) naming the flag', async () => {
    const result = await runCliProcess(
      ['replay-rejects', '--origin', 'smtp'],
      chronicleEnv(env.db.url, env.namespace),
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--origin must be nats, http or otlp');
  });

  it('replay-rejects - a reason no reject has (a typo) is named on stderr with the reasons stored', async () => {
    const result = await runCliProcess(
      ['replay-rejects', '--json', '--reason', 'max_delivery'],
      chronicleEnv(env.db.url, env.namespace),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ matched: 0 });
    const { rows } = await env.db.pool.query<{ reason: string }>(
      'SELECT DISTINCT reason FROM chronicle_rejects ORDER BY reason',
    );
    const stored = rows.map((r) => r.reason).join(', ') || 'none';
    expect(result.stderr).toContain(`no reject has reason max_delivery (stored reasons: ${stored})`);
  });
});

function byTrace(a: unknown, b: unknown): number {
  const ta = (a as { trace_id: string }).trace_id;
  const tb = (b as { trace_id: string }).trace_id;
  return ta < tb ? -1 : ta === tb ? 0 : 1;
}
