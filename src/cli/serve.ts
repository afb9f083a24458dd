import { type Chronicle, createChronicle } from '../chronicle.js';
import type { Config } from '../config.js';
import { TOKEN_VARIABLES } from '../api/auth/config.js';
import { createLogger } from '../telemetry/logger.js';
import { redactUrl, secretScrubber } from '../telemetry/redact.js';
import { openDatabase } from './database.js';
import { limitHeapGrowth } from './heap-growth.js';
import { describeFailure } from './failure.js';
import { exitOnSignals } from './signals.js';

/**
 * `chronicle serve`: runs Chronicle until SIGTERM, SIGINT or SIGHUP. The first signal stops intake,
 * flushes and exits 0 (1 if the shutdown fails); a second one exits at once with 130. If the embedded
 * PostgreSQL dies under it, Chronicle stops (nothing it acknowledged is lost) and exits 1, for its
 * supervisor to restart it; the next start recovers the server. Never resolves on its own.
 */
export async function serve(baseConfig: Config): Promise<number> {
  limitHeapGrowth(baseConfig.heapGrowthPercent);
  // The configuration keeps only the tokens' hashes: out of the environment too, so that no child
  // process (the embedded PostgreSQL) inherits them.
  for (const variable of TOKEN_VARIABLES) delete process.env[variable];
  const logger = createLogger({ level: baseConfig.logLevel, secrets: baseConfig.secrets ?? [] });
  const scrub = secretScrubber(baseConfig.secrets ?? []);
  let chronicle: Chronicle | undefined = undefined;
  let shutdownTimeoutMillis = baseConfig.shutdownTimeoutMillis;
  // From here on: a signal while the embedded server starts must still stop it, not orphan it.
  const opening = openDatabase(baseConfig, logger);
  const stop = async (signal: NodeJS.Signals | 'lost', exitCode: number): Promise<number> => {
    if (chronicle === undefined) {
      logger.info({ signal }, 'stopping before Chronicle started');
      await (await opening.catch(() => undefined))?.stop();
      return 130;
    }
    logger.info(
      { signal, timeoutMillis: shutdownTimeoutMillis },
      'shutting down: stopping intake and flushing',
    );
    await chronicle.shutdown(AbortSignal.timeout(shutdownTimeoutMillis));
    return exitCode;
  };
  exitOnSignals(logger, (signal) => stop(signal, 0));

  let database;
  try {
    database = await opening;
  } catch (err) {
    logger.fatal({ err }, 'the embedded PostgreSQL did not start');
    process.stderr.write(scrub(`chronicle serve: ${describeFailure(err)}\n`));
    return 1;
  }
  const { config } = database;
  shutdownTimeoutMillis = config.shutdownTimeoutMillis;
  chronicle = createChronicle(config, { logger, embeddedPostgres: database });
  void database.lost.then((how) => {
    logger.fatal({ how }, 'the embedded PostgreSQL exited: stopping Chronicle (a restart recovers it)');
    process.stderr.write(`chronicle serve: the embedded PostgreSQL exited (${how}): stopping\n`);
    // Writes can no longer succeed: a short shutdown hands unacked messages back; HTTP requests
    // not yet answered were not acknowledged, so their clients retry.
    shutdownTimeoutMillis = Math.min(shutdownTimeoutMillis, 5_000);
    void stop('lost', 1).then((code) => process.exit(code));
  });

  try {
    await chronicle.start();
  } catch (err) {
    logger.fatal({ err }, 'Chronicle failed to start');
    process.stderr.write(scrub(`chronicle serve: ${describeFailure(err)}\n`));
    await database.stop();
    return 1;
  }
  banner(chronicle, config, database.embedded);
  // Runs until a signal ends the process.
  return new Promise<number>(() => undefined);
}

/** Where each part runs, and where to look: printed once Chronicle listens. */
function banner(chronicle: Chronicle, config: Config, embedded: boolean): void {
  const url = chronicle.url();
  const lines = [
    `Chronicle is up: ${url}`,
    `  console   ${url}/  (tasks, agents, pipeline, live tail)`,
    `  store     ${embedded ? `embedded PostgreSQL in ${config.embedded.dataDir}/ (set DATABASE_URL to use a server)` : 'PostgreSQL at DATABASE_URL'}`,
    `  NATS      ${config.natsUrl ? `consuming from ${redactUrl(config.natsUrl)}` : 'off: HTTP and OTLP ingest only (set NATS_URL)'}`,
    `  ingest    POST ${url}/api/v1/events`,
    `  OTLP in   POST ${url}/v1/traces${chronicle.otlpUrl() ? ` and ${chronicle.otlpUrl()}/v1/traces` : ''}`,
    `  spans out ${config.export ? redactUrl(config.export.url) : 'kept and served by the API (set OTEL_EXPORTER_OTLP_ENDPOINT to export)'}`,
    `  API       ${url}/api/v1/traces  ·  ${url}/api/v1/stream  ·  ${url}/metrics`,
    `  auth      ${config.auth ? `on: API tokens for ${config.auth.clients.map((c) => c.name).join(', ')}` : 'off: no API tokens, the API is open (set CHRONICLE_API_TOKENS)'}`,
  ];
  // On stderr: stdout carries the structured (JSON) log.
  process.stderr.write(`${lines.join('\n')}\n`);
}
