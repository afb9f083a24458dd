import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  KEEP_ALIVE_MESSAGE,
  type StreamClientOptions,
  createStreamClient,
  positionMessage,
} from '../../../../src/api/stream/stream-client.js';
import { parseStreamPosition } from '../../../../src/api/stream/position.js';
import type { StreamFilter } from '../../../../src/sinks/postgres/queries.js';
import { silentLogger } from '../../../../src/telemetry/logger.js';
import { createMetrics } from '../../../../src/telemetry/metrics.js';
import { counterValue } from '../../../support/metric-values.js';
import { committed, fakeStore } from './fake-store.js';

/** A response whose socket takes `room` more writes before it is backed up; drain() empties it. */
class FakeSink extends EventEmitter {
  chunks: string[] = [];
  room = Infinity;
  ended = false;
  destroyed = false;
  /** What the socket has not taken yet (a test sets it; undefined: not known). */
  writableLength: number | undefined;
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    this.room--;
    return this.room > 0;
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
  /** The client read everything: `room` more writes fit. */
  drain(room = Infinity): void {
    this.room = room;
    this.emit('drain');
  }
  /** Ids of the event messages written, in order. */
  ids(): string[] {
    return this.chunks.filter((c) => c.includes('event: event')).map((c) => /^id: (\S+)/.exec(c)![1]!);
  }
  /** Every message written, as `<event>:<id>` (`keep-alive` for the comment), in order. */
  log(): string[] {
    return this.chunks.map((c) =>
      c === KEEP_ALIVE_MESSAGE
        ? 'keep-alive'
        : `${/\nevent: (\S+)/.exec(c)![1]!}:${/^id: (\S+)/.exec(c)![1]!}`,
    );
  }
}

const OPTIONS: StreamClientOptions = {
  queueEvents: 5,
  catchUpEvents: 3,
  keepAliveMillis: 1_000,
  lingerMillis: 2_000,
  stallMillis: 3_000,
};
const p = (txid: number, seq: number) => ({ txid: BigInt(txid), seq: BigInt(seq) });
const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

function setup(
  events = [] as ReturnType<typeof committed>[],
  filter: StreamFilter = {},
  options = OPTIONS,
  limit: <T>(read: () => Promise<T>) => Promise<T> = (read) => read(),
) {
  const sink = new FakeSink();
  const store = fakeStore(events);
  const metrics = createMetrics({ defaultMetrics: false });
  const client = createStreamClient(sink, filter, options, {
    store,
    limit,
    logger: silentLogger(),
    metrics,
  });
  return { sink, store, metrics, client };
}

const gauge = async (g: { get(): Promise<{ values: { value: number }[] }> }) =>
  (await g.get()).values[0]?.value ?? 0;

afterEach(() => {
  vi.useRealTimers();
});

