import { describe, expect, it } from 'vitest';
import { type FeedBatch, FeedStoppedError, createEventFeed } from '../../../../src/api/stream/event-feed.js';
import { silentLogger } from '../../../../src/telemetry/logger.js';
import { createMetrics } from '../../../../src/telemetry/metrics.js';
import { committed, fakeStore } from './fake-store.js';

const p = (txid: number, seq: number) => ({ txid: BigInt(txid), seq: BigInt(seq) });

function setup(options = { pollMillis: 10, readEvents: 3, retryMillis: 10 }) {
  const store = fakeStore();
  const metrics = createMetrics({ defaultMetrics: false });
  const feed = createEventFeed(options, { store, logger: silentLogger(), metrics });
  const subscriber = () => {
    const batches: FeedBatch[] = [];
    return { batches, onBatch: (b: FeedBatch) => void batches.push(b) };
  };
  return { store, metrics, feed, subscriber };
}

const until = async (condition: () => boolean, millis = 2_000) => {
  const deadline = Date.now() + millis;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('event feed', () => {
  it('the first subscriber of an idle feed starts at the horizon ("now"); events after it reach every subscriber', async () => {
    const { store, feed, subscriber } = setup();
    store.events.push(committed(900, 1));
    store.horizon = p(1000, 0);
    const a = subscriber();
    await expect(feed.subscribe(a)).resolves.toEqual(p(1000, 0));
    // The first read only set the position: nothing before the horizon is handed out.
    expect(store.reads[0]).toMatchObject({ limit: 0 });
    const b = subscriber();
    await expect(feed.subscribe(b)).resolves.toEqual(p(1000, 0));
    store.events.push(committed(1000, 2), committed(1001, 3));
    store.horizon = p(1002, 0);
    await until(() => a.batches.length > 0 && b.batches.length > 0);
    expect(a.batches[0]!.events.map((e) => e.position)).toEqual([p(1000, 2), p(1001, 3)]);
    // A short read covered everything up to the horizon.
    expect(a.batches[0]!.through).toEqual(p(1002, 0));
    expect(b.batches).toEqual(a.batches);
    await feed.stop();
  });

  it('an event behind the horizon waits for it (a transaction still open below it)', async () => {
    const { store, feed, subscriber } = setup();
    store.horizon = p(1000, 0);
    const a = subscriber();
    await feed.subscribe(a);
    // 1001 committed, 1000 still open: the horizon stays at 1000.
    store.events.push(committed(1001, 2));
    await new Promise((r) => setTimeout(r, 50));
    expect(a.batches.flatMap((b) => b.events)).toEqual([]);
    store.events.push(committed(1000, 1));
    store.horizon = p(1002, 0);
    await until(() => a.batches.some((b) => b.events.length > 0));
    expect(a.batches.flatMap((b) => b.events).map((e) => e.position)).toEqual([p(1000, 1), p(1001, 2)]);
    await feed.stop();
  });

  it('a full read is followed at once by the next and ends at its last event; a short one at the horizon', async () => {
    const { store, feed, subscriber } = setup({ pollMillis: 20, readEvents: 3, retryMillis: 10 });
    store.horizon = p(1000, 0);
    const a = subscriber();
    await feed.subscribe(a);
    store.events.push(...[1, 2, 3, 4, 5, 6, 7].map((s) => committed(1000 + s, s)));
    store.horizon = p(2000, 0);
    await until(() => a.batches.length >= 3);
    expect(a.batches.map((batch) => batch.events.length)).toEqual([3, 3, 1]);
    expect(a.batches.map((batch) => batch.through)).toEqual([p(1003, 3), p(1006, 6), p(2000, 0)]);
    const reads = store.reads.slice(1, 4).map((r) => r.after);
    expect(reads).toEqual([p(1000, 0), p(1003, 3), p(1006, 6)]);
    await feed.stop();
  });

  it('without subscribers the feed stops reading and forgets its position', async () => {
    const { store, feed, subscriber } = setup();
    store.horizon = p(1000, 0);
    const a = subscriber();
    await feed.subscribe(a);
    feed.unsubscribe(a);
    await new Promise((r) => setTimeout(r, 50));
    const reads = store.reads.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(store.reads.length).toBe(reads);
    store.horizon = p(1500, 0);
    await expect(feed.subscribe(subscriber())).resolves.toEqual(p(1500, 0));
    await feed.stop();
  });

  it('a failed first read fails the waiting subscriptions; later failures are retried and skip nothing', async () => {
    const { store, feed, subscriber } = setup();
    store.fail = new Error('database down');
    await expect(feed.subscribe(subscriber())).rejects.toThrow('database down');
    store.fail = undefined;
    store.horizon = p(1000, 0);
    const a = subscriber();
    await feed.subscribe(a);
    store.fail = new Error('blip');
    store.events.push(committed(1000, 1));
    store.horizon = p(1001, 0);
    await new Promise((r) => setTimeout(r, 40));
    store.fail = undefined;
    await until(() => a.batches.length > 0);
    expect(a.batches[0]!.events.map((e) => e.position)).toEqual([p(1000, 1)]);
    await feed.stop();
  });

  it('stop - waiting and later subscriptions are refused', async () => {
    const { store, feed, subscriber } = setup();
    store.fail = new Error('database down');
    const waiting = feed.subscribe(subscriber());
    await feed.stop();
    await expect(waiting).rejects.toThrow();
    await expect(feed.subscribe(subscriber())).rejects.toBeInstanceOf(FeedStoppedError);
  });

  it('the horizon age grows while the horizon stands still behind a running transaction, 0 when none runs', async () => {
    const { store, feed, subscriber, metrics } = setup();
    store.horizon = p(1000, 0);
    store.nextTxid = 1005n;
    await feed.subscribe(subscriber());
    await new Promise((r) => setTimeout(r, 120));
    expect((await metrics.streamHorizonAgeSeconds.get()).values[0]!.value).toBeGreaterThan(0.05);
    store.horizon = p(1005, 0);
    await new Promise((r) => setTimeout(r, 40));
    expect((await metrics.streamHorizonAgeSeconds.get()).values[0]!.value).toBe(0);
    await feed.stop();
  });
});
