import { describe, expect, it } from 'vitest';
import type { Component, ComponentHealth } from '../../../src/pipeline/contracts.js';
import { StartError } from '../../../src/pipeline/errors.js';
import { createRunner, startWhen, together } from '../../../src/pipeline/runner.js';
import { createLogger, type Logger } from '../../../src/telemetry/logger.js';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback and I/O callback run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const never = new Promise<never>(() => undefined);

interface LogLine {
  level: number;
  msg: string;
  component?: string;
  err?: { message: string };
}

/** A debug-level logger whose JSON lines the test reads back. */
function recordingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger(
    { level: 'debug' },
    { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) },
  );
  return { logger, lines };
}

interface FakeBehaviour {
  start?: () => Promise<void>;
  shutdown?: (deadline: AbortSignal) => Promise<void>;
  health?: () => ComponentHealth | Promise<ComponentHealth>;
}

/** A component that records `start <name>` and `shutdown <name>` into `calls`, then does what it is told. */
function fake(
  name: string,
  calls: string[],
  behaviour: FakeBehaviour = {},
): Component & { signals: AbortSignal[] } {
  const signals: AbortSignal[] = [];
  const component: Component & { signals: AbortSignal[] } = {
    name,
    signals,
    start() {
      calls.push(`start ${name}`);
      return behaviour.start ? behaviour.start() : Promise.resolve();
    },
    shutdown(deadline) {
      calls.push(`shutdown ${name}`);
      signals.push(deadline);
      return behaviour.shutdown ? behaviour.shutdown(deadline) : Promise.resolve();
    },
  };
  if (behaviour.health) component.health = behaviour.health;
  return component;
}

const open = (): AbortSignal => new AbortController().signal;

