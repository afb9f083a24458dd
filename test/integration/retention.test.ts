import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import {
  MAINTENANCE_LOCK_KEY,
  partitionName,
  runMaintenancePass,
} from '../../src/sinks/postgres/partition-maintenance.js';
import { createPinStore } from '../../src/sinks/postgres/archive.js';
import { addDays, eventsHorizon, startOfUtcDay } from '../../src/sinks/postgres/retention-policy.js';
import { truncateStore } from '../support/db.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import {
  METRICS_SQL,
  partitionCounts,
  storedIds,
  taskOnDay,
  tasksOverDays,
  testMaintenance,
  writeEvents,
} from '../support/retention.js';
import { describeWithPostgres } from '../support/services.js';

const FAR_PAST = new Date('1970-01-01T00:00:00.000Z');
const FAR_FUTURE = new Date('2200-01-01T00:00:00.000Z');

function single(trace: string, at: Date, eventId: string = randomUUID()): CanonicalEvent {
  return {
    event_id: eventId,
    trace_id: trace,
    source: 'test',
    event_type: 'note',
    timestamp: at.toISOString(),
    metadata: {},
  };
}

describeWithPostgres('retention - fresh install', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('events over 40 days, retention 30: old day partitions are dropped with their ledger ids, recent ones stay, counts exact, traces trimmed by their own setting', async () => {
    await truncateStore(db.pool);
    const now = new Date();
    const today = startOfUtcDay(now);
    const events = [
      ...tasksOverDays('fresh', now, 40, 2),
      single('far-past', FAR_PAST),
      single('far-future', FAR_FUTURE),
    ];
    const written = await writeEvents(db.pool, events);
    // A day with no partition, far past and far future included, is stored, never rejected.
    expect(written.results.every((r) => r?.status === 'stored')).toBe(true);

    // Kept forever: every day with events gets its partition; the far future stays in the default.
    const first = await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 0, tracesDays: 0 }), now);
    expect(first.errors).toEqual([]);
    expect(first.rowsMoved).toBe(events.length - 1);
    const before = await partitionCounts(db.pool);
    for (let d = 0; d < 40; d++) expect(before.get(partitionName(addDays(today, -d)))).toBe(8);
    for (let d = 1; d <= 7; d++) expect(before.get(partitionName(addDays(today, d)))).toBe(0);
    expect(before.get(partitionName(FAR_PAST))).toBe(1);
    expect(before.get('swarm_events_default')).toBe(1);
    const metricsBefore = (await db.pool.query(METRICS_SQL)).rows;
    const tracesBefore = (
      await db.pool.query<{ trace_id: string; last_event_at: Date }>(
        'SELECT trace_id, last_event_at FROM swarm_traces',
      )
    ).rows;

    const policy = { eventsDays: 30, tracesDays: 35 };
    const second = await runMaintenancePass(db.pool, testMaintenance(policy), now);
    expect(second.errors).toEqual([]);
    const horizon = eventsHorizon(testMaintenance(policy).policy, now)!;
    const expectedDropped = [FAR_PAST, ...Array.from({ length: 9 }, (_, i) => addDays(today, -31 - i))]
      .map(partitionName)
      .sort();
    expect([...second.partitionsDropped].sort()).toEqual(expectedDropped);
    expect(second.partitionsCreated).toEqual([]);

    const after = await partitionCounts(db.pool);
    for (const name of expectedDropped) expect(after.has(name)).toBe(false);
    for (let d = 0; d <= 30; d++) expect(after.get(partitionName(addDays(today, -d)))).toBe(8);
    expect(after.get('swarm_events_default')).toBe(1);

    const kept = events
      .filter((e) => new Date(e.timestamp) >= horizon)
      .map((e) => e.event_id)
      .sort();
    expect(second.rowsDropped).toBe(events.length - kept.length);
    const ids = await storedIds(db.pool);
    expect(ids.events).toEqual(kept);
    expect(ids.ledger).toEqual(kept);

    // Traces by their own setting, from the rows as they were; agent_metrics untouched.
    const traceHorizon = addDays(now, -35);
    const keptTraces = tracesBefore
      .filter((t) => t.last_event_at >= traceHorizon)
      .map((t) => t.trace_id)
      .sort();
    expect(keptTraces.length).toBeLessThan(tracesBefore.length);
    const traces = await db.pool.query<{ trace_id: string }>('SELECT trace_id FROM swarm_traces ORDER BY 1');
    expect(traces.rows.map((r) => r.trace_id)).toEqual(keptTraces);
    expect(second.trimmed.swarm_traces).toBe(tracesBefore.length - keptTraces.length);
    expect((await db.pool.query(METRICS_SQL)).rows).toEqual(metricsBefore);
  });

  it('a replay of an expired id is stored again in the default partition, and trimmed with its ledger entry by the next pass', async () => {
    await truncateStore(db.pool);
    const now = new Date();
    const old = addDays(startOfUtcDay(now), -35);
    const events = taskOnDay('replay', old, 0);
    await writeEvents(db.pool, events);
    await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 0 }), now);
    expect((await partitionCounts(db.pool)).get(partitionName(old))).toBe(4);

    const dropped = await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 30 }), now);
    expect(dropped.partitionsDropped).toEqual([partitionName(old)]);
    expect((await storedIds(db.pool)).ledger).toEqual([]);

    // The ledger forgot the id: the replay is a new event, stored where days without a partition go.
    const replay = await writeEvents(db.pool, [events[0]!]);
    expect(replay.results).toEqual([{ status: 'stored' }]);
    const { rows } = await db.pool.query<{ part: string }>(
      'SELECT tableoid::regclass::text AS part FROM swarm_events WHERE event_id = $1',
      [events[0]!.event_id],
    );
    expect(rows).toEqual([{ part: 'swarm_events_default' }]);

    const trimmed = await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 30 }), now);
    expect(trimmed.trimmed.swarm_events).toBe(1);
    expect(trimmed.trimmed.swarm_event_ids).toBe(1);
    expect(await storedIds(db.pool)).toEqual({ events: [], ledger: [] });
  });

  it('events far in the past and future land in the default partition: the past is trimmed, the future kept', async () => {
    await truncateStore(db.pool);
    const now = new Date();
    const past = single('far-past', FAR_PAST);
    const future = single('far-future', FAR_FUTURE);
    const recent = single('recent', now);
    await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 30 }), now);
    const written = await writeEvents(db.pool, [past, future, recent]);
    expect(written.results).toEqual([{ status: 'stored' }, { status: 'stored' }, { status: 'stored' }]);
    const counts = await partitionCounts(db.pool);
    expect(counts.get('swarm_events_default')).toBe(2);
    expect(counts.get(partitionName(startOfUtcDay(now)))).toBe(1);

    const report = await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 30 }), now);
    expect(report.trimmed.swarm_events).toBe(1);
    expect(await storedIds(db.pool)).toEqual({
      events: [future.event_id, recent.event_id].sort(),
      ledger: [future.event_id, recent.event_id].sort(),
    });
    // Duplicates are still caught in the default partition.
    expect((await writeEvents(db.pool, [future])).results).toEqual([{ status: 'duplicate' }]);
  });

  it('a day partition created while events of that day arrive: none is lost, refused or duplicated', async () => {
    await truncateStore(db.pool);
    const now = new Date();
    // A day no earlier test gave a partition.
    const day = addDays(startOfUtcDay(now), -100);
    await writeEvents(
      db.pool,
      Array.from({ length: 500 }, (_, i) => single(`late-${i % 7}`, new Date(day.getTime() + i * 1000))),
    );
    const ids: string[] = [];
    let running = true;
    const writer = (async () => {
      for (let i = 0; running; i++) {
        const batch = Array.from({ length: 5 }, (_, j) =>
          single(`late-w`, new Date(day.getTime() + 3_600_000 + i * 10 + j)),
        );
        const result = await writeEvents(db.pool, batch);
        expect(result.results.every((r) => r?.status === 'stored')).toBe(true);
        ids.push(...batch.map((e) => e.event_id));
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    const report = await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 0 }), now);
    await new Promise((r) => setTimeout(r, 100));
    running = false;
    await writer;
    expect(report.errors).toEqual([]);
    expect(report.partitionsCreated).toContain(partitionName(day));
    const { rows } = await db.pool.query<{ n: number; distinct: number; ledger: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS distinct,
         (SELECT count(*) FROM swarm_event_ids)::int AS ledger FROM swarm_events`,
    );
    expect(rows[0]).toEqual({ n: 500 + ids.length, distinct: 500 + ids.length, ledger: 500 + ids.length });
    expect(ids.length).toBeGreaterThan(0);
    expect((await partitionCounts(db.pool)).get('swarm_events_default')).toBe(0);
  });

  it('exported spans, rejects and DLQ entries are trimmed by their own settings; spans not exported and otel_pending are kept', async () => {
    await truncateStore(db.pool);
    await db.pool.query(`
      INSERT INTO otel_spans (otel_trace_id, span_id, trace_id, role, span, created_at, exported_at)
      SELECT lpad(i::text, 32, '0'), lpad(i::text, 16, '0'), 't-' || i, 'root', '{}',
        now() - interval '60 days',
        CASE WHEN i % 3 = 0 THEN NULL WHEN i % 3 = 1 THEN now() - interval '40 days' ELSE now() - interval '1 day' END
      FROM generate_series(1, 120) i`);
    await db.pool.query(
      `INSERT INTO otel_pending (trace_id, first_at, last_at) VALUES ('t-1', now() - interval '60 days', now())`,
    );
    await db.pool.query(`
      INSERT INTO chronicle_rejects (rejected_at, origin, reason, detail, payload, payload_bytes)
      SELECT now() - (i || ' days')::interval + interval '1 hour', 'http', 'invalid', 'd', 'p', 1 FROM generate_series(1, 50) i`);
    await db.pool.query(`
      INSERT INTO swarm_dlq (dlq_id, received_at) SELECT 'd-' || i, now() - (i || ' days')::interval + interval '1 hour' FROM generate_series(1, 100) i`);

    const report = await runMaintenancePass(
      db.pool,
      testMaintenance({ spansDays: 30, rejectsDays: 20, dlqDays: 90 }),
    );
    expect(report.trimmed).toMatchObject({ otel_spans: 40, chronicle_rejects: 30, swarm_dlq: 10 });
    const { rows } = await db.pool.query<{
      exported_old: number;
      unexported: number;
      recent: number;
      pending: number;
    }>(`
      SELECT count(*) FILTER (WHERE exported_at < now() - interval '30 days')::int AS exported_old,
        count(*) FILTER (WHERE exported_at IS NULL)::int AS unexported,
        count(*) FILTER (WHERE exported_at >= now() - interval '30 days')::int AS recent,
        (SELECT count(*) FROM otel_pending)::int AS pending
      FROM otel_spans`);
    expect(rows[0]).toEqual({ exported_old: 0, unexported: 40, recent: 40, pending: 1 });
    const rejects = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM chronicle_rejects WHERE rejected_at >= now() - interval '20 days'`,
    );
    expect(rejects.rows[0]!.n).toBe(20);
    expect((await db.pool.query('SELECT 1 FROM chronicle_rejects')).rowCount).toBe(20);
    expect((await db.pool.query('SELECT 1 FROM swarm_dlq')).rowCount).toBe(90);

    // 0 keeps forever.
    const none = await runMaintenancePass(
      db.pool,
      testMaintenance({ spansDays: 0, rejectsDays: 0, dlqDays: 0 }),
    );
    expect(none.trimmed).toMatchObject({ otel_spans: 0, chronicle_rejects: 0, swarm_dlq: 0 });
  });

  it('a late event for a task whose first events were dropped: stored, and the row recomputed from the events kept (title lost, status follows)', async () => {
    await truncateStore(db.pool);
    const now = new Date();
    const today = startOfUtcDay(now);
    const trace = 'long-task';
    const at = (day: number, type: string, metadata: Record<string, unknown> = {}): CanonicalEvent => ({
      event_id: randomUUID(),
      trace_id: trace,
      source: 'test',
      event_type: type,
      timestamp: new Date(addDays(today, day).getTime() + 3_600_000).toISOString(),
      metadata: { agent: 'agent-long', ...metadata },
    });
    // Created and assigned 40 days ago, started 10 days ago.
    await writeEvents(db.pool, [
      at(-40, 'task.created', { title: 'a long task' }),
      at(-40, 'task.assigned'),
      at(-10, 'task.started'),
    ]);
    await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 0, tracesDays: 0 }), now);
    await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 30, tracesDays: 0 }), now);
    const before = await db.pool.query<{ first_event_at: Date }>(
      'SELECT * FROM swarm_traces WHERE trace_id = $1',
      [trace],
    );
    expect(before.rows[0]).toMatchObject({ status: 'in_progress', task_title: 'a long task', attempts: 1 });

    const late = await writeEvents(db.pool, [at(0, 'task.completed')]);
    expect(late.results).toEqual([{ status: 'stored' }]);
    const { rows } = await db.pool.query('SELECT * FROM swarm_traces WHERE trace_id = $1', [trace]);
    // What only the dropped events carried is gone from the row; what the kept events say is right.
    expect(rows[0]).toMatchObject({
      status: 'completed',
      task_title: null,
      attempts: 0,
      assigned_agent: 'agent-long',
      span_count: 4,
      first_event_at: before.rows[0]!.first_event_at,
      started_at: new Date(addDays(today, -10).getTime() + 3_600_000),
    });
  });

  it('a partition change that cannot get its lock in time gives up, reports it, and the next pass does it with every row', async () => {
    await truncateStore(db.pool);
    const now = new Date();
    const day = addDays(startOfUtcDay(now), -200);
    const events = Array.from({ length: 30 }, (_, i) =>
      single(`blocked-${i}`, new Date(day.getTime() + i * 1000)),
    );
    await writeEvents(db.pool, events);
    // An open transaction that wrote to swarm_events holds a lock the move must wait for.
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(
        `INSERT INTO swarm_events (event_id, trace_id, source, event_type, "timestamp") VALUES ($1, 'b', 's', 'note', $2)`,
        [randomUUID(), now],
      );
      const options = {
        ...testMaintenance({ eventsDays: 0 }),
        lockTimeoutMillis: 200,
        lockAttempts: 2,
        lockRetryPauseMillis: 100,
      };
      const blocked = await runMaintenancePass(db.pool, options, now);
      expect(blocked.ran).toBe(true);
      expect(blocked.partitionsCreated).not.toContain(partitionName(day));
      expect(
        blocked.errors.some((e) => e.startsWith(`create ${partitionName(day)}: `) && /lock timeout/.test(e)),
      ).toBe(true);
      // Nothing moved: every event is still read once, from the default partition.
      expect((await partitionCounts(db.pool)).get('swarm_events_default')).toBe(30);
      await blocker.query('ROLLBACK');
      const next = await runMaintenancePass(db.pool, options, now);
      expect(next.errors).toEqual([]);
      expect(next.partitionsCreated).toEqual([partitionName(day)]);
      const counts = await partitionCounts(db.pool);
      expect(counts.get(partitionName(day))).toBe(30);
      expect(counts.get('swarm_events_default')).toBe(0);
      const ids = events.map((e) => e.event_id).sort();
      expect(await storedIds(db.pool)).toEqual({ events: ids, ledger: ids });
    } finally {
      await blocker.end();
    }
  });

  it('a reader holding a transaction open across a pass: inserts never wait more than a short lock timeout; the drop is retried until the reader ends, or reported and done by the next pass', async () => {
    await truncateStore(db.pool);
    const now = new Date();
    const today = startOfUtcDay(now);
    // Old partitions left by earlier tests dropped first.
    expect((await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 30 }), now)).errors).toEqual([]);
    const oldDays = [-45, -44, -43].map((d) => addDays(today, d));
    const events = oldDays.flatMap((day, i) => taskOnDay('lockq', day, i));
    await writeEvents(db.pool, events);
    const kept = await runMaintenancePass(db.pool, testMaintenance({ eventsDays: 0 }), now);
    expect(kept.errors).toEqual([]);
    for (const day of oldDays) expect(kept.partitionsCreated).toContain(partitionName(day));

    // Ingest: one event (ledger entry + row, as the writer does) every 50 ms, each insert timed.
    const ingest = new pg.Client({ connectionString: db.url });
    await ingest.connect();
    const waits: number[] = [];
    let running = true;
    const inserter = (async () => {
      while (running) {
        const started = Date.now();
        await ingest.query(
          `WITH fresh AS (INSERT INTO swarm_event_ids (event_id, "timestamp") VALUES ($1, now()) RETURNING event_id)
           INSERT INTO swarm_events (event_id, trace_id, source, event_type, "timestamp")
           SELECT event_id, 'lockq-live', 'test', 'note', now() FROM fresh`,
          [randomUUID()],
        );
        waits.push(Date.now() - started);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // A reader (a dashboard query, an API read) whose transaction stays open: it holds ACCESS SHARE on
    // swarm_events and every partition, which DROP TABLE of a partition waits for.
    const reader = new pg.Client({ connectionString: db.url });
    await reader.connect();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM swarm_events');
      const policy = { eventsDays: 30 };

      // Two short tries: given up, reported, nothing dropped; ingest went on.
      const options = { ...testMaintenance(policy), lockAttempts: 2, lockRetryPauseMillis: 100 };
      const blocked = await runMaintenancePass(db.pool, options, now);
      expect(blocked.partitionsDropped).toEqual([]);
      const expected = oldDays.map(partitionName).sort();
      for (const name of expected) {
        expect(
          blocked.errors.some((e) => e.startsWith(`drop ${name}: `) && /lock timeout.*2 tries/.test(e)),
        ).toBe(true);
      }
      expect((await partitionCounts(db.pool)).get(partitionName(oldDays[0]!))).toBe(4);

      // The default tries: the reader ends about 2.5 s into the pass, and the drops then go through.
      const endReader = setTimeout(() => void reader.query('COMMIT'), 2_500);
      const started = Date.now();
      const next = await runMaintenancePass(db.pool, testMaintenance(policy), now);
      clearTimeout(endReader);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
      expect(next.errors).toEqual([]);
      expect([...next.partitionsDropped].sort()).toEqual(expected);
      expect(next.rowsDropped).toBe(events.length);
    } finally {
      running = false;
      await inserter;
      await ingest.end();
      await reader.end();
    }
    expect(waits.length).toBeGreaterThan(40);
    expect(Math.max(...waits)).toBeLessThan(1_000);
    const counts = await partitionCounts(db.pool);
    for (const day of oldDays) expect(counts.has(partitionName(day))).toBe(false);
    const live = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM swarm_events WHERE trace_id = 'lockq-live'`,
    );
    expect(live.rows[0]!.n).toBe(waits.length);
  });

  it('span export off: spans older than their retention are trimmed by when they were built, after a pinned task has its spans copied; export on keeps those waiting for export', async () => {
    await truncateStore(db.pool);
    await db.pool.query('DELETE FROM archive_traces');
    const now = new Date();
    const pinnedTask = taskOnDay('spans-pin', addDays(startOfUtcDay(now), -2), 0);
    await writeEvents(db.pool, pinnedTask);
    const traceId = pinnedTask[0]!.trace_id;
    expect(await createPinStore(db.pool).pin(traceId)).not.toBeNull();
    // 60 spans built 60 days ago (20 never exported, 20 exported 40 days ago, 20 a day ago), 10 built a
    // day ago and not exported.
    await db.pool.query(`
      INSERT INTO otel_spans (otel_trace_id, span_id, trace_id, role, span, created_at, exported_at)
      SELECT lpad(i::text, 32, '0'), lpad(i::text, 16, '0'), 't-' || i, 'root', '{}',
        CASE WHEN i <= 60 THEN now() - interval '60 days' ELSE now() - interval '1 day' END,
        CASE WHEN i > 60 OR i % 3 = 0 THEN NULL WHEN i % 3 = 1 THEN now() - interval '40 days' ELSE now() - interval '1 day' END
      FROM generate_series(1, 70) i`);
    const spanCount = async (where: string): Promise<number> =>
      (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM otel_spans WHERE ${where}`))
        .rows[0]!.n;

    // Export on: only the spans exported more than 30 days ago go.
    const on = await runMaintenancePass(db.pool, testMaintenance({ spansDays: 30 }, { spansExported: true }));
    expect(on.errors).toEqual([]);
    expect(on.trimmed.otel_spans).toBe(20);
    expect(await spanCount('exported_at IS NULL')).toBe(20 + 10);

    // The pinned task's spans, built 60 days ago and not exported, arrive after its latest copy.
    await db.pool.query(
      `INSERT INTO otel_spans (otel_trace_id, span_id, trace_id, role, span, created_at)
       SELECT lpad('p' || i, 32, '0'), lpad('p' || i, 16, '0'), $1, 'root', '{}', now() - interval '60 days'
       FROM generate_series(1, 3) i`,
      [traceId],
    );
    // Export off: every span built more than 30 days ago goes, exported or not; the pinned task's are
    // in its archive copy first.
    const off = await runMaintenancePass(
      db.pool,
      testMaintenance({ spansDays: 30 }, { spansExported: false }),
    );
    expect(off.errors).toEqual([]);
    expect(off.pinsRefreshed).toBe(1);
    expect(off.trimmed.otel_spans).toBe(40 + 3);
    expect(await spanCount(`created_at < now() - interval '30 days'`)).toBe(0);
    expect(await spanCount('true')).toBe(10);
    const archived = await db.pool.query<{ span_id: string }>(
      'SELECT span_id FROM archive_spans WHERE trace_id = $1 ORDER BY 1',
      [traceId],
    );
    expect(archived.rows.map((r) => r.span_id)).toEqual([1, 2, 3].map((i) => `p${i}`.padStart(16, '0')));

    // 0 keeps forever, export off too.
    await db.pool.query(
      `UPDATE otel_spans SET created_at = now() - interval '400 days' WHERE otel_trace_id = lpad('61', 32, '0')`,
    );
    const none = await runMaintenancePass(
      db.pool,
      testMaintenance({ spansDays: 0 }, { spansExported: false }),
    );
    expect(none.trimmed.otel_spans).toBe(0);
    expect(await spanCount('true')).toBe(10);
  });

  it("a pass leaves the pooled connection in the session's own time zone, and computes days in UTC whatever it is", async () => {
    await truncateStore(db.pool);
    const pool = new pg.Pool({ connectionString: db.url, max: 1, options: '-c TimeZone=Pacific/Kiritimati' });
    try {
      const now = new Date();
      // 23:30 UTC, 13:30 the next day in Kiritimati (UTC+14): the row belongs to the UTC day.
      const day = addDays(startOfUtcDay(now), -120);
      const event = single('tz', new Date(day.getTime() + 23.5 * 3_600_000));
      await writeEvents(db.pool, [event]);
      // Everything kept: no copy of pinned tasks, whose connection this one-connection pool lacks.
      const keep = { eventsDays: 0, tracesDays: 0, spansDays: 0, rejectsDays: 0, dlqDays: 0 };
      const report = await runMaintenancePass(pool, testMaintenance(keep), now);
      expect(report.errors).toEqual([]);
      expect(report.partitionsCreated).toContain(partitionName(day));
      expect((await partitionCounts(db.pool)).get(partitionName(day))).toBe(1);
      const { rows } = await pool.query<{ tz: string }>('SELECT current_setting($1) AS tz', ['TimeZone']);
      expect(rows[0]!.tz).toBe('Pacific/Kiritimati');
    } finally {
      await pool.end();
    }
  });

  it('one replica at a time: a pass while another process holds the maintenance lock does nothing', async () => {
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('SELECT pg_advisory_lock($1)', [MAINTENANCE_LOCK_KEY]);
      const report = await runMaintenancePass(db.pool, testMaintenance({}));
      expect(report.ran).toBe(false);
      expect(report.partitionsCreated).toEqual([]);
      await other.query('SELECT pg_advisory_unlock($1)', [MAINTENANCE_LOCK_KEY]);
      expect((await runMaintenancePass(db.pool, testMaintenance({}))).ran).toBe(true);
    } finally {
      await other.end();
    }
  });
});
