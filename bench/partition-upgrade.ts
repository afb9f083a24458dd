/**
 * `npx tsx bench/partition-upgrade.ts`: how long the upgrade to the partitioned swarm_events (migration
 * 0008, then the first maintenance pass) stops ingest on a populated store (a measurement, not a test).
 *
 * 1. A fresh database migrated to 0007 (the unpartitioned table) and filled with BENCH_EVENTS events
 *    (default 1,000,000) over 40 days by generate_series, with their ledger entries.
 * 2. An inserter writes one new event at a time through the event writer's statement (ledger + event),
 *    all along, and records how long each insert took.
 * 3. The remaining migrations are applied (one transaction, as at start), then one maintenance pass runs
 *    (retention 30 days): each phase's duration and the longest insert during it are printed.
 * 4. Every event is then counted exactly once, and the ledger matches the events.
 *
 * Needs Postgres (DATABASE_URL as in the tests).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR, migrate } from '../src/db/migrate.js';
import {
  DEFAULT_MAINTENANCE_OPTIONS,
  runMaintenancePass,
} from '../src/sinks/postgres/partition-maintenance.js';
import { DEFAULT_RETENTION } from '../src/sinks/postgres/retention-policy.js';
import { silentLogger } from '../src/telemetry/logger.js';

const N = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const INSERT_SQL = `
WITH fresh AS (
  INSERT INTO swarm_event_ids (event_id, "timestamp") VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id)
INSERT INTO swarm_events (event_id, trace_id, source, event_type, "timestamp")
SELECT event_id, 'live-' || $1, 'bench', 'note', $2 FROM fresh`;

async function main(): Promise<void> {
  const name = `chronicle_upgrade_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
  pool.on('error', () => undefined);
  const upTo7 = await mkdtemp(join(tmpdir(), 'chronicle-0007-'));
  try {
    for (const f of await readdir(MIGRATIONS_DIR)) {
      if (/^000[1-7]_/.test(f)) await copyFile(join(MIGRATIONS_DIR, f), join(upTo7, f));
    }
    await migrate(pool, silentLogger(), `${upTo7}/`);
    let t = Date.now();
    await pool.query(
      `INSERT INTO swarm_event_ids (event_id, "timestamp")
       SELECT gen_random_uuid(), now() - (i % 40) * interval '1 day' - (i % 997) * interval '1 minute'
       FROM generate_series(1, $1) i`,
      [N],
    );
    await pool.query(
      `INSERT INTO swarm_events (event_id, trace_id, source, event_type, "timestamp", metadata)
       SELECT event_id, 'trace-' || (abs(hashtext(event_id::text)) % 100000), 'bench',
         (ARRAY['task.created','task.assigned','task.started','task.completed','agent.heartbeat'])[1 + abs(hashtext(event_id::text)) % 5],
         "timestamp", jsonb_build_object('agent', 'agent-' || abs(hashtext(event_id::text)) % 50)
       FROM swarm_event_ids`,
    );
    await pool.query('VACUUM ANALYZE swarm_events');
    await pool.query('VACUUM ANALYZE swarm_event_ids');
    console.log(`filled ${N} events in the 0007 schema in ${Date.now() - t} ms`);

    // The inserter: one event at a time, timed.
    const waits: { at: number; millis: number }[] = [];
    let running = true;
    let inserted = 0;
    const inserter = (async () => {
      while (running) {
        const start = Date.now();
        try {
          await pool.query(INSERT_SQL, [randomUUID(), new Date()]);
          inserted++;
        } catch (err) {
          console.error('insert failed', (err as Error).message);
        }
        waits.push({ at: start, millis: Date.now() - start });
      }
    })();
    const longest = (from: number, to: number): number =>
      Math.max(0, ...waits.filter((w) => w.at + w.millis >= from && w.at <= to).map((w) => w.millis));

    await new Promise((r) => setTimeout(r, 500));
    t = Date.now();
    await migrate(pool, silentLogger());
    const migrated = Date.now();
    console.log(`migration 0008: ${migrated - t} ms; longest insert meanwhile: ${longest(t, migrated)} ms`);

    const report = await runMaintenancePass(pool, {
      ...DEFAULT_MAINTENANCE_OPTIONS,
      policy: DEFAULT_RETENTION,
      spansExported: false,
    });
    const passed = Date.now();
    console.log(
      `first maintenance pass: ${passed - migrated} ms (${report.partitionsCreated.length} partitions created, ` +
        `${report.rowsMoved} rows moved, ${report.trimmed.swarm_events} old rows trimmed); ` +
        `longest insert meanwhile: ${longest(migrated, passed)} ms`,
    );
    await new Promise((r) => setTimeout(r, 300));
    if (process.env.BENCH_VERBOSE) {
      for (const w of waits.filter((x) => x.millis > 200))
        console.log('slow insert', new Date(w.at).toISOString(), w.millis);
    }
    running = false;
    await inserter;
    const sorted = waits.map((w) => w.millis).sort((a, b) => a - b);
    console.log(
      `${inserted} live inserts, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms`,
    );
    const { rows } = await pool.query<{ events: number; distinct: number; ledger: number; orphans: number }>(
      `SELECT (SELECT count(*) FROM swarm_events)::int AS events,
         (SELECT count(DISTINCT event_id) FROM swarm_events)::int AS distinct,
         (SELECT count(*) FROM swarm_event_ids)::int AS ledger,
         (SELECT count(*) FROM swarm_event_ids l WHERE NOT EXISTS (
            SELECT 1 FROM swarm_events e WHERE e.event_id = l.event_id AND e."timestamp" = l."timestamp"))::int AS orphans`,
    );
    console.log(
      `after: ${rows[0]!.events} events (${rows[0]!.distinct} distinct), ${rows[0]!.ledger} ledger entries, ` +
        `${rows[0]!.orphans} entries without their event; expected ${N - report.trimmed.swarm_events + inserted} events`,
    );
  } finally {
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    await rm(upTo7, { recursive: true, force: true });
  }
}

await main();
