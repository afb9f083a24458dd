import type { Config } from '../config.js';
import {
  EmbeddedPostgresError,
  attachEmbeddedPostgres,
  freeLoopbackPort,
  hasEmbeddedCluster,
  startEmbeddedPostgres,
} from '../embedded-postgres/embedded-postgres.js';
import type { Logger } from '../telemetry/logger.js';
import { exitOnSignals } from './signals.js';

/** The configuration with the database it will use: DATABASE_URL, or an embedded server. */
export type ConfigWithDatabase = Config & { databaseUrl: string };

export interface Database {
  config: ConfigWithDatabase;
  /** Stops the embedded server this process started; a no-op with DATABASE_URL or a shared server. */
  stop(): Promise<void>;
  /** True when Chronicle runs on an embedded PostgreSQL (its own or a running Chronicle's). */
  embedded: boolean;
  /** Settles if the embedded server this process started exits on its own; never otherwise. */
  lost: Promise<string>;
}

export interface OpenOptions {
  /**
   * Use the embedded server of a Chronicle already running on the data directory, if there is one
   * (commands that run beside `chronicle serve`); otherwise start one, as serve does.
   */
  share?: boolean;
  /** Initialise a new cluster when the data directory has none (default true). */
  create?: boolean;
}

/** Resolves the database: DATABASE_URL as is, else an embedded PostgreSQL in config.embedded.dataDir. */
export async function openDatabase(
  config: Config,
  logger: Logger,
  { share = false, create = true }: OpenOptions = {},
): Promise<Database> {
  const never = new Promise<string>(() => undefined);
  if (config.databaseUrl !== undefined) {
    return {
      config: { ...config, databaseUrl: config.databaseUrl },
      stop: () => Promise.resolve(),
      embedded: false,
      lost: never,
    };
  }
  const { dataDir } = config.embedded;
  if (share) {
    const running = await attachEmbeddedPostgres(dataDir);
    if (running !== undefined) {
      logger.info(
        { dataDir },
        'using the embedded PostgreSQL of the Chronicle running on this data directory',
      );
      return {
        config: { ...config, databaseUrl: running.url },
        stop: () => running.stop(),
        embedded: true,
        lost: never,
      };
    }
  }
  if (!create && !(await hasEmbeddedCluster(dataDir))) {
    throw new EmbeddedPostgresError(
      `no Chronicle data in ${dataDir}/ (set CHRONICLE_DATA_DIR to the directory chronicle serve uses, or DATABASE_URL)`,
    );
  }
  const port = config.embedded.port || (await freeLoopbackPort());
  const server = await startEmbeddedPostgres({ dataDir, port, logger });
  return {
    config: { ...config, databaseUrl: server.url },
    stop: () => server.stop(),
    embedded: true,
    lost: server.lost,
  };
}

/**
 * openDatabase for a command that runs to completion (migrate, export): a termination signal, even
 * one that arrives while the embedded server starts, stops that server and exits 130.
 */
export function openDatabaseForCommand(
  config: Config,
  logger: Logger,
  options: OpenOptions,
): Promise<Database> {
  const opening = openDatabase(config, logger, options);
  exitOnSignals(logger, async () => {
    await (await opening.catch(() => undefined))?.stop();
    return 130;
  });
  return opening;
}
