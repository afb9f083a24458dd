import type { Component, Consumer, Delivery, Origin, Sink } from '../pipeline/contracts.js';
import { PartialWriteError } from '../pipeline/errors.js';
import { sleep, untilAborted } from '../pipeline/timing.js';
import type { RecordResult, TerminalCounts, WriteRecord } from '../pipeline/records.js';
import type { Logger } from '../telemetry/logger.js';
import { type Metrics, TERMINAL_STATUSES } from '../telemetry/metrics.js';

export interface BatcherOptions {
  /** Flush as soon as this many inputs wait (BATCH_FLUSH_THRESHOLD). */
  flushThresholdEvents: number;
  /** Flush inputs that have waited this long, whatever their number (BATCH_FLUSH_INTERVAL_MS). */
  flushIntervalMillis: number;
  /** Inputs someone is waiting on (HTTP requests) are flushed after at most this long. */
  lingerMillis: number;
  /** Bound on inputs held in memory, waiting or being written (BUFFER_MAX_SIZE). */
  maxBufferEvents: number;
  /** Bound on bytes held in memory (BUFFER_MAX_BYTES). */
  maxBufferBytes: number;
  /** Flush transactions in flight at once; the next batch is built while the last one commits. */
  maxConcurrentFlushes: number;
  /** First retry delay after a failed write; doubles up to retryMaxMillis, with full jitter. */
  retryInitialMillis: number;
  retryMaxMillis: number;
  /** Consecutive failed writes before a write_failure alert is raised. */
  alertAfterFailures: number;
}

export const DEFAULT_BATCHER_OPTIONS: BatcherOptions = {
  flushThresholdEvents: 4000,
  flushIntervalMillis: 200,
  lingerMillis: 20,
  maxBufferEvents: 12_000,
  maxBufferBytes: 64 * 1024 * 1024,
  maxConcurrentFlushes: 3,
  retryInitialMillis: 100,
  retryMaxMillis: 10_000,
  alertAfterFailures: 3,
};

export interface WriteFailure {
  consecutiveFailures: number;
  batchSize: number;
  error: string;
}

export interface BatcherDeps {
  /** Where each batch is written. */
  writer: Sink;
  logger: Logger;
  metrics: Metrics;
  /** Raised after alertAfterFailures consecutive failures, then at most once a minute while failing. */
  onWriteFailure?: (failure: WriteFailure) => void;
}

export interface BatcherState {
  heldEvents: number;
  heldBytes: number;
  pendingEvents: number;
  inFlightFlushes: number;
  failing: boolean;
  consecutiveFailures: number;
}

/**
 * Collects deliveries and writes them in batches; settles each delivery after its commit. The
 * Consumer every source offers to, and a Component whose shutdown is drain().
 */
export interface Batcher extends Consumer, Component {
  state(): BatcherState;
  readonly maxBufferBytes: number;
  /**
   * Writes everything held, then resolves. At the deadline, deliveries not yet being written are
   * handed back (retry) and in-flight writes are abandoned unsettled (their sources redeliver).
   */
  drain(deadline: AbortSignal): Promise<void>;
}

/*
 * States: idle (nothing pending) → collecting (a flush timer is armed) → flushing (up to
 * maxConcurrentFlushes writes in flight; each write retries until it commits) → idle.
 * draining: set once by drain(); every pending delivery is flushed without waiting for the timer.
 */
