import { describe, expect, it } from 'vitest';
import { DEFAULT_BATCHER_OPTIONS, createBatcher } from '../../../src/batch/batcher.js';
import type { Delivery, Sink as EventWriter, WriteResult } from '../../../src/pipeline/contracts.js';
import { PartialWriteError, RetryableError } from '../../../src/pipeline/errors.js';
import { NO_TERMINAL, type TerminalCounts, type WriteRecord } from '../../../src/pipeline/records.js';
import { silentLogger } from '../../../src/telemetry/logger.js';
import { type Metrics, createMetrics } from '../../../src/telemetry/metrics.js';
import { counterValue } from '../../support/metric-values.js';

function eventDelivery(id: number): Delivery<WriteRecord> {
  return {
    value: {
      kind: 'event',
      input: { origin: 'nats', subject: null, key: null },
      event: {
        event_id: `00000000-0000-4000-8000-${String(id).padStart(12, '0')}`,
        trace_id: `t-${id}`,
        source: 'test',
        event_type: 'task.completed',
        timestamp: new Date(0).toISOString(),
        metadata: {},
      },
    },
    sizeBytes: 100,
    ack: () => undefined,
    retry: () => undefined,
    reject: () => undefined,
  };
}

function dlqDelivery(id: number, reason: string | null): Delivery<WriteRecord> {
  return {
    value: {
      kind: 'dlq',
      input: { origin: 'nats', subject: 'dlq.tasks', key: null },
      entry: {
        dlq_id: `d-${id}`,
        original_subject: null,
        original_payload: null,
        reason,
        reason_detail: null,
        failed_at: null,
        retry_count: null,
        max_retries: null,
        retry_history: null,
        source: null,
        recoverable: null,
        recovered: false,
        trace_id: null,
        subject: 'dlq.tasks',
      },
      event: null,
    },
    sizeBytes: 100,
    ack: () => undefined,
    retry: () => undefined,
    reject: () => undefined,
  };
}

/** A writer answering each call with the next scripted outcome (a result or an error to throw). */
function scriptedWriter(script: ((records: readonly WriteRecord[]) => WriteResult | Error)[]): EventWriter {
  let call = 0;
  return {
    write(records) {
      const outcome = script[Math.min(call++, script.length - 1)]!(records);
      return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(outcome);
    },
  };
}

const stored =
  (terminalTasks: TerminalCounts = NO_TERMINAL) =>
  (records: readonly WriteRecord[]): WriteResult => ({
    results: records.map(() => ({ status: 'stored' as const })),
    terminalTasks,
  });

function start(writer: EventWriter): {
  metrics: Metrics;
  offer: (ds: Delivery<WriteRecord>[]) => void;
  idle: () => Promise<void>;
} {
  const metrics = createMetrics({ defaultMetrics: false });
  const batcher = createBatcher(
    {
      ...DEFAULT_BATCHER_OPTIONS,
      flushIntervalMillis: 1,
      retryInitialMillis: 1,
      retryMaxMillis: 2,
      maxBufferEvents: 77,
    },
    { writer, logger: silentLogger(), metrics },
  );
  return {
    metrics,
    offer: (ds) => expect(batcher.offer(ds)).toBe(true),
    idle: () => batcher.drain(AbortSignal.timeout(2_000)),
  };
}

const terminal = async (metrics: Metrics): Promise<TerminalCounts> => ({
  completed: await counterValue(metrics.tasksTerminal, { status: 'completed' }),
  failed: await counterValue(metrics.tasksTerminal, { status: 'failed' }),
  timed_out: await counterValue(metrics.tasksTerminal, { status: 'timed_out' }),
});

describe('batcher metrics', () => {
  it('tasks made terminal are counted from the committed write only; failed attempts count nothing', async () => {
    const down = new RetryableError('database is down');
    const { metrics, offer, idle } = start(
      scriptedWriter([() => down, () => down, stored({ completed: 2, failed: 1, timed_out: 0 })]),
    );
    offer([1, 2, 3].map(eventDelivery));
    await idle();
    expect(await terminal(metrics)).toEqual({ completed: 2, failed: 1, timed_out: 0 });
    expect(await counterValue(metrics.writeFailures)).toBe(2);
    expect(await counterValue(metrics.flushes, { result: 'retry' })).toBe(2);
    expect(await counterValue(metrics.flushes, { result: 'ok' })).toBe(1);
  });

  it('the committed part of a split batch counts its terminal tasks; the retried rest counts its own', async () => {
    const partial = new PartialWriteError('right half failed', [{ status: 'stored' }, undefined], undefined, {
      completed: 0,
      failed: 1,
      timed_out: 0,
    });
    const { metrics, offer, idle } = start(
      scriptedWriter([() => partial, stored({ completed: 1, failed: 0, timed_out: 0 })]),
    );
    offer([1, 2].map(eventDelivery));
    await idle();
    expect(await terminal(metrics)).toEqual({ completed: 1, failed: 1, timed_out: 0 });
    expect(await counterValue(metrics.writeFailures)).toBe(1);
  });

  it('dead-letter entries stored are counted by their bounded reason; buffer limits are set at start', async () => {
    const { metrics, offer, idle } = start(scriptedWriter([stored()]));
    offer([
      dlqDelivery(1, 'no_agent'),
      dlqDelivery(2, 'no_agent'),
      dlqDelivery(3, 'free text'),
      dlqDelivery(4, null),
    ]);
    await idle();
    expect(await counterValue(metrics.dlqEntries, { reason: 'no_agent' })).toBe(2);
    expect(await counterValue(metrics.dlqEntries, { reason: 'other' })).toBe(1);
    expect(await counterValue(metrics.dlqEntries, { reason: 'none' })).toBe(1);
    expect((await metrics.bufferMaxEvents.get()).values[0]!.value).toBe(77);
    expect((await metrics.bufferMaxBytes.get()).values[0]!.value).toBe(
      DEFAULT_BATCHER_OPTIONS.maxBufferBytes,
    );
  });
});
