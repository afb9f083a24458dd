import type { Config } from '../config.js';
import { ensureDatabase, migrate } from '../db/migrate.js';
import { createPool, endPool } from '../db/pool.js';
import { createLogger } from '../telemetry/logger.js';
import { openDatabaseForCommand } from './database.js';

/**
 * `chronicle migrate`: applies pending migrations to DATABASE_URL (creating the database if missing), or
 * to the embedded server: a running Chronicle's, else one started for the purpose.
 */
export async function migrateCommand(baseConfig: Config): Promise<number> {
  const logger = createLogger({ level: baseConfig.logLevel, secrets: baseConfig.secrets ?? [] });
  // Beside a running `chronicle serve`, its embedded server; else one of our own.
  const database = await openDatabaseForCommand(baseConfig, logger, { share: true });
  const { config } = database;
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
    await endPool(pool);
    await database.stop();
  }
}
