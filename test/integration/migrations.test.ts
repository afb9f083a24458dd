import { randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { MIGRATIONS_DIR, loadMigrations, migrate } from '../../src/db/migrate.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { describeWithPostgres } from '../support/services.js';

/** The task side of agent_metrics aggregated from every stored task, as the rules define it. */
const AGGREGATED_SQL = `
SELECT assigned_agent AS agent_id, (completed_at AT TIME ZONE 'UTC')::date AS metric_date,
  count(*) FILTER (WHERE status = 'completed')::int AS tasks_completed,
  count(*) FILTER (WHERE status = 'failed')::int AS tasks_failed,
  count(duration_ms) FILTER (WHERE status = 'completed')::int AS duration_count,
  coalesce(sum(duration_ms) FILTER (WHERE status = 'completed'), 0) AS duration_sum,
  count(time_to_pickup_ms)::int AS pickup_count, coalesce(sum(time_to_pickup_ms), 0) AS pickup_sum,
  round(avg(duration_ms) FILTER (WHERE status = 'completed'))::bigint AS avg_duration_ms,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE status = 'completed'))::numeric)::bigint
    AS p95_duration_ms
FROM swarm_traces WHERE is_task AND status IN ('completed', 'failed', 'timed_out') AND assigned_agent IS NOT NULL
GROUP BY 1, 2 ORDER BY 1, 2`;

const STORED_SQL = `
SELECT agent_id, metric_date, tasks_completed, tasks_failed, duration_count, duration_sum, pickup_count, pickup_sum,
  avg_duration_ms, p95_duration_ms
FROM agent_metrics ORDER BY 1, 2`;

interface MetricTotals {
  agent_id: string;
  metric_date: string;
  tasks_completed: number;
  duration_sum: number;
  pickup_sum: number;
}

describeWithPostgres('migrations', () => {
  let db: TestDatabase;
  let firstOnly: string;

  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    firstOnly = await mkdtemp(join(tmpdir(), 'chronicle-migrations-'));
    await copyFile(join(MIGRATIONS_DIR, '0001_initial.sql'), join(firstOnly, '0001_initial.sql'));
  });

  afterAll(async () => {
    await db?.drop();
    if (firstOnly) await rm(firstOnly, { recursive: true, force: true });
  });

  it('0002 fills the metric totals of a database written before it, and later deltas add to them', async () => {
    expect(await migrate(db.pool, silentLogger(), `${firstOnly}/`)).toEqual([1]);
    // Tasks as 0001 stored them: two agents, two days, with and without durations and pickups.
    await db.pool.query(`
      INSERT INTO swarm_traces (trace_id, is_task, status, assigned_agent, created_at, completed_at, duration_ms,
        time_to_pickup_ms, span_count, first_event_at, last_event_at)
      SELECT 'old-' || i, true, CASE WHEN i % 5 = 0 THEN 'failed' ELSE 'completed' END, 'agent-' || (i % 2),
        '2026-03-01T00:00:00Z', timestamptz '2026-03-01T08:00:00Z' + (i % 3) * interval '10 hours',
        CASE WHEN i % 7 <> 0 THEN 100 + i * 13 END, CASE WHEN i % 4 <> 0 THEN i END, 3,
        '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z'
      FROM generate_series(1, 40) i`);
    await db.pool.query(`
      INSERT INTO agent_metrics (agent_id, metric_date, tasks_completed, tasks_failed, avg_duration_ms, p95_duration_ms)
      SELECT agent_id, metric_date, tasks_completed, tasks_failed, avg_duration_ms, p95_duration_ms
      FROM (${AGGREGATED_SQL}) a`);

    expect(await migrate(db.pool, silentLogger())).toContain(2);
    const aggregated = await db.pool.query<MetricTotals>(AGGREGATED_SQL);
    const backfilled = await db.pool.query<MetricTotals>(STORED_SQL);
    expect(backfilled.rows).toEqual(aggregated.rows);

    // A task finished later, on one of those days, goes onto the backfilled totals.
    const trace = 'new-task';
    const ev = (type: string, timestamp: string): CanonicalEvent => ({
      event_id: randomUUID(),
      trace_id: trace,
      source: 'test',
      event_type: type,
      timestamp,
      metadata: { agent: 'agent-1' },
    });
    const writer = createEventWriter({ pool: db.pool, logger: silentLogger() });
    await writer.write(
      [
        ev('task.assigned', '2026-03-01T09:00:00.000Z'),
        ev('task.started', '2026-03-01T09:00:01.000Z'),
        ev('task.completed', '2026-03-01T09:00:05.000Z'),
      ].map((event) => ({ kind: 'event', input: { origin: 'http', subject: null, key: null }, event })),
    );
    const after = await db.pool.query<MetricTotals>(STORED_SQL);
    expect(after.rows).toEqual((await db.pool.query(AGGREGATED_SQL)).rows);
    const key = (r: MetricTotals) => r.agent_id === 'agent-1' && r.metric_date === '2026-03-01';
    const before = backfilled.rows.find(key)!;
    expect(after.rows.find(key)).toMatchObject({
      tasks_completed: before.tasks_completed + 1,
      duration_sum: before.duration_sum + 4_000,
      pickup_sum: before.pickup_sum + 1_000,
    });
  });
});

