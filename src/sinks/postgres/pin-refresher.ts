import type pg from 'pg';
import type { Component } from '../../pipeline/contracts.js';
import type { Logger } from '../../telemetry/logger.js';
import { type RefreshResult, refreshPinned } from './archive.js';

export interface PinRefresherOptions {
  /** Pause between two rounds (a round walks every pin once). */
  intervalMillis: number;
  /** Pins looked at, and pinned again, per transaction. */
  batchTraces: number;
}

export interface PinRefresherDeps {
  pool: pg.Pool;
  logger: Logger;
}

/** The refresher, and one round on demand (tests, a retention run about to drop rows). */
export interface PinRefresher extends Component {
  refreshOnce(): Promise<RefreshResult>;
}

/**
 * Keeps every pinned copy current (docs/adr/0012-pinned-tasks-archive.md): every `intervalMillis` it pins
 * again the pinned traces whose stored rows hold something their copy does not, so what reaches a pinned
 * task after its pin (its end, its spans, a recovered dead letter) is archived long before retention drops
 * it. Replicas each run it; two refreshes of one trace serialize like two pins.
 *
 * States: idle (before start) → running (a timer; at most one round at a time) → stopped (shutdown: the
 * timer cleared, the round in flight told to stop after its batch and awaited until the deadline).
 */
export function createPinRefresher(options: PinRefresherOptions, deps: PinRefresherDeps): PinRefresher {
  const { pool, logger } = deps;
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<RefreshResult> | undefined;

  const refreshOnce = (): Promise<RefreshResult> => {
    round ??= refreshPinned(pool, { batchTraces: options.batchTraces, signal: stop.signal }).finally(() => {
      round = undefined;
    });
    return round;
  };

  const tick = async (): Promise<void> => {
    try {
      const { checked, refreshed } = await refreshOnce();
      if (refreshed > 0) logger.debug({ checked, refreshed }, 'pinned copies refreshed');
    } catch (err) {
      // The next round tries again; a database that is down is reported by the health check.
      logger.warn({ err }, 'refreshing the pinned copies failed');
    } finally {
      if (!stop.signal.aborted) timer = setTimeout(() => void tick(), options.intervalMillis);
    }
  };

  return {
    name: 'pin-refresher',
    refreshOnce,
    start() {
      if (!stop.signal.aborted && timer === undefined) {
        timer = setTimeout(() => void tick(), options.intervalMillis);
      }
      return Promise.resolve();
    },
    async shutdown(deadline) {
      stop.abort();
      clearTimeout(timer);
      const inFlight = round;
      if (inFlight === undefined || deadline.aborted) return;
      await new Promise<void>((resolve) => {
        deadline.addEventListener('abort', () => resolve(), { once: true });
        void inFlight.then(
          () => resolve(),
          () => resolve(),
        );
      });
    },
  };
}
