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
  return pool;
}
