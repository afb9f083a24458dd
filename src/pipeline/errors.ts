import { NO_TERMINAL, type RecordResult, type TerminalCounts } from './records.js';

/** Bad data: retrying cannot help, so the input is recorded as a reject and settled. */
export class PermanentError extends Error {
  override readonly name = 'PermanentError';
}

/** A dependency is unavailable or busy: the same work may succeed later. */
export class RetryableError extends Error {
  override readonly name: string = 'RetryableError';
}

/**
 * The sink committed part of a split batch before a later part failed transiently: `results` holds the
 * outcome of every committed record and undefined for the rest, which the caller retries alone;
 * `terminalTasks` counts what the committed part made terminal.
 */
export class PartialWriteError extends RetryableError {
  override readonly name: string = 'PartialWriteError';
  constructor(
    message: string,
    readonly results: readonly (RecordResult | undefined)[],
    options?: ErrorOptions,
    readonly terminalTasks: TerminalCounts = NO_TERMINAL,
  ) {
    super(message, options);
  }
}

/** A component's start() failed; `component` names it and `cause` is what its start() threw. */
export class StartError extends Error {
  override readonly name = 'StartError';
  constructor(
    /** The name of the component that failed to start. */
    readonly component: string,
    options?: ErrorOptions,
  ) {
    const cause: unknown = options?.cause;
    super(`${component} failed to start: ${cause instanceof Error ? cause.message : String(cause)}`, options);
  }
}

/** The configuration is invalid; `problems` lists every issue found, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/**
 * What an error says about the work that met it:
 * - `permanent`: this input is wrong, and sending it again cannot help (a row Postgres refuses, a
 *   request an OTLP backend refuses). The sink isolates and rejects it; the exporter sets it aside.
 * - `unavailable`: a dependency cannot be reached or is busy right now; the same work may succeed
 *   later. The sink retries; the API answers 503.
 * - `unknown`: neither is known (most likely a bug, such as a syntax error in Chronicle's own SQL).
 *   The sink retries the batch whole and alerts rather than turn every input into a reject; the API
 *   answers 500.
 */
export type ErrorClass = 'permanent' | 'unavailable' | 'unknown';

// Socket errors: the peer cannot be reached.
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);
// SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57 operator intervention
// (shutdown, cancel).
const UNAVAILABLE_SQLSTATE_CLASSES = new Set(['08', '53', '57']);
// SQLSTATE classes that mean "this data", not "this moment": 21 cardinality violation, 22 data
// exception, 23 integrity constraint violation, 54 program limit exceeded (e.g. an index row too large).
const DATA_SQLSTATE_CLASSES = new Set(['21', '22', '23', '54']);
// Errors of node-postgres's own client, which carry no code.
const UNAVAILABLE_MESSAGES = [
  'timeout exceeded when trying to connect',
  'Connection terminated',
  'connection timeout',
];
// HTTP statuses (an OTLP exporter's error code) that mean "not now" rather than "not this request".
const UNAVAILABLE_HTTP_STATUSES = new Set([408, 429, 502, 503, 504]);

/**
 * The one place that decides whether an error is about the input, about a dependency's availability,
 * or neither. Reads, in this order: Chronicle's own error classes; a string `code` (a Node errno, or a
 * SQLSTATE by its class); a numeric `code` (an HTTP status, as OTLP exporters report it: a 4xx other
 * than 408 and 429 refuses the request); an AggregateError (unavailable when one of its errors is, as
 * when every address of a host refused the connection); node-postgres's connection messages.
 * Anything that is not an Error is `unknown`.
 */
export function classify(err: unknown): ErrorClass {
  if (!(err instanceof Error)) return 'unknown';
  if (err instanceof PermanentError) return 'permanent';
  if (err instanceof RetryableError) return 'unavailable';
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    const sqlClass = code.slice(0, 2);
    if (UNAVAILABLE_ERRNOS.has(code) || UNAVAILABLE_SQLSTATE_CLASSES.has(sqlClass)) return 'unavailable';
    if (DATA_SQLSTATE_CLASSES.has(sqlClass)) return 'permanent';
  } else if (typeof code === 'number') {
    if (code >= 400 && code < 500 && !UNAVAILABLE_HTTP_STATUSES.has(code)) return 'permanent';
    if (UNAVAILABLE_HTTP_STATUSES.has(code)) return 'unavailable';
  }
  if (err instanceof AggregateError) {
    return err.errors.some((e) => classify(e) === 'unavailable') ? 'unavailable' : 'unknown';
  }
  return UNAVAILABLE_MESSAGES.some((m) => err.message.includes(m)) ? 'unavailable' : 'unknown';
}
