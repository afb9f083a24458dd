import { describe, expect, it, vi } from 'vitest';
import { untilAborted } from '../../../src/pipeline/timing.js';

const never = new Promise<never>(() => undefined);

describe('untilAborted', () => {
  it('untilAborted - resolves with the work when it ends first', async () => {
    const controller = new AbortController();
    let done = false;
    await untilAborted(
      controller.signal,
      Promise.resolve().then(() => (done = true)),
    );
    expect(done).toBe(true);
  });

  it('untilAborted - resolves when the signal aborts first, leaving the work running', async () => {
    const controller = new AbortController();
    const waiting = untilAborted(controller.signal, never);
    controller.abort();
    await expect(waiting).resolves.toBeUndefined();
  });

  it('untilAborted - a signal that has already aborted returns at once', async () => {
    await expect(untilAborted(AbortSignal.abort(), never)).resolves.toBeUndefined();
  });

  it('untilAborted - a work that fails before the abort passes its error on', async () => {
    const controller = new AbortController();
    await expect(untilAborted(controller.signal, Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });

  it('untilAborted - removes its abort listener once the work has ended', async () => {
    const { signal } = new AbortController();
    const added = vi.spyOn(signal, 'addEventListener');
    const removed = vi.spyOn(signal, 'removeEventListener');
    await untilAborted(signal, Promise.resolve());
    expect(added).toHaveBeenCalledTimes(1);
    expect(removed).toHaveBeenCalledWith('abort', added.mock.calls[0]![1]);
  });
});
