/**
 * Publishers of simulated traffic: to NATS (core publishes that JetStream stores, deduplicated on the
 * `Nats-Msg-Id` header, with an acknowledged publish now and then to prove a stream stores them), or
 * to Chronicle's HTTP ingest (JSON arrays, retried on network errors and on 429/503 after
 * Retry-After). Both pace themselves to a rate and report progress.
 *
 * Over HTTP a dead-letter entry cannot be sent as it is (the ingest takes canonical events only): it is
 * sent as the `dlq.entry` event Chronicle would add to the task's trace for it, with the same event_id,
 * so swarm_events and swarm_traces end the same on both targets; swarm_dlq gets no row.
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import { type ConnectionOptions, type NatsConnection, connect, headers } from 'nats';
import { type EventInput, SwarmEventError, createSwarmPublisher } from '../sdk/publisher.js';
import type { CanonicalEvent } from '../events/schema.js';
import { fetchFailure, requestSignal, seconds } from './fetch-failure.js';
import { storedEventOf } from './stored-event.js';
import { type SimMessage, messageIdOf } from './traffic.js';

/** Where a publisher is in its run. */
export interface PublishProgress {
  sent: number;
  total: number;
  elapsedMillis: number;
}

/** How one run is published. */
export interface PublishOptions {
  /** Messages per second; absent: as fast as the target takes them. */
  ratePerSecond?: number | undefined;
  /** Called at most every `progressIntervalMillis` and once at the end. */
  onProgress?: ((progress: PublishProgress) => void) | undefined;
  progressIntervalMillis?: number | undefined;
  /** Stops publishing (the promise rejects with the abort reason). */
  signal?: AbortSignal | undefined;
}

/** What a publisher did. */
export interface PublishResult {
  /** Messages handed to the target, duplicates included. */
  sent: number;
  elapsedMillis: number;
  /** Events the HTTP ingest rejected, with their reasons (always empty over NATS). */
  rejected: { event_id: string; reason: string }[];
}

/** Sends messages to one target. */
export interface TrafficPublisher {
  publish(messages: readonly SimMessage[], options?: PublishOptions): Promise<PublishResult>;
  /** Flushes and closes what the publisher opened; idempotent. */
  close(): Promise<void>;
}

/** A failure of the target that retrying did not fix. */
export class PublishError extends Error {
  override readonly name = 'PublishError';
}

const DEFAULT_PROGRESS_INTERVAL_MILLIS = 500;

/** Spreads `total` messages over time at `ratePerSecond`, in chunks, reporting progress. */
async function paced(
  total: number,
  maxChunk: number,
  options: PublishOptions,
  send: (from: number, to: number) => Promise<void>,
): Promise<number> {
  const started = Date.now();
  const rate = options.ratePerSecond;
  // About 20 chunks a second keeps the pace smooth without a round trip per message.
  const chunk = rate === undefined ? maxChunk : Math.max(1, Math.min(maxChunk, Math.ceil(rate / 20)));
  const interval = options.progressIntervalMillis ?? DEFAULT_PROGRESS_INTERVAL_MILLIS;
  let lastProgress = started;
  const waitUntilDue = async (messages: number): Promise<void> => {
    if (rate === undefined) return;
    const wait = started + (messages * 1000) / rate - Date.now();
    if (wait > 0) await sleepFor(wait, undefined, { signal: options.signal });
  };
  for (let sent = 0; sent < total;) {
    options.signal?.throwIfAborted();
    await waitUntilDue(sent);
    const to = Math.min(total, sent + chunk);
    await send(sent, to);
    sent = to;
    // The last chunk takes its share of time too, so a run lasts total / rate seconds.
    if (sent === total) await waitUntilDue(total);
    const now = Date.now();
    if (options.onProgress !== undefined && (now - lastProgress >= interval || sent === total)) {
      lastProgress = now;
      options.onProgress({ sent, total, elapsedMillis: now - started });
    }
  }
  return Date.now() - started;
}

/** Options of the NATS publisher. */
export interface NatsPublisherOptions {
  url: string;
  /** Prepended to every subject (Chronicle's lower-cased CHRONICLE_NATS_NAMESPACE); '' by default. */
  subjectPrefix?: string | undefined;
}

