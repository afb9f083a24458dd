import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { createEventWriter, type EventWriter } from '../../src/sinks/postgres/event-writer.js';
import { createPool } from '../../src/db/pool.js';
import type { RecordResult, WriteRecord } from '../../src/pipeline/records.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { createRandom, generateTraffic, type Random } from '../support/generate.js';
import {
  type AgentMetricsRow,
  type ReferenceRows,
  distinctEvents,
  referenceRows,
} from '../support/reference.js';
import { describeWithPostgres } from '../support/services.js';
import { storedRows } from '../support/stored-rows.js';

const SEEDS = [1, 7, 42, 2026, 90210];

/** One record per event, keyed like a JetStream message; copies of an event keep its key (redelivery). */
function toRecords(events: readonly CanonicalEvent[]): WriteRecord[] {
  const seq = new Map<string, number>();
  return events.map((event) => {
    if (!seq.has(event.event_id)) seq.set(event.event_id, seq.size + 1);
    return {
      kind: 'event',
      input: {
        origin: 'nats',
        subject: `swarm.${event.event_type}`,
        key: `nats:TASK_EVENTS:${seq.get(event.event_id)}`,
      },
      event,
    };
  });
}

/** Splits into consecutive batches of random sizes in [1, maxSize]. */
function randomBatches<T>(rnd: Random, items: readonly T[], maxSize: number): T[][] {
  const batches: T[][] = [];
  for (let i = 0; i < items.length;) {
    const size = rnd.int(1, maxSize);
    batches.push(items.slice(i, i + size));
    i += size;
  }
  return batches;
}

/** The events plus a copy of about `fraction` of them (same event_id, same content), shuffled. */
function withDuplicates(rnd: Random, events: readonly CanonicalEvent[], fraction: number): CanonicalEvent[] {
  const copies = events.filter(() => rnd.chance(fraction)).map((e) => structuredClone(e));
  return rnd.shuffle([...events, ...copies]);
}

async function countRows(pool: pg.Pool, table: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]!.n;
}

function statusCounts(results: readonly RecordResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
}

const at = (time: string) => `2026-03-01T${time}Z`;
const nextDay = (time: string) => `2026-03-02T${time}Z`;

