import { createChronicle } from './chronicle.js';
import { loadConfig } from './config.js';
import { ConfigError } from './pipeline/errors.js';
import { createLogger } from './telemetry/logger.js';

/** Wiring and signals only. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`chronicle: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({ level: config.logLevel });
  const chronicle = createChronicle(config, { logger });

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
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
    process.exit(1);
  }
}

void main();
