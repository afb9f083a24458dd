import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { DATABASE_URL } from './services.js';

export interface TestDatabase {
  /** Connection string of the fresh database. */
  url: string;
  name: string;
  /** A pool on it, with Chronicle's type parsers; closed by drop(). */
  pool: pg.Pool;
  drop(): Promise<void>;
}

/** Creates a fresh database (migrated unless told otherwise) for one test file. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `chronicle_t_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  const pool = createPool({ connectionString: url.toString(), maxConnections: 6 });
  if (options.migrate ?? true) await migrate(pool, silentLogger());
  return {
    url: url.toString(),
    name,
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * Empties every table of the store. Retried when it deadlocks with a running Chronicle's span builder,
 * whose reads take the same tables' locks in another order.
 */
export async function truncateStore(pool: pg.Pool): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await pool.query(
        'TRUNCATE swarm_event_ids, swarm_events, swarm_traces, agent_metrics, chronicle_rejects, swarm_dlq, otel_spans, otel_pending RESTART IDENTITY',
      );
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== '40P01' || attempt >= 5) throw err;
    }
  }
}

/**
 * Makes Chronicle "lose" one stored event of the traces starting with `prefix`: a `task.started` row is
 * deleted from swarm_events, while the ledger and the derived rows are left as they were (so the event,
 * sent again, is deduplicated and stays lost). Returns the lost event.
 */
export async function loseOneEvent(
  pool: pg.Pool,
  prefix: string,
): Promise<{ event_id: string; trace_id: string }> {
  const { rows } = await pool.query<{ event_id: string; trace_id: string }>(
    `DELETE FROM swarm_events WHERE event_id = (
       SELECT event_id FROM swarm_events WHERE trace_id LIKE $1 AND event_type = 'task.started' LIMIT 1)
     RETURNING event_id::text, trace_id`,
    [`${prefix}%`],
  );
  if (rows[0] === undefined) throw new Error(`no task.started event of ${prefix}* to lose`);
  return rows[0];
}
