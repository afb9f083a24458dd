import { sleep } from '../../pipeline/timing.js';
import type { CommittedEvent, QueryStore, StreamPosition } from '../../sinks/postgres/queries.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import { comparePositions, laterPosition } from './position.js';

/** What the feed hands every subscriber after each read of the store. */
export interface FeedBatch {
  /** Events in stream order, all after the previous batch's `through`. */
  readonly events: readonly CommittedEvent[];
  /** Every event up to here has now been handed out: the last event's position, or the horizon. */
  readonly through: StreamPosition;
}

/** A stream client as the feed sees it. */
export interface FeedSubscriber {
  /** Called synchronously for each batch read while subscribed; must not throw. */
  onBatch(batch: FeedBatch): void;
}

/** The one poller of the store per process, shared by every stream client. */
export interface EventFeed {
  /**
   * Adds a subscriber and resolves with the feed's position once it has one (the first subscriber
   * of an idle feed waits for one read of the store): every event after that position is handed to
   * the subscriber, in batches. Rejects, with the subscriber removed, when that first read fails or
   * the feed is stopped.
   */
  subscribe(subscriber: FeedSubscriber): Promise<StreamPosition>;
  /** Removes a subscriber; the feed stops polling when none is left. */
  unsubscribe(subscriber: FeedSubscriber): void;
  /** Stops polling for good and rejects the subscriptions still waiting. Idempotent. */
  stop(): Promise<void>;
}

export interface EventFeedOptions {
  /** Pause between reads that found the feed caught up. */
  pollMillis: number;
  /** Events per read; a full read is followed at once by the next. */
  readEvents: number;
  /** Pause after a failed read. */
  retryMillis: number;
}

export interface EventFeedDeps {
  store: Pick<QueryStore, 'readCommitted'>;
  logger: Logger;
  metrics: Metrics;
}

/** Thrown to the subscriptions still waiting when the feed stops. */
export class FeedStoppedError extends Error {
  override readonly name = 'FeedStoppedError';
}

/*
 * States and transitions:
 *   idle     --subscribe()------------------> running  (the loop starts; its first read only sets the position)
 *   running  --the last subscriber leaves----> idle     (the loop ends after its pause; the position is dropped,
 *                                                       so the next first subscriber starts from a fresh "now")
 *   idle | running --stop()-----------------> stopped  (the loop ends at once; waiting subscriptions reject)
 * A failed read is logged and retried after retryMillis; subscribers keep their place (nothing is skipped).
 */
export function createEventFeed(options: EventFeedOptions, deps: EventFeedDeps): EventFeed {
  const { store, logger, metrics } = deps;
  const subscribers = new Set<FeedSubscriber>();
  // Subscriptions waiting for the first position, with how to settle them.
  const waiting = new Map<
    FeedSubscriber,
    { resolve: (p: StreamPosition) => void; reject: (err: unknown) => void }
  >();
  const stopping = new AbortController();
  let position: StreamPosition | undefined;
  let loop: Promise<void> | undefined;
  // The horizon last seen and since when (Date.now()), for chronicle_stream_horizon_age_seconds.
  let horizonSince: { txid: bigint; atMillis: number } | undefined;

  function observeHorizon(horizon: StreamPosition, nextTxid: bigint): void {
    const now = Date.now();
    if (horizonSince?.txid !== horizon.txid) horizonSince = { txid: horizon.txid, atMillis: now };
    // xmin = xmax: no transaction was running, so nothing holds the stream back.
    const held = horizon.txid < nextTxid ? (now - horizonSince.atMillis) / 1000 : 0;
    metrics.streamHorizonAgeSeconds.set(held);
  }

  async function readOnce(): Promise<boolean> {
    if (position === undefined) {
      // The first read of a run: only the horizon ("now"); every event after it is handed out.
      const page = await store.readCommitted({ after: { txid: 0n, seq: 0n }, limit: 0 });
      observeHorizon(page.horizon, page.nextTxid);
      position = page.horizon;
      for (const [subscriber, { resolve }] of waiting) {
        waiting.delete(subscriber);
        resolve(position);
      }
      return false;
    }
    const page = await store.readCommitted({ after: position, limit: options.readEvents });
    observeHorizon(page.horizon, page.nextTxid);
    const last = page.events.at(-1)?.position;
    const full = page.events.length >= options.readEvents;
    // A full read stops at its last event; a short one read everything up to the horizon.
    const through = full ? last! : laterPosition(last ?? position, page.horizon);
    if (comparePositions(through, position) <= 0 && page.events.length === 0) return false;
    position = through;
    const batch: FeedBatch = { events: page.events, through };
    for (const subscriber of subscribers) {
      if (waiting.has(subscriber)) continue;
      try {
        subscriber.onBatch(batch);
      } catch (err) {
        logger.error({ err }, 'stream subscriber failed on a batch');
      }
    }
    return full;
  }

  async function run(): Promise<void> {
    while (!stopping.signal.aborted && subscribers.size > 0) {
      let again: boolean;
      try {
        again = await readOnce();
      } catch (err) {
        logger.warn({ err }, 'stream: reading the store failed; retrying');
        if (position === undefined) {
          // Nobody has a place yet: the waiting requests fail (503) rather than hang.
          for (const [subscriber, { reject }] of waiting) {
            waiting.delete(subscriber);
            subscribers.delete(subscriber);
            reject(err);
          }
        }
        await sleep(options.retryMillis, stopping.signal);
        continue;
      }
      if (!again) await sleep(options.pollMillis, stopping.signal);
    }
    // Idle (or stopped): the next run starts from a fresh position.
    loop = undefined;
    position = undefined;
    horizonSince = undefined;
    metrics.streamHorizonAgeSeconds.set(0);
  }

  return {
    subscribe(subscriber) {
      if (stopping.signal.aborted) return Promise.reject(new FeedStoppedError('the stream is stopping'));
      subscribers.add(subscriber);
      loop ??= run();
      if (position !== undefined) return Promise.resolve(position);
      return new Promise<StreamPosition>((resolve, reject) => waiting.set(subscriber, { resolve, reject }));
    },
    unsubscribe(subscriber) {
      subscribers.delete(subscriber);
      const wait = waiting.get(subscriber);
      if (wait !== undefined) {
        waiting.delete(subscriber);
        wait.reject(new FeedStoppedError('unsubscribed'));
      }
    },
    async stop() {
      stopping.abort();
      for (const [subscriber, { reject }] of waiting) {
        waiting.delete(subscriber);
        reject(new FeedStoppedError('the stream is stopping'));
      }
      subscribers.clear();
      await loop;
    },
  };
}
