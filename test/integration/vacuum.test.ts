import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { partitionName, runMaintenancePass } from '../../src/sinks/postgres/partition-maintenance.js';
import { CHURN_TABLES, createVacuumLoop } from '../../src/sinks/postgres/vacuum-loop.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { waitFor } from '../support/chronicle.js';
import { partitionCounts, testMaintenance } from '../support/retention.js';
import { describeWithPostgres } from '../support/services.js';

const TASKS = 1_500;
const STEPS = ['task.created', 'task.assigned', 'task.started', 'task.completed'] as const;
const DAY = new Date('2026-12-01T00:00:00Z');

describeWithPostgres('vacuuming the churn tables', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  async function deadTraceRows(): Promise<number> {
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT n_dead_tup::int AS n FROM pg_stat_user_tables WHERE relname = 'swarm_traces'`,
    );
    return rows[0]!.n;
  }

  it('the migration gives each churn table its vacuum thresholds', async () => {
    const { rows } = await db.pool.query<{ relname: string; reloptions: string[] }>(
      `SELECT relname, reloptions FROM pg_class WHERE relname = ANY($1::text[]) ORDER BY relname`,
      [CHURN_TABLES],
    );
    expect(rows.map((r) => r.relname)).toEqual([...CHURN_TABLES].sort());
    const traces = rows.find((r) => r.relname === 'swarm_traces')!;
    expect(traces.reloptions).toContain('autovacuum_vacuum_scale_factor=0.02');
    const pending = rows.find((r) => r.relname === 'otel_pending')!;
    expect(pending.reloptions).toContain('autovacuum_vacuum_threshold=5000');
  });

  it("with the server's autovacuum off, a check vacuums swarm_traces once its dead rows pass the threshold; with it on, it does nothing", async () => {
    // Each task's four lifecycle events in four batches: a new version of each row per batch.
    const writer = createEventWriter({ pool: db.pool, logger: silentLogger() });
    for (const [step, type] of STEPS.entries()) {
      const events: CanonicalEvent[] = Array.from({ length: TASKS }, (_, i) => ({
        event_id: `00000000-0000-4000-8000-${String(step * TASKS + i + 1).padStart(12, '0')}`,
        trace_id: `vacuum-task-${i}`,
        source: 'dispatcher',
        event_type: type,
        timestamp: new Date(DAY.getTime() + step * 1_000 + i).toISOString(),
        metadata: { agent_id: 'agent-1' },
      }));
      await writer.write(
        events.map((event) => ({
          kind: 'event',
          input: { origin: 'http', subject: null, key: null },
          event,
        })),
      );
    }
    // Statistics reach the shared counters when a backend reports them (at most ~10 s after a write).
    const threshold = 1_000 + 0.02 * TASKS;
    const deadline = Date.now() + 30_000;
    while ((await deadTraceRows()) <= threshold && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(await deadTraceRows()).toBeGreaterThan(threshold);

    const metrics = createMetrics();
    const loop = createVacuumLoop({ intervalMillis: 0 }, { pool: db.pool, logger: silentLogger(), metrics });
    const { rows: setting } = await db.pool.query<{ autovacuum: string }>('SHOW autovacuum');
    const round = await loop.runOnce();
    expect(round.autovacuumOff).toBe(setting[0]!.autovacuum === 'off');
    if (!round.autovacuumOff) {
      expect(round).toEqual({ autovacuumOff: false, vacuumed: [], analyzed: [] });
      return;
    }
    expect(round.vacuumed).toContain('swarm_traces');
    const { rows } = await db.pool.query<{ vacuumed: boolean; dead: number }>(
      `SELECT last_vacuum IS NOT NULL AS vacuumed, n_dead_tup::int AS dead FROM pg_stat_user_tables
       WHERE relname = 'swarm_traces'`,
    );
    expect(rows[0]).toEqual({ vacuumed: true, dead: 0 });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/chronicle_vacuum_runs_total\{table="swarm_traces",action="vacuum(_analyze)?"\} 1/);
    // The events (in the default partition: no day partition yet) and their ledger entries, only inserted.
    expect(round.analyzed).toEqual(expect.arrayContaining(['swarm_events_default', 'swarm_event_ids']));
    // Nothing left past a threshold: the next check does nothing.
    expect((await loop.runOnce()).vacuumed).not.toContain('swarm_traces');
  });

  it("with the server's autovacuum off, a day partition maintenance filled is analyzed at the next check, and the rows it left in the default are vacuumed", async () => {
    const statistics = async (table: string) => {
      const { rows } = await db.pool.query<{
        reltuples: number;
        columns: number;
        dead: number;
        changed: number;
      }>(
        `SELECT c.reltuples::int AS reltuples, s.n_dead_tup::int AS dead, s.n_mod_since_analyze::int AS changed,
           (SELECT count(*)::int FROM pg_stats p WHERE p.tablename = c.relname) AS columns
         FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = $1`,
        [table],
      );
      return rows[0]!;
    };
    // The previous test's 6,000 events, all of DAY, move from the default into DAY's new partition.
    const day = partitionName(DAY);
    const report = await runMaintenancePass(
      db.pool,
      testMaintenance({}),
      new Date(DAY.getTime() + 43_200_000),
    );
    expect(report.errors).toEqual([]);
    expect((await partitionCounts(db.pool)).get(day)).toBe(TASKS * STEPS.length);
    // Filled by an INSERT … SELECT, never analyzed: the planner would take its rows for a handful.
    expect((await statistics(day)).reltuples).toBe(-1);
    // Statistics reach the shared counters when a backend reports them (at most ~10 s after a write).
    await waitFor(
      async () => (await statistics(day)).changed > 0 && (await statistics('swarm_events_default')).dead > 0,
      30_000,
      'the move to reach the statistics',
    );

    const metrics = createMetrics();
    const loop = createVacuumLoop({ intervalMillis: 0 }, { pool: db.pool, logger: silentLogger(), metrics });
    const round = await loop.runOnce();
    if (!round.autovacuumOff) {
      expect(round).toEqual({ autovacuumOff: false, vacuumed: [], analyzed: [] });
      return;
    }
    expect(round.analyzed).toContain(day);
    expect(await statistics(day)).toMatchObject({ reltuples: TASKS * STEPS.length, columns: 9 });
    expect(round.vacuumed).toContain('swarm_events_default');
    expect((await statistics('swarm_events_default')).dead).toBe(0);
    // Counted under their table, whichever day: partitions come and go, the series do not.
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/chronicle_vacuum_runs_total\{table="swarm_events",action="vacuum_analyze"\} \d+/);
    expect(text).not.toContain(`table="${day}"`);
  });
});
