import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPool, endPool } from '../../src/db/pool.js';
import { withTransaction } from '../../src/db/transaction.js';
import { type TestDatabase, createTestDatabase } from '../support/db.js';
import { DATABASE_URL, describeWithPostgres } from '../support/services.js';

describeWithPostgres('postgres pool - endPool', () => {
  let db: TestDatabase;
  let admin: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.end();
    await db?.drop();
  });

  const sessions = async (applicationName: string): Promise<number> =>
    (
      await admin.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
        [applicationName],
      )
    ).rows[0]!.n;

  it('postgres pool - endPool resolves only when the server has closed every session (a server stopped next cuts none)', async () => {
    for (let round = 0; round < 5; round++) {
      const applicationName = `chronicle-pool-${randomBytes(4).toString('hex')}`;
      const pool = createPool({ connectionString: db.url, maxConnections: 4, applicationName });
      // Four sessions, idle in the pool when the end begins (pg-pool then reports the end at once).
      const clients = await Promise.all([1, 2, 3, 4].map(() => pool.connect()));
      await Promise.all(clients.map((c) => c.query('SELECT 1')));
      for (const c of clients) c.release();
      expect(await sessions(applicationName)).toBe(4);
      // A client is removed once its connection has closed: the server has read the Terminate.
      let closed = 0;
      pool.on('remove', () => closed++);

      await endPool(pool);
      expect(closed).toBe(4);
      expect(await sessions(applicationName)).toBe(0);
    }
  });

  it('postgres pool - an unused pool ends at once', async () => {
    await endPool(createPool({ connectionString: db.url, maxConnections: 2 }));
  });

  it('postgres pool - a connection lost inside withTransaction rejects the transaction and is not reused; the process goes on', async () => {
    const pool = createPool({ connectionString: db.url, maxConnections: 1 });
    try {
      const lost = withTransaction(pool, async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
        // The server closes the connection: the next query, or the idle socket, reports it.
        await new Promise((resolve) => setTimeout(resolve, 100));
        await client.query('SELECT 1');
      });
      await expect(lost).rejects.toThrow(/connection/i);
      // The pool's one connection was replaced: the next transaction works.
      const next = await withTransaction(pool, (client) => client.query<{ n: number }>('SELECT 2 AS n'));
      expect(next.rows).toEqual([{ n: 2 }]);
    } finally {
      await endPool(pool);
    }
  });
});
