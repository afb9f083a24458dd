import type { Config } from '../config.js';
import { freeLoopbackPort, startEmbeddedPostgres } from '../sinks/postgres/embedded.js';
import type { Logger } from '../telemetry/logger.js';

/** The configuration with the database it will use: DATABASE_URL, or an embedded server just started. */
export type ConfigWithDatabase = Config & { databaseUrl: string };

export interface Database {
  config: ConfigWithDatabase;
  /** Stops the embedded server; a no-op with DATABASE_URL. */
  stop(): Promise<void>;
  /** True when Chronicle runs its own embedded PostgreSQL. */
  embedded: boolean;
}

/** Resolves the database: DATABASE_URL as is, else an embedded PostgreSQL in config.embedded.dataDir. */
export async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.databaseUrl !== undefined) {
    return {
      config: { ...config, databaseUrl: config.databaseUrl },
      stop: () => Promise.resolve(),
      embedded: false,
    };
  }
  const port = config.embedded.port || (await freeLoopbackPort());
  const server = await startEmbeddedPostgres({ dataDir: config.embedded.dataDir, port, logger });
  logger.info({ dataDir: config.embedded.dataDir, port }, 'embedded PostgreSQL ready');
  return { config: { ...config, databaseUrl: server.url }, stop: () => server.stop(), embedded: true };
}