describe('stream client', () => {
  it('live - writes the batches it has not seen, once, in order, with the filter applied', () => {
    const { sink, client } = setup([], { errors: true });
    client.start(p(10, 0), undefined);
    client.onBatch({
      events: [committed(10, 1, {}, null, true), committed(10, 2), committed(11, 3, {}, null, true)],
      through: p(11, 3),
    });
    // A batch that repeats a position already seen (an overlap) writes nothing twice.
    client.onBatch({
      events: [committed(11, 3, {}, null, true), committed(12, 4, {}, null, true)],
      through: p(13, 0),
    });
    expect(sink.ids()).toEqual(['10-1', '11-3', '12-4']);
    const message = sink.chunks.find((c) => c.includes('event: event'))!;
    expect(message).toMatch(/^id: 10-1\nevent: event\ndata: \{.*\}\n\n$/);
    expect(JSON.parse(message.split('data: ')[1]!)).toMatchObject({ txid: '10', seq: '1' });
  });

  it('backed up - events wait in the queue, drain writes them in order', async () => {
    const { sink, client, metrics } = setup();
    client.start(p(10, 0), undefined);
    sink.room = 1;
    client.onBatch({ events: [1, 2, 3, 4].map((s) => committed(10, s)), through: p(10, 4) });
    expect(sink.ids()).toEqual(['10-1']);
    expect(await gauge(metrics.streamQueuedEvents)).toBe(3);
    sink.drain(2);
    expect(sink.ids()).toEqual(['10-1', '10-2', '10-3']);
    sink.drain();
    expect(sink.ids()).toEqual(['10-1', '10-2', '10-3', '10-4']);
    expect(await gauge(metrics.streamQueuedEvents)).toBe(0);
    expect(await counterValue(metrics.streamEventsSent)).toBe(4);
  });

  it('slow - one event over the queue bound: overflow with the last written id, end, cut off after the linger', async () => {
    vi.useFakeTimers();
    const { sink, client, metrics } = setup();
    client.start(p(10, 0), undefined);
    sink.room = 2;
    // 2 written, then 5 queued (the bound), then one more.
    client.onBatch({ events: [1, 2, 3, 4, 5, 6, 7].map((s) => committed(10, s)), through: p(10, 7) });
    expect(await gauge(metrics.streamQueuedEvents)).toBe(5);
    expect(sink.ended).toBe(false);
    client.onBatch({ events: [committed(10, 8), committed(10, 9)], through: p(10, 9) });
    expect(sink.ids()).toEqual(['10-1', '10-2']);
    const last = sink.chunks.at(-1)!;
    expect(last).toMatch(/^id: 10-2\nevent: overflow\ndata: /);
    expect(JSON.parse(last.split('data: ')[1]!)).toEqual({
      reason: 'slow_client',
      message: expect.stringContaining('more than 5 events') as unknown,
      last_event_id: '10-2',
    });
    expect(sink.ended).toBe(true);
    expect(await gauge(metrics.streamQueuedEvents)).toBe(0);
    expect(await counterValue(metrics.streamSlowDisconnects)).toBe(1);
    // Nothing more is taken, however much comes.
    client.onBatch({ events: [committed(11, 10)], through: p(11, 10) });
    sink.drain();
    expect(sink.chunks.at(-1)).toBe(last);
    expect(sink.destroyed).toBe(false);
    vi.advanceTimersByTime(2_000);
    expect(sink.destroyed).toBe(true);
    await expect(client.closed).resolves.toBe('slow_client');
  });

  it('slow - the overflow names the last event written, or where the stream started when none was', () => {
    vi.useFakeTimers();
    const one = setup([], {}, { ...OPTIONS, queueEvents: 1 });
    one.client.start(p(10, 0), undefined);
    one.sink.room = 1;
    one.client.onBatch({ events: [committed(10, 1), committed(10, 2), committed(10, 3)], through: p(10, 3) });
    expect(one.sink.chunks.at(-1)).toMatch(/^id: 10-1\nevent: overflow/);

    const none = setup([], {}, { ...OPTIONS, queueEvents: 1 });
    none.client.start(p(10, 0), undefined);
    // The keep-alive is the write that finds the socket backed up.
    none.sink.room = 1;
    vi.advanceTimersByTime(1_000);
    none.client.onBatch({ events: [committed(10, 1), committed(10, 2)], through: p(10, 2) });
    expect(none.sink.ids()).toEqual([]);
    expect(none.sink.chunks.at(-1)).toMatch(/^id: 10-0\nevent: overflow.*"last_event_id":"10-0"/s);
  });

  it('catch-up - from Last-Event-ID through the join position from the store, a page at a time, then the batches held meanwhile', async () => {
    const log = [1, 2, 3, 4, 5, 6, 7].map((s) => committed(10 + s, s));
    const { sink, store, client } = setup(log);
    // Joined at 15-5; the client had seen 12-2.
    client.start(p(15, 5), p(12, 2));
    // Batches arrive while it reads the store: held.
    client.onBatch({ events: [committed(16, 6), committed(17, 7)], through: p(18, 0) });
    sink.room = 1;
    await flush();
    // First page (3 events) written or queued; the next page waits for the socket.
    expect(store.reads).toHaveLength(1);
    expect(store.reads[0]).toMatchObject({ after: p(12, 2), through: p(15, 5), limit: 3 });
    expect(sink.ids()).toEqual(['13-3']);
    sink.drain();
    await flush();
    // The page ended at the join position: no more reads.
    expect(store.reads).toHaveLength(1);
    expect(sink.ids()).toEqual(['13-3', '14-4', '15-5', '16-6', '17-7']);
    // Live now.
    client.onBatch({ events: [committed(17, 7), committed(18, 8)], through: p(18, 8) });
    expect(sink.ids()).toEqual(['13-3', '14-4', '15-5', '16-6', '17-7', '18-8']);
  });

  it('catch-up - more held than the queue takes is not a slow client: those events are read from the store too', async () => {
    const log = Array.from({ length: 20 }, (_, i) => committed(100 + i, i + 1));
    const { sink, store, client, metrics } = setup(log);
    client.start(p(103, 4), p(100, 1));
    // The feed moves on by 12 events while the client reads its first page.
    client.onBatch({ events: log.slice(4, 10), through: p(109, 10) });
    client.onBatch({ events: log.slice(10, 16), through: p(115, 16) });
    client.onBatch({ events: log.slice(16, 18), through: p(117, 18) });
    await flush();
    await flush();
    expect(sink.ended).toBe(false);
    expect(await counterValue(metrics.streamSlowDisconnects)).toBe(0);
    expect(sink.ids()).toEqual(log.slice(1, 18).map((e) => `${e.position.txid}-${e.position.seq}`));
    expect(store.reads.at(-1)).toMatchObject({ through: p(115, 16) });
  });

  it('catch-up - a resume point after the join position (another replica read further) skips what it saw', async () => {
    const { sink, store, client } = setup();
    client.start(p(10, 0), p(12, 3));
    client.onBatch({ events: [committed(12, 3), committed(12, 4)], through: p(12, 4) });
    await flush();
    // One read, of the store's xmax only: 12-3 is not ahead of the store (its next txid is 1000).
    expect(store.reads).toEqual([{ after: p(12, 3), limit: 0 }]);
    expect(sink.log()).toEqual(['event:12-4', 'position:12-4']);
    client.onBatch({ events: [committed(13, 5)], through: p(14, 0) });
    expect(sink.ids()).toEqual(['12-4', '13-5']);
  });

  it('catch-up - a resume point at the join position goes live at once, without a read', () => {
    const { sink, store, client } = setup();
    client.start(p(12, 3), p(12, 3));
    client.onBatch({ events: [committed(12, 3), committed(12, 4)], through: p(12, 4) });
    expect(store.reads).toHaveLength(0);
    expect(sink.ids()).toEqual(['12-4']);
  });

  it('catch-up - a resume point ahead of the store (another cluster, a typo) starts from the join position, whose position message resets the id', async () => {
    const { sink, store, client } = setup();
    store.nextTxid = 1000n;
    client.start(p(990, 0), p(5000, 3));
    client.onBatch({ events: [committed(995, 1), committed(996, 2)], through: p(997, 0) });
    await flush();
    expect(store.reads).toEqual([{ after: p(5000, 3), limit: 0 }]);
    expect(sink.log()).toEqual(['event:995-1', 'event:996-2', 'position:997-0']);
    // Live from there: what comes next is sent, not skipped until the txids pass 5000.
    client.onBatch({ events: [committed(998, 3)], through: p(999, 0) });
    expect(sink.ids()).toEqual(['995-1', '996-2', '998-3']);
    // Just past the xmax is ahead too; the xmax itself (a horizon when nothing ran) is not.
    const next = setup();
    next.store.nextTxid = 1000n;
    next.client.start(p(990, 0), p(1000, 1));
    await flush();
    expect(next.sink.log()).toEqual(['position:990-0']);
    const at = setup();
    at.store.nextTxid = 1000n;
    at.client.start(p(990, 0), p(1000, 0));
    await flush();
    expect(at.sink.log()).toEqual(['position:1000-0']);
  });

  it('catch-up - a client that left while waiting for a catch-up slot is not read for', async () => {
    let release!: () => void;
    const slot = new Promise<void>((resolve) => (release = resolve));
    const gated = async <T>(read: () => Promise<T>): Promise<T> => {
      await slot;
      return read();
    };
    const { sink, store, client } = setup([committed(11, 1)], {}, OPTIONS, gated);
    client.start(p(20, 0), p(0, 0));
    const ahead = setup([], {}, OPTIONS, gated);
    ahead.client.start(p(20, 0), p(30, 0));
    await flush();
    sink.emit('close');
    ahead.sink.emit('close');
    release();
    await flush();
    expect(store.reads).toHaveLength(0);
    expect(ahead.store.reads).toHaveLength(0);
    await expect(client.closed).resolves.toBe('client_closed');
  });

  it('stall - a live client whose socket takes nothing for stallMillis gets the overflow and is cut off, though no event comes', async () => {
    vi.useFakeTimers();
    const { sink, client, metrics } = setup();
    client.start(p(10, 0), undefined);
    sink.room = 2;
    client.onBatch({ events: [committed(10, 1), committed(10, 2)], through: p(10, 2) });
    expect(sink.ids()).toEqual(['10-1', '10-2']);
    // Backed up, the queue far from its bound, no more events: only the stall deadline ends it.
    vi.advanceTimersByTime(2_999);
    expect(sink.ended).toBe(false);
    vi.advanceTimersByTime(1);
    const last = sink.chunks.at(-1)!;
    expect(last).toMatch(/^id: 10-2\nevent: overflow\n/);
    expect(JSON.parse(last.split('data: ')[1]!)).toEqual({
      reason: 'slow_client',
      message: expect.stringContaining('read nothing for 3 s') as unknown,
      last_event_id: '10-2',
    });
    expect(sink.ended).toBe(true);
    expect(await counterValue(metrics.streamSlowDisconnects)).toBe(1);
    vi.advanceTimersByTime(2_000);
    expect(sink.destroyed).toBe(true);
    await expect(client.closed).resolves.toBe('slow_client');
  });

  it('stall - a socket that drains, or takes a little (its writableLength falls), is not stalled', () => {
    vi.useFakeTimers();
    const { sink, client } = setup();
    client.start(p(10, 0), undefined);
    sink.room = 1;
    sink.writableLength = 100;
    client.onBatch({ events: [committed(10, 1)], through: p(10, 1) });
    vi.advanceTimersByTime(2_000);
    sink.drain();
    // Backed up again: a new deadline.
    sink.room = 1;
    client.onBatch({ events: [committed(10, 2)], through: p(10, 2) });
    vi.advanceTimersByTime(2_000);
    sink.writableLength = 50;
    vi.advanceTimersByTime(1_000);
    // It took some: another stallMillis.
    expect(sink.ended).toBe(false);
    vi.advanceTimersByTime(2_999);
    expect(sink.ended).toBe(false);
    vi.advanceTimersByTime(1);
    expect(sink.ended).toBe(true);
    expect(sink.chunks.at(-1)).toMatch(/^id: 10-2\nevent: overflow/);
  });

  it('stall - a client catching up whose socket takes nothing is cut off too, and no more is read for it', async () => {
    vi.useFakeTimers();
    const log = Array.from({ length: 10 }, (_, i) => committed(11 + i, i + 1));
    const { sink, store, client } = setup(log);
    client.start(p(30, 0), p(0, 0));
    sink.room = 1;
    await flush();
    expect(store.reads).toHaveLength(1);
    expect(sink.ids()).toEqual(['11-1']);
    vi.advanceTimersByTime(3_000);
    expect(sink.chunks.at(-1)).toMatch(/^id: 11-1\nevent: overflow/);
    expect(sink.ended).toBe(true);
    await flush();
    expect(store.reads).toHaveLength(1);
    vi.advanceTimersByTime(2_000);
    await expect(client.closed).resolves.toBe('slow_client');
  });

  it('catch-up - filters are applied by the store read', async () => {
    const log = [committed(11, 1, {}, 'a'), committed(12, 2, {}, 'b'), committed(13, 3, {}, 'a')];
    const { sink, store, client } = setup(log, { agent: 'a' });
    client.start(p(20, 0), p(0, 0));
    await flush();
    expect(store.reads[0]!.filter).toEqual({ agent: 'a' });
    expect(sink.ids()).toEqual(['11-1', '13-3']);
  });

  it('catch-up - a failed read ends the stream (the client resumes from what it got)', async () => {
    const { sink, store, client } = setup([committed(11, 1)]);
    store.fail = new Error('connection lost');
    client.start(p(20, 0), p(0, 0));
    await flush();
    expect(sink.ended).toBe(true);
    sink.emit('close');
    await expect(client.closed).resolves.toBe('failed');
  });

  it('keep-alive - a comment after keepAliveMillis without a write, none while backed up', () => {
    vi.useFakeTimers();
    const { sink, client } = setup();
    client.start(p(10, 0), undefined);
    expect(sink.log()).toEqual(['position:10-0']);
    vi.advanceTimersByTime(999);
    expect(sink.chunks).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sink.chunks.at(-1)).toBe(KEEP_ALIVE_MESSAGE);
    vi.advanceTimersByTime(500);
    client.onBatch({ events: [committed(10, 1)], through: p(10, 1) });
    vi.advanceTimersByTime(999);
    expect(sink.chunks).toHaveLength(3);
    sink.room = 0;
    vi.advanceTimersByTime(1);
    // The last id sent is where the client is: a comment.
    expect(sink.log()).toEqual(['position:10-0', 'keep-alive', 'event:10-1', 'keep-alive']);
    // No keep-alive while backed up (until the stall deadline, 3 s: see the stall tests).
    vi.advanceTimersByTime(2_900);
    expect(sink.chunks).toHaveLength(4);
  });

  it('position - a stream without a resume point gets one as it goes live: the join position, as id and data', async () => {
    const { sink, client, metrics } = setup([], { errors: true });
    client.start(p(10, 0), undefined);
    expect(sink.chunks).toEqual(['id: 10-0\nevent: position\ndata: {"last_event_id":"10-0"}\n\n']);
    expect(positionMessage('10-0')).toBe(sink.chunks[0]);
    // Not an event: not counted as one.
    expect(await counterValue(metrics.streamEventsSent)).toBe(0);
  });

  it('position - on keep-alive, where the client is when that moved past the last id sent (over events its filter skips), else the comment', () => {
    vi.useFakeTimers();
    const { sink, client } = setup([], { errors: true });
    client.start(p(10, 0), undefined);
    // Events the filter skips, and a read through the horizon 12-0.
    client.onBatch({ events: [committed(10, 1), committed(11, 2)], through: p(12, 0) });
    vi.advanceTimersByTime(1_000);
    expect(sink.log()).toEqual(['position:10-0', 'position:12-0']);
    expect(sink.chunks.at(-1)).toBe(positionMessage('12-0'));
    // Nothing moved: the comment.
    vi.advanceTimersByTime(1_000);
    expect(sink.log().at(-1)).toBe('keep-alive');
    // An event it takes, the last the feed read: that id is where it is.
    client.onBatch({ events: [committed(12, 3), committed(12, 4, {}, null, true)], through: p(12, 4) });
    vi.advanceTimersByTime(1_000);
    // A read that found nothing but moved the horizon.
    client.onBatch({ events: [], through: p(14, 0) });
    vi.advanceTimersByTime(1_000);
    expect(sink.log()).toEqual([
      'position:10-0',
      'position:12-0',
      'keep-alive',
      'event:12-4',
      'keep-alive',
      'position:14-0',
    ]);
  });

  it('position - after catching up, once the held batches are written: where the client is, past what its filter skipped', async () => {
    const log = [
      committed(11, 1),
      committed(12, 2, {}, null, true),
      committed(13, 3),
      committed(14, 4),
      committed(15, 5, {}, null, true),
      committed(16, 6),
    ];
    const { sink, client } = setup(log, { errors: true });
    client.start(p(14, 4), p(11, 1));
    client.onBatch({ events: log.slice(4), through: p(17, 0) });
    await flush();
    expect(sink.log()).toEqual(['event:12-2', 'event:15-5', 'position:17-0']);
  });

  it('position - queued behind the events waiting for the socket; not counted against the queue bound, nor as an event sent', async () => {
    const log = Array.from({ length: 10 }, (_, i) => committed(11 + i, i + 1));
    const { sink, client, metrics } = setup(log);
    client.start(p(15, 5), p(14, 4));
    // Held while it reads the store: 5 events, the feed through the horizon 21-0.
    client.onBatch({ events: log.slice(5), through: p(21, 0) });
    // The store's 15-5 and the first held event fit; the socket is backed up after that.
    sink.room = 2;
    await flush();
    expect(sink.log()).toEqual(['event:15-5', 'event:16-6']);
    expect(await gauge(metrics.streamQueuedEvents)).toBe(4);
    // 4 events and the position wait; a fifth event still fits the bound of 5.
    client.onBatch({ events: [committed(21, 11)], through: p(21, 11) });
    expect(sink.ended).toBe(false);
    expect(await gauge(metrics.streamQueuedEvents)).toBe(5);
    sink.drain();
    expect(sink.log()).toEqual([
      'event:15-5',
      'event:16-6',
      'event:17-7',
      'event:18-8',
      'event:19-9',
      'event:20-10',
      'position:21-0',
      'event:21-11',
    ]);
    expect(await gauge(metrics.streamQueuedEvents)).toBe(0);
    expect(await counterValue(metrics.streamEventsSent)).toBe(7);
  });

  it('position - resuming from a position gives exactly the events after it: nothing the client saw or skipped again, nothing missed', async () => {
    vi.useFakeTimers();
    const error = (txid: number, seq: number) => committed(txid, seq, {}, null, true);
    const log = [committed(11, 1), error(11, 2), committed(12, 3), committed(13, 4)];
    const first = setup(log, { errors: true });
    first.client.start(p(10, 0), undefined);
    first.client.onBatch({ events: log, through: p(14, 0) });
    vi.advanceTimersByTime(1_000);
    const resumeAt = /^id: (\S+)/.exec(first.sink.chunks.at(-1)!)![1]!;
    expect(first.sink.log()).toEqual(['position:10-0', 'event:11-2', 'position:14-0']);
    first.sink.emit('close');
    // Committed while it was away: an error event among others.
    const later = [committed(14, 5), error(14, 6), committed(15, 7)];
    const again = setup([...log, ...later], { errors: true });
    expect(resumeAt).toBe('14-0');
    again.client.start(p(16, 0), parseStreamPosition(resumeAt));
    vi.useRealTimers();
    await flush();
    expect(again.store.reads[0]).toMatchObject({ after: p(14, 0), through: p(16, 0) });
    expect(again.sink.log()).toEqual(['event:14-6', 'position:16-0']);
  });

  it('close - the client going away releases everything; shutdown ends after what was written', async () => {
    const a = setup();
    a.client.start(p(10, 0), undefined);
    a.sink.room = 0;
    a.client.onBatch({ events: [committed(10, 1), committed(10, 2)], through: p(10, 2) });
    expect(await gauge(a.metrics.streamQueuedEvents)).toBe(1);
    a.sink.emit('close');
    await expect(a.client.closed).resolves.toBe('client_closed');
    expect(await gauge(a.metrics.streamQueuedEvents)).toBe(0);

    const b = setup();
    b.client.start(p(10, 0), undefined);
    b.client.close('shutdown');
    expect(b.sink.ended).toBe(true);
    b.sink.emit('close');
    await expect(b.client.closed).resolves.toBe('shutdown');
  });
});
