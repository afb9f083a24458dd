/*
 * The service runner: starts the pipeline's components in dependency order and shuts them down in
 * reverse (intake first, then the drain, then the store), as the OpenTelemetry Collector's service does
 * with its components.
 *
 * States and transitions:
 *   idle     --start()-------------------------> starting
 *   idle     --shutdown()----------------------> stopped   (nothing to do; a later start() starts nothing)
 *   starting --every component started---------> started
 *   starting --a component's start() failed----> stopping  (the started ones, the failed one first, are shut
 *                                                           down within startFailureShutdownMillis; then
 *                                                           start() rejects with StartError)
 *   starting --shutdown()----------------------> stopping  (no further component is started; the one whose
 *                                                           start() is in flight is awaited, up to the
 *                                                           deadline, then shut down with the others;
 *                                                           start() resolves)
 *   started  --shutdown()----------------------> stopping
 *   stopping --every started one shut down, or--> stopped
 *              the deadline passed
 * start() and shutdown() each run once: a second call returns the first call's promise.
 */
import type { Logger } from '../telemetry/logger.js';
import type { Component, ComponentHealth, DependencyState } from './contracts.js';
import { StartError } from './errors.js';
import { untilAborted } from './timing.js';

/** Starts components in order, shuts them down in reverse, and merges what they say about their health. */
export interface Runner {
  /**
   * Starts every component in the given order, each awaited. If one fails, those already started (and
   * the failed one, whose shutdown is safe after a failed start and releases what it acquired) are shut
   * down in reverse and the error is rethrown as StartError naming the component (cause = original).
   * Resolves without starting the rest when shutdown() is called meanwhile.
   */
  start(): Promise<void>;
  /**
   * Shuts the started components down in reverse order, each awaited until done or until the deadline;
   * idempotent (a second call returns the first call's promise, shuts nothing down twice); before
   * start() it is a no-op; during start() it stops starting further components and shuts down the ones
   * started. A component whose shutdown throws is logged and the others still shut down. Past the
   * deadline the remaining components are still told to shut down (with the aborted signal, so they
   * release at once) but the runner does not wait for them.
   */
  shutdown(deadline: AbortSignal): Promise<void>;
  /**
   * Merges every component's health(): `dependencies` merged by name (when two components report the
   * same dependency, the worse state wins: down, then up, then disabled), `reasons` concatenated in
   * component order; a health() that throws or rejects becomes a reason
   * `<name>: health check failed: <message>`. Components without health() contribute nothing.
   */
  health(): Promise<{ dependencies: Record<string, DependencyState>; reasons: string[] }>;
}

/** Tunables of the runner. */
export interface RunnerOptions {
  /** Deadline for shutting down the started components after a failed start; 10 000 by default. */
  startFailureShutdownMillis?: number;
}

/** What the runner needs from its surroundings. */
export interface RunnerDeps {
  logger: Logger;
}

const DEFAULT_START_FAILURE_SHUTDOWN_MILLIS = 10_000;

// When two components report the same dependency, the higher rank is kept.
const STATE_RANK: Record<DependencyState['state'], number> = { disabled: 0, up: 1, down: 2 };

type RunnerState = 'idle' | 'starting' | 'started' | 'stopping' | 'stopped';

/**
 * Creates a runner for `components`, given in dependency order: each one's consumers before it, so that
 * shutting down in reverse stops intake before the drain and the drain before the store.
 */
export function createRunner(
  components: readonly Component[],
  deps: RunnerDeps,
  options: RunnerOptions = {},
): Runner {
  const { logger } = deps;
  const startFailureShutdownMillis =
    options.startFailureShutdownMillis ?? DEFAULT_START_FAILURE_SHUTDOWN_MILLIS;

  let state: RunnerState = 'idle';
  // Every component whose start() was called, in start order (including one in flight or failed).
  const started: Component[] = [];
  let inFlight: Promise<void> | undefined;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  async function startAll(): Promise<void> {
    for (const component of components) {
      if (stopping) return;
      started.push(component);
      logger.debug({ component: component.name }, 'starting');
      inFlight = Promise.resolve().then(() => component.start());
      const failure = await inFlight.then(
        () => undefined,
        (err: unknown) => ({ err }),
      );
      inFlight = undefined;
      if (failure) {
        logger.error({ component: component.name, err: failure.err }, 'start failed');
        // When a shutdown is already under way, this waits for it (with its deadline) instead.
        await stop(AbortSignal.timeout(startFailureShutdownMillis));
        throw new StartError(component.name, { cause: failure.err });
      }
      logger.debug({ component: component.name }, 'started');
    }
    if (!stopping) state = 'started';
  }

  // Runs once, whether a shutdown or a failed start asked first; the other gets the same promise.
  function stop(deadline: AbortSignal): Promise<void> {
    stopping ??= stopStarted(deadline);
    return stopping;
  }

  async function stopStarted(deadline: AbortSignal): Promise<void> {
    state = 'stopping';
    // A start() in flight settles before its component is shut down, unless the deadline comes first.
    const pendingStart = inFlight?.catch(() => undefined);
    if (pendingStart) await untilAborted(deadline, pendingStart);
    for (const component of [...started].reverse()) await stopOne(component, deadline);
    state = 'stopped';
  }

  async function stopOne(component: Component, deadline: AbortSignal): Promise<void> {
    const name = component.name;
    logger.debug({ component: name }, 'shutting down');
    let done = false;
    const shutdown = Promise.resolve()
      .then(() => component.shutdown(deadline))
      .then(() => {
        done = true;
      });
    try {
      // Returns at once when the deadline has already passed: the component was told to release at once.
      await untilAborted(deadline, shutdown);
    } catch (err) {
      logger.error({ component: name, err }, 'shutdown failed');
      return;
    }
    if (done) {
      logger.debug({ component: name }, 'shut down');
    } else {
      // Not waited for, but a later failure is still reported rather than left unhandled.
      shutdown.catch((err: unknown) => logger.error({ component: name, err }, 'shutdown failed'));
      logger.warn({ component: name }, 'shutdown not awaited: the deadline has passed');
    }
  }

  return {
    start() {
      if (!starting) {
        if (state === 'idle') state = 'starting';
        starting = startAll();
      }
      return starting;
    },

    shutdown(deadline) {
      if (state === 'idle') {
        state = 'stopped';
        stopping = Promise.resolve();
      }
      return stop(deadline);
    },

    async health() {
      return mergeHealth(await Promise.all(components.map(healthOf)));
    },
  };
}

