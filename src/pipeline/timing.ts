/**
 * Waits for `work`, or until `signal` aborts, whichever comes first; at once when the signal has already
 * aborted ('abort' fires only once, so a listener added after it would wait forever). A rejection of
 * `work` before the signal aborts is passed on. The work itself is not stopped.
 */
export async function untilAborted(signal: AbortSignal, work: Promise<unknown>): Promise<void> {
  if (signal.aborted) return;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<void>((resolve) => {
    onAbort = resolve;
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

/**
 * Resolves after `millis`, or at once when `signal` aborts (or has already aborted): the pause of a
 * retry or poll loop that a shutdown must be able to cut short. Never rejects.
 */
export function sleep(millis: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, millis);
    signal?.addEventListener('abort', done, { once: true });
  });
}
