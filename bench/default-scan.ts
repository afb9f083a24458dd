/**
 * `npx tsx bench/default-scan.ts`: how long a partition attach stops ingest as a function of the rows in
 * the default partition (a measurement, not a test). Postgres scans the whole default partition when a
 * partition is attached, to prove it holds no row of the new range, while writers wait (ADR 0011).
 *
 * 1. A fresh database, migrated, with BENCH_DEFAULT_ROWS (default 1,000,000) events dated in the year
 *    2200 in the default partition (no pass ever moves them).
 * 2. One maintenance pass creates today's partition and the 7 ahead: 8 attaches, each scanning them all.
 * 3. An inserter writes one event every 20 ms throughout, timed: its longest insert is about one scan.
 *
 * Needs Postgres (DATABASE_URL as in the tests).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import {
  DEFAULT_MAINTENANCE_OPTIONS,
  runMaintenancePass,
} from '../src/sinks/postgres/partition-maintenance.js';
import { silentLogger } from '../src/telemetry/logger.js';

const N = Number(process.env.BENCH_DEFAULT_ROWS ?? 1_000_000);
const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const KEEP = { eventsDays: 0, tracesDays: 0, spansDays: 0, rejectsDays: 0, dlqDays: 0 };

async function main(): Promise<void> {
  const name = `chronicle_default_scan_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
  pool.on('error', () => undefined);
  try {
    await migrate(pool, silentLogger());
    let t = Date.now();
    await pool.query(
      `INSERT INTO swarm_events (event_id, trace_id, source, event_type, "timestamp", metadata)
       SELECT gen_random_uuid(), 't' || (i % 1000), 'bench', 'note',
         '2200-01-01'::timestamptz + i * interval '1 second', '{"a":1}'
       FROM generate_series(1, $1) i`,
      [N],
    );
    await pool.query('VACUUM ANALYZE swarm_events_default');
    console.log(`${N} rows in the default partition in ${Date.now() - t} ms`);

    const waits: number[] = [];
    let running = true;
    const inserter = (async () => {
      while (running) {
        const start = Date.now();
        await pool.query(
          `INSERT INTO swarm_events (event_id, trace_id, source, event_type, "timestamp")
           VALUES ($1, 'live', 'bench', 'note', now())`,
          [randomUUID()],
        );
        waits.push(Date.now() - start);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    t = Date.now();
    const report = await runMaintenancePass(pool, {
      ...DEFAULT_MAINTENANCE_OPTIONS,
      policy: KEEP,
      spansExported: false,
    });
    const passMillis = Date.now() - t;
    running = false;
    await inserter;
    const sorted = [...waits].sort((a, b) => a - b);
    console.log(
      `pass ${passMillis} ms: ${report.partitionsCreated.length} attaches, errors ${JSON.stringify(report.errors)}; ` +
        `${waits.length} inserts, median ${sorted[Math.floor(sorted.length / 2)]} ms, longest ${sorted.at(-1)} ms`,
    );
  } finally {
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

await main();
