/**
 * The Postgres role Grafana queries with (docker-compose.yml, configs.grafana-reader, run by the postgres
 * image at its first start): run here as compose interpolates it, before Chronicle's migrations as in
 * the stack, it must read every table the migrations create and change none.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { DATABASE_URL, describeWithPostgres } from '../support/services.js';
import { compose, mapAt } from '../unit/stack/stack-files.js';

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** DATABASE_URL's server, as `login` (DATABASE_URL's own user when omitted), in `database`. */
function urlFor(database: string, login?: { user: string; password: string }): string {
  const url = new URL(DATABASE_URL);
  if (login) {
    url.username = login.user;
    url.password = login.password;
  }
  url.pathname = `/${database}`;
  return url.toString();
}

describeWithPostgres("Grafana's read-only Postgres role", () => {
  const suffix = randomBytes(4).toString('hex');
  // Unique names: roles are shared by every database of the server.
  const vars = {
    POSTGRES_USER: `chronicle_owner_${suffix}`,
    POSTGRES_DB: `chronicle_reader_${suffix}`,
    GRAFANA_DB_USER: `grafana_reader_${suffix}`,
    GRAFANA_DB_PASSWORD: `pw_${suffix}`,
  };
  const ownerPassword = `owner_${suffix}`;
  const reader = () =>
    urlFor(vars.POSTGRES_DB, { user: vars.GRAFANA_DB_USER, password: vars.GRAFANA_DB_PASSWORD });
  let tables: string[] = [];

  beforeAll(async () => {
    const sql = String(mapAt(mapAt(compose(vars), 'configs'), 'grafana-reader').content);
    expect(sql).toContain(vars.GRAFANA_DB_USER);
    await withClient(DATABASE_URL, async (admin) => {
      // The stack's POSTGRES_USER owns the database and runs the migrations.
      await admin.query(`CREATE ROLE ${vars.POSTGRES_USER} LOGIN PASSWORD '${ownerPassword}'`);
      await admin.query(`CREATE DATABASE ${vars.POSTGRES_DB} OWNER ${vars.POSTGRES_USER}`);
    });
    // The postgres image runs init scripts as POSTGRES_USER (a superuser there), in POSTGRES_DB.
    await withClient(urlFor(vars.POSTGRES_DB), async (c) => {
      await c.query(sql);
    });
    // Then Chronicle starts and migrates, as the owner.
    const owner = new pg.Pool({
      connectionString: urlFor(vars.POSTGRES_DB, { user: vars.POSTGRES_USER, password: ownerPassword }),
      max: 2,
    });
    try {
      await migrate(owner, silentLogger());
      tables = (
        await owner.query<{ tablename: string }>(
          "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
        )
      ).rows.map((r) => r.tablename);
    } finally {
      await owner.end();
    }
  }, 60_000);

  afterAll(async () => {
    await withClient(DATABASE_URL, async (admin) => {
      await admin.query(`DROP DATABASE IF EXISTS ${vars.POSTGRES_DB} WITH (FORCE)`);
      await admin.query(`DROP ROLE IF EXISTS ${vars.GRAFANA_DB_USER}`);
      await admin.query(`DROP ROLE IF EXISTS ${vars.POSTGRES_USER}`);
    });
  });

  it('grafana reader - reads every table the migrations created', async () => {
    expect(tables).toEqual(
      expect.arrayContaining(['swarm_events', 'swarm_traces', 'agent_metrics', 'swarm_dlq']),
    );
    await withClient(reader(), async (c) => {
      for (const table of tables) {
        const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
        expect(rows[0]!.n, table).toMatch(/^\d+$/);
      }
      // The SQL functions the dashboards call (migration 0005).
      const { rows } = await c.query<{ id: string }>("SELECT chronicle_otel_trace_id('task-1') AS id");
      expect(rows[0]!.id).toMatch(/^[0-9a-f]{32}$/);
    });
  });

  it('grafana reader - can change nothing: writes are refused', async () => {
    await withClient(reader(), async (c) => {
      for (const statement of [
        'DELETE FROM swarm_events',
        'TRUNCATE swarm_traces',
        'CREATE TABLE grafana_was_here (x int)',
        'DROP TABLE agent_metrics',
      ]) {
        const refused = await c.query(statement).then(
          () => undefined,
          (err: unknown) => err as { code?: string },
        );
        // 25006: read-only transaction; 42501: insufficient privilege.
        expect(refused?.code, statement).toMatch(/^(25006|42501)$/);
      }
      // Even with read-only turned off for the session, the role has no write privilege.
      await c.query('SET default_transaction_read_only = off');
      await expect(c.query('DELETE FROM swarm_events')).rejects.toMatchObject({ code: '42501' });
    });
  });
});