describeWithPostgres('task state and agent metrics', () => {
  let db: TestDatabase;
  let writer: EventWriter;
  let eventSeq = 0;

  /** A hand-written event with a unique id. */
  function ev(
    traceId: string,
    type: string,
    timestamp: string,
    metadata: Record<string, unknown> = {},
  ): CanonicalEvent {
    eventSeq += 1;
    return {
      event_id: `00000000-0000-4000-8000-${String(eventSeq).padStart(12, '0')}`,
      trace_id: traceId,
      source: 'orchestrator',
      event_type: type,
      timestamp,
      metadata,
    };
  }

  async function expectReference(events: readonly CanonicalEvent[]): Promise<ReferenceRows> {
    const stored = await storedRows(db.pool);
    const expected = referenceRows(events);
    expect(stored.traces).toEqual(expected.traces);
    expect(stored.metrics).toEqual(expected.metrics);
    expect(await countRows(db.pool, 'swarm_events')).toBe(distinctEvents(events).length);
    return stored;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    writer = createEventWriter({ pool: db.pool, logger: silentLogger() });
  });

  afterAll(async () => {
    await db?.drop();
  });

  beforeEach(async () => {
    await db.pool.query(
      'TRUNCATE swarm_event_ids, swarm_events, swarm_traces, agent_metrics, chronicle_rejects, swarm_dlq RESTART IDENTITY',
    );
  });

  it('the generated traffic covers every kind of row the rules distinguish', () => {
    const { traces, metrics } = referenceRows(generateTraffic(SEEDS[0]!));
    const statuses = new Set(traces.map((t) => t.status));
    for (const s of [null, 'pending', 'assigned', 'in_progress', 'completed', 'failed', 'timed_out']) {
      expect(statuses, `status ${s}`).toContain(s);
    }
    expect(traces.some((t) => t.attempts > 1)).toBe(true);
    expect(traces.some((t) => t.is_task && t.duration_ms === null && t.status === 'completed')).toBe(true);
    expect(traces.some((t) => t.error === 'timeout')).toBe(true);
    expect(metrics.some((m) => m.utilization_pct === null && m.uptime_ms === 0)).toBe(true);
    expect(metrics.some((m) => m.tasks_completed + m.tasks_failed + m.tasks_timed_out === 0)).toBe(true);
    expect(metrics.some((m) => m.p95_duration_ms !== null && m.uptime_ms !== null)).toBe(true);
  });

  for (const seed of SEEDS) {
    it(`events in order in one batch give the reference rows (seed ${seed})`, async () => {
      const events = generateTraffic(seed);
      const { results } = await writer.write(toRecords(events));
      expect(statusCounts(results)).toEqual({ stored: events.length });
      await expectReference(events);
    });

    it(`events shuffled into batches of random sizes give the reference rows (seed ${seed})`, async () => {
      const rnd = createRandom(seed * 31 + 1);
      const events = generateTraffic(seed);
      for (const batch of randomBatches(rnd, toRecords(rnd.shuffle(events)), 40)) await writer.write(batch);
      await expectReference(events);
    });

    it(`duplicates and replayed batches change no row and no count (seed ${seed})`, async () => {
      const rnd = createRandom(seed * 31 + 2);
      const events = generateTraffic(seed);
      const batches = randomBatches(rnd, toRecords(withDuplicates(rnd, events, 0.2)), 40);
      let stored = 0;
      for (const batch of batches) {
        const { results } = await writer.write(batch);
        stored += results.filter((r) => r.status === 'stored').length;
        // A crash before the ack: the same batch is delivered again right away.
        if (rnd.chance(0.2)) {
          expect(statusCounts((await writer.write(batch)).results)).toEqual({ duplicate: batch.length });
        }
      }
      // Redeliveries arriving much later, after other batches.
      for (const batch of rnd.shuffle(batches).slice(0, 5)) {
        expect(statusCounts((await writer.write(batch)).results)).toEqual({ duplicate: batch.length });
      }
      expect(stored).toBe(distinctEvents(events).length);
      await expectReference(events);
    });
  }

  it('with the events spread over day partitions, shuffled batches give the reference rows', async () => {
    // The recompute reads a trace's events only in the partitions of its [first, last] event days.
    const rnd = createRandom(4242);
    const events = generateTraffic(SEEDS[1]!).map((e, i) => ({
      ...e,
      // Spread over five UTC days: the events of a trace land in different partitions, out of order.
      timestamp: new Date(Date.parse(e.timestamp) + (i % 5) * 86_400_000).toISOString(),
    }));
    const days = [...new Set(events.map((e) => e.timestamp.slice(0, 10)))].sort();
    const partitions = days.map((day) => `swarm_events_p${day.replaceAll('-', '')}`);
    for (const [i, day] of days.entries()) {
      const next = new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString();
      await db.pool.query(
        `CREATE TABLE ${partitions[i]} PARTITION OF swarm_events FOR VALUES FROM ('${day}T00:00:00Z') TO ('${next}')`,
      );
    }
    try {
      expect(days.length).toBeGreaterThanOrEqual(5);
      for (const batch of randomBatches(rnd, toRecords(rnd.shuffle(events)), 40)) await writer.write(batch);
      await expectReference(events);
      const { rows } = await db.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM swarm_events_default',
      );
      expect(rows[0]!.n).toBe(0);
    } finally {
      for (const name of partitions) await db.pool.query(`DROP TABLE ${name}`);
    }
  });

  it('a reassignment arriving later moves the task to the new agent and deletes the emptied row', async () => {
    const first = [
      ...['r1', 'r2'].flatMap((id) => [
        ev(id, 'task.created', at('10:00:00.000'), { title: id }),
        ev(id, 'task.assigned', at('10:01:00.000'), { agent: 'agent-a' }),
        ev(id, 'task.started', at('10:02:00.000'), { agent: 'agent-a' }),
        ev(id, 'task.completed', at('10:10:00.000'), { agent: 'agent-a' }),
      ]),
      ev('r3', 'task.assigned', at('11:00:00.000'), { agent_id: 'agent-c' }),
      ev('r3', 'task.started', at('11:00:30.000')),
      ev('r3', 'task.failed', at('11:05:00.000'), { error: 'OOM' }),
    ];
    await writer.write(toRecords(first));
    let rows = await expectReference(first);
    expect(rows.metrics.map((m) => [m.agent_id, m.tasks_completed, m.tasks_failed])).toEqual([
      ['agent-a', 2, 0],
      ['agent-c', 0, 1],
    ]);

    const late = [
      ev('r1', 'task.assigned', at('10:05:00.000'), { agent_id: 'agent-b' }),
      ev('r3', 'task.assigned', at('11:01:00.000'), { agent: 'agent-b' }),
    ];
    await writer.write(toRecords(late));
    rows = await expectReference([...first, ...late]);
    expect(rows.traces.find((t) => t.trace_id === 'r1')).toMatchObject({
      assigned_agent: 'agent-b',
      attempts: 2,
      time_to_pickup_ms: 60_000,
    });
    expect(rows.metrics.map((m) => [m.agent_id, m.tasks_completed, m.tasks_failed])).toEqual([
      ['agent-a', 1, 0],
      ['agent-b', 1, 1],
    ]);
  });

  it('a late terminal event moves completed_at, and the task, to the next UTC day', async () => {
    const first = [
      ev('m1', 'task.created', at('23:50:00.000')),
      ev('m1', 'task.assigned', at('23:51:00.000'), { agent: 'agent-a' }),
      ev('m1', 'task.started', at('23:52:00.000')),
      ev('m1', 'task.completed', at('23:59:58.000')),
      ev('m2', 'task.assigned', at('20:00:00.000'), { agent: 'agent-a' }),
      ev('m2', 'task.started', at('20:00:01.000')),
      ev('m2', 'task.completed', at('20:00:11.000')),
    ];
    await writer.write(toRecords(first));
    let rows = await expectReference(first);
    expect(rows.metrics).toMatchObject([
      { agent_id: 'agent-a', metric_date: '2026-03-01', tasks_completed: 2, max_duration_ms: 478_000 },
    ]);

    const late = [
      ev('m1', 'task.completed', nextDay('00:00:02.000')),
      ev('m2', 'task.failed', nextDay('00:00:03.000'), { reason: 'late crash' }),
    ];
    await writer.write(toRecords(late));
    rows = await expectReference([...first, ...late]);
    expect(rows.traces.find((t) => t.trace_id === 'm1')).toMatchObject({
      status: 'completed',
      completed_at: nextDay('00:00:02.000'),
      duration_ms: 482_000,
    });
    expect(rows.metrics).toEqual([
      expect.objectContaining({
        agent_id: 'agent-a',
        metric_date: '2026-03-02',
        tasks_completed: 1,
        tasks_failed: 1,
        avg_duration_ms: 482_000,
      }),
    ]);
  });

  it('averages, p95 and utilization round half away from zero', async () => {
    const base = Date.parse(at('08:00:00.000'));
    const task = (id: string, agent: string, pickupMs: number, durationMs: number) => {
      const assignedAt = base + Number(id.replace(/\D/g, '')) * 60_000;
      return [
        ev(id, 'task.assigned', new Date(assignedAt).toISOString(), { agent }),
        ev(id, 'task.started', new Date(assignedAt + pickupMs).toISOString()),
        ev(id, 'task.completed', new Date(assignedAt + pickupMs + durationMs).toISOString()),
      ];
    };
    const beat = (agent: string, busy: number, uptime: number) =>
      ev(`hb-${agent}`, 'agent.heartbeat', at('09:00:00.000'), { agent, busy_ms: busy, uptime_ms: uptime });
    // agent-r: 11 durations whose p95 lies halfway between 100 and 101.
    const rDurations = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 101];
    const events = [
      ...rDurations.flatMap((d, i) => task(`r${i}`, 'agent-r', 10, d)),
      ...task('s1', 'agent-s', 1_000, 1_000),
      ...task('s2', 'agent-s', 1_001, 1_001),
      beat('agent-r', 1, 800),
      beat('agent-s', 1, 1_600),
      beat('agent-t', 2, 3),
      beat('agent-u', 1.5, 2.5),
    ];
    await writer.write(toRecords(events));
    const rows = await expectReference(events);
    const pick = (m: AgentMetricsRow) => [
      m.agent_id,
      m.avg_duration_ms,
      m.p95_duration_ms,
      m.time_to_pickup_avg_ms,
      m.utilization_pct,
    ];
    expect(rows.metrics.map(pick)).toEqual([
      ['agent-r', 59, 101, 10, 0.13],
      ['agent-s', 1_001, 1_001, 1_001, 0.06],
      ['agent-t', null, null, null, 66.67],
      // busy and uptime are rounded to whole ms first: 2 / 3, not 1.5 / 2.5.
      ['agent-u', null, null, null, 66.67],
    ]);
  });

  it('min, max and p95 match percentile_cont over the stored tasks for every day size, as batches change them', async () => {
    const rnd = createRandom(2718);
    // agent-n<k> finishes k tasks on the day (1..45: every position of rank 0.95 × (k − 1) between two
    // values), with tied durations; every task is first seen failing, then a later batch brings a
    // completion at another time, which changes its status, duration and the agent's statistics.
    const base = Date.parse(at('01:00:00.000'));
    const first: CanonicalEvent[] = [];
    const later: CanonicalEvent[] = [];
    for (let k = 1; k <= 45; k++) {
      for (let i = 0; i < k; i++) {
        const id = `n${k}-${i}`;
        const startMs = base + rnd.int(0, 20 * 3_600_000);
        first.push(
          ev(id, 'task.assigned', new Date(startMs - rnd.int(1, 5_000)).toISOString(), {
            agent: `agent-n${k}`,
          }),
          ev(id, 'task.started', new Date(startMs).toISOString()),
          ev(id, 'task.failed', new Date(startMs + 1).toISOString(), { error: 'first try' }),
        );
        later.push(ev(id, 'task.completed', new Date(startMs + 2 + rnd.int(0, 40) * 25).toISOString()));
      }
    }
    for (const batch of randomBatches(rnd, rnd.shuffle([...first]), 400))
      await writer.write(toRecords(batch));
    for (const batch of randomBatches(rnd, rnd.shuffle([...later]), 50)) await writer.write(toRecords(batch));

    const rows = await expectReference([...first, ...later]);
    expect(rows.metrics).toHaveLength(45);
    // The same statistics aggregated by Postgres itself from the stored tasks.
    const { rows: direct } = await db.pool.query<Record<string, number>>(`
      SELECT assigned_agent AS agent_id, count(*)::int AS tasks_completed, min(duration_ms) AS min_duration_ms,
        max(duration_ms) AS max_duration_ms, round(avg(duration_ms))::bigint AS avg_duration_ms,
        round((percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms))::numeric)::bigint AS p95_duration_ms
      FROM swarm_traces WHERE status = 'completed' GROUP BY 1 ORDER BY 1`);
    const served = rows.metrics.map((m) => ({
      agent_id: m.agent_id,
      tasks_completed: m.tasks_completed,
      min_duration_ms: m.min_duration_ms,
      max_duration_ms: m.max_duration_ms,
      avg_duration_ms: m.avg_duration_ms,
      p95_duration_ms: m.p95_duration_ms,
    }));
    expect(served).toEqual(direct);
    expect(rows.metrics.every((m) => m.tasks_failed === 0)).toBe(true);
  });

  for (const seed of SEEDS.slice(0, 3)) {
    it(`two concurrent writers on the same traces and (agent, day) end with the reference rows (seed ${seed})`, async () => {
      const rnd = createRandom(seed * 31 + 3);
      // Few agents on one day, so that nearly every batch touches the same metric keys.
      const events = generateTraffic(seed, { tasks: 60, agents: 2, days: 1, heartbeatsPerDay: 6 });
      const pools = [0, 1].map((i) =>
        createPool({ connectionString: db.url, maxConnections: 4, applicationName: `derive-test-${i}` }),
      );
      try {
        const writers = pools.map((pool) => createEventWriter({ pool, logger: silentLogger() }));
        const batches = randomBatches(rnd, toRecords(withDuplicates(rnd, events, 0.2)), 12);
        // Some batches are delivered to both writers at once, as to two replicas after a redelivery.
        const work = batches.flatMap((batch, i) => {
          const writes = [writers[i % 2]!.write(batch)];
          if (rnd.chance(0.2)) writes.push(writers[(i + 1) % 2]!.write(batch));
          return writes;
        });
        const results = (await Promise.all(work)).flatMap((w) => w.results);
        expect(results.filter((r) => r.status === 'stored')).toHaveLength(distinctEvents(events).length);
        await expectReference(events);
      } finally {
        await Promise.all(pools.map((pool) => pool.end()));
      }
    });
  }

  it('a row Postgres refuses is isolated into chronicle_rejects and the rest of its batch commits', async () => {
    await db.pool.query(
      "ALTER TABLE swarm_events ADD CONSTRAINT derive_test_no_poison CHECK (trace_id <> 'poison')",
    );
    try {
      const good = generateTraffic(5, { tasks: 12, agents: 2, days: 1, otherTraces: 1 }).slice(0, 40);
      const poison = ev('poison', 'task.created', at('12:00:00.000'), { title: 'poison pill' });
      const events = [...good.slice(0, 20), poison, ...good.slice(20)];
      const records = toRecords(events);

      const { results } = await writer.write(records);

      expect(results[20]).toEqual({
        status: 'rejected',
        reason: 'write_failed',
        detail: expect.stringContaining('derive_test_no_poison') as unknown,
      });
      expect(results.filter((_, i) => i !== 20)).toEqual(good.map(() => ({ status: 'stored' })));
      const rejects = await db.pool.query<{
        origin: string;
        subject: string;
        reason: string;
        reject_key: string;
        payload: string;
      }>('SELECT origin, subject, reason, reject_key, payload FROM chronicle_rejects');
      expect(rejects.rows).toEqual([
        {
          origin: 'nats',
          subject: 'swarm.task.created',
          reason: 'write_failed',
          reject_key: records[20]!.input.key,
          payload: expect.stringContaining('"trace_id":"poison"') as unknown,
        },
      ]);
      // The refused event is not remembered as seen, so a corrected redelivery could still be stored.
      const seen = await db.pool.query('SELECT 1 FROM swarm_event_ids WHERE event_id = $1', [
        poison.event_id,
      ]);
      expect(seen.rowCount).toBe(0);
      await expectReference(good);
    } finally {
      await db.pool.query('ALTER TABLE swarm_events DROP CONSTRAINT derive_test_no_poison');
    }
  });
});
