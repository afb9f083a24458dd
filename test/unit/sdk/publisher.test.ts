import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { SWARM_EVENT_FAMILIES, describeThrown } from '../../../src/sdk/publisher.js';
import { DEFAULT_STREAMS } from '../../../src/sources/jetstream/jetstream-source.js';

describe('describeThrown', () => {
  it('describeThrown - an Error gives its name and message', () => {
    expect(describeThrown(new TypeError('card declined'))).toEqual({
      error: 'card declined',
      error_type: 'TypeError',
    });
    class PaymentError extends Error {
      override readonly name = 'PaymentError';
    }
    expect(describeThrown(new PaymentError('402'))).toEqual({ error: '402', error_type: 'PaymentError' });
    expect(describeThrown(new Error())).toEqual({ error: 'Error', error_type: 'Error' });
  });

  it('describeThrown - an Error from another realm is still an Error', () => {
    const foreign: unknown = vm.runInNewContext('new RangeError("elsewhere")');
    expect(foreign instanceof Error).toBe(false);
    expect(describeThrown(foreign)).toEqual({ error: 'elsewhere', error_type: 'RangeError' });
  });

  it('describeThrown - circular and BigInt-bearing values are rendered, not thrown', () => {
    const circular: Record<string, unknown> = { code: 'E_LOOP' };
    circular.self = circular;
    const loop = describeThrown(circular);
    expect(loop.error_type).toBe('object');
    expect(loop.error).toContain("code: 'E_LOOP'");
    expect(loop.error).toContain('[Circular');

    expect(describeThrown({ amount: 10n })).toEqual({ error: '{ amount: 10n }', error_type: 'object' });
    expect(describeThrown(10n)).toEqual({ error: '10n', error_type: 'bigint' });

    const error = new Error('with a loop') as Error & { context?: unknown };
    error.context = circular;
    expect(describeThrown(error)).toEqual({ error: 'with a loop', error_type: 'Error' });
  });

  it('describeThrown - primitives keep their value and their type', () => {
    expect(describeThrown('timeout')).toEqual({ error: 'timeout', error_type: 'string' });
    expect(describeThrown(42)).toEqual({ error: '42', error_type: 'number' });
    expect(describeThrown(undefined)).toEqual({ error: 'undefined', error_type: 'undefined' });
    expect(describeThrown(null)).toEqual({ error: 'null', error_type: 'null' });
    expect(describeThrown(Symbol('stop'))).toEqual({ error: 'Symbol(stop)', error_type: 'symbol' });
  });

  it('describeThrown - hostile values give a description, never an exception', () => {
    const trapped = new Proxy(
      {},
      {
        get: () => {
          throw new Error('trap');
        },
        ownKeys: () => {
          throw new Error('trap');
        },
      },
    );
    expect(() => describeThrown(trapped)).not.toThrow();
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(() => describeThrown(proxy)).not.toThrow();

    const getter = new Error('hidden');
    Object.defineProperty(getter, 'message', {
      get() {
        throw new Error('getter');
      },
    });
    expect(describeThrown(getter)).toEqual({
      error: '[a value that could not be described]',
      error_type: 'unknown',
    });

    const custom = { [Symbol.for('nodejs.util.inspect.custom')]: () => 'never run' };
    expect(describeThrown(custom).error).not.toContain('never run');

    const messageObject = Object.defineProperty(new Error('x'), 'message', { value: { nested: 1n } });
    expect(describeThrown(messageObject)).toEqual({ error: '{ nested: 1n }', error_type: 'Error' });
  });

  it('describeThrown - long values are bounded and stay well formed', () => {
    const long = describeThrown('x'.repeat(10_000));
    expect(long.error).toHaveLength(1000);
    expect(long.error.endsWith('…')).toBe(true);

    const emoji = describeThrown(`${'x'.repeat(998)}😀😀`).error;
    expect(emoji.length).toBeLessThanOrEqual(1000);
    expect(emoji.isWellFormed()).toBe(true);
    expect(describeThrown('lone \ud800 surrogate').error.isWellFormed()).toBe(true);

    const big = describeThrown({
      list: Array.from({ length: 100_000 }, (_, i) => i),
      text: 'y'.repeat(5000),
    });
    expect(big.error.length).toBeLessThanOrEqual(1000);
  });
});

describe('SWARM_EVENT_FAMILIES', () => {
  /** True when the NATS subject filter (`*`, `>` wildcards) matches the literal subject. */
  const matches = (filter: string, subject: string): boolean => {
    const f = filter.split('.');
    const s = subject.split('.');
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '>') return s.length > i;
      if (i >= s.length || (f[i] !== '*' && f[i] !== s[i])) return false;
    }
    return f.length === s.length;
  };
  const streamSubjects = DEFAULT_STREAMS.flatMap((s) => s.subjects);

  it("sdk families - every family the SDK publishes is captured by one of Chronicle's streams", () => {
    for (const family of SWARM_EVENT_FAMILIES) {
      expect(streamSubjects.some((filter) => matches(filter, `swarm.${family}.anything`))).toBe(true);
    }
  });

  it('sdk families - every swarm.* stream subject has its family in the SDK', () => {
    const swarmFamilies = streamSubjects
      .filter((filter) => filter.startsWith('swarm.'))
      .map((filter) => filter.split('.')[1]);
    expect([...SWARM_EVENT_FAMILIES].sort()).toEqual([...swarmFamilies].sort());
  });
});