describe('runner', () => {
  it('runner - starts components in the given order, each start awaited before the next', async () => {
    const calls: string[] = [];
    const first = deferred();
    const runner = createRunner(
      [fake('a', calls, { start: () => first.promise }), fake('b', calls), fake('c', calls)],
      recordingLogger(),
    );
    const starting = runner.start();
    await settle();
    expect(calls).toEqual(['start a']);
    first.resolve();
    await starting;
    expect(calls).toEqual(['start a', 'start b', 'start c']);
  });

  it('runner - shuts down in reverse order of start, each shutdown awaited before the next', async () => {
    const calls: string[] = [];
    const lastStopped = deferred();
    const runner = createRunner(
      [fake('a', calls), fake('b', calls), fake('c', calls, { shutdown: () => lastStopped.promise })],
      recordingLogger(),
    );
    await runner.start();
    const stopping = runner.shutdown(open());
    await settle();
    expect(calls.slice(3)).toEqual(['shutdown c']);
    lastStopped.resolve();
    await stopping;
    expect(calls).toEqual(['start a', 'start b', 'start c', 'shutdown c', 'shutdown b', 'shutdown a']);
  });

  it('runner - a component that fails to start stops the ones already started in reverse; start() rejects with StartError naming it; the later ones never start', async () => {
    const calls: string[] = [];
    const { logger, lines } = recordingLogger();
    const boom = new Error('connection refused');
    const runner = createRunner(
      [
        fake('a', calls),
        fake('b', calls),
        fake('c', calls, { start: () => Promise.reject(boom) }),
        fake('d', calls),
      ],
      { logger },
    );
    const err = await runner.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StartError);
    expect(err).toMatchObject({ name: 'StartError', component: 'c', cause: boom });
    expect((err as Error).message).toBe('c failed to start: connection refused');
    // The failed one is shut down too: shutdown is safe after a failed start and releases what it acquired.
    expect(calls).toEqual(['start a', 'start b', 'start c', 'shutdown c', 'shutdown b', 'shutdown a']);
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, component: 'c', msg: 'start failed' }));
  });

  it('runner - a start() that throws synchronously is a failed start too', async () => {
    const calls: string[] = [];
    const runner = createRunner(
      [
        fake('a', calls),
        fake('b', calls, {
          start: () => {
            throw new Error('sync');
          },
        }),
      ],
      recordingLogger(),
    );
    await expect(runner.start()).rejects.toMatchObject({ component: 'b' });
    expect(calls).toEqual(['start a', 'start b', 'shutdown b', 'shutdown a']);
  });

  it('runner - after a failed start the started ones get startFailureShutdownMillis to shut down', async () => {
    const calls: string[] = [];
    const runner = createRunner(
      [
        fake('a', calls),
        fake('b', calls, { shutdown: () => never }),
        fake('c', calls, { start: () => Promise.reject(new Error('no')) }),
      ],
      recordingLogger(),
      { startFailureShutdownMillis: 20 },
    );
    await expect(runner.start()).rejects.toBeInstanceOf(StartError);
    expect(calls).toEqual(['start a', 'start b', 'start c', 'shutdown c', 'shutdown b', 'shutdown a']);
  });

  it('runner - a second shutdown returns the first one’s promise and shuts nothing down twice', async () => {
    const calls: string[] = [];
    const runner = createRunner([fake('a', calls), fake('b', calls)], recordingLogger());
    await runner.start();
    const first = runner.shutdown(open());
    const second = runner.shutdown(open());
    expect(second).toBe(first);
    await first;
    expect(runner.shutdown(open())).toBe(first);
    await settle();
    expect(calls).toEqual(['start a', 'start b', 'shutdown b', 'shutdown a']);
  });

  it('runner - shutdown before start is a no-op, and a later start() starts nothing', async () => {
    const calls: string[] = [];
    const runner = createRunner([fake('a', calls), fake('b', calls)], recordingLogger());
    await runner.shutdown(open());
    await runner.start();
    expect(calls).toEqual([]);
  });

  it('runner - shutdown during start starts no further component and shuts down the started ones, the one in flight included', async () => {
    const calls: string[] = [];
    const bStarted = deferred();
    const runner = createRunner(
      [fake('a', calls), fake('b', calls, { start: () => bStarted.promise }), fake('c', calls)],
      recordingLogger(),
    );
    const starting = runner.start();
    await settle();
    expect(calls).toEqual(['start a', 'start b']);
    const stopping = runner.shutdown(open());
    await settle();
    // b's start() is still in flight: it settles before b is shut down.
    expect(calls).toEqual(['start a', 'start b']);
    bStarted.resolve();
    await Promise.all([starting, stopping]);
    expect(calls).toEqual(['start a', 'start b', 'shutdown b', 'shutdown a']);
  });

  it('runner - shutdown during a start() that never settles still ends at the deadline, telling every started one to shut down', async () => {
    const calls: string[] = [];
    const runner = createRunner(
      [fake('a', calls), fake('b', calls, { start: () => never }), fake('c', calls)],
      recordingLogger(),
    );
    void runner.start();
    await settle();
    const deadline = new AbortController();
    const stopping = runner.shutdown(deadline.signal);
    await settle();
    expect(calls).toEqual(['start a', 'start b']);
    deadline.abort();
    await stopping;
    expect(calls).toEqual(['start a', 'start b', 'shutdown b', 'shutdown a']);
  });

  it('runner - a start() that fails while a shutdown is under way still rejects with StartError, and nothing is shut down twice', async () => {
    const calls: string[] = [];
    const bStarted = deferred();
    const runner = createRunner(
      [fake('a', calls), fake('b', calls, { start: () => bStarted.promise }), fake('c', calls)],
      recordingLogger(),
    );
    const starting = runner.start();
    await settle();
    const stopping = runner.shutdown(open());
    bStarted.reject(new Error('interrupted'));
    await expect(starting).rejects.toMatchObject({ component: 'b' });
    await stopping;
    expect(calls).toEqual(['start a', 'start b', 'shutdown b', 'shutdown a']);
  });

  it('runner - honours the deadline: a shutdown that never ends is left behind when the deadline aborts, and the components before and after it are still told to shut down', async () => {
    const calls: string[] = [];
    const { logger, lines } = recordingLogger();
    const a = fake('a', calls);
    const runner = createRunner([a, fake('b', calls, { shutdown: () => never }), fake('c', calls)], {
      logger,
    });
    await runner.start();
    const deadline = new AbortController();
    let resolved = false;
    const stopping = runner.shutdown(deadline.signal).then(() => (resolved = true));
    await settle();
    expect(calls.slice(3)).toEqual(['shutdown c', 'shutdown b']);
    expect(resolved).toBe(false);
    deadline.abort();
    await stopping;
    expect(calls.slice(3)).toEqual(['shutdown c', 'shutdown b', 'shutdown a']);
    // Told with the aborted signal, so it releases at once.
    expect(a.signals[0]?.aborted).toBe(true);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 40,
        component: 'b',
        msg: 'shutdown not awaited: the deadline has passed',
      }),
    );
  });

  it('runner - honours a real-time deadline soon after it passes', async () => {
    const calls: string[] = [];
    const runner = createRunner(
      [fake('a', calls), fake('b', calls, { shutdown: () => never }), fake('c', calls)],
      recordingLogger(),
    );
    await runner.start();
    const began = performance.now();
    await runner.shutdown(AbortSignal.timeout(30));
    // Generous upper bound: a loaded machine may fire the timer late, but not by seconds.
    expect(performance.now() - began).toBeLessThan(500);
    expect(calls.slice(3)).toEqual(['shutdown c', 'shutdown b', 'shutdown a']);
  });

  it('runner - a deadline that has already passed still tells every component to shut down, without waiting', async () => {
    const calls: string[] = [];
    const runner = createRunner(
      [fake('a', calls, { shutdown: () => never }), fake('b', calls, { shutdown: () => never })],
      recordingLogger(),
    );
    await runner.start();
    await runner.shutdown(AbortSignal.abort());
    expect(calls.slice(2)).toEqual(['shutdown b', 'shutdown a']);
  });

  it('runner - a component whose shutdown throws or rejects is logged and the others still shut down', async () => {
    const calls: string[] = [];
    const { logger, lines } = recordingLogger();
    const runner = createRunner(
      [
        fake('a', calls),
        fake('b', calls, {
          shutdown: () => {
            throw new Error('sync failure');
          },
        }),
        fake('c', calls, { shutdown: () => Promise.reject(new Error('async failure')) }),
      ],
      { logger },
    );
    await runner.start();
    await runner.shutdown(open());
    expect(calls.slice(3)).toEqual(['shutdown c', 'shutdown b', 'shutdown a']);
    const failures = lines.filter((line) => line.msg === 'shutdown failed');
    expect(failures.map((line) => [line.level, line.component, line.err?.message])).toEqual([
      [50, 'c', 'async failure'],
      [50, 'b', 'sync failure'],
    ]);
  });

  it('runner - a shutdown that fails after the deadline is logged, not an unhandled rejection', async () => {
    const calls: string[] = [];
    const { logger, lines } = recordingLogger();
    const late = deferred();
    const runner = createRunner([fake('a', calls, { shutdown: () => late.promise })], { logger });
    await runner.start();
    await runner.shutdown(AbortSignal.abort());
    late.reject(new Error('too late'));
    await settle();
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 50,
        component: 'a',
        msg: 'shutdown failed',
        err: expect.objectContaining({ message: 'too late' }) as unknown,
      }),
    );
  });

  it('runner - logs each component’s start and shutdown at debug level', async () => {
    const { logger, lines } = recordingLogger();
    const runner = createRunner([fake('a', [])], { logger });
    await runner.start();
    await runner.shutdown(open());
    expect(lines.map((line) => [line.level, line.component, line.msg])).toEqual([
      [20, 'a', 'starting'],
      [20, 'a', 'started'],
      [20, 'a', 'shutting down'],
      [20, 'a', 'shut down'],
    ]);
  });
});

