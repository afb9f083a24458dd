/**
 * chronicle_tasks_terminal_total: each task counted once, by its first terminal status, when its
 * swarm_traces row first becomes terminal and only after the commit. Two replicas share the database
 * and the durables; events arrive duplicated, redelivered and over both NATS and HTTP; commits fail for
 * a while and are retried. The sum of the replicas' counters is the number of tasks that became terminal.
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type CanonicalEvent, LIFECYCLE_RANK } from '../../src/events/schema.js';
import { NO_TERMINAL, type WriteRecord } from '../../src/pipeline/records.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { MIGRATIONS_DIR, loadMigrations, migrate } from '../../src/db/migrate.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { TERMINAL_STATUSES } from '../../src/telemetry/metrics.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  countRows,
  counterValue,
  createChronicleTestEnv,
  subjectOf,
  waitFor,
} from '../support/chronicle.js';
import { type TestDatabase, createTestDatabase } from '../support/db.js';
import { createRandom, generateTraffic } from '../support/generate.js';
import { distinctEvents, referenceRows } from '../support/reference.js';
import { describeWithPostgres, describeWithServices } from '../support/services.js';
import { storedRows } from '../support/stored-rows.js';

type TerminalStatus = (typeof TERMINAL_STATUSES)[number];

const TERMINAL_TYPES: Readonly<Record<string, TerminalStatus>> = {
  'task.completed': 'completed',
  'task.failed': 'failed',
  'task.timeout': 'timed_out',
};

/** The order the derive rules give lifecycle events: (timestamp, rank, event_id). */
function lifecycleOrder(a: CanonicalEvent, b: CanonicalEvent): number {
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp ? -1 : 1;
  const rank = LIFECYCLE_RANK[a.event_type]! - LIFECYCLE_RANK[b.event_type]!;
  if (rank !== 0) return rank;
  return a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0;
}

/**
 * Splits a task's events at its first terminal event in the rules' order: `before` holds that event
 * and everything ordered before it (and every non-lifecycle event), `after` the lifecycle events
 * ordered after it. Once all of `before` is stored, in any order and any batches, the task is terminal
 * with that event's status, and no event of `after` can make it terminal for the first time again.
 */
function splitAtFirstTerminal(events: readonly CanonicalEvent[]): {
  before: CanonicalEvent[];
  after: CanonicalEvent[];
  firstStatus: Map<string, TerminalStatus>;
} {
  const byTrace = new Map<string, CanonicalEvent[]>();
  for (const e of events) {
    if (LIFECYCLE_RANK[e.event_type] === undefined) continue;
    byTrace.set(e.trace_id, [...(byTrace.get(e.trace_id) ?? []), e]);
  }
  const firstTerminal = new Map<string, CanonicalEvent>();
  for (const [trace, lifecycle] of byTrace) {
    const first = [...lifecycle].sort(lifecycleOrder).find((e) => TERMINAL_TYPES[e.event_type]);
    if (first) firstTerminal.set(trace, first);
  }
  const before: CanonicalEvent[] = [];
  const after: CanonicalEvent[] = [];
  for (const e of events) {
    const first = firstTerminal.get(e.trace_id);
    const late = first && LIFECYCLE_RANK[e.event_type] !== undefined && lifecycleOrder(e, first) > 0;
    (late ? after : before).push(e);
  }
  const firstStatus = new Map([...firstTerminal].map(([t, e]) => [t, TERMINAL_TYPES[e.event_type]!]));
  return { before, after, firstStatus };
}

function countByStatus(statuses: Iterable<TerminalStatus>): Record<TerminalStatus, number> {
  const counts = { completed: 0, failed: 0, timed_out: 0 };
  for (const s of statuses) counts[s]++;
  return counts;
}

function ev(
  traceId: string,
  type: string,
  timestamp: string,
  metadata: Record<string, unknown> = {},
): CanonicalEvent {
  return { event_id: randomUUID(), trace_id: traceId, source: 'test', event_type: type, timestamp, metadata };
}

