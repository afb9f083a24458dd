import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { CHURN_TABLES, createVacuumLoop } from '../../src/sinks/postgres/vacuum-loop.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { describeWithPostgres } from '../support/services.js';

const TASKS = 1_500;
const STEPS = ['task.created', 'task.assigned', 'task.started', 'task.completed'] as const;

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
        timestamp: new Date(Date.parse('2026-12-01T00:00:00Z') + step * 1_000 + i).toISOString(),
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
    // Nothing left past a threshold: the next check does nothing.
    expect((await loop.runOnce()).vacuumed).not.toContain('swarm_traces');
  });
});
