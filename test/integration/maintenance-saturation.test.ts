import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPool, endPool } from '../../src/db/pool.js';
import type { CanonicalEvent } from '../../src/events/schema.js';
import type { WriteRecord } from '../../src/pipeline/records.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { partitionName, runMaintenancePass } from '../../src/sinks/postgres/partition-maintenance.js';
import { addDays, startOfUtcDay } from '../../src/sinks/postgres/retention-policy.js';
import {
  CLOSE_WRITE_GATE_SQL,
  ENTER_WRITE_GATE_SQL,
  WRITE_GATE_LOCK_KEY,
} from '../../src/sinks/postgres/write-gate.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { partitionCounts, storedIds, testMaintenance, writeEvents } from '../support/retention.js';
import { describeWithPostgres } from '../support/services.js';

/** Events per flush: about half a second of the event writer's work on a small machine. */
const FLUSH_EVENTS = 4_000;

function note(trace: string, at: Date): CanonicalEvent {
  return {
    event_id: randomUUID(),
    trace_id: trace,
    source: 'test',
    event_type: 'note',
    timestamp: at.toISOString(),
    metadata: { agent: `agent-${trace.length % 3}` },
  };
}

const asRecords = (events: CanonicalEvent[]): WriteRecord[] =>
  events.map((event) => ({ kind: 'event', input: { origin: 'nats', subject: null, key: null }, event }));

const sleep = (millis: number): Promise<void> => new Promise((r) => setTimeout(r, millis));

/** The write gate's requests of the given sessions: granted or waiting. */
async function gateRequests(pool: pg.Pool, pids: number[]): Promise<Map<number, boolean>> {
  const { rows } = await pool.query<{ pid: number; granted: boolean }>(
    `SELECT pid, granted FROM pg_locks
     WHERE locktype = 'advisory' AND objsubid = 1 AND objid = $1 AND pid = ANY($2::int[])`,
    [WRITE_GATE_LOCK_KEY, pids],
  );
  return new Map(rows.map((r) => [r.pid, r.granted]));
}

/** The longest stretch of [from, to) in which none of the intervals was open. */
function longestGap(intervals: Array<[number, number]>, from: number, to: number): number {
  let gap = 0;
  let covered = from;
  for (const [start, end] of [...intervals].sort((a, b) => a[0] - b[0])) {
    if (start >= to) break;
    if (start > covered) gap = Math.max(gap, start - covered);
    covered = Math.max(covered, end);
  }
  return Math.max(gap, to - covered);
}

