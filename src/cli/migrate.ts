import { loadConfig } from '../config.js';
import { ConfigError } from '../pipeline/errors.js';
import { ensureDatabase, migrate } from '../sinks/postgres/migrate.js';
import { createPool } from '../sinks/postgres/pool.js';
import { createLogger } from '../telemetry/logger.js';

/** `npm run migrate`: applies pending migrations to DATABASE_URL and exits (0 on success). */
async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`chronicle migrate: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
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

process.exitCode = await main();
