/**
 * The one place that decides whether a failed `fetch` is worth trying again: only failures of the
 * network (refused, reset, timed out, a temporary DNS failure) are; a bad URL, an unknown host or a
 * TLS error will fail the same way every time.
 */

/** Why a request failed, in a few words, and whether trying again could help. */
export interface FetchFailure {
  retryable: boolean;
  /** e.g. `connection refused`, `timed out`, `invalid URL`. */
  reason: string;
  /** True for failures that mean nothing answered at that address (the server is not running there). */
  unreachable: boolean;
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ECONNABORTED: 'connection aborted',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EAI_AGAIN: 'DNS lookup failed (temporarily)',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'timed out waiting for the response',
  UND_ERR_BODY_TIMEOUT: 'timed out reading the response',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CLOSED: 'connection closed',
};

const PERMANENT_CODES: Record<string, string> = {
  ENOTFOUND: 'host not found',
  ERR_INVALID_URL: 'invalid URL',
};

/** The error code of `err` or of its cause (undici wraps network errors in `TypeError: fetch failed`). */
function codeOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const { code, errors, cause } = e as { code?: unknown; errors?: unknown; cause?: unknown };
    if (typeof code === 'string') return code;
    // Several addresses tried (localhost: ::1 and 127.0.0.1): an AggregateError of each attempt.
    if (Array.isArray(errors) && errors.length > 0) {
      const first = codeOf(errors[0]);
      if (first !== undefined) return first;
    }
    e = cause;
  }
  return undefined;
}

/** Classifies an error thrown by `fetch` (not an HTTP status: the caller decides about those). */
export function fetchFailure(err: unknown): FetchFailure {
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError') return { retryable: true, reason: 'timed out', unreachable: true };
  const code = codeOf(err);
  if (code !== undefined && code in NETWORK_CODES) {
    return { retryable: true, reason: NETWORK_CODES[code]!, unreachable: true };
  }
  if (code !== undefined && code in PERMANENT_CODES) {
    return { retryable: false, reason: PERMANENT_CODES[code]!, unreachable: code === 'ENOTFOUND' };
  }
  const message = err instanceof Error ? err.message : String(err);
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return {
    retryable: false,
    reason: `${message}${cause}${code !== undefined ? ` (${code})` : ''}`,
    unreachable: false,
  };
}

/** `signal` (if any) combined with a timeout of one request. */
export function requestSignal(signal: AbortSignal | undefined, timeoutMillis: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMillis);
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
}

/** `12.3 s`, `60 s`: a duration for a message. */
export function seconds(millis: number): string {
  const s = millis / 1000;
  return `${s >= 10 ? Math.round(s) : Math.round(s * 10) / 10} s`;
}