describe('runner health', () => {
  it('runner health - merges dependencies by name and concatenates reasons in component order', async () => {
    const runner = createRunner(
      [
        fake('store', [], {
          health: () => ({ dependencies: { postgres: { state: 'up' } }, reasons: ['store: migrating'] }),
        }),
        fake('silent', []),
        fake('nats', [], {
          health: () =>
            Promise.resolve({
              dependencies: { nats: { state: 'down', detail: 'connecting' }, otlp: { state: 'disabled' } },
              reasons: ['nats: not connected'],
            }),
        }),
        fake('empty', [], { health: () => ({}) }),
      ],
      recordingLogger(),
    );
    await expect(runner.health()).resolves.toEqual({
      dependencies: {
        postgres: { state: 'up' },
        nats: { state: 'down', detail: 'connecting' },
        otlp: { state: 'disabled' },
      },
      reasons: ['store: migrating', 'nats: not connected'],
    });
  });

  it('runner health - when two components report one dependency, the worse state wins', async () => {
    const runner = createRunner(
      [
        fake('a', [], { health: () => ({ dependencies: { postgres: { state: 'disabled' } } }) }),
        fake('b', [], {
          health: () => ({ dependencies: { postgres: { state: 'down', detail: 'refused' } } }),
        }),
        fake('c', [], { health: () => ({ dependencies: { postgres: { state: 'up' } } }) }),
      ],
      recordingLogger(),
    );
    await expect(runner.health()).resolves.toEqual({
      dependencies: { postgres: { state: 'down', detail: 'refused' } },
      reasons: [],
    });
  });

  it('runner health - a health() that throws or rejects becomes a reason naming the component', async () => {
    const runner = createRunner(
      [
        fake('a', [], {
          health: () => {
            throw new Error('sync broken');
          },
        }),
        fake('b', [], { health: () => ({ reasons: ['b: busy'] }) }),
        fake('c', [], { health: () => Promise.reject(new Error('async broken')) }),
      ],
      recordingLogger(),
    );
    await expect(runner.health()).resolves.toEqual({
      dependencies: {},
      reasons: ['a: health check failed: sync broken', 'b: busy', 'c: health check failed: async broken'],
    });
  });
});

