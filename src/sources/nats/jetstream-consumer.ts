import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  StorageType,
  nanos,
} from 'nats';
import type { ComponentHealth, Consumer, Delivery } from '../../pipeline/contracts.js';
import type { WriteRecord } from '../../pipeline/records.js';
import type { Offer } from '../../pipeline/settle.js';
import { sleep, untilAborted } from '../../pipeline/timing.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { NatsLink } from './nats-link.js';
import { type PulledStream, durableName, messageInput, rejectOffer, utf8Text } from './pulled-stream.js';

/*
 * The JetStream pulling the NATS sources share: streams and durable pull consumers put in place (and
 * back when deleted), pull loops with backpressure, ack deadlines kept alive while messages are held,
 * and the durables' lag. What a message means is the source's: each of its streams (a PulledStream)
 * turns a message into the records it offers; a message settles once all of them have.
 */

export interface JetStreamPullOptions {
  /** Prefix of stream names, lower-cased prefix of subjects; removed from the subjects records name. */
  namespace: string;
  /** Consumer max_deliver: deliveries before the server gives up on a message. */
  maxDeliver: number;
  ackWaitMillis: number;
  /** Consumer max_ack_pending (bounded by the buffer). */
  maxAckPending: number;
  /** Messages asked for per pull request. */
  fetchBatch: number;
  /** How often the durables' lag (chronicle_jetstream_consumer_lag_messages) is read from the server. */
  lagRefreshMillis?: number;
}

/** Default of lagRefreshMillis. */
export const DEFAULT_LAG_REFRESH_MILLIS = 5_000;

export interface JetStreamPullDeps {
  link: NatsLink;
  /** Where records are offered (the batcher); its buffer bounds pause pulling. */
  consumer: Consumer;
  logger: Logger;
  metrics: Metrics;
  /** The source label of chronicle_backpressure_total (`jetstream`, `otlp-nats`). */
  backpressureSource: string;
}

/** The pulling of one NATS source: what its start() and shutdown() do. */
export interface JetStreamPuller {
  /** True once streams and consumers are in place and pulling has started. */
  consuming(): boolean;
  /**
   * Health of a source that pulls: NATS up and consuming, or the reason why not (`nats <state>`,
   * followed by ` (<what>)` when given).
   */
  health(what?: string): ComponentHealth;
  /** Waits for NATS, puts the streams and durables in place (retried until it succeeds), then pulls; in the background. */
  start(): void;
  /**
   * Stops pulling and resolves once the pull loops have ended (nothing more is offered), or at the
   * deadline. It does not wait for what was offered: the consumer settles that as it drains, and until
   * then (or the deadline) the held messages' ack deadlines are kept alive. Idempotent.
   */
  shutdown(deadline: AbortSignal): Promise<void>;
}

/**
 * The bytes one pull of a stream whose messages hold many records may bring: a few MiB, and never
 * less than the server's largest message (a message over a pull's max_bytes could never be pulled).
 */
const PULL_MAX_BYTES = 4 * 1024 * 1024;
function pullMaxBytes(nc: NatsConnection): number {
  return Math.max(PULL_MAX_BYTES, nc.info?.max_payload ?? 0);
}

/** A stream's chronicle_jetstream_paused, bound to its label. */
type PausedGauge = { set(value: number): void };

/** How one record of a held message settled: written (stored or duplicate), rejected, or handed back. */
type Outcome = 'kept' | 'rejected' | 'returned';

/*
 * States: idle → starting (waits for NATS, ensures streams and consumers; retried until it succeeds)
 * → consuming (one pull loop per stream; each pauses while the consumer has no room; a timer reads
 * the durables' lag every lagRefreshMillis) → stopping (no new pulls; messages already offered settle
 * when the consumer writes or hands them back, their ack deadlines kept alive meanwhile) → stopped
 * (every held message settled, or the shutdown deadline passed: timers cleared).
 */
