import { describe, expect, it } from 'vitest';
import { type BatcherOptions, DEFAULT_BATCHER_OPTIONS, createBatcher } from '../../../src/batch/batcher.js';
import type { Delivery, Sink as EventWriter, WriteOutcome } from '../../../src/pipeline/contracts.js';
import { PartialWriteError, RetryableError } from '../../../src/pipeline/errors.js';
import { NO_TERMINAL, type RecordResult, type WriteRecord } from '../../../src/pipeline/records.js';
import { silentLogger } from '../../../src/telemetry/logger.js';
import { createMetrics } from '../../../src/telemetry/metrics.js';

type Settled = { outcome: WriteOutcome } | { rejected: string } | { returned: true };

interface TestDelivery extends Delivery<WriteRecord> {
  settled: Settled[];
}

function delivery(id: number, sizeBytes = 100): TestDelivery {
  const settled: Settled[] = [];
  return {
    value: {
      kind: 'event',
      input: { origin: 'http', subject: null, key: null },
      event: {
        event_id: `00000000-0000-4000-8000-${String(id).padStart(12, '0')}`,
        trace_id: `t-${id}`,
        source: 'test',
        event_type: 'task.created',
        timestamp: new Date(0).toISOString(),
        metadata: {},
      },
    },
    sizeBytes,
    settled,
    ack: (outcome) => settled.push({ outcome }),
    retry: () => settled.push({ returned: true }),
    reject: (reason) => settled.push({ rejected: reason }),
  };
}

/** A writer that records each call and answers with `respond` (stored for all, by default). */
function fakeWriter(respond?: (records: readonly WriteRecord[], call: number) => Promise<RecordResult[]>) {
  const calls: number[] = [];
  const writer: EventWriter = {
    async write(records) {
      calls.push(records.length);
      const results = respond
        ? await respond(records, calls.length)
        : records.map(() => ({ status: 'stored' as const }));
      return { results, terminalTasks: NO_TERMINAL };
    },
  };
  return { writer, calls };
}