describe('startWhen', () => {
  it('startWhen - ready true starts the inner component in the background and shuts it down', async () => {
    const calls: string[] = [];
    const ready = deferred<boolean>();
    const innerStarted = deferred();
    const wrapper = startWhen(
      ready.promise,
      fake('exporter', calls, { start: () => innerStarted.promise }),
      recordingLogger(),
    );
    expect(wrapper.name).toBe('exporter');
    await wrapper.start();
    expect(calls).toEqual([]);
    ready.resolve(true);
    await settle();
    expect(calls).toEqual(['start exporter']);
    innerStarted.resolve();
    await wrapper.shutdown(open());
    expect(calls).toEqual(['start exporter', 'shutdown exporter']);
  });

  it('startWhen - start() returns at once while the inner start is still in flight, and a runner is not held up by it', async () => {
    const calls: string[] = [];
    const ready = deferred<boolean>();
    const runner = createRunner(
      [
        startWhen(ready.promise, fake('slow', calls, { start: () => never }), recordingLogger()),
        fake('next', calls),
      ],
      recordingLogger(),
    );
    await runner.start();
    ready.resolve(true);
    await settle();
    expect(calls).toEqual(['start next', 'start slow']);
  });

  it('startWhen - ready false never starts the inner component and never shuts it down', async () => {
    const calls: string[] = [];
    const wrapper = startWhen(Promise.resolve(false), fake('exporter', calls), recordingLogger());
    await wrapper.start();
    await settle();
    await wrapper.shutdown(open());
    expect(calls).toEqual([]);
  });

  it('startWhen - a rejected ready is logged and never starts the inner component', async () => {
    const calls: string[] = [];
    const { logger, lines } = recordingLogger();
    const wrapper = startWhen(Promise.reject(new Error('migrations failed')), fake('exporter', calls), {
      logger,
    });
    await wrapper.start();
    await settle();
    await wrapper.shutdown(open());
    expect(calls).toEqual([]);
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, component: 'exporter' }));
  });

  it('startWhen - shutdown before ready resolves: returns at once, and the inner component is never started nor shut down', async () => {
    const calls: string[] = [];
    const ready = deferred<boolean>();
    const wrapper = startWhen(ready.promise, fake('exporter', calls), recordingLogger());
    await wrapper.start();
    await wrapper.shutdown(open());
    ready.resolve(true);
    await settle();
    expect(calls).toEqual([]);
  });

  it('startWhen - shutdown before start: a later start() starts nothing', async () => {
    const calls: string[] = [];
    const wrapper = startWhen(Promise.resolve(true), fake('exporter', calls), recordingLogger());
    await wrapper.shutdown(open());
    await wrapper.start();
    await settle();
    expect(calls).toEqual([]);
  });

  it('startWhen - shutdown while the inner start is in flight waits for it, then shuts the inner one down once', async () => {
    const calls: string[] = [];
    const innerStarted = deferred();
    const wrapper = startWhen(
      Promise.resolve(true),
      fake('exporter', calls, { start: () => innerStarted.promise }),
      recordingLogger(),
    );
    await wrapper.start();
    await settle();
    const stopping = wrapper.shutdown(open());
    expect(wrapper.shutdown(open())).toBe(stopping);
    await settle();
    expect(calls).toEqual(['start exporter']);
    innerStarted.resolve();
    await stopping;
    expect(calls).toEqual(['start exporter', 'shutdown exporter']);
  });

  it('startWhen - a failing background start is logged, not an unhandled rejection, and its component is still shut down', async () => {
    const calls: string[] = [];
    const { logger, lines } = recordingLogger();
    const wrapper = startWhen(
      Promise.resolve(true),
      fake('exporter', calls, { start: () => Promise.reject(new Error('bad endpoint')) }),
      { logger },
    );
    await wrapper.start();
    await settle();
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 50,
        component: 'exporter',
        msg: 'start failed',
        err: expect.objectContaining({ message: 'bad endpoint' }) as unknown,
      }),
    );
    await wrapper.shutdown(open());
    expect(calls).toEqual(['start exporter', 'shutdown exporter']);
  });

  it('startWhen - health() delegates to the inner component, and is absent when the inner has none', async () => {
    const health: ComponentHealth = { dependencies: { otlp: { state: 'up' } }, reasons: [] };
    const withHealth = startWhen(
      Promise.resolve(false),
      fake('a', [], { health: () => health }),
      recordingLogger(),
    );
    expect(await withHealth.health?.()).toBe(health);
    expect('health' in startWhen(Promise.resolve(false), fake('b', []), recordingLogger())).toBe(false);
  });
});