export function createJetStreamPuller(
  options: JetStreamPullOptions,
  streams: readonly PulledStream[],
  deps: JetStreamPullDeps,
): JetStreamPuller {
  const { link, consumer, logger, metrics, backpressureSource } = deps;
  const stop = new AbortController();
  const loops: Promise<void>[] = [];
  // Messages offered to the consumer and not yet settled.
  const inFlight = new Set<HeldMessage>();
  let started = false;
  let consuming = false;
  // Set by shutdown once the pull loops have ended: no message will be held from then on.
  let pullingEnded = false;
  let workingTimer: NodeJS.Timeout | undefined;
  let lagTimer: NodeJS.Timeout | undefined;
  for (const { label: stream } of streams) {
    metrics.received.inc({ origin: 'nats', stream }, 0);
    metrics.redeliveries.inc({ stream }, 0);
    metrics.naks.inc({ stream }, 0);
    metrics.jetstreamPaused.set({ stream }, 0);
  }

  function settle(send: () => void): void {
    try {
      send();
    } catch (err) {
      // A lost settle is redelivered later and then deduplicated.
      logger.debug({ err }, 'could not settle JetStream message');
    }
  }

  function stopKeepAlive(): void {
    if (workingTimer) clearInterval(workingTimer);
    workingTimer = undefined;
  }

  /** Unregisters a held message; false when it was settled already. */
  function release(held: HeldMessage): boolean {
    if (!inFlight.delete(held)) return false;
    if (inFlight.size === 0 && pullingEnded) stopKeepAlive();
    return true;
  }

  /**
   * One message offered to the consumer, held until every one of its records has settled: acked when
   * none was handed back, nak'd (redelivered) when one was, terminated when every one was a reject
   * (recorded in chronicle_rejects first). It is itself the delivery of its first record; a
   * RecordPart is the delivery of each other one. Classes, not closures: there is one per message.
   */
  class HeldMessage implements Delivery<WriteRecord> {
    readonly value: WriteRecord;
    readonly sizeBytes: number;
    /** The deliveries of all its records, this one first. */
    readonly deliveries: Delivery<WriteRecord>[];
    /** Bytes of all its records. */
    readonly totalBytes: number;
    /** When its ack deadline was last reset. */
    workingAt = Date.now();
    private unsettled: number;
    private firstSettled = false;
    private kept = false;
    private returned = false;
    private retryAfterMillis: number | undefined;

    constructor(
      readonly msg: JsMsg,
      offers: readonly Offer[],
      /** chronicle_jetstream_naks_total of the message's stream. */
      private readonly naks: { inc(): void },
    ) {
      const first = offers[0]!;
      this.value = first.record;
      this.sizeBytes = first.sizeBytes;
      this.unsettled = offers.length;
      this.deliveries = [this];
      let totalBytes = first.sizeBytes;
      for (let i = 1; i < offers.length; i++) {
        const part = offers[i]!;
        this.deliveries.push(new RecordPart(this, part.record, part.sizeBytes));
        totalBytes += part.sizeBytes;
      }
      this.totalBytes = totalBytes;
      // Registered the moment it arrives, even while an earlier one waits for buffer room: no message
      // may sit unregistered past ack_wait.
      inFlight.add(this);
    }
    ack(): void {
      if (this.firstSettled) return;
      this.firstSettled = true;
      this.recordSettled('kept');
    }
    retry(afterMillis?: number): void {
      if (this.firstSettled) return;
      this.firstSettled = true;
      this.recordSettled('returned', afterMillis);
    }
    reject(): void {
      if (this.firstSettled) return;
      this.firstSettled = true;
      this.recordSettled('rejected');
    }
    /** One of its records settled; the message settles with the last one. */
    recordSettled(outcome: Outcome, afterMillis?: number): void {
      if (outcome === 'kept') this.kept = true;
      else if (outcome === 'returned') {
        this.returned = true;
        if (afterMillis !== undefined) {
          this.retryAfterMillis = Math.max(this.retryAfterMillis ?? 0, afterMillis);
        }
      }
      if (--this.unsettled > 0 || !release(this)) return;
      if (this.returned) {
        this.naks.inc();
        settle(() => this.msg.nak(this.retryAfterMillis));
      } else if (this.kept) {
        settle(() => this.msg.ack());
      } else {
        // A bare +TERM: nats-server before 2.10 ignores a term that carries a reason, and would
        // redeliver the message. The reason is recorded in chronicle_rejects instead.
        settle(() => this.msg.term());
      }
    }
    /** Hands the message back unoffered (shutting down): redelivered now rather than after ack_wait. */
    giveBack(): void {
      if (!release(this)) return;
      this.naks.inc();
      settle(() => this.msg.nak());
    }
  }

  /** The delivery of a record of a held message other than its first. */
  class RecordPart implements Delivery<WriteRecord> {
    private settled = false;
    constructor(
      private readonly held: HeldMessage,
      readonly value: WriteRecord,
      readonly sizeBytes: number,
    ) {}
    ack(): void {
      if (this.settled) return;
      this.settled = true;
      this.held.recordSettled('kept');
    }
    retry(afterMillis?: number): void {
      if (this.settled) return;
      this.settled = true;
      this.held.recordSettled('returned', afterMillis);
    }
    reject(): void {
      if (this.settled) return;
      this.settled = true;
      this.held.recordSettled('rejected');
    }
  }

  /** The reject that stands for a whole message. */
  function messageReject(stream: PulledStream, msg: JsMsg, reason: string, detail: string): Offer {
    const raw = (stream.payloadText ?? utf8Text)(msg.data, msg.headers);
    return rejectOffer(messageInput(options.namespace, msg), raw, reason, detail);
  }

  /**
   * The records of a message: a payload that breaks its conversion itself becomes a reject, and so
   * does one with more records than the consumer can ever hold (it would wait for room forever).
   */
  async function offersOf(stream: PulledStream, jsm: JetStreamManager, msg: JsMsg): Promise<Offer[]> {
    let offers: Offer[];
    try {
      offers = await stream.toOffers(msg, jsm);
    } catch (err) {
      const detail = `payload cannot be normalized: ${(err as Error).message}`;
      return [messageReject(stream, msg, stream.failureReason, detail)];
    }
    if (offers.length > consumer.maxBufferEvents) {
      const detail = `the message holds ${offers.length} records; at most ${consumer.maxBufferEvents} fit in the buffer (BUFFER_MAX_SIZE)`;
      return [messageReject(stream, msg, stream.tooManyReason, detail)];
    }
    return offers;
  }

  async function ensureTopology(nc: NatsConnection): Promise<JetStreamManager> {
    const jsm = await nc.jetstreamManager();
    for (const s of streams) {
      try {
        await jsm.streams.info(s.name);
      } catch (err) {
        if (!/stream not found/i.test((err as Error).message)) throw err;
        // Created when missing, never altered when it exists: the swarm may own and tune it.
        await jsm.streams.add({
          name: s.name,
          subjects: [...s.subjects],
          storage: StorageType.File,
          ...(s.maxAgeMillis === undefined ? {} : { max_age: nanos(s.maxAgeMillis) }),
        });
        logger.info({ stream: s.name, subjects: s.subjects }, 'JetStream stream created');
      }
      const durable = durableName(s.name);
      const config = {
        durable_name: durable,
        // Explicit, never `all`: replicas share this durable, and `all` would ack what another has not written.
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_deliver: options.maxDeliver,
        ack_wait: nanos(options.ackWaitMillis),
        max_ack_pending: options.maxAckPending,
      };
      try {
        const info = await jsm.consumers.info(s.name, durable);
        const c = info.config;
        if (
          c.max_deliver !== config.max_deliver ||
          c.ack_wait !== config.ack_wait ||
          c.max_ack_pending !== config.max_ack_pending
        ) {
          await jsm.consumers.update(s.name, durable, {
            max_deliver: config.max_deliver,
            ack_wait: config.ack_wait,
            max_ack_pending: config.max_ack_pending,
          });
          logger.info({ stream: s.name, durable }, 'JetStream consumer updated to the configured limits');
        }
      } catch (err) {
        if (!/consumer not found/i.test((err as Error).message)) throw err;
        await jsm.consumers.add(s.name, config);
        logger.info({ stream: s.name, durable }, 'JetStream consumer created');
      }
    }
    return jsm;
  }

  /** Offers a message's records, waiting while there is no room; hands it back when shutting down. */
  async function offer(held: HeldMessage, paused: PausedGauge): Promise<void> {
    while (!consumer.offer(held.deliveries)) {
      if (stop.signal.aborted || !consumer.accepting()) {
        held.giveBack();
        return;
      }
      metrics.backpressure.inc({ source: backpressureSource });
      await pausedFor(paused, consumer.waitForRoom(held.deliveries.length, held.totalBytes, stop.signal));
    }
  }

  /** Marks the stream's pulling as paused (its chronicle_jetstream_paused) while `waiting` lasts. */
  async function pausedFor(paused: PausedGauge, waiting: Promise<void>): Promise<void> {
    paused.set(1);
    try {
      await waiting;
    } finally {
      paused.set(0);
    }
  }

  /** Reads each durable's lag (messages not yet delivered plus those delivered and not acked). */
  async function refreshLag(jsm: JetStreamManager): Promise<void> {
    await Promise.all(
      streams.map(async (s) => {
        try {
          const info = await jsm.consumers.info(s.name, durableName(s.name));
          metrics.consumerLag.set({ stream: s.label }, info.num_pending + info.num_ack_pending);
        } catch (err) {
          // The last value stays; the pull loop reports (and repairs) a missing stream or consumer.
          logger.debug({ err, stream: s.name }, 'cannot read JetStream consumer lag');
        }
      }),
    );
  }

  /** Refreshes the lag now and then every lagRefreshMillis until shutdown; never per scrape. */
  function startLagTimer(jsm: JetStreamManager): void {
    let refreshing = false;
    const tick = (): void => {
      if (refreshing || stop.signal.aborted) return;
      refreshing = true;
      void refreshLag(jsm).finally(() => (refreshing = false));
    };
    lagTimer = setInterval(tick, options.lagRefreshMillis ?? DEFAULT_LAG_REFRESH_MILLIS);
    lagTimer.unref();
    tick();
  }

  async function pullLoop(nc: NatsConnection, jsm: JetStreamManager, stream: PulledStream): Promise<void> {
    const js = nc.jetstream();
    // Bound once per stream: counting a message allocates no label object.
    const receivedCount = metrics.received.labels({ origin: 'nats', stream: stream.label });
    const redeliveredCount = metrics.redeliveries.labels({ stream: stream.label });
    const naks = metrics.naks.labels({ stream: stream.label });
    const paused = metrics.jetstreamPaused.labels({ stream: stream.label });
    let pull: Awaited<ReturnType<typeof js.consumers.get>> | undefined;
    while (!stop.signal.aborted) {
      try {
        if (!consumer.hasRoom(options.fetchBatch)) {
          metrics.backpressure.inc({ source: backpressureSource });
          await pausedFor(paused, consumer.waitForRoom(options.fetchBatch, 0, stop.signal));
          if (stop.signal.aborted) break;
        }
        pull ??= await js.consumers.get(stream.name, durableName(stream.name));
        // Known race (measured, not fixed): nats.js ends a fetch on its own timer at 1.05 × expires and
        // drops what the server still sends to it; on a loaded machine (an event-loop stall past the
        // 50 ms margin) those messages wait for ack_wait before they are redelivered: late, never lost.
        // A longer expires narrows the race but lets a stopped source's open pull request swallow
        // messages for as long; the fix is one subscription per stream held for the whole loop.
        // A stream whose messages hold many records is pulled by bytes (nats.js takes one bound or
        // the other); max_ack_pending still bounds the messages.
        const messages = await pull.fetch(
          stream.manyRecordsPerMessage
            ? { max_bytes: pullMaxBytes(nc), expires: 1_000 }
            : { max_messages: options.fetchBatch, expires: 1_000 },
        );
        const onAbort = (): void => messages.stop();
        stop.signal.addEventListener('abort', onAbort, { once: true });
        const arrived: HeldMessage[] = [];
        let fetched = false;
        let wake: (() => void) | undefined;
        // Counted as they arrive, added to the metrics whenever the loop below catches up (each inc
        // hashes its labels: once per burst, not once per message).
        let received = 0;
        let redelivered = 0;
        const count = (): void => {
          if (received > 0) receivedCount.inc(received);
          if (redelivered > 0) redeliveredCount.inc(redelivered);
          received = redelivered = 0;
        };
        const reader = (async () => {
          try {
            for await (const msg of messages) {
              if (msg.redelivered) redelivered++;
              const offers = await offersOf(stream, jsm, msg);
              received += offers.length;
              if (offers.length === 0) {
                // Nothing to write (an empty OTLP request): settled at once.
                settle(() => msg.ack());
                continue;
              }
              arrived.push(new HeldMessage(msg, offers, naks));
              wake?.();
            }
          } finally {
            fetched = true;
            wake?.();
          }
        })();
        // Observed below, after the messages that did arrive are offered; marked handled now so a
        // failing fetch is not an unhandled rejection (which would end the process) in between.
        reader.catch(() => undefined);
        try {
          while (!fetched || arrived.length > 0) {
            const next = arrived.shift();
            if (next) {
              await offer(next, paused);
            } else {
              count();
              await new Promise<void>((resolve) => (wake = resolve));
              wake = undefined;
            }
          }
          await reader;
        } finally {
          count();
          stop.signal.removeEventListener('abort', onAbort);
        }
      } catch (err) {
        if (stop.signal.aborted) break;
        pull = undefined;
        logger.warn({ err, stream: stream.name }, 'JetStream pull failed; retrying');
        if (/not found/i.test((err as Error).message)) {
          // The stream or consumer was deleted under us: put it back.
          await ensureTopology(nc).catch((e: unknown) =>
            logger.warn({ err: e }, 'cannot restore JetStream topology'),
          );
        }
        await sleep(1_000, stop.signal);
      }
    }
  }

  /**
   * Extends the ack deadline of every message held longer than a third of ack_wait, wherever it is:
   * waiting for buffer room, in the buffer, in a slow flush, or retried while Postgres is down.
   */
  function keepAlive(): void {
    const now = Date.now();
    const every = options.ackWaitMillis / 3;
    for (const held of inFlight) {
      if (now - held.workingAt >= every) {
        try {
          held.msg.working();
          held.workingAt = now;
        } catch {
          // Disconnected: the message will be redelivered and deduplicated.
        }
      }
    }
  }

  async function run(): Promise<void> {
    // Not forever: a shutdown while NATS has never been reachable must not wait for it.
    const ready = link.ready();
    await untilAborted(stop.signal, ready);
    const nc = stop.signal.aborted ? undefined : await ready;
    if (!nc) return;
    let jsm: JetStreamManager | undefined;
    while (!stop.signal.aborted && !jsm) {
      try {
        jsm = await ensureTopology(nc);
      } catch (err) {
        logger.warn({ err }, 'cannot set up JetStream streams and consumers; retrying');
        await sleep(2_000, stop.signal);
      }
    }
    if (!jsm || stop.signal.aborted) return;
    consuming = true;
    workingTimer = setInterval(keepAlive, Math.max(100, options.ackWaitMillis / 6));
    // Never what keeps the process alive: shutdown clears it once the held messages are settled.
    workingTimer.unref();
    startLagTimer(jsm);
    const manager = jsm;
    await Promise.all(streams.map((s) => pullLoop(nc, manager, s)));
  }

  return {
    consuming: () => consuming,
    health(what) {
      const state = link.state();
      const up = state === 'connected' && consuming;
      const problem = link.problem?.();
      const detail =
        state === 'connected'
          ? 'setting up consumers'
          : problem === undefined
            ? state
            : `${state} (${problem})`;
      const reason = what === undefined ? `nats ${detail}` : `nats ${detail} (${what})`;
      return up
        ? { dependencies: { nats: { state: 'up' } } }
        : { dependencies: { nats: { state: 'down', detail } }, reasons: [reason] };
    },
    start() {
      if (started || stop.signal.aborted) return;
      started = true;
      loops.push(
        run().catch((err: unknown) => {
          logger.error({ err }, 'JetStream pulling stopped unexpectedly');
        }),
      );
    },
    async shutdown(deadline) {
      if (stop.signal.aborted) return;
      stop.abort();
      consuming = false;
      if (lagTimer) clearInterval(lagTimer);
      await untilAborted(deadline, Promise.all(loops));
      pullingEnded = true;
      // Held messages keep their ack deadline alive until the consumer settles them (release() then
      // stops the timer) or the deadline passes.
      if (inFlight.size === 0 || deadline.aborted) stopKeepAlive();
      else deadline.addEventListener('abort', stopKeepAlive, { once: true });
    },
  };
}