describeWithPostgres('migrations - one transaction each', () => {
  it('replicas starting together apply each migration once; a failing one leaves those before it applied, and the next start goes on from it', async () => {
    const db = await createTestDatabase({ migrate: false });
    const dir = await mkdtemp(join(tmpdir(), 'chronicle-migrations-'));
    try {
      const all = (await loadMigrations()).map((m) => m.version);
      const runs = await Promise.all([1, 2, 3].map(() => migrate(db.pool, silentLogger())));
      expect(runs.flat().sort((a, b) => a - b)).toEqual(all);

      // A folder whose next migration fails after one that works.
      const next = all.at(-1)! + 1;
      const name = (v: number, what: string) => `${String(v).padStart(4, '0')}_${what}.sql`;
      for (const f of (await loadMigrations()).map((m) => `${m.name}.sql`)) {
        await copyFile(join(MIGRATIONS_DIR, f), join(dir, f));
      }
      await writeFile(join(dir, name(next, 'works')), 'CREATE TABLE migration_test_works (id int);');
      await writeFile(
        join(dir, name(next + 1, 'fails')),
        'CREATE TABLE migration_test_fails (id int); SELECT 1/0;',
      );
      await expect(migrate(db.pool, silentLogger(), `${dir}/`)).rejects.toThrow(/division by zero/);
      const versions = async () =>
        (
          await db.pool.query<{ version: number }>('SELECT version FROM chronicle_migrations ORDER BY 1')
        ).rows.map((r) => r.version);
      expect(await versions()).toEqual([...all, next]);
      const exists = async (t: string) =>
        (await db.pool.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [t])).rows[0]!.r;
      expect(await exists('migration_test_works')).toBe('migration_test_works');
      expect(await exists('migration_test_fails')).toBeNull();

      await writeFile(join(dir, name(next + 1, 'fails')), 'CREATE TABLE migration_test_fails (id int);');
      // The fixed file is new to the database (it never applied): the next start applies it alone.
      expect(await migrate(db.pool, silentLogger(), `${dir}/`)).toEqual([next + 1]);
    } finally {
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describeWithPostgres('migrations - 0017', () => {
  it("an agent's completed durations on given UTC days are read from swarm_traces_agent_duration_idx alone", async () => {
    const db = await createTestDatabase();
    try {
      // 4 agents × 3 days × 200 completed tasks, plus failed and unfinished ones the index leaves out.
      await db.pool.query(`
        INSERT INTO swarm_traces (trace_id, is_task, status, assigned_agent, created_at, completed_at,
          duration_ms, span_count, first_event_at, last_event_at)
        SELECT 'task-' || i, true, CASE WHEN i % 10 = 0 THEN 'failed' WHEN i % 10 = 1 THEN 'in_progress' ELSE 'completed' END,
          'agent-' || (i % 4), c, CASE WHEN i % 10 <> 1 THEN c + (i % 97) * interval '1 s' END,
          CASE WHEN i % 10 > 1 THEN (i % 97) * 1000 END, 4, c, c + interval '2 min'
        FROM generate_series(1, 3000) i
        CROSS JOIN LATERAL (SELECT timestamptz '2026-03-01' + i * interval '86 s' AS c) t`);
      // All-visible pages, as the vacuum loop keeps them: an index-only scan then reads no heap page.
      await db.pool.query('VACUUM ANALYZE swarm_traces');
      const reads = {
        // The writer's p95 (src/derive/agent-metrics.ts): one agent, one day, in order.
        writer: `SELECT x.duration_ms FROM swarm_traces x
          WHERE x.assigned_agent = 'agent-2' AND (x.completed_at AT TIME ZONE 'UTC')::date = date '2026-03-02'
            AND x.is_task AND x.status = 'completed' AND x.duration_ms IS NOT NULL
          ORDER BY x.duration_ms DESC OFFSET 10 LIMIT 2`,
        // The dashboards' agent ranking (grafana/generate/agent-performance.ts): one agent, a range of days.
        ranking: `SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM swarm_traces
          WHERE is_task AND status = 'completed' AND duration_ms IS NOT NULL AND assigned_agent = 'agent-1'
            AND (completed_at AT TIME ZONE 'UTC')::date BETWEEN date '2026-03-01' AND date '2026-03-02'`,
      };
      for (const [name, sql] of Object.entries(reads)) {
        const client = await db.pool.connect();
        try {
          await client.query('BEGIN');
          // The planner's choice between a bitmap scan and an index scan depends on statistics; what
          // the index must allow is a read of the index alone.
          await client.query('SET LOCAL enable_bitmapscan = off');
          await client.query('SET LOCAL enable_seqscan = off');
          const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(
            `EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`,
          );
          const scans: Record<string, unknown>[] = [];
          const walk = (node: Record<string, unknown>): void => {
            if (node['Relation Name'] === 'swarm_traces') scans.push(node);
            for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
          };
          walk(rows[0]!['QUERY PLAN'][0].Plan);
          expect(
            scans.map((s) => [s['Node Type'], s['Index Name'], s['Heap Fetches']]),
            name,
          ).toEqual([['Index Only Scan', 'swarm_traces_agent_duration_idx', 0]]);
          await client.query('ROLLBACK');
        } finally {
          client.release();
        }
      }
    } finally {
      await db.drop();
    }
  });
});