describe('together', () => {
  it('together - shuts every component down at once: one slow to stop delays no other', async () => {
    const calls: string[] = [];
    const slow = deferred();
    const group = together('sources', [
      fake('a', calls, { shutdown: () => slow.promise }),
      fake('b', calls),
      fake('c', calls),
    ]);
    await group.start();
    let done = false;
    const stopping = group.shutdown(open()).then(() => (done = true));
    await settle();
    expect(calls).toEqual(['start a', 'start b', 'start c', 'shutdown a', 'shutdown b', 'shutdown c']);
    expect(done).toBe(false);
    slow.resolve();
    await stopping;
    expect(done).toBe(true);
  });

  it('together - in a runner, the group stops before what it feeds, which waits for all of it', async () => {
    const calls: string[] = [];
    const slow = deferred();
    const runner = createRunner(
      [
        fake('batcher', calls),
        together('sources', [fake('nats', calls, { shutdown: () => slow.promise }), fake('http', calls)]),
      ],
      { logger: recordingLogger().logger },
    );
    await runner.start();
    const stopping = runner.shutdown(open());
    await settle();
    expect(calls.slice(3)).toEqual(['shutdown nats', 'shutdown http']);
    slow.resolve();
    await stopping;
    expect(calls.slice(3)).toEqual(['shutdown nats', 'shutdown http', 'shutdown batcher']);
  });

  it('together - a failed start shuts the others down and rejects with its error', async () => {
    const calls: string[] = [];
    const group = together('sources', [
      fake('a', calls),
      fake('b', calls, { start: () => Promise.reject(new Error('port in use')) }),
    ]);
    await expect(group.start()).rejects.toThrow('port in use');
    expect(calls).toEqual(['start a', 'start b', 'shutdown a', 'shutdown b']);
  });

  it('together - a shutdown that fails is passed on once every other one has ended', async () => {
    const calls: string[] = [];
    const slow = deferred();
    const group = together('sources', [
      fake('a', calls, { shutdown: () => Promise.reject(new Error('stuck')) }),
      fake('b', calls, { shutdown: () => slow.promise }),
    ]);
    let failure: unknown;
    const stopping = group.shutdown(open()).catch((err: unknown) => (failure = err));
    await settle();
    expect(failure).toBeUndefined();
    slow.resolve();
    await stopping;
    expect((failure as Error).message).toBe('stuck');
  });

  it('together - health merges its components: the worse state wins, reasons in order', async () => {
    const calls: string[] = [];
    const group = together('sources', [
      fake('a', calls, { health: () => ({ dependencies: { nats: { state: 'up' } } }) }),
      fake('b', calls, {
        health: () => ({ dependencies: { nats: { state: 'down', detail: 'x' } }, reasons: ['nats x'] }),
      }),
      fake('c', calls, { health: () => Promise.reject(new Error('boom')) }),
    ]);
    expect(await group.health!()).toEqual({
      dependencies: { nats: { state: 'down', detail: 'x' } },
      reasons: ['nats x', 'c: health check failed: boom'],
    });
  });
});
