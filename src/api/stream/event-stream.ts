import express from 'express';
import type { Response } from 'express';
import type { Component } from '../../pipeline/contracts.js';
import { RetryableError } from '../../pipeline/errors.js';
import { untilAborted } from '../../pipeline/timing.js';
import type { QueryStore, StreamPosition } from '../../sinks/postgres/queries.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics, STREAM_REFUSED_REASONS } from '../../telemetry/metrics.js';
import { BadParameterError, parseParams, querySchemas } from '../params.js';
import { FeedStoppedError, createEventFeed } from './event-feed.js';
import { parseStreamPosition } from './position.js';
import { type StreamClient, createStreamClient } from './stream-client.js';

/** Tunables of the stream (CHRONICLE_STREAM_* in src/config.ts). */
export interface EventStreamOptions {
  /** Pause between reads of the store once the feed has caught up. */
  pollMillis: number;
  /** Events a client may have waiting while its socket is backed up; one more and it is disconnected. */
  clientQueueEvents: number;
  /** Streams open at once on this process; the next request gets 503 too_many_streams. */
  maxClients: number;
  /**
   * A keep-alive after this long without a write: a position message when the client's place moved,
   * else a comment.
   */
  keepAliveMillis: number;
  /**
   * A client whose socket has taken nothing for this long (backed up, live or catching up) is
   * disconnected as a slow client; default STALL_MILLIS.
   */
  stallMillis?: number | undefined;
  /**
   * A read of the store by the stream that Postgres has not answered within this long fails (the
   * database is unavailable); a request waiting for the feed's first position gets 503 after it.
   * Default READ_TIMEOUT_MILLIS.
   */
  readTimeoutMillis?: number | undefined;
}

/** The defaults of src/config.ts, for a configuration that leaves the stream out. */
export const STREAM_DEFAULTS: EventStreamOptions = Object.freeze({
  pollMillis: 250,
  clientQueueEvents: 1000,
  maxClients: 1000,
  keepAliveMillis: 15_000,
});

export interface EventStreamDeps {
  store: Pick<QueryStore, 'readCommitted'>;
  logger: Logger;
  metrics: Metrics;
}

/** GET /api/v1/stream and the poller behind it; shutting it down ends every stream. */
export interface EventStream extends Component {
  /** Serves GET /api/v1/stream. */
  readonly router: express.Router;
}

/** Events per read of the feed, and per read of a client catching up. */
const FEED_READ_EVENTS = 1000;
const CATCH_UP_READ_EVENTS = 500;
/** Reads of the store by clients catching up at once (the feed's own read is one more connection). */
const CATCH_UP_CONCURRENCY = 2;
/** Pause after a failed read of the feed. */
const FEED_RETRY_MILLIS = 1_000;
/** How long an ended stream (overflow) may take to read what was written before its socket is closed. */
const LINGER_MILLIS = 10_000;
/** How long a shutdown lets the streams send what they were handed before their sockets are closed. */
const SHUTDOWN_LINGER_MILLIS = 1_000;
/** A socket that takes nothing for this long is a stalled client (overflow, slow_client). */
export const STALL_MILLIS = 30_000;
/** Every read of the store by the stream fails after this long without an answer. */
export const READ_TIMEOUT_MILLIS = 10_000;
/** What EventSource waits before reconnecting (the `retry:` field), and Retry-After of a refusal. */
const RECONNECT_MILLIS = 1_000;
const REFUSED_RETRY_AFTER_SECONDS = 5;

const STREAM_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache',
  // nginx and similar proxies would otherwise buffer the stream.
  'X-Accel-Buffering': 'no',
};

