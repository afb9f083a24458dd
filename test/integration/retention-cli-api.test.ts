import pg from 'pg';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { EXIT, runCli } from '../../src/cli/chronicle.js';
import { MAINTENANCE_LOCK_KEY, partitionName } from '../../src/sinks/postgres/partition-maintenance.js';
import { addDays, startOfUtcDay } from '../../src/sinks/postgres/retention-policy.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { partitionCounts, tasksOverDays, testMaintenance, writeEvents } from '../support/retention.js';
import { createMaintenanceLoop } from '../../src/sinks/postgres/maintenance-loop.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { describeWithPostgres, describeWithServices } from '../support/services.js';

async function maintain(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    const code = await runCli(['maintain', ...args], { LOG_LEVEL: 'silent', NATS_URL: 'none', ...env });
    return { code, out };
  } finally {
    vi.restoreAllMocks();
  }
}

describeWithPostgres('chronicle maintain', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('maintain - runs one pass and prints what it created, dropped and trimmed; --json gives the report', async () => {
    const now = new Date();
    const today = startOfUtcDay(now);
    await writeEvents(db.pool, tasksOverDays('cli', now, 12, 1));
    const env = { DATABASE_URL: db.url, SWARM_EVENTS_RETENTION_DAYS: '0' };

    const first = await maintain([], env);
    expect(first.code).toBe(EXIT.ok);
    expect(first.out).toContain('partitions created: 19');
    expect(first.out).toContain(partitionName(addDays(today, -11)));
    expect(first.out).toContain('48 rows moved from the default partition');
    expect(first.out).toContain('partitions dropped: 0');

    const second = await maintain(['--json'], { ...env, SWARM_EVENTS_RETENTION_DAYS: '10' });
    expect(second.code).toBe(EXIT.ok);
    const report = JSON.parse(second.out) as { partitions_dropped: string[]; rows_dropped: number };
    expect(report.partitions_dropped).toEqual([partitionName(addDays(today, -11))]);
    expect(report.rows_dropped).toBe(4);
    expect((await partitionCounts(db.pool)).has(partitionName(addDays(today, -11)))).toBe(false);
  });

  it('maintain - with span export configured, spans not exported yet stay; without it, old spans go by when they were built', async () => {
    await db.pool.query(`
      INSERT INTO otel_spans (otel_trace_id, span_id, trace_id, role, span, created_at)
      SELECT lpad('c' || i, 32, '0'), lpad('c' || i, 16, '0'), 'cli-spans', 'root', '{}',
        now() - (i * 20 || ' days')::interval
      FROM generate_series(1, 3) i`);
    const env = { DATABASE_URL: db.url, OTEL_SPANS_RETENTION_DAYS: '30' };
    const count = async (): Promise<number> =>
      (
        await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM otel_spans WHERE trace_id = 'cli-spans'`,
        )
      ).rows[0]!.n;

    const exported = await maintain(['--json'], {
      ...env,
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9',
    });
    expect(exported.code).toBe(EXIT.ok);
    expect((JSON.parse(exported.out) as { trimmed: { otel_spans: number } }).trimmed.otel_spans).toBe(0);
    expect(await count()).toBe(3);

    const local = await maintain(['--json'], env);
    expect(local.code).toBe(EXIT.ok);
    expect((JSON.parse(local.out) as { trimmed: { otel_spans: number } }).trimmed.otel_spans).toBe(2);
    expect(await count()).toBe(1);
  });

  it('maintenance loop - a pass shortly after start and then on schedule, counted in metrics and logged once per pass', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const metrics = createMetrics({ defaultMetrics: false });
    const loop = createMaintenanceLoop(
      { ...testMaintenance({ eventsDays: 30 }), intervalMillis: 300, firstDelayMillis: 10 },
      { pool: db.pool, logger, metrics },
    );
    const startedAt = Date.now() / 1000;
    await loop.start();
    try {
      await waitFor(
        async () => {
          const passes = await metrics.registry.getSingleMetric('chronicle_maintenance_passes_total')!.get();
          return (passes.values.find((v) => v.labels.result === 'done')?.value ?? 0) >= 2;
        },
        10_000,
        'two scheduled passes',
      );
    } finally {
      await loop.shutdown(AbortSignal.timeout(5_000));
    }
    const passes = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'maintenance pass done');
    expect(passes.length).toBeGreaterThanOrEqual(2);
    expect(passes[0]).toMatchObject({ partitionsDropped: [], trimmed: { swarm_events: 0 } });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/chronicle_maintenance_partitions_total\{action="dropped"\} 0/);
    expect(text).toMatch(/chronicle_maintenance_rows_deleted_total\{table="swarm_traces"\} 0/);
    const last = await metrics.registry
      .getSingleMetric('chronicle_maintenance_last_success_timestamp_seconds')!
      .get();
    expect(last.values[0]!.value).toBeGreaterThanOrEqual(Math.floor(startedAt));
  });

  it('maintain - exits 1 and says so when another process is running maintenance', async () => {
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('SELECT pg_advisory_lock($1)', [MAINTENANCE_LOCK_KEY]);
      const { code, out } = await maintain([], { DATABASE_URL: db.url });
      expect(code).toBe(EXIT.failed);
      expect(out).toContain('another process is running maintenance');
    } finally {
      await other.end();
    }
  });

  it('maintain - a bad flag is a usage error', async () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const code = await runCli(['maintain', '--nope'], { DATABASE_URL: db.url, LOG_LEVEL: 'silent' });
    vi.restoreAllMocks();
    expect(code).toBe(EXIT.usage);
  });
});

describeWithServices('retention API', () => {
  let env: ChronicleTestEnv;
  let c: TestChronicle;

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    c = await env.start({
      retention: {
        policy: { eventsDays: 30, tracesDays: 0, spansDays: 30, rejectsDays: 30, dlqDays: 90 },
        maintenanceIntervalMillis: 0,
      },
    });
  });

  afterAll(async () => {
    await env?.cleanup();
  });

  it('GET /api/v1/retention - the policy and the partitions with their day ranges, row estimates and sizes; POST /api/v1/retention/run runs a pass', async () => {
    const run = await fetch(`${c.url}/api/v1/retention/run`, { method: 'POST' });
    expect(run.status).toBe(200);
    const report = (await run.json()) as { ran: boolean; errors: string[] };
    expect(report).toMatchObject({ ran: true, errors: [] });

    // A pinned task is counted.
    const posted = await fetch(`${c.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ trace_id: 'retention-pinned-1', event_type: 'task.created' }),
    });
    expect(posted.status).toBe(200);
    expect((await fetch(`${c.url}/api/v1/traces/retention-pinned-1/pin`, { method: 'POST' })).status).toBe(
      201,
    );

    const res = await fetch(`${c.url}/api/v1/retention`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      policy: Record<string, number>;
      events_horizon: string;
      pinned: number;
      partitions: {
        name: string;
        from: string | null;
        to: string | null;
        rows_estimate: number;
        bytes: number;
      }[];
    };
    expect(body.policy).toEqual({
      events_days: 30,
      traces_days: 0,
      spans_days: 30,
      rejects_days: 30,
      dlq_days: 90,
    });
    expect(body.pinned).toBe(1);
    const today = startOfUtcDay(new Date());
    expect(body.events_horizon).toBe(addDays(today, -30).toISOString());
    const todays = body.partitions.find((p) => p.name === partitionName(today));
    expect(todays).toMatchObject({ from: today.toISOString(), to: addDays(today, 1).toISOString() });
    expect(todays!.bytes).toBeGreaterThan(0);
    expect(body.partitions.at(-1)).toMatchObject({ name: 'swarm_events_default', from: null, to: null });
  });
});
