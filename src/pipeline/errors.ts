/** Bad data: retrying cannot help, so the input is recorded as a reject and settled. */
export class PermanentError extends Error {
  override readonly name = 'PermanentError';
}

/** A dependency is unavailable or busy: the same work may succeed later. */
export class RetryableError extends Error {
  override readonly name: string = 'RetryableError';
}

/** The buffer cannot take more input right now; the caller should back off. */
export class BufferFullError extends RetryableError {
  override readonly name = 'BufferFullError';
}

/** The configuration is invalid; `problems` lists every issue found, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}