export function createBatcher(options: BatcherOptions, deps: BatcherDeps): Batcher {
  const { writer, logger, metrics } = deps;
  let pending: { delivery: Delivery<WriteRecord>; at: number; urgent: boolean }[] = [];
  // Arrival times of the urgent entries in `pending`, oldest first.
  let urgentArrivals: number[] = [];
  let heldEvents = 0;
  let heldBytes = 0;
  let inFlight = 0;
  let consecutiveFailures = 0;
  let lastAlertAt = 0;
  let draining = false;
  let abandoned = false;
  let timer: NodeJS.Timeout | undefined;
  let timerDueAt = Infinity;
  const inFlightBatches = new Set<Delivery<WriteRecord>[]>();
  const roomWaiters = new Set<() => void>();
  const idleWaiters = new Set<() => void>();
  // Aborted to cut the current retry backoffs short (drain begins, or is abandoned), then replaced.
  let wakeRetry = new AbortController();

  function updateGauges(): void {
    metrics.bufferEvents.set(heldEvents);
    metrics.bufferBytes.set(heldBytes);
  }
  metrics.bufferMaxEvents.set(options.maxBufferEvents);
  metrics.bufferMaxBytes.set(options.maxBufferBytes);

  /** Counts the tasks a committed transaction made terminal for the first time (never before the commit). */
  function countTerminal(terminal: TerminalCounts): void {
    for (const status of TERMINAL_STATUSES) {
      if (terminal[status] > 0) metrics.tasksTerminal.inc({ status }, terminal[status]);
    }
  }

  function fits(events: number, bytes: number): boolean {
    if (heldEvents === 0) return true;
    return heldEvents + events <= options.maxBufferEvents && heldBytes + bytes <= options.maxBufferBytes;
  }

  /** When the oldest pending input must be flushed: its interval, or the linger of a waiting caller. */
  function dueAt(): number {
    if (pending.length === 0) return Infinity;
    const byInterval = pending[0]!.at + options.flushIntervalMillis;
    const urgent = urgentArrivals[0];
    return urgent === undefined ? byInterval : Math.min(byInterval, urgent + options.lingerMillis);
  }

  function isDue(): boolean {
    return draining || pending.length >= options.flushThresholdEvents || performance.now() >= dueAt();
  }

  /** Starts flushes while there is work that is due and a free slot; otherwise arms the timer. */
  function pump(): void {
    while (inFlight < options.maxConcurrentFlushes && pending.length > 0 && isDue()) {
      const taken = pending.slice(0, options.flushThresholdEvents);
      pending = pending.slice(taken.length);
      const urgentTaken = taken.filter((e) => e.urgent).length;
      if (urgentTaken > 0) urgentArrivals = urgentArrivals.slice(urgentTaken);
      inFlight++;
      const batch = taken.map((e) => e.delivery);
      inFlightBatches.add(batch);
      flush(batch).catch((err: unknown) => logger.error({ err }, 'flush loop failed unexpectedly'));
    }
    // With every slot busy, the end of a flush pumps again; a timer would only spin.
    const next = pending.length > 0 && inFlight < options.maxConcurrentFlushes ? dueAt() : Infinity;
    if (next === timerDueAt) return;
    if (timer) clearTimeout(timer);
    timer = undefined;
    timerDueAt = next;
    if (next !== Infinity) {
      timer = setTimeout(
        () => {
          timer = undefined;
          timerDueAt = Infinity;
          pump();
        },
        Math.max(0, next - performance.now()),
      );
    }
  }

  function wakeRetries(): void {
    wakeRetry.abort();
    wakeRetry = new AbortController();
  }

  /** Settles each delivery that has a result; returns those still without one. */
  function settle(
    batch: readonly Delivery<WriteRecord>[],
    results: readonly (RecordResult | undefined)[],
  ): Delivery<WriteRecord>[] {
    // Counted per flush rather than per input: label lookups are not free at 30k inputs/s.
    const counts = new Map<string, number>();
    const count = (key: string): void => void counts.set(key, (counts.get(key) ?? 0) + 1);
    const unsettled: Delivery<WriteRecord>[] = [];
    batch.forEach((delivery, i) => {
      const result = results[i];
      const origin = delivery.value.input.origin;
      if (result === undefined) {
        unsettled.push(delivery);
      } else if (result.status === 'rejected') {
        count(`rejected\t${origin}\t${result.reason}`);
        delivery.reject(result.reason, result.detail);
      } else {
        const { value } = delivery;
        if (value.kind === 'dlq' && result.status === 'stored') {
          count(`dlq\t${origin}\t${metrics.dlqReasonLabel(value.entry.reason)}`);
        } else {
          count(`${result.status}\t${origin}`);
        }
        delivery.ack(result.status);
      }
    });
    for (const [key, n] of counts) {
      const [what, origin, reason] = key.split('\t') as [string, Origin, string?];
      if (what === 'rejected') metrics.rejected.inc({ origin, reason }, n);
      else if (what === 'dlq') metrics.dlqEntries.inc({ reason }, n);
      else if (what === 'stored') metrics.stored.inc({ origin }, n);
      else metrics.duplicates.inc({ origin }, n);
    }
    return unsettled;
  }

  async function flush(batch: Delivery<WriteRecord>[]): Promise<void> {
    let remaining = batch;
    let attempt = 0;
    for (;;) {
      if (abandoned) break;
      const started = process.hrtime.bigint();
      try {
        const { results, terminalTasks } = await writer.write(remaining.map((d) => d.value));
        countTerminal(terminalTasks);
        metrics.flushSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
        metrics.flushEvents.observe(remaining.length);
        metrics.flushes.inc({ result: 'ok' });
        if (consecutiveFailures > 0)
          logger.info({ after: consecutiveFailures }, 'writes to Postgres recovered');
        consecutiveFailures = 0;
        metrics.writerFailing.set(0);
        settle(remaining, results);
        break;
      } catch (err) {
        // Part of a split batch committed: settle (and count) that part now, retry only the rest.
        if (err instanceof PartialWriteError) {
          countTerminal(err.terminalTasks);
          remaining = settle(remaining, err.results);
        }
        consecutiveFailures++;
        metrics.flushes.inc({ result: 'retry' });
        metrics.writeFailures.inc();
        metrics.writerFailing.set(1);
        const delay =
          Math.random() * Math.min(options.retryMaxMillis, options.retryInitialMillis * 2 ** attempt);
        attempt++;
        logger.warn(
          { err, consecutiveFailures, batchSize: batch.length, retryInMillis: Math.round(delay) },
          'write to Postgres failed; batch kept for retry',
        );
        const now = performance.now();
        if (
          consecutiveFailures >= options.alertAfterFailures &&
          (lastAlertAt === 0 || now - lastAlertAt >= 60_000)
        ) {
          lastAlertAt = now;
          metrics.writeFailureAlerts.inc();
          deps.onWriteFailure?.({
            consecutiveFailures,
            batchSize: batch.length,
            error: (err as Error).message,
          });
        }
        await sleep(draining ? Math.min(delay, 1_000) : delay, wakeRetry.signal);
      }
    }
    if (consecutiveFailures === 0) lastAlertAt = 0;
    inFlightBatches.delete(batch);
    inFlight--;
    for (const d of batch) {
      heldEvents--;
      heldBytes -= d.sizeBytes;
    }
    updateGauges();
    for (const wake of [...roomWaiters]) wake();
    if (pending.length === 0 && inFlight === 0) for (const wake of [...idleWaiters]) wake();
    pump();
  }

  let drained: Promise<void> | undefined;

  return {
    name: 'batcher',
    maxBufferEvents: options.maxBufferEvents,
    maxBufferBytes: options.maxBufferBytes,

    offer(deliveries, offerOptions = {}) {
      if (deliveries.length === 0) return true;
      const bytes = deliveries.reduce((sum, d) => sum + d.sizeBytes, 0);
      if (draining || !fits(deliveries.length, bytes)) return false;
      const at = performance.now();
      const urgent = offerOptions.urgent ?? false;
      for (const delivery of deliveries) pending.push({ delivery, at, urgent });
      if (urgent) urgentArrivals.push(...deliveries.map(() => at));
      heldEvents += deliveries.length;
      heldBytes += bytes;
      updateGauges();
      pump();
      return true;
    },

    hasRoom(events, bytes = 0) {
      return !draining && fits(events, bytes);
    },

    accepting() {
      return !draining;
    },

    waitForRoom(events, bytes = 0, signal) {
      return new Promise((resolve) => {
        const check = (): void => {
          if (signal?.aborted || draining || fits(events, bytes)) {
            roomWaiters.delete(check);
            signal?.removeEventListener('abort', check);
            resolve();
          }
        };
        roomWaiters.add(check);
        signal?.addEventListener('abort', check, { once: true });
        check();
      });
    },

    failing() {
      return consecutiveFailures > 0;
    },

    start() {
      return Promise.resolve();
    },

    shutdown(deadline) {
      drained ??= this.drain(deadline);
      return drained;
    },

    health() {
      if (consecutiveFailures === 0) return {};
      return { reasons: [`writes to Postgres failing (${consecutiveFailures} in a row)`] };
    },

    state() {
      return {
        heldEvents,
        heldBytes,
        pendingEvents: pending.length,
        inFlightFlushes: inFlight,
        failing: consecutiveFailures > 0,
        consecutiveFailures,
      };
    },

    async drain(deadline) {
      draining = true;
      for (const wake of [...roomWaiters]) wake();
      pump();
      wakeRetries();
      if (pending.length > 0 || inFlight > 0) {
        let onIdle!: () => void;
        const idle = new Promise<void>((resolve) => (onIdle = resolve));
        idleWaiters.add(onIdle);
        await untilAborted(deadline, idle);
        idleWaiters.delete(onIdle);
      }
      if (pending.length > 0 || inFlight > 0) {
        abandoned = true;
        wakeRetries();
        if (timer) clearTimeout(timer);
        logger.warn(
          { pending: pending.length, inFlightFlushes: inFlight },
          'shutdown deadline reached; unwritten input handed back to its sources',
        );
        for (const e of pending) e.delivery.retry();
        // In-flight writes may still commit; their inputs are handed back anyway (a redelivery then
        // deduplicates) so that no source waits on a write that outlives the process.
        for (const batch of inFlightBatches) for (const d of batch) d.retry();
        pending = [];
        urgentArrivals = [];
      }
    },
  };
}
