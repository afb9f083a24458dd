import type {
  CommittedEvent,
  QueryStore,
  StreamFilter,
  StreamPosition,
} from '../../sinks/postgres/queries.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { FeedBatch, FeedSubscriber } from './event-feed.js';
import { type EventPredicate, compileEventFilter } from './event-filter.js';
import { comparePositions, formatStreamPosition, laterPosition } from './position.js';

/** The part of an HTTP response a stream client writes to (express's Response is one). */
export interface StreamSink {
  /** Like stream.Writable#write: false when the socket is backed up (the chunk is still taken). */
  write(chunk: string): boolean;
  /** Ends the response after what was written (FIN once the socket has sent it). */
  end(): void;
  /** Closes the socket at once, dropping what was not sent. */
  destroy(): void;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
  /** Bytes written and not yet taken by the socket (stream.Writable#writableLength); its fall is progress. */
  readonly writableLength?: number;
}

export interface StreamClientOptions {
  /** Events a client may have waiting while its socket is backed up; one more and it is disconnected. */
  queueEvents: number;
  /** Events per read of the store while catching up. */
  catchUpEvents: number;
  /** A keep-alive after this long without a write: a position message if the cursor moved, else a comment. */
  keepAliveMillis: number;
  /** After an overflow or a shutdown, how long the client may take to read what was written before its socket is closed. */
  lingerMillis: number;
  /**
   * A socket backed up this long without taking anything (no 'drain', its writableLength not lower) is
   * a stalled client: it is disconnected as a slow one, live or catching up.
   */
  stallMillis: number;
}

export interface StreamClientDeps {
  /** Reads of the store while catching up, each through `limit` (which bounds how many run at once). */
  store: Pick<QueryStore, 'readCommitted'>;
  limit: <T>(read: () => Promise<T>) => Promise<T>;
  logger: Logger;
  metrics: Metrics;
}

/** Why a stream ended. */
export type StreamEnd = 'client_closed' | 'slow_client' | 'shutdown' | 'failed';

/** One connected stream: a feed subscriber that writes server-sent events to one response. */
export interface StreamClient extends FeedSubscriber {
  /**
   * Starts writing: from `resumeFrom` (the client's Last-Event-ID) through `joinedAt` (the feed's
   * position when this client subscribed) from the store, then the feed's batches held meanwhile, then
   * a position message, then live. Without `resumeFrom`, live from `joinedAt` (the position message
   * first). The headers must already be sent.
   */
  start(joinedAt: StreamPosition, resumeFrom: StreamPosition | undefined): void;
  /** Ends the stream (idempotent); `shutdown` ends it after what was written, lingering at most lingerMillis. */
  close(why: StreamEnd): void;
  /** Resolves once the stream has ended and its socket is released. */
  readonly closed: Promise<StreamEnd>;
}

// The feed hands the same event objects to every client: each message is serialized once.
const messages = new WeakMap<CommittedEvent, string>();

/** One SSE message of an event: its position as the id, the event row as JSON (as /api/v1/events lists it). */
export function eventMessage(e: CommittedEvent): string {
  let message = messages.get(e);
  if (message === undefined) {
    message = `id: ${formatStreamPosition(e.position)}\nevent: event\ndata: ${JSON.stringify(e.event)}\n\n`;
    messages.set(e, message);
  }
  return message;
}

/**
 * The last message of a client too slow to keep up (more than `queueEvents` waited for it, or it took
 * nothing for `stalledMillis`): resume from `lastEventId` to miss nothing.
 */
