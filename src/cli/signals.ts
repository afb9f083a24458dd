import type { Logger } from '../telemetry/logger.js';

/** Signals that end a command: Ctrl-C, a supervisor's stop, and a closed terminal or SSH session. */
export const TERMINATION_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Until the process exits, the first termination signal runs `stop` and exits with the code it
 * resolves to (1 if it throws); a second one exits at once with 130. One Ctrl-C under `npm start`
 * arrives twice (from the terminal, and forwarded by npm): a repeat within a second is the same
 * request, not the "stop now" of a second signal.
 */
export function exitOnSignals(logger: Logger, stop: (signal: NodeJS.Signals) => Promise<number>): void {
  let signals = 0;
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signals > 0 && Date.now() - firstSignalAt < 1_000) return;
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    firstSignalAt = Date.now();
    stop(signal).then(
      (code) => process.exit(code),
      (err: unknown) => {
        logger.error({ err }, 'stopping failed');
        process.exit(1);
      },
    );
  };
  for (const signal of TERMINATION_SIGNALS) process.on(signal, onSignal);
}