/** A task that fails, is reassigned, and completes: counted once, as failed. */
function failedThenRetried(traceId: string): CanonicalEvent[] {
  return [
    ev(traceId, 'task.created', '2026-03-01T08:00:00.000Z'),
    ev(traceId, 'task.assigned', '2026-03-01T08:00:01.000Z', { agent: 'agent-1' }),
    ev(traceId, 'task.started', '2026-03-01T08:00:02.000Z', { agent: 'agent-1' }),
    ev(traceId, 'task.failed', '2026-03-01T08:00:03.000Z', { agent: 'agent-1', error: 'crashed' }),
    ev(traceId, 'task.assigned', '2026-03-01T08:00:04.000Z', { agent: 'agent-2' }),
    ev(traceId, 'task.started', '2026-03-01T08:00:05.000Z', { agent: 'agent-2' }),
    ev(traceId, 'task.completed', '2026-03-01T08:00:06.000Z', { agent: 'agent-2' }),
  ];
}

/** A whole task run ending in `end`. */
function wholeTask(
  traceId: string,
  end: 'task.completed' | 'task.failed' | 'task.timeout',
): CanonicalEvent[] {
  return [
    ev(traceId, 'task.created', '2026-03-01T09:00:00.000Z'),
    ev(traceId, 'task.assigned', '2026-03-01T09:00:01.000Z', { agent: 'agent-3' }),
    ev(traceId, 'task.started', '2026-03-01T09:00:02.000Z', { agent: 'agent-3' }),
    ev(traceId, end, '2026-03-01T09:00:09.000Z', { agent: 'agent-3' }),
  ];
}

/**
 * Lost acks, made deterministic: the instance's first `count` commits are settled with a nak instead
 * of an ack, so those messages arrive again (at either replica) after they were written.
 */
function nakInsteadOfAck(instance: TestChronicle, count: number): void {
  const batcher = instance.chronicle.batcher;
  const offer = batcher.offer.bind(batcher);
  let left = count;
  batcher.offer = (deliveries, options) =>
    offer(
      deliveries.map((d) => ({
        value: d.value,
        sizeBytes: d.sizeBytes,
        ack: (outcome) => (left-- > 0 ? d.retry() : d.ack(outcome)),
        retry: (afterMillis) => d.retry(afterMillis),
        reject: (reason, detail) => d.reject(reason, detail),
      })),
      options,
    );
}

