import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MIGRATIONS_DIR, loadMigrations, migrate } from '../../src/db/migrate.js';
import { createPinStore } from '../../src/sinks/postgres/archive.js';
import { partitionName, runMaintenancePass } from '../../src/sinks/postgres/partition-maintenance.js';
import { addDays, eventsHorizon, startOfUtcDay } from '../../src/sinks/postgres/retention-policy.js';
import { createQueryStore } from '../../src/sinks/postgres/queries.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import {
  partitionCounts,
  storedIds,
  taskOnDay,
  tasksOverDays,
  testMaintenance,
  writeEvents,
} from '../support/retention.js';
import { describeWithPostgres } from '../support/services.js';

/**
 * Every stored event with its stream position, in stream order: by the columns, not by the text output
 * columns of the same names (which would put txid 100000 before 99999).
 */
const POSITIONS_SQL = `
SELECT e.event_id::text, e.trace_id, e.event_type, e."timestamp", e.metadata, e.txid::text, e.seq::text
FROM swarm_events e ORDER BY e.txid, e.seq, e.event_id`;

const PAST_METRICS_SQL = `SELECT * FROM agent_metrics WHERE metric_date < $1::date ORDER BY agent_id, metric_date`;

describeWithPostgres('retention - upgrade of an unpartitioned store', () => {
  let db: TestDatabase;
  let upTo7: string;

  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    upTo7 = await mkdtemp(join(tmpdir(), 'chronicle-0007-'));
    for (const f of await readdir(MIGRATIONS_DIR)) {
      if (/^000[1-7]_/.test(f)) await copyFile(join(MIGRATIONS_DIR, f), join(upTo7, f));
    }
  });

  afterAll(async () => {
    await db?.drop();
    if (upTo7) await rm(upTo7, { recursive: true, force: true });
  });

  it('0008 keeps every event once with its stream position while ingest goes on; old days are then dropped by partition, and a pinned task stays readable', async () => {
    expect(await migrate(db.pool, silentLogger(), `${upTo7}/`)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // The writer here is today's, whose trace recompute sets created_by (0016): the 0007 store gets
    // that column now, so ingest can go on through 0008 (0016 adds it only if it is not there).
    await db.pool.query('ALTER TABLE swarm_traces ADD COLUMN created_by text');
    const now = new Date();
    const today = startOfUtcDay(now);
    const events = tasksOverDays('old', now, 40, 2);
    // Rows from before 0007 (stream position 0-0) and after it.
    await writeEvents(db.pool, events);
    await db.pool.query(`UPDATE swarm_events SET txid = '0', seq = 0 WHERE "timestamp" < $1`, [
      addDays(today, -35),
    ]);
    const positions = (await db.pool.query(POSITIONS_SQL)).rows;
    const metricsBefore = (await db.pool.query(PAST_METRICS_SQL, [today])).rows;
    expect(metricsBefore.length).toBeGreaterThan(0);

    // Ingest goes on through the upgrade: every write succeeds, none waits long.
    const live: string[] = [];
    let running = true;
    let longestMillis = 0;
    const writer = (async () => {
      for (let i = 0; running; i++) {
        const batch = taskOnDay(`live-${i}`, today, i % 50);
        const started = Date.now();
        const result = await writeEvents(db.pool, batch);
        longestMillis = Math.max(longestMillis, Date.now() - started);
        expect(result.results.every((r) => r?.status === 'stored')).toBe(true);
        live.push(...batch.map((e) => e.event_id));
      }
    })();
    const fileNode = async (table: string): Promise<string> =>
      (await db.pool.query<{ n: string }>(`SELECT pg_relation_filenode($1)::text AS n`, [table])).rows[0]!.n;
    const node = await fileNode('swarm_events');
    await new Promise((r) => setTimeout(r, 100));
    // 0008 and the migrations after it.
    const later = (await loadMigrations()).map((m) => m.version).filter((v) => v >= 8);
    expect(later[0]).toBe(8);
    expect(await migrate(db.pool, silentLogger())).toEqual(later);
    // Nothing copied: the old table, as it was, is the default partition.
    expect(await fileNode('swarm_events_default')).toBe(node);
    await new Promise((r) => setTimeout(r, 100));
    running = false;
    await writer;
    expect(live.length).toBeGreaterThan(0);
    expect(longestMillis).toBeLessThan(2_000);

    // The old rows, now in the default partition, unchanged and with their positions.
    const after = (await db.pool.query(POSITIONS_SQL)).rows;
    expect(after.slice(0, positions.length)).toEqual(positions);
    expect(after.length).toBe(events.length + live.length);
    const all = [...events.map((e) => e.event_id), ...live].sort();
    expect(await storedIds(db.pool)).toEqual({ events: all, ledger: all });
    // Dedup holds across the upgrade: an old event sent again is a duplicate.
    expect((await writeEvents(db.pool, [events[0]!])).results).toEqual([{ status: 'duplicate' }]);
    // The table is partitioned; the old one is its default partition, with every index.
    const { rows: kinds } = await db.pool.query<{ relkind: string }>(
      `SELECT relkind FROM pg_class WHERE relname = 'swarm_events'`,
    );
    expect(kinds).toEqual([{ relkind: 'p' }]);
    const { rows: indexes } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_index WHERE indrelid = 'swarm_events_default'::regclass`,
    );
    expect(indexes[0]!.n).toBe(7);

    // A task of 25 days ago, pinned now: its day is kept by the first pass and dropped by the second.
    const queries = createQueryStore(db.pool);
    const pinnedTrace = `old-${addDays(today, -25).toISOString().slice(0, 10)}-0`;
    const original = await queries.getTrace(pinnedTrace);
    expect(original!.events).toHaveLength(4);
    expect(await createPinStore(db.pool).pin(pinnedTrace)).not.toBeNull();

    // The first pass moves the days within retention into their partitions and trims the older rows.
    const policy = { eventsDays: 30, tracesDays: 0 };
    const first = await runMaintenancePass(db.pool, testMaintenance(policy), now);
    expect(first.errors).toEqual([]);
    const horizon = eventsHorizon(testMaintenance(policy).policy, now)!;
    const keptOld = events.filter((e) => new Date(e.timestamp) >= horizon);
    expect(first.rowsMoved).toBe(keptOld.length + live.length);
    expect(first.trimmed.swarm_events).toBe(events.length - keptOld.length);
    const counts = await partitionCounts(db.pool);
    expect(counts.get('swarm_events_default')).toBe(0);
    for (let d = 1; d <= 30; d++) expect(counts.get(partitionName(addDays(today, -d)))).toBe(8);
    expect(counts.get(partitionName(today))).toBe(8 + live.length);
    const kept = [...keptOld.map((e) => e.event_id), ...live].sort();
    expect(await storedIds(db.pool)).toEqual({ events: kept, ledger: kept });
    // Moved rows keep their stream positions.
    const moved = (await db.pool.query(POSITIONS_SQL)).rows;
    const keptSet = new Set(kept);
    expect(moved).toEqual(after.filter((r: { event_id: string }) => keptSet.has(r.event_id)));

    // Ten days later, the days past retention go by partition, with their ledger ids.
    const tenDaysOn = addDays(now, 10);
    const second = await runMaintenancePass(db.pool, testMaintenance(policy), tenDaysOn);
    expect(second.errors).toEqual([]);
    const laterHorizon = eventsHorizon(testMaintenance(policy).policy, tenDaysOn)!;
    const expectedDropped = Array.from({ length: 10 }, (_, i) =>
      partitionName(addDays(today, -21 - i)),
    ).sort();
    expect([...second.partitionsDropped].sort()).toEqual(expectedDropped);
    expect(second.trimmed.swarm_events).toBe(0);
    const stillKept = events
      .filter((e) => new Date(e.timestamp) >= laterHorizon)
      .map((e) => e.event_id)
      .concat(live)
      .sort();
    expect(await storedIds(db.pool)).toEqual({ events: stillKept, ledger: stillKept });
    // The pinned task's day is gone; the archive serves it, its events as they were.
    const served = await queries.getTrace(pinnedTrace);
    expect(served!.pin).toMatchObject({ archived: true });
    expect(served!.events).toEqual(original!.events);
    expect(served!.trace).toEqual(original!.trace);
    // None of it went through agent_metrics (today's rows changed with the live tasks only).
    expect((await db.pool.query(PAST_METRICS_SQL, [today])).rows).toEqual(metricsBefore);
  });
});