describeWithPostgres('maintenance under saturation', () => {
  let db: TestDatabase;
  const replicas: pg.Pool[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    // Two Chronicle replicas sharing the database, each with its own pool (flush connections).
    for (let r = 0; r < 2; r++) replicas.push(createPool({ connectionString: db.url, maxConnections: 3 }));
  });

  afterAll(async () => {
    for (const pool of replicas) await endPool(pool);
    await db?.drop();
  });

  it('writers on two replicas keep swarm_events busy with overlapping flushes: the pass still creates every day partition and moves a day out of the default, every event stored once', async () => {
    const now = new Date();
    const today = startOfUtcDay(now);
    const day = addDays(today, -3);
    // A day of the default partition to move (as after an upgrade, or late events).
    const preloaded: string[] = [];
    for (let b = 0; b < 3; b++) {
      const events = Array.from({ length: 2_000 }, (_, i) =>
        note(`old-${i % 40}`, new Date(day.getTime() + (b * 2_000 + i) * 10_000)),
      );
      await writeEvents(db.pool, events);
      preloaded.push(...events.map((e) => e.event_id));
    }

    // Four writers, two per replica, each flushing batches through the real event writer back to back:
    // with flushes of about half a second overlapping, some flush always holds swarm_events.
    const metrics = createMetrics({ defaultMetrics: false });
    const ids: string[] = [];
    const lateIds: string[] = [];
    const flushes: Array<[number, number]> = [];
    let running = true;
    const writers = Array.from({ length: 6 }, async (_, w) => {
      const writer = createEventWriter({ pool: replicas[w % 2]!, logger: silentLogger(), metrics });
      for (let i = 0; running; i++) {
        const at = Date.now();
        // Mostly now, one in ten for the day being moved (late events arriving during the move).
        const events = Array.from({ length: FLUSH_EVENTS }, (_, j) =>
          j % 10 === 0
            ? note(`late-${w}-${j % 30}`, new Date(day.getTime() + 3_600_000 + i * 1_000 + j))
            : note(`live-${w}-${j % 200}`, new Date(at - j)),
        );
        const started = Date.now();
        const result = await writer.write(asRecords(events));
        flushes.push([started, Date.now()]);
        expect(result.results.every((r) => r?.status === 'stored')).toBe(true);
        for (const [j, e] of events.entries()) (j % 10 === 0 ? lateIds : ids).push(e.event_id);
      }
    });

    try {
      // Every writer in its stride before the pass starts.
      while (flushes.length < 8) await new Promise((r) => setTimeout(r, 20));
      const options = { ...testMaintenance({ eventsDays: 0 }), daysAhead: 1, lockRetryPauseMillis: 250 };
      const started = Date.now();
      const report = await runMaintenancePass(db.pool, options, now);
      const ended = Date.now();
      // A few more flushes after the pass, then stop.
      const after = flushes.length;
      while (flushes.length < after + 4) await new Promise((r) => setTimeout(r, 20));
      running = false;
      await Promise.all(writers);

      // Saturated: during the pass, no stretch as long as one lock try without a flush in flight.
      expect(longestGap(flushes, started, ended)).toBeLessThan(options.lockTimeoutMillis);
      expect(report.errors).toEqual([]);
      expect([...report.partitionsCreated].sort()).toEqual(
        [day, today, addDays(today, 1)].map(partitionName).sort(),
      );

      // The flushes held back: each waited at the gate at most as long as one change held it.
      const waits = await metrics.registry.getSingleMetric('chronicle_write_gate_wait_seconds')!.get();
      const count = (le: number | string): number => waits.values.find((v) => v.labels.le === le)?.value ?? 0;
      const total = count('+Inf');
      expect(total).toBeGreaterThanOrEqual(flushes.length);
      const bound = [0.25, 0.5, 1, 2.5, 5, 10].find((le) => le * 1000 >= report.flushesHeldMillis + 50)!;
      expect(count(bound)).toBe(total);
      expect(count(0.1)).toBeLessThan(total);
      const during = flushes.filter(([s, e]) => e > started && s < ended).map(([s, e]) => e - s);
      const before = flushes.filter(([, e]) => e <= started).map(([s, e]) => e - s);
      console.log(
        `maintenance under saturation: pass ${ended - started} ms, flushes held back at most ` +
          `${report.flushesHeldMillis} ms; longest flush ${Math.max(...before)} ms before the pass, ` +
          `${Math.max(...during)} ms during it (${flushes.length} flushes of ${FLUSH_EVENTS} events)`,
      );

      const counts = await partitionCounts(db.pool);
      expect(counts.get('swarm_events_default')).toBe(0);
      expect(counts.get(partitionName(day))).toBe(preloaded.length + lateIds.length);
      const all = [...preloaded, ...lateIds, ...ids];
      const { rows } = await db.pool.query<{ n: number; distinct: number; ledger: number }>(
        `SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS distinct,
           (SELECT count(*) FROM swarm_event_ids)::int AS ledger FROM swarm_events`,
      );
      expect(rows[0]).toEqual({ n: all.length, distinct: all.length, ledger: all.length });
      const stored = await db.pool.query<{ id: string }>('SELECT event_id::text AS id FROM swarm_events');
      expect(stored.rows.map((r) => r.id).sort()).toEqual(all.sort());
    } finally {
      running = false;
      await Promise.allSettled(writers);
    }
    // Without the write gate every try of a blocked change waits 250 ms and pauses: minutes, not seconds.
  }, 180_000);

  it('a flush that does not finish: each try gives up on the write gate after gateTimeoutMillis, other flushes wait no longer than that, and the next pass does the change', async () => {
    const now = new Date();
    const day = addDays(startOfUtcDay(now), -20);
    const events = Array.from({ length: 40 }, (_, i) =>
      note(`stuck-${i}`, new Date(day.getTime() + i * 1000)),
    );
    await writeEvents(db.pool, events);
    // A flush whose process stopped after taking the gate (its transaction stays open).
    const stuck = new pg.Client({ connectionString: db.url });
    await stuck.connect();
    // Ingest on another replica: a small flush every 50 ms, each timed.
    const writer = createEventWriter({ pool: replicas[0]!, logger: silentLogger() });
    const live: string[] = [];
    const flushes: Array<[number, number]> = [];
    let running = true;
    const ingest = (async () => {
      while (running) {
        const batch = [note('stuck-live', new Date())];
        const started = Date.now();
        await writer.write(asRecords(batch));
        flushes.push([started, Date.now()]);
        live.push(batch[0]!.event_id);
        await sleep(50);
      }
    })();
    try {
      await stuck.query('BEGIN');
      await stuck.query(ENTER_WRITE_GATE_SQL);
      const options = {
        ...testMaintenance({ eventsDays: 0 }),
        daysAhead: 1,
        gateTimeoutMillis: 600,
        lockAttempts: 2,
        lockRetryPauseMillis: 300,
      };
      while (flushes.length < 5) await sleep(20);
      const started = Date.now();
      const blocked = await runMaintenancePass(db.pool, options, now);
      // Flushes went on between the tries.
      expect(flushes.filter(([, e]) => e > started).length).toBeGreaterThan(2);
      expect(blocked.partitionsCreated).not.toContain(partitionName(day));
      expect(
        blocked.errors.some(
          (e) =>
            e.startsWith(`create ${partitionName(day)}: `) &&
            /lock timeout \(2 tries: 0 timed out on a table lock after 250 ms, 2 on the write gate after 600 ms/.test(
              e,
            ),
        ),
      ).toBe(true);
      expect(blocked.flushesHeldMillis).toBeGreaterThanOrEqual(600);
      expect(blocked.flushesHeldMillis).toBeLessThan(1_000);
      expect((await partitionCounts(db.pool)).get('swarm_events_default')).toBeGreaterThanOrEqual(40);

      await stuck.query('ROLLBACK');
      const next = await runMaintenancePass(db.pool, options, now);
      expect(next.errors).toEqual([]);
      expect(next.partitionsCreated).toContain(partitionName(day));
    } finally {
      running = false;
      await ingest;
      await stuck.end();
    }
    // Each flush was held back at most one try's wait for the gate.
    expect(Math.max(...flushes.map(([s, e]) => e - s))).toBeLessThan(600 + 500);
    expect((await partitionCounts(db.pool)).get(partitionName(day))).toBe(40);
    const ids = (await storedIds(db.pool)).events;
    for (const id of [...events.map((e) => e.event_id), ...live]) expect(ids).toContain(id);
  });

  it('write gate - a flush asking while a partition change waits for the gate queues behind it; it goes on when the change ends or gives up', async () => {
    const session = async (): Promise<pg.Client> => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      return c;
    };
    const [inFlight, change, next] = await Promise.all([session(), session(), session()]);
    const pid = async (c: pg.Client): Promise<number> =>
      (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const [changePid, nextPid] = [await pid(change), await pid(next)];
    try {
      for (const ending of ['commit', 'timeout'] as const) {
        await inFlight.query('BEGIN');
        await inFlight.query(ENTER_WRITE_GATE_SQL);
        await change.query('BEGIN');
        await change.query(`SET LOCAL lock_timeout = ${ending === 'commit' ? 5_000 : 500}`);
        const closed = change.query(CLOSE_WRITE_GATE_SQL).then(
          () => 'closed',
          (err: { code?: string }) => err.code,
        );
        await sleep(100);
        await next.query('BEGIN');
        let entered = false;
        const entering = next.query(ENTER_WRITE_GATE_SQL).then(() => (entered = true));
        await sleep(200);
        // A shared request does not pass the exclusive one waiting before it.
        expect(await gateRequests(db.pool, [changePid, nextPid])).toEqual(
          new Map([
            [changePid, false],
            [nextPid, false],
          ]),
        );
        if (ending === 'commit') {
          await inFlight.query('COMMIT');
          expect(await closed).toBe('closed');
          await sleep(100);
          expect(entered).toBe(false);
          await change.query('COMMIT');
        } else {
          expect(await closed).toBe('55P03');
          await change.query('ROLLBACK');
          await inFlight.query('COMMIT');
        }
        const started = Date.now();
        await entering;
        expect(Date.now() - started).toBeLessThan(100);
        await next.query('COMMIT');
      }
    } finally {
      for (const c of [inFlight, change, next]) await c.end();
    }
  });
});