describeWithServices('tasks terminal - counted once per task across replicas', () => {
  let env: ChronicleTestEnv;
  let replicas: TestChronicle[];

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    // A high max_deliver: a message nak'd more than once must not be given up on.
    const options = { jetstream: { maxDeliver: 10 } };
    replicas = [await env.start(options), await env.start(options)];
  });

  afterAll(async () => env?.cleanup());

  const sum = async (read: (r: TestChronicle) => Promise<number>): Promise<number> =>
    (await Promise.all(replicas.map(read))).reduce((a, b) => a + b, 0);

  async function terminalCounts(): Promise<Record<TerminalStatus, number>> {
    const counts = { completed: 0, failed: 0, timed_out: 0 };
    for (const status of TERMINAL_STATUSES) {
      counts[status] = await sum((r) => counterValue(r.chronicle.metrics.tasksTerminal, { status }));
    }
    return counts;
  }

  /** Events stored, without Chronicle's own write_failure alerts (published on a subject it consumes). */
  async function storedEvents(): Promise<number> {
    return countRows(env.db.pool, 'swarm_events', "trace_id <> 'chronicle'");
  }

  it('duplicates, redeliveries, both replicas and both sources: each task once, by its first terminal status', async () => {
    const [a, b] = replicas as [TestChronicle, TestChronicle];
    const rnd = createRandom(77);
    const traffic = [
      ...generateTraffic(77, { tasks: 120, agents: 4, days: 2 }),
      ...failedThenRetried('retried'),
    ];
    const { before, after, firstStatus } = splitAtFirstTerminal(traffic);
    expect(firstStatus.get('retried')).toBe('failed');
    expect(after.length).toBeGreaterThan(0);
    // Every scenario is there: tasks first terminal as each status.
    expect(Object.values(countByStatus(firstStatus.values())).every((n) => n > 0)).toBe(true);

    // Phase 1: everything up to each task's first terminal event. Some messages are published twice;
    // replica a naks its first 80 commits (they come back as redeliveries); a third of the events are
    // also posted to replica b over HTTP at the same time.
    nakInsteadOfAck(a, 80);
    const published = [...before, ...before.filter(() => rnd.chance(0.2))];
    const overHttp = rnd.shuffle(before).filter(() => rnd.chance(0.33));
    const posts = Array.from({ length: Math.ceil(overHttp.length / 100) }, (_, i) =>
      fetch(`${b.url}/api/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(overHttp.slice(i * 100, i * 100 + 100)),
      }),
    );
    await env.publishBulk(rnd.shuffle(published).map((e) => ({ subject: subjectOf(e), payload: e })));
    for (const res of await Promise.all(posts)) expect(res.status).toBe(200);
    await waitFor(
      async () => (await env.consumersSettled()) && (await storedEvents()) === distinctEvents(before).length,
      30_000,
      'phase 1 stored and acked',
    );
    const expectedFirst = countByStatus(firstStatus.values());
    expect(await terminalCounts()).toEqual(expectedFirst);
    // The lost acks really came back: every nak is a redelivery, and both replicas took part.
    const naks = await sum((r) => counterValue(r.chronicle.metrics.naks));
    expect(naks).toBe(80);
    expect(await sum((r) => counterValue(r.chronicle.metrics.redeliveries))).toBe(80);
    expect(await sum((r) => counterValue(r.chronicle.metrics.received, { origin: 'nats' }))).toBe(
      published.length + 80,
    );
    for (const r of replicas) expect(await counterValue(r.chronicle.metrics.stored)).toBeGreaterThan(0);

    // Phase 2: the rest of every task (retries, later steps), and new tasks, while every commit fails
    // (a deferred trigger refuses it at COMMIT, after the recompute ran) until the trigger is disarmed.
    await env.db.pool.query(`
      CREATE TABLE terminal_test_refuse (refuse boolean);
      CREATE FUNCTION terminal_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM terminal_test_refuse) THEN RAISE EXCEPTION 'test: commit refused'; END IF;
        RETURN NULL;
      END $$;
      CREATE CONSTRAINT TRIGGER terminal_test_refuse AFTER INSERT OR UPDATE ON swarm_traces
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION terminal_test_refuse();
      INSERT INTO terminal_test_refuse VALUES (true);`);
    const fresh = [
      ...wholeTask('fresh-1', 'task.completed'),
      ...wholeTask('fresh-2', 'task.completed'),
      ...wholeTask('fresh-3', 'task.failed'),
      ...wholeTask('fresh-4', 'task.timeout'),
    ];
    const phase2 = [...after, ...fresh];
    await env.publishBulk(rnd.shuffle(phase2).map((e) => ({ subject: subjectOf(e), payload: e })));
    await waitFor(
      async () => (await sum((r) => counterValue(r.chronicle.metrics.writeFailures))) >= 4,
      15_000,
      'commits to fail and be retried',
    );
    // Nothing of a rolled-back transaction is counted.
    expect(await terminalCounts()).toEqual(expectedFirst);
    expect(await countRows(env.db.pool, 'swarm_traces', "trace_id LIKE 'fresh-%'")).toBe(0);
    await env.db.pool.query('DELETE FROM terminal_test_refuse');

    const all = [...traffic, ...fresh];
    await waitFor(
      async () => (await env.consumersSettled()) && (await storedEvents()) === distinctEvents(all).length,
      40_000,
      'phase 2 stored and acked after the failures',
    );
    // The retried commits counted the new tasks once; the later steps of the others counted nothing.
    expect(await terminalCounts()).toEqual({
      completed: expectedFirst.completed + 2,
      failed: expectedFirst.failed + 1,
      timed_out: expectedFirst.timed_out + 1,
    });
    const { rows } = await env.db.pool.query<{ status: string; first_terminal_at: Date | null }>(
      "SELECT status, first_terminal_at FROM swarm_traces WHERE trace_id = 'retried'",
    );
    expect(rows[0]!.status).toBe('completed');
    expect(rows[0]!.first_terminal_at).toBeInstanceOf(Date);
    expect(await countRows(env.db.pool, 'swarm_traces', 'first_terminal_at IS NOT NULL')).toBe(
      firstStatus.size + 4,
    );
    expect(
      await sum((r) => counterValue(r.chronicle.metrics.flushes, { result: 'retry' })),
    ).toBeGreaterThanOrEqual(4);
    // The rows themselves are the rules' rows for all the events, whatever the path they took.
    const stored = await storedRows(env.db.pool);
    expect({ ...stored, traces: stored.traces.filter((t) => t.trace_id !== 'chronicle') }).toEqual(
      referenceRows(all),
    );
  });
});

describeWithPostgres('tasks terminal - migration 0006', () => {
  let db: TestDatabase;
  let upTo5: string;

  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    upTo5 = await mkdtemp(join(tmpdir(), 'chronicle-migrations-'));
    for (const m of await loadMigrations()) {
      if (m.version <= 5) await copyFile(join(MIGRATIONS_DIR, `${m.name}.sql`), join(upTo5, `${m.name}.sql`));
    }
  });

  afterAll(async () => {
    await db?.drop();
    if (upTo5) await rm(upTo5, { recursive: true, force: true });
  });

  it('rows already terminal are backfilled, so an upgrade counts no task again', async () => {
    expect(await migrate(db.pool, silentLogger(), `${upTo5}/`)).toEqual([1, 2, 3, 4, 5]);
    await db.pool.query(`
      INSERT INTO swarm_traces (trace_id, is_task, status, created_at, completed_at, span_count, first_event_at,
        last_event_at)
      VALUES
        ('old-completed', true, 'completed', '2026-03-01T00:00:00Z', '2026-03-01T01:00:00Z', 3, '2026-03-01T00:00:00Z', '2026-03-01T01:00:00Z'),
        ('old-failed', true, 'failed', '2026-03-01T00:00:00Z', '2026-03-01T02:00:00Z', 3, '2026-03-01T00:00:00Z', '2026-03-01T02:00:00Z'),
        ('old-open', true, 'in_progress', '2026-03-01T00:00:00Z', NULL, 2, '2026-03-01T00:00:00Z', '2026-03-01T00:30:00Z'),
        ('old-other', false, NULL, '2026-03-01T00:00:00Z', NULL, 1, '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z')`);

    // The upgrade applies 0006 and every migration after it.
    const later = (await loadMigrations()).map((m) => m.version).filter((v) => v > 5);
    expect(later[0]).toBe(6);
    expect(await migrate(db.pool, silentLogger())).toEqual(later);

    const { rows } = await db.pool.query<{ trace_id: string; backfilled: boolean | null }>(
      `SELECT trace_id, first_terminal_at = completed_at AS backfilled FROM swarm_traces ORDER BY trace_id`,
    );
    expect(rows).toEqual([
      { trace_id: 'old-completed', backfilled: true },
      { trace_id: 'old-failed', backfilled: true },
      { trace_id: 'old-open', backfilled: null },
      { trace_id: 'old-other', backfilled: null },
    ]);

    const writer = createEventWriter({ pool: db.pool, logger: silentLogger() });
    const records = (events: CanonicalEvent[]): WriteRecord[] =>
      events.map((event) => ({ kind: 'event', input: { origin: 'http', subject: null, key: null }, event }));
    // Terminal events for tasks already terminal before the upgrade: not counted again.
    const again = await writer.write(
      records([
        ev('old-completed', 'task.completed', '2026-03-01T03:00:00.000Z'),
        ev('old-failed', 'task.timeout', '2026-03-01T03:00:00.000Z'),
      ]),
    );
    expect(again.terminalTasks).toEqual(NO_TERMINAL);
    // The open task finishing after the upgrade is counted, once.
    const finished = await writer.write(records([ev('old-open', 'task.failed', '2026-03-01T03:00:00.000Z')]));
    expect(finished.terminalTasks).toEqual({ completed: 0, failed: 1, timed_out: 0 });
    const replayed = await writer.write(
      records([ev('old-open', 'task.completed', '2026-03-01T04:00:00.000Z')]),
    );
    expect(replayed.terminalTasks).toEqual(NO_TERMINAL);
  });
});
