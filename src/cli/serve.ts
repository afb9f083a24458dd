import { type Chronicle, createChronicle } from '../chronicle.js';
import type { Config } from '../config.js';
import { createLogger } from '../telemetry/logger.js';
import { openDatabase } from './database.js';

/**
 * `chronicle serve`: runs Chronicle until SIGTERM/SIGINT. The first signal stops intake, flushes and
 * exits 0 (1 if the shutdown fails); a second one exits at once with 130. Never resolves on its own.
 */
export async function serve(baseConfig: Config): Promise<number> {
  const logger = createLogger({ level: baseConfig.logLevel });
  let database;
  try {
    database = await openDatabase(baseConfig, logger);
  } catch (err) {
    logger.fatal({ err }, 'the embedded PostgreSQL did not start');
    return 1;
  }
  const { config } = database;
  const chronicle = createChronicle(config, { logger, embeddedPostgres: database });

  let signals = 0;
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    // One Ctrl-C under `npm start` arrives twice (from the terminal, and forwarded by npm): a repeat
    // within a second is the same request, not the "stop now" of a second signal.
    if (signals > 0 && Date.now() - firstSignalAt < 1_000) return;
    signals++;
    if (signals === 1) firstSignalAt = Date.now();
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now without finishing the flush');
      process.exit(130);
    }
    logger.info(
      { signal, timeoutMillis: config.shutdownTimeoutMillis },
      'shutting down: stopping intake and flushing',
    );
    const deadline = AbortSignal.timeout(config.shutdownTimeoutMillis);
    chronicle.shutdown(deadline).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    await chronicle.start();
  } catch (err) {
    logger.fatal({ err }, 'Chronicle failed to start');
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
    `  store     ${embedded ? `embedded PostgreSQL in ${config.embedded.dataDir}/ (set DATABASE_URL to use a server)` : 'PostgreSQL at DATABASE_URL'}`,
    `  NATS      ${config.natsUrl ? `consuming from ${config.natsUrl}` : 'off: HTTP and OTLP ingest only (set NATS_URL)'}`,
    `  ingest    POST ${url}/api/v1/events`,
    `  OTLP in   POST ${url}/v1/traces${chronicle.otlpUrl() ? ` and ${chronicle.otlpUrl()}/v1/traces` : ''}`,
    `  spans out ${config.export ? config.export.url : 'kept and served by the API (set OTEL_EXPORTER_OTLP_ENDPOINT to export)'}`,
    `  look at   ${url}/api/v1/traces  ·  ${url}/api/v1/metrics/summary  ·  ${url}/metrics`,
  ];
  // On stderr: stdout carries the structured (JSON) log.
  process.stderr.write(`${lines.join('\n')}\n`);
}