/**
 * Connects to NATS; `connect` is injectable for tests.
 *
 * Most messages are plain publishes (fast, no round trip each), which the server drops without a word
 * when no stream captures their subject. So the first message of each subject, and the first of each
 * chunk, are published through JetStream and wait for the stream's acknowledgement: a run whose
 * subjects no stream stores fails at once with a PublishError that says so, instead of reporting
 * messages "sent" that went nowhere.
 */
export async function createNatsPublisher(
  options: NatsPublisherOptions,
  deps: { connect?: (opts: ConnectionOptions) => Promise<NatsConnection> } = {},
): Promise<TrafficPublisher> {
  let nc: NatsConnection;
  try {
    nc = await (deps.connect ?? connect)({ servers: options.url, name: 'chronicle-simulate' });
  } catch (err) {
    throw new PublishError(`could not connect to NATS at ${options.url}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const prefix = options.subjectPrefix ?? '';
  const encoder = new TextEncoder();
  // Canonical events go through the publisher SDK (validated, Nats-Msg-Id = event_id); dead-letter
  // entries, which are not canonical events, are published as they are.
  const fast = createSwarmPublisher({ nc, source: 'simulator', acked: false, subjectPrefix: prefix });
  const acked = createSwarmPublisher({ nc, source: 'simulator', acked: true, subjectPrefix: prefix });
  const js = nc.jetstream();
  let closed: Promise<void> | undefined;

  /** Publishes with the stream's acknowledgement; a subject no stream stores becomes a clear error. */
  async function publishAcked(m: SimMessage): Promise<void> {
    try {
      if (m.subject.startsWith('swarm.')) {
        await acked.publish(m.payload as unknown as EventInput);
      } else {
        await js.publish(prefix + m.subject, encoder.encode(JSON.stringify(m.payload)), {
          msgID: messageIdOf(m),
        });
      }
    } catch (err) {
      if (err instanceof SwarmEventError) throw err;
      throw natsPublishError(prefix + m.subject, prefix, err);
    }
  }

  return {
    async publish(messages, publishOptions = {}) {
      const checked = new Set<string>();
      const elapsedMillis = await paced(messages.length, 1000, publishOptions, async (from, to) => {
        for (let i = from; i < to; i++) {
          const m = messages[i]!;
          if (i === from || !checked.has(m.subject)) {
            checked.add(m.subject);
            await publishAcked(m);
            continue;
          }
          if (m.subject.startsWith('swarm.')) {
            await fast.publish(m.payload as unknown as EventInput);
            continue;
          }
          const h = headers();
          // JetStream drops a message whose id it stored within its duplicate window.
          h.set('Nats-Msg-Id', messageIdOf(m));
          nc.publish(prefix + m.subject, encoder.encode(JSON.stringify(m.payload)), { headers: h });
        }
        // A round trip per chunk: backpressure, and the server has everything before we report it sent.
        await nc.flush();
      });
      return { sent: messages.length, elapsedMillis, rejected: [] };
    },
    close() {
      closed ??= nc.drain();
      return closed;
    },
  };
}

/** The error of an acknowledged publish that failed: "no responders" means no stream stores the subject. */
function natsPublishError(subject: string, prefix: string, err: unknown): PublishError {
  const code = (err as { code?: unknown }).code;
  if (code === '503') {
    return new PublishError(
      `no JetStream stream stores subject "${subject}" (is Chronicle running with NATS, and is its ` +
        `CHRONICLE_NATS_NAMESPACE, lower-cased, "${prefix}"? set --subject-prefix)`,
      { cause: err },
    );
  }
  return new PublishError(
    `JetStream did not acknowledge a message on "${subject}": ${(err as Error).message}`,
    { cause: err },
  );
}

/** Options of the HTTP publisher. */
export interface HttpPublisherOptions {
  /** Chronicle's base URL, e.g. http://127.0.0.1:8700. */
  url: string;
  /** Events per request (at most 500). */
  maxBatchEvents?: number | undefined;
  /** Retries of one request on 429, 503 or a network error before giving up (default 30). */
  maxRetries?: number | undefined;
  /** Time one request may spend retrying before giving up (default 60 s). */
  maxRetryMillis?: number | undefined;
  /** Time one attempt may take (default 30 s); a timeout is retried. */
  requestTimeoutMillis?: number | undefined;
  /** An API token with the ingest scope, sent as `Authorization: Bearer`; none when undefined. */
  token?: string | undefined;
}

interface IngestAnswer {
  accepted: number;
  duplicates: number;
  rejected: { index: number; reason: string; detail: string }[];
}

const MAX_HTTP_BATCH = 500;

/**
 * Posts canonical events to `{url}/api/v1/events`; `fetch` is injectable for tests. Network failures
 * (refused, reset, timed out) and 429/503 are retried with backoff, within maxRetries and
 * maxRetryMillis; anything else (a bad URL, an unknown host, another status) fails at once.
 */
export function createHttpPublisher(
  options: HttpPublisherOptions,
  deps: { fetch?: typeof fetch } = {},
): TrafficPublisher {
  const doFetch = deps.fetch ?? fetch;
  const endpoint = `${options.url.replace(/\/+$/, '')}/api/v1/events`;
  const batchSize = Math.min(MAX_HTTP_BATCH, options.maxBatchEvents ?? MAX_HTTP_BATCH);
  const maxRetries = options.maxRetries ?? 30;
  const maxRetryMillis = options.maxRetryMillis ?? 60_000;
  const requestTimeoutMillis = options.requestTimeoutMillis ?? 30_000;

  async function post(events: CanonicalEvent[], signal: AbortSignal | undefined): Promise<IngestAnswer> {
    const body = JSON.stringify(events);
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      let failure: string;
      let unreachable = false;
      let waitMillis: number;
      try {
        const res = await doFetch(endpoint, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
          },
          body,
          signal: requestSignal(signal, requestTimeoutMillis),
        });
        if (res.ok) return (await res.json()) as IngestAnswer;
        const text = await res.text();
        if (res.status !== 429 && res.status !== 503) {
          const hint =
            res.status === 401 || res.status === 403
              ? ' (set CHRONICLE_API_TOKEN to a token with the ingest scope)'
              : '';
          throw new PublishError(`POST ${endpoint} answered ${res.status}: ${text.slice(0, 500)}${hint}`);
        }
        failure = `answered ${res.status}`;
        waitMillis = retryAfterMillis(res.headers.get('retry-after'), attempt - 1);
      } catch (err) {
        if (err instanceof PublishError) throw err;
        signal?.throwIfAborted();
        const f = fetchFailure(err);
        if (!f.retryable) throw new PublishError(`POST ${endpoint}: ${f.reason}`, { cause: err });
        // Safe to resend: every event carries its event_id, so Chronicle stores it once.
        failure = f.reason;
        unreachable = f.unreachable;
        waitMillis = backoffMillis(attempt - 1);
      }
      const elapsed = Date.now() - started;
      if (attempt > maxRetries || elapsed + waitMillis > maxRetryMillis) {
        throw new PublishError(
          `POST ${endpoint}: ${failure} after ${attempt} attempt${attempt === 1 ? '' : 's'} over ` +
            `${seconds(elapsed)}${unreachable ? '; is Chronicle running?' : ''}`,
        );
      }
      await sleepFor(waitMillis, undefined, { signal });
    }
  }

  return {
    async publish(messages, publishOptions = {}) {
      const rejected: PublishResult['rejected'] = [];
      const elapsedMillis = await paced(messages.length, batchSize, publishOptions, async (from, to) => {
        const events: CanonicalEvent[] = [];
        for (let i = from; i < to; i++) {
          const event = storedEventOf(messages[i]!);
          if (event !== null) events.push(event);
        }
        if (events.length === 0) return;
        const answer = await post(events, publishOptions.signal);
        for (const r of answer.rejected) {
          rejected.push({ event_id: events[r.index]?.event_id ?? '?', reason: `${r.reason}: ${r.detail}` });
        }
      });
      return { sent: messages.length, elapsedMillis, rejected };
    },
    close: () => Promise.resolve(),
  };
}

/** Retry-After in seconds or as an HTTP date; a short backoff when absent or unreadable. */
export function retryAfterMillis(header: string | null, attempt = 0): number {
  if (header !== null) {
    const seconds = Number(header);
    if (header.trim() !== '' && Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
    const at = Date.parse(header);
    if (Number.isFinite(at)) return Math.max(0, at - Date.now());
  }
  return backoffMillis(attempt);
}

function backoffMillis(attempt: number): number {
  return Math.min(5_000, 100 * 2 ** attempt);
}