/** A component's health; one that throws or rejects becomes a reason naming it. */
async function healthOf(component: Component): Promise<ComponentHealth> {
  if (!component.health) return {};
  try {
    return await component.health();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { reasons: [`${component.name}: health check failed: ${message}`] };
  }
}

/** Dependencies merged by name (the worse state wins), reasons concatenated in order. */
function mergeHealth(reports: readonly ComponentHealth[]): {
  dependencies: Record<string, DependencyState>;
  reasons: string[];
} {
  const dependencies: Record<string, DependencyState> = {};
  const reasons: string[] = [];
  for (const report of reports) {
    for (const [name, dependency] of Object.entries(report.dependencies ?? {})) {
      const known = dependencies[name];
      if (!known || STATE_RANK[dependency.state] > STATE_RANK[known.state]) dependencies[name] = dependency;
    }
    reasons.push(...(report.reasons ?? []));
  }
  return { dependencies, reasons };
}

/**
 * Components that start together and stop together, all at once: the sources, so that one slow to
 * stop (a NATS source waiting on an unreachable server) never delays stopping another's intake, nor
 * the drain after them. start() starts every one; if one fails, the others are shut down (within
 * `startFailureShutdownMillis`) and its error is rethrown. shutdown() shuts every one down with the
 * same deadline and rethrows the first failure once all have settled. health() merges theirs.
 */
export function together(
  name: string,
  components: readonly Component[],
  options: RunnerOptions = {},
): Component {
  const startFailureShutdownMillis =
    options.startFailureShutdownMillis ?? DEFAULT_START_FAILURE_SHUTDOWN_MILLIS;
  const shutdownAll = async (deadline: AbortSignal): Promise<void> => {
    const results = await Promise.allSettled(
      components.map((c) => Promise.resolve().then(() => c.shutdown(deadline))),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  return {
    name,
    async start() {
      const results = await Promise.allSettled(
        components.map((c) => Promise.resolve().then(() => c.start())),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (!failed) return;
      await shutdownAll(AbortSignal.timeout(startFailureShutdownMillis)).catch(() => undefined);
      throw failed.reason;
    },
    shutdown: shutdownAll,
    async health() {
      return mergeHealth(await Promise.all(components.map(healthOf)));
    },
  };
}

/**
 * A component that starts `component` when `ready` resolves true (e.g. once migrations are applied), in
 * the background: its start() returns at once. If `ready` resolves false (or rejects) or the wrapper is
 * shut down first, the inner component is never started; shutdown() shuts the inner one down only if
 * its start() was called, after that start settles (or the deadline passes). A failing background start
 * is logged, never an unhandled rejection. health() delegates to the inner component's health when it
 * has one. The wrapper carries the inner component's name.
 *
 * States: waiting (for `ready`) → starting (inner start() called) → started | failed; waiting → skipped
 * (`ready` false or rejected); any → shut down (idempotent; from waiting, the inner is never started).
 */
export function startWhen(
  ready: Promise<boolean>,
  component: Component,
  deps: { logger: Logger },
): Component {
  const { logger } = deps;
  const name = component.name;
  let shutDown = false;
  let started = false;
  // The inner start(), once called; it never rejects.
  let innerStart: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  // Handled from the outset, so that a `ready` rejecting before start() is never an unhandled rejection.
  const readiness = ready.then(
    (ok) => ok,
    (err: unknown) => {
      logger.error({ component: name, err }, 'not started: its precondition failed');
      return false;
    },
  );

  // Never rejects: every failure is logged.
  async function startInBackground(): Promise<void> {
    const ok = await readiness;
    if (shutDown) return;
    if (!ok) {
      logger.debug({ component: name }, 'not started: its precondition was not met');
      return;
    }
    logger.debug({ component: name }, 'starting');
    innerStart = Promise.resolve()
      .then(() => component.start())
      .then(
        () => logger.debug({ component: name }, 'started'),
        (err: unknown) => logger.error({ component: name, err }, 'start failed'),
      );
    await innerStart;
  }

  async function stopInner(deadline: AbortSignal): Promise<void> {
    shutDown = true;
    // Before the inner start() was called there is nothing to wait for: it never will be.
    if (!innerStart) return;
    await untilAborted(deadline, innerStart);
    await component.shutdown(deadline);
  }

  const wrapper: Component = {
    name,
    start() {
      if (!started && !shutDown) {
        started = true;
        void startInBackground();
      }
      return Promise.resolve();
    },
    shutdown(deadline) {
      stopping ??= stopInner(deadline);
      return stopping;
    },
  };
  if (component.health) wrapper.health = () => component.health?.() ?? {};
  return wrapper;
}