function batcher(writer: EventWriter, options: Partial<BatcherOptions> = {}, onWriteFailure?: () => void) {
  return createBatcher(
    { ...DEFAULT_BATCHER_OPTIONS, retryInitialMillis: 1, retryMaxMillis: 5, ...options },
    { writer, logger: silentLogger(), metrics: createMetrics({ defaultMetrics: false }), onWriteFailure },
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('batcher', () => {
  it('flushes as soon as the threshold is reached, without waiting for the interval', async () => {
    const { writer, calls } = fakeWriter();
    const b = batcher(writer, { flushThresholdEvents: 3, flushIntervalMillis: 60_000 });
    const ds = [1, 2, 3].map((i) => delivery(i));
    expect(b.offer(ds)).toBe(true);
    await sleep(10);
    expect(calls).toEqual([3]);
    expect(ds.every((d) => d.settled.length === 1 && 'outcome' in d.settled[0]!)).toBe(true);
  });

  it('flushes what waits once the interval has passed', async () => {
    const { writer, calls } = fakeWriter();
    const b = batcher(writer, { flushThresholdEvents: 100, flushIntervalMillis: 30 });
    b.offer([delivery(1)]);
    await sleep(10);
    expect(calls).toEqual([]);
    await sleep(50);
    expect(calls).toEqual([1]);
  });

  it('flushes an urgent (HTTP) input after the linger, not the interval', async () => {
    const { writer, calls } = fakeWriter();
    const b = batcher(writer, { flushThresholdEvents: 100, flushIntervalMillis: 60_000, lingerMillis: 5 });
    b.offer([delivery(1)], { urgent: true });
    await sleep(40);
    expect(calls).toEqual([1]);
  });

  it('refuses input beyond the event bound, all or nothing, and makes room when a flush commits', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { writer } = fakeWriter(async (records) => {
      await gate;
      return records.map(() => ({ status: 'stored' as const }));
    });
    const b = batcher(writer, { maxBufferEvents: 3, flushThresholdEvents: 3, flushIntervalMillis: 1 });
    expect(b.offer([1, 2, 3].map((i) => delivery(i)))).toBe(true);
    expect(b.offer([delivery(4)])).toBe(false);
    expect(b.hasRoom(1)).toBe(false);
    const room = b.waitForRoom(1);
    release();
    await room;
    expect(b.offer([delivery(4)])).toBe(true);
  });

  it('applies the byte bound the same way in offer and hasRoom (no busy loop)', () => {
    const { writer } = fakeWriter(() => new Promise(() => undefined));
    const b = batcher(writer, {
      maxBufferBytes: 1000,
      flushThresholdEvents: 100,
      flushIntervalMillis: 60_000,
    });
    expect(b.offer([delivery(1, 900)])).toBe(true);
    expect(b.hasRoom(1, 200)).toBe(false);
    expect(b.offer([delivery(2, 200)])).toBe(false);
    expect(b.hasRoom(1, 50)).toBe(true);
  });

  it('keeps a failed batch and retries it until it commits, alerting after 3 consecutive failures', async () => {
    let alerts = 0;
    const { writer, calls } = fakeWriter((records, call) =>
      call <= 4
        ? Promise.reject(new RetryableError('down'))
        : Promise.resolve(records.map(() => ({ status: 'stored' as const }))),
    );
    const b = batcher(writer, { flushThresholdEvents: 2 }, () => alerts++);
    const ds = [delivery(1), delivery(2)];
    b.offer(ds);
    await sleep(100);
    expect(calls).toEqual([2, 2, 2, 2, 2]);
    expect(alerts).toBe(1);
    expect(ds.map((d) => d.settled)).toEqual([[{ outcome: 'stored' }], [{ outcome: 'stored' }]]);
    expect(b.state().failing).toBe(false);
  });

  it('settles the committed part of a split batch at once and retries only the rest', async () => {
    const partial = new PartialWriteError('right half failed', [
      { status: 'stored' },
      { status: 'duplicate' },
      undefined,
    ]);
    const { writer, calls } = fakeWriter((records, call) =>
      call === 1
        ? Promise.reject(partial)
        : Promise.resolve(records.map(() => ({ status: 'stored' as const }))),
    );
    const b = batcher(writer, { flushThresholdEvents: 3 });
    const ds = [1, 2, 3].map((i) => delivery(i));
    b.offer(ds);
    await sleep(50);
    expect(calls).toEqual([3, 1]);
    expect(ds.map((d) => d.settled)).toEqual([
      [{ outcome: 'stored' }],
      [{ outcome: 'duplicate' }],
      [{ outcome: 'stored' }],
    ]);
  });

  it('drain writes everything held, then refuses new input', async () => {
    const { writer, calls } = fakeWriter();
    const b = batcher(writer, { flushThresholdEvents: 100, flushIntervalMillis: 60_000 });
    const ds = [1, 2].map((i) => delivery(i));
    b.offer(ds);
    await b.drain(AbortSignal.timeout(1_000));
    expect(calls).toEqual([2]);
    expect(ds.every((d) => d.settled.length === 1)).toBe(true);
    expect(b.accepting()).toBe(false);
    expect(b.offer([delivery(3)])).toBe(false);
  });

  it('at the drain deadline, hands back what is waiting or still being written', async () => {
    const { writer } = fakeWriter(() => new Promise(() => undefined));
    const b = batcher(writer, {
      flushThresholdEvents: 1,
      maxConcurrentFlushes: 1,
      flushIntervalMillis: 60_000,
    });
    const ds = [1, 2].map((i) => delivery(i));
    b.offer(ds);
    await b.drain(AbortSignal.timeout(30));
    expect(ds.map((d) => d.settled)).toEqual([[{ returned: true }], [{ returned: true }]]);
  });
});
