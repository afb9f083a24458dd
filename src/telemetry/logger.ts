import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = PinoLogger;

export interface LoggerOptions {
  level: string;
  name?: string;
}

/** Structured JSON logs on stdout (or the given stream, which tests use to read what was written). */
export function createLogger(options: LoggerOptions, destination?: DestinationStream): Logger {
  // Synchronous stdout: Chronicle logs little, and every line must be out before process.exit().
  return pino(
    { level: options.level, name: options.name ?? 'chronicle', base: { service: 'chronicle' } },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** A logger that writes nothing, for tests and tools. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
