import type pg from 'pg';
import type { Component, ComponentHealth, DependencyState } from '../pipeline/contracts.js';
import { sleep, untilAborted } from '../pipeline/timing.js';
import type { Logger } from '../telemetry/logger.js';
import { ensureDatabase, migrate } from './migrate.js';
import { createPool, endPool } from './pool.js';

export interface DatabaseOptions {
  url: string;
  /** Connections of the pool ingest and the API share (PG_POOL_MAX). */
  maxConnections: number;
  /** Connections of the span builder and exporter, apart so they never hold one ingest needs. */
  spanConnections: number;
  /** Delay before the first retry of a failed migration; doubles up to migrateRetryMaxMillis. */
  migrateRetryInitialMillis: number;
  migrateRetryMaxMillis: number;
}

/** Postgres as Chronicle uses it: the pools, and the schema migrated before anything reads or writes. */
export interface Database extends Component {
  /** Ingest and the API. */
  readonly pool: pg.Pool;
  /** Span building and export. */
  readonly spanPool: pg.Pool;
  /** Resolves true once the migrations are applied, false when shut down before. */
  migrated(): Promise<boolean>;
}

/*
 * States: created → migrating (from start(): creates the database when missing and applies the
 * migrations, retried with backoff until they succeed) → migrated → stopped (shutdown: migrating
 * abandoned, pools ended). Health: `postgres` (a SELECT 1 now) and `migrations`.
 */
export function createDatabase(options: DatabaseOptions, deps: { logger: Logger }): Database {
  const { logger } = deps;
  const pool = createPool({ connectionString: options.url, maxConnections: options.maxConnections });
  const spanPool = createPool({
    connectionString: options.url,
    maxConnections: options.spanConnections,
    applicationName: 'chronicle-spans',
  });
  const stop = new AbortController();
  let started = false;
  let applied = false;
  let migrationError: string | undefined;
  let resolveMigrated!: (done: boolean) => void;
  const migrated = new Promise<boolean>((resolve) => (resolveMigrated = resolve));
  let stopped: Promise<void> | undefined;

  async function migrateUntilDone(): Promise<void> {
    let delay = options.migrateRetryInitialMillis;
    while (!stop.signal.aborted) {
      try {
        await ensureDatabase(pool, options.url, logger);
        await migrate(pool, logger);
        applied = true;
        migrationError = undefined;
        resolveMigrated(true);
        return;
      } catch (err) {
        migrationError = (err as Error).message;
        logger.warn({ err, retryInMillis: delay }, 'cannot migrate the database yet; retrying');
        await sleep(delay, stop.signal);
        delay = Math.min(delay * 2, options.migrateRetryMaxMillis);
      }
    }
    resolveMigrated(false);
  }

  return {
    name: 'postgres',
    pool,
    spanPool,
    migrated: () => migrated,
    start() {
      if (!started && !stop.signal.aborted) {
        started = true;
        void migrateUntilDone();
      }
      return Promise.resolve();
    },
    shutdown(deadline) {
      stopped ??= (async () => {
        stop.abort();
        resolveMigrated(false);
        await untilAborted(
          deadline,
          Promise.all([endPool(pool), endPool(spanPool)]).catch(() => undefined),
        );
      })();
      return stopped;
    },
    async health(): Promise<ComponentHealth> {
      const reasons: string[] = [];
      let postgres: DependencyState = { state: 'up' };
      try {
        await pool.query('SELECT 1');
      } catch (err) {
        postgres = { state: 'down', detail: (err as Error).message };
        reasons.push(`postgres unreachable: ${(err as Error).message}`);
      }
      if (!applied) reasons.push(`migrations not applied${migrationError ? `: ${migrationError}` : ''}`);
      return {
        dependencies: {
          postgres,
          migrations: applied
            ? { state: 'up' }
            : { state: 'down', detail: migrationError ?? 'not applied yet' },
        },
        reasons,
      };
    },
  };
}
