import type { Config } from '../config.js';
import { ensureDatabase, migrate } from '../sinks/postgres/migrate.js';
import { createPool } from '../sinks/postgres/pool.js';
import { createLogger } from '../telemetry/logger.js';

/** `chronicle migrate`: applies pending migrations to DATABASE_URL (creating the database if missing). */
export async function migrateCommand(config: Config): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  const pool = createPool({ connectionString: config.databaseUrl, maxConnections: 1 });
  try {
    await ensureDatabase(pool, config.databaseUrl, logger);
    const applied = await migrate(pool, logger);
    logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'database already up to date');
    return 0;
  } catch (err) {
    logger.error({ err }, 'migration failed');
    return 1;
  } finally {
    await pool.end();
  }
}
