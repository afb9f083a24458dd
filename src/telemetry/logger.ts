import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';
import { secretScrubber } from './redact.js';

export type Logger = PinoLogger;

export interface LoggerOptions {
  level: string;
  name?: string;
  /** Values never to write (passwords, tokens, seeds): masked in every line, whatever put them there. */
  secrets?: readonly string[];
}

/** Structured JSON logs on stdout (or the given stream, which tests use to read what was written). */
export function createLogger(options: LoggerOptions, destination?: DestinationStream): Logger {
  // Synchronous stdout: Chronicle logs little, and every line must be out before process.exit().
  const out = destination ?? pino.destination({ dest: 1, sync: true });
  const secrets = options.secrets ?? [];
  const scrub = secretScrubber(secrets);
  return pino(
    { level: options.level, name: options.name ?? 'chronicle', base: { service: 'chronicle' } },
    secrets.length === 0 ? out : { write: (line: string) => out.write(scrub(line)) },
  );
}

/** A logger that writes nothing, for tests and tools. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
