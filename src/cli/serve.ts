import { createChronicle } from '../chronicle.js';
import type { Config } from '../config.js';
import { createLogger } from '../telemetry/logger.js';

/**
 * `chronicle serve`: runs Chronicle until SIGTERM/SIGINT. The first signal stops intake, flushes and
 * exits 0 (1 if the shutdown fails); a second one exits at once with 130. Never resolves on its own.
 */
export async function serve(config: Config): Promise<number> {
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
    return 1;
  }
  // Runs until a signal ends the process.
  return new Promise<number>(() => undefined);
}
