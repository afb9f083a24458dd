import pg from 'pg';

export interface PoolOptions {
  connectionString: string;
  maxConnections: number;
  /** Fail a connection attempt after this long instead of waiting on a dead server. */
  connectTimeoutMillis?: number;
  applicationName?: string;
}

// Values as the API serves them: bigint and numeric as JS numbers (every count and duration fits
// in 2^53), dates as YYYY-MM-DD (no local-midnight Date objects).
const NUMBER_OIDS = new Set<number>([pg.types.builtins.INT8, pg.types.builtins.NUMERIC]);
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (NUMBER_OIDS.has(oid)) return (value: string) => Number(value);
    if (oid === Number(pg.types.builtins.DATE)) return (value: string) => value;
    return pg.types.getTypeParser(oid, format) as (value: string) => unknown;
  }) as pg.CustomTypesConfig['getTypeParser'],
};

export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections,
    connectionTimeoutMillis: options.connectTimeoutMillis ?? 5_000,
    application_name: options.applicationName ?? 'chronicle',
    // Short statements on small key sets: JIT compilation (hundreds of ms, triggered by the estimates
    // of a fast-growing table with stale statistics) costs far more than it could save.
    options: '-c jit=off',
    types,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  const open = new Set<pg.PoolClient>();
  pool.on('connect', (client) => open.add(client));
  pool.on('remove', (client) => open.delete(client));
  openClients.set(pool, open);
  return pool;
}

const openClients = new WeakMap<pg.Pool, Set<pg.PoolClient>>();

/**
 * Ends the pool and resolves once every connection is closed by the server too. `pool.end()` alone
 * resolves as soon as it has asked its clients to end, before their backends have read the Terminate:
 * a server stopped right after (the embedded one) would cut those sessions and log a FATAL for each.
 */
export async function endPool(pool: pg.Pool): Promise<void> {
  const open = openClients.get(pool);
  await pool.end();
  if (open === undefined || open.size === 0) return;
  await new Promise<void>((resolve) => {
    const onRemove = (): void => {
      if (open.size > 0) return;
      pool.off('remove', onRemove);
      resolve();
    };
    pool.on('remove', onRemove);
  });
}