/** Runs at most `max` reads at once; the others wait their turn. */
function concurrencyLimit(max: number): <T>(read: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (read) => {
    while (active >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await read();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/*
 * States and transitions:
 *   open    --request--> a client: 503 when over maxClients; else subscribed to the feed, headers and
 *                        `retry:` written, then catch-up and live (stream-client.ts)
 *   open    --shutdown()--> stopped: the feed stops, every stream is ended (after SHUTDOWN_LINGER_MILLIS
 *                        or the deadline its socket is closed), later requests get 503 shutting_down
 */
export function createEventStream(options: EventStreamOptions, deps: EventStreamDeps): EventStream {
  const { logger, metrics } = deps;
  const readTimeoutMillis = options.readTimeoutMillis ?? READ_TIMEOUT_MILLIS;
  // Every read of the stream (the feed's, the clients' catching up) is bounded: a database that hangs
  // without failing does not hold a stream, a catch-up slot or a shutdown forever.
  const store: EventStreamDeps['store'] = {
    readCommitted: (read) => deps.store.readCommitted({ ...read, timeoutMillis: readTimeoutMillis }),
  };
  const feed = createEventFeed(
    {
      pollMillis: options.pollMillis,
      // A batch is handed to every client at once: never more than an empty queue takes, so a burst
      // alone does not make a client that keeps up look slow.
      readEvents: Math.min(FEED_READ_EVENTS, options.clientQueueEvents),
      retryMillis: FEED_RETRY_MILLIS,
    },
    { store, logger, metrics },
  );
  const limit = concurrencyLimit(CATCH_UP_CONCURRENCY);
  const clients = new Set<StreamClient>();
  let stopped: Promise<void> | undefined;

  function refuse(res: Response, reason: (typeof STREAM_REFUSED_REASONS)[number], message: string): void {
    metrics.streamRefused.inc({ reason });
    res.set('Retry-After', String(REFUSED_RETRY_AFTER_SECONDS)).status(503).json({ error: reason, message });
  }

  /** Where the client resumes: the Last-Event-ID header (what EventSource sends on reconnecting) wins. */
  function resumePoint(header: string | undefined, query: StreamPosition | undefined) {
    if (header === undefined || header.trim() === '') return query;
    const position = parseStreamPosition(header.trim());
    if (position === undefined) {
      throw new BadParameterError(
        'last_event_id',
        'the Last-Event-ID header must be an event id of the stream: <txid>-<seq> (decimal)',
      );
    }
    return position;
  }

  const router = express.Router();
  router.get('/api/v1/stream', async (req, res) => {
    const { last_event_id, ...filter } = parseParams(querySchemas.stream, req.query);
    const resumeFrom = resumePoint(req.get('Last-Event-ID'), last_event_id);
    if (stopped !== undefined) return refuse(res, 'shutting_down', 'Chronicle is shutting down');
    if (clients.size >= options.maxClients) {
      return refuse(
        res,
        'too_many_streams',
        `this replica serves at most ${options.maxClients} streams at once; retry later`,
      );
    }
    // Express routes HEAD here too: what GET would answer, without a stream that would never be read.
    if (req.method === 'HEAD') return void res.status(200).set(STREAM_HEADERS).end();
    const client = createStreamClient(
      res,
      filter,
      {
        queueEvents: options.clientQueueEvents,
        catchUpEvents: CATCH_UP_READ_EVENTS,
        keepAliveMillis: options.keepAliveMillis,
        lingerMillis: LINGER_MILLIS,
        stallMillis: options.stallMillis ?? STALL_MILLIS,
      },
      { store, limit, logger, metrics },
    );
    clients.add(client);
    metrics.streamClients.inc();
    let gone = false;
    void client.closed.then(() => {
      gone = true;
      clients.delete(client);
      feed.unsubscribe(client);
      metrics.streamClients.dec();
    });

    let joinedAt: StreamPosition;
    let waited: NodeJS.Timeout | undefined;
    try {
      // The first subscriber of an idle feed waits for its first read: not longer than a read may take
      // (that read may be waiting for a connection of the pool, where its own timeout does not run yet).
      const timedOut = new Promise<never>((_, reject) => {
        waited = setTimeout(
          () =>
            reject(new RetryableError(`the stream did not get its position within ${readTimeoutMillis} ms`)),
          readTimeoutMillis,
        );
      });
      joinedAt = await Promise.race([feed.subscribe(client), timedOut]);
    } catch (err) {
      // Off the feed before answering; the client ends with the answer (its socket's close).
      feed.unsubscribe(client);
      // Ended meanwhile (the client left, or a shutdown ended it): nothing to answer.
      if (gone || res.writableEnded) return;
      if (err instanceof FeedStoppedError) return refuse(res, 'shutting_down', 'Chronicle is shutting down');
      // The error handler answers (503 when the database is unavailable); the client ends with the answer.
      throw err;
    } finally {
      clearTimeout(waited);
    }
    if (gone || res.writableEnded) return;
    res.status(200).set(STREAM_HEADERS);
    res.write(`retry: ${RECONNECT_MILLIS}\n\n`);
    client.start(joinedAt, resumeFrom);
  });

  return {
    name: 'stream',
    router,
    async start() {
      // The feed polls only while a stream is open; nothing to start.
    },
    shutdown(deadline) {
      stopped ??= (async () => {
        // The streams end first: a read of the feed stuck in a database that hangs must not take their
        // grace (it ends by its timeout, or at the deadline).
        const feedStopped = feed.stop();
        const open = [...clients];
        for (const client of open) client.close('shutdown');
        const grace = AbortSignal.any([deadline, AbortSignal.timeout(SHUTDOWN_LINGER_MILLIS)]);
        await untilAborted(grace, Promise.all(open.map((c) => c.closed)));
        for (const client of open) client.close('client_closed');
        await untilAborted(deadline, feedStopped);
      })();
      return stopped;
    },
  };
}