export function overflowMessage(
  lastEventId: string,
  why: { queueEvents: number } | { stalledMillis: number },
): string {
  const cause =
    'queueEvents' in why
      ? `more than ${why.queueEvents} events waited for this client`
      : `this client read nothing for ${why.stalledMillis / 1000} s`;
  const data = {
    reason: 'slow_client',
    message: `${cause}; reconnect with Last-Event-ID to resume`,
    last_event_id: lastEventId,
  };
  return `id: ${lastEventId}\nevent: overflow\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Where the client is: every event up to `lastEventId` was sent to it or did not pass its filter, so
 * resuming from it gives exactly the events it has not considered. Its `id` makes it EventSource's
 * Last-Event-ID too; `data` repeats it, since EventSource does not show page code the id of a message
 * it has no listener for.
 */
export function positionMessage(lastEventId: string): string {
  return `id: ${lastEventId}\nevent: position\ndata: ${JSON.stringify({ last_event_id: lastEventId })}\n\n`;
}

export const KEEP_ALIVE_MESSAGE = ': keep-alive\n\n';

/*
 * States and transitions:
 *   created     --start()----------------------------> catching_up (reads the store, holds feed batches)
 *   catching_up --more than queueEvents held-----------> catching_up (drops them, reads the store further)
 *   catching_up --read through the join position-----> live        (the held batches, then a position)
 *   live        --queue over queueEvents-------------> closed      (overflow message, end, linger, destroy)
 *   catching_up | live --backed up stallMillis without progress--> closed (the same overflow)
 *   any         --close(): client gone, shutdown, a failed catch-up read--> closed
 * Catching up writes a page of the store at a time and reads the next once the socket took it, so a
 * slow reader of history is not cut off for being slow: it goes at its own pace, holding at most a page
 * (only a socket that takes nothing for stallMillis is, as a live one is).
 * `cursor` is where this client's view is complete: every event up to it that passes the filter was
 * written or queued (it moves over the events that do not pass, and to each batch's `through`).
 * `lastWritten` is the position of the last message with an `id:` handed to the socket, an event or a
 * position message (the overflow's last_event_id: everything up to it was written, nothing after it was).
 * A position message carries `cursor`: at go-live, and in place of the keep-alive comment when `cursor`
 * is past `lastWritten` (a client whose filter passes little still gets a recent resume point).
 */
export function createStreamClient(
  sink: StreamSink,
  filter: StreamFilter,
  options: StreamClientOptions,
  deps: StreamClientDeps,
): StreamClient {
  const { store, limit, logger, metrics } = deps;
  const matches: EventPredicate = compileEventFilter(filter);
  let state: 'created' | 'catching_up' | 'live' | 'closed' = 'created';
  let cursor: StreamPosition | undefined;
  let lastWritten: StreamPosition | undefined;
  // Messages waiting for the socket to drain, with their positions; `queuedEvents` of them are events
  // (the bound counts those; the others are at most one position message, queued at go-live).
  const queue: { chunk: string; position: StreamPosition; event: boolean }[] = [];
  let queuedEvents = 0;
  // The socket took a write over its buffer: wait for 'drain' (listened to once at a time).
  let backedUp = false;
  let drainListened = false;
  // What the feed handed out while catching up: the events that pass the filter (all after the join
  // position, or after storeThrough), and how far the feed had read.
  let held: CommittedEvent[] = [];
  let heldThrough: StreamPosition | undefined;
  // Set when more than queueEvents were held: they were dropped, and catching up reads the store on
  // through this position (the feed's then) instead.
  let storeThrough: StreamPosition | undefined;
  let keepAlive: NodeJS.Timeout | undefined;
  // Armed while backed up: a socket that takes nothing for stallMillis is a stalled client.
  let stall: NodeJS.Timeout | undefined;
  let stallLength: number | undefined;
  let lingering: NodeJS.Timeout | undefined;
  let settleClosed!: (why: StreamEnd) => void;
  const closed = new Promise<StreamEnd>((resolve) => (settleClosed = resolve));
  let endedAs: StreamEnd | undefined;
  let wakeCatchUp: (() => void) | undefined;

  const onDrain = (): void => {
    drainListened = false;
    backedUp = false;
    clearTimeout(stall);
    stall = undefined;
    while (queue.length > 0 && !backedUp) {
      const { chunk, position, event } = queue.shift()!;
      if (event) {
        queuedEvents--;
        metrics.streamQueuedEvents.dec();
      }
      writeNow(chunk, position, event);
    }
    if (!backedUp) wakeCatchUp?.();
  };

  const onSocketClose = (): void => finish(endedAs ?? 'client_closed');

  sink.once('close', onSocketClose);

  /** Writes a message; `position` for one with an `id:`, `event` when it is an event. */
  function writeNow(chunk: string, position: StreamPosition | undefined, event: boolean): void {
    if (!sink.write(chunk)) {
      backedUp = true;
      if (!drainListened) {
        drainListened = true;
        sink.once('drain', onDrain);
      }
      if (stall === undefined) armStall();
    }
    if (position !== undefined) lastWritten = position;
    if (event) metrics.streamEventsSent.inc();
    keepAlive?.refresh();
  }

  function send(e: CommittedEvent): void {
    if (state === 'closed') return;
    if (!backedUp && queue.length === 0) {
      writeNow(eventMessage(e), e.position, true);
      return;
    }
    if (queuedEvents >= options.queueEvents) {
      overflow();
      return;
    }
    queue.push({ chunk: eventMessage(e), position: e.position, event: true });
    queuedEvents++;
    metrics.streamQueuedEvents.inc();
  }

  /** Writes (or queues, after what waits) a position message with the client's cursor. */
  function sendPosition(): void {
    if (state === 'closed') return;
    const position = cursor!;
    const chunk = positionMessage(formatStreamPosition(position));
    if (!backedUp && queue.length === 0) writeNow(chunk, position, false);
    else queue.push({ chunk, position, event: false });
  }

  /** After keepAliveMillis without a write: where the client is when that moved, else a comment. */
  function keepAliveTick(): void {
    if (state === 'closed' || backedUp || queue.length > 0) return;
    if (comparePositions(cursor!, lastWritten!) > 0) sendPosition();
    else writeNow(KEEP_ALIVE_MESSAGE, undefined, false);
  }

  /**
   * Disconnects the client as a slow one when the socket has taken nothing for stallMillis; one that
   * takes a little (its writableLength fell) is given another stallMillis.
   */
  function armStall(): void {
    stallLength = sink.writableLength;
    stall = setTimeout(() => {
      stall = undefined;
      if (state === 'closed' || !backedUp) return;
      const length = sink.writableLength;
      if (length !== undefined && stallLength !== undefined && length < stallLength) {
        armStall();
        return;
      }
      overflow({ stalledMillis: options.stallMillis });
    }, options.stallMillis);
    stall.unref();
  }

  /** Writes the events of a batch this client has not seen and that pass its filter. */
  function deliver(batch: FeedBatch): void {
    for (const e of batch.events) {
      if (state === 'closed') return;
      if (comparePositions(e.position, cursor!) <= 0) continue;
      cursor = e.position;
      if (matches(e)) send(e);
    }
    cursor = laterPosition(cursor!, batch.through);
  }

  function overflow(why: Parameters<typeof overflowMessage>[1] = { queueEvents: options.queueEvents }): void {
    metrics.streamSlowDisconnects.inc();
    // The messages already handed to the socket reach the client before this one; the queue is dropped.
    dropQueue();
    sink.write(overflowMessage(formatStreamPosition(lastWritten!), why));
    endAfterWritten('slow_client');
  }

  function dropQueue(): void {
    metrics.streamQueuedEvents.dec(queuedEvents);
    queuedEvents = 0;
    queue.length = 0;
    held = [];
  }

  /** Ends the response after what was written; a client that does not read it within lingerMillis is cut off. */
  function endAfterWritten(why: StreamEnd): void {
    if (state === 'closed') return;
    endedAs = why;
    leave();
    sink.end();
    lingering = setTimeout(() => sink.destroy(), options.lingerMillis);
    lingering.unref();
  }

  /** Stops taking events: off the feed's list (by the owner, on `closed`), timers stopped. */
  function leave(): void {
    state = 'closed';
    clearInterval(keepAlive);
    keepAlive = undefined;
    clearTimeout(stall);
    stall = undefined;
    dropQueue();
    sink.off('drain', onDrain);
    wakeCatchUp?.();
  }

  function finish(why: StreamEnd): void {
    clearTimeout(lingering);
    sink.off('close', onSocketClose);
    if (state !== 'closed') leave();
    settleClosed(why);
  }

  /** Resolves when the socket has taken everything queued (or the client is closed). */
  function writable(): Promise<void> {
    if (state === 'closed' || (!backedUp && queue.length === 0)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      wakeCatchUp = () => {
        if (state !== 'closed' && (backedUp || queue.length > 0)) return;
        wakeCatchUp = undefined;
        resolve();
      };
    });
  }

  async function catchUp(joinedAt: StreamPosition): Promise<void> {
    let through = joinedAt;
    for (;;) {
      await readStore(through);
      if (state !== 'catching_up' || storeThrough === undefined) return;
      through = storeThrough;
      storeThrough = undefined;
    }
  }

  async function readStore(through: StreamPosition): Promise<void> {
    const pageEvents = Math.max(1, Math.min(options.catchUpEvents, options.queueEvents));
    while (state === 'catching_up' && comparePositions(cursor!, through) < 0) {
      // A client that left while waiting for its turn is not read for.
      const page = await limit(async () =>
        state === 'catching_up'
          ? store.readCommitted({ after: cursor!, through, limit: pageEvents, filter })
          : undefined,
      );
      if (page === undefined || state !== 'catching_up') return;
      for (const e of page.events) {
        cursor = e.position;
        send(e);
      }
      if (page.events.length < pageEvents) cursor = through;
      // One page at a time: the next is read once the socket took this one.
      await writable();
    }
  }

  /**
   * Whether a resume point ahead of the feed is ahead of the store too: after (xmax, 0) of a snapshot
   * taken now, a position no stream of this cluster has given (another cluster's, a typo).
   */
  async function beyondStore(from: StreamPosition): Promise<boolean> {
    const page = await limit(async () =>
      state === 'catching_up' ? store.readCommitted({ after: from, limit: 0 }) : undefined,
    );
    return page !== undefined && comparePositions(from, { txid: page.nextTxid, seq: 0n }) > 0;
  }

  /** From catching up to live: the events held meanwhile first, then where the client is now. */
  function goLive(): void {
    state = 'live';
    const events = held;
    const through = heldThrough;
    held = [];
    heldThrough = undefined;
    deliver({ events, through: through ?? cursor! });
    sendPosition();
  }

  const client: StreamClient = {
    closed,
    onBatch(batch) {
      if (state === 'live') {
        deliver(batch);
        return;
      }
      if (state !== 'catching_up' && state !== 'created') return;
      for (const e of batch.events) if (matches(e)) held.push(e);
      heldThrough = batch.through;
      if (held.length > options.queueEvents) {
        // Not a slow client: one still reading the store. Those events are read from the store too.
        held = [];
        storeThrough = batch.through;
      }
    },
    start(joinedAt, resumeFrom) {
      if (state !== 'created') return;
      keepAlive = setInterval(keepAliveTick, options.keepAliveMillis);
      keepAlive.unref();
      const from = resumeFrom ?? joinedAt;
      cursor = from;
      lastWritten = from;
      state = 'catching_up';
      const ahead = comparePositions(from, joinedAt) > 0;
      if (!ahead && comparePositions(from, joinedAt) === 0 && storeThrough === undefined) {
        goLive();
        return;
      }
      void (async () => {
        try {
          // A point ahead of the feed is usually another replica's that read further: the batches
          // up to it are skipped. One ahead of the store would skip everything until the cluster's
          // transaction ids pass it: such a client starts from the join position ("now") instead,
          // and the position message at go-live gives it a resume point of this cluster.
          if (ahead && (await beyondStore(from)) && state === 'catching_up') {
            logger.debug(
              { lastEventId: formatStreamPosition(from), from: formatStreamPosition(joinedAt) },
              'stream: the resume point is ahead of the store; starting from now',
            );
            cursor = joinedAt;
            lastWritten = joinedAt;
          }
          await catchUp(joinedAt);
        } catch (err) {
          logger.warn({ err }, 'stream: catching up from the store failed; closing the stream');
          endAfterWritten('failed');
          return;
        }
        if (state === 'catching_up') goLive();
      })();
    },
    close(why) {
      if (why === 'client_closed') {
        finish(why);
        sink.destroy();
        return;
      }
      endAfterWritten(why);
    },
  };
  return client;
}
