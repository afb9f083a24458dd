import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  StorageType,
  nanos,
} from 'nats';
import { normalizeDlq } from '../../events/dlq.js';
import {
  type InputContext,
  makeReject,
  mayNeedCleaning,
  normalizeEvent,
  parseJson,
} from '../../events/normalize.js';
import type { Consumer, Delivery, Source } from '../../pipeline/contracts.js';
import { untilAborted } from '../../pipeline/timing.js';
import type { RecordInput, WriteRecord } from '../../pipeline/records.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { NatsLink } from '../nats/nats-link.js';

/** A stream Chronicle consumes, and how its messages are read. */
export interface StreamSpec {
  name: string;
  subjects: string[];
  /** `events` carry canonical events; `dlq` carries the swarm's dead-letter entries. */
  kind: 'events' | 'dlq';
}

export const DEFAULT_STREAMS: readonly StreamSpec[] = [
  { name: 'TASK_EVENTS', subjects: ['swarm.task.>'], kind: 'events' },
  {
    name: 'SYSTEM_EVENTS',
    subjects: ['swarm.agent.>', 'swarm.system.>', 'swarm.lifecycle.>'],
    kind: 'events',
  },
  { name: 'DLQ', subjects: ['dlq.>'], kind: 'dlq' },
];

export interface JetStreamSourceOptions {
  streams: readonly StreamSpec[];
  /** Prepended to stream names and subjects, so tests can run side by side on one server; '' in production. */
  namespace: string;
  /** Consumer max_deliver: deliveries before the server gives up on a message. */
  maxDeliver: number;
  ackWaitMillis: number;
  /** Consumer max_ack_pending (bounded by the buffer). */
  maxAckPending: number;
  /** Messages asked for per pull request. */
  fetchBatch: number;
  /** How often the consumers' lag (chronicle_jetstream_consumer_lag_messages) is read from the server. */
  lagRefreshMillis?: number;
}

/** Default of lagRefreshMillis. */
export const DEFAULT_LAG_REFRESH_MILLIS = 5_000;

export const DEFAULT_JETSTREAM_OPTIONS: Omit<JetStreamSourceOptions, 'maxAckPending'> = {
  streams: DEFAULT_STREAMS,
  namespace: '',
  maxDeliver: 3,
  ackWaitMillis: 30_000,
  fetchBatch: 1000,
};

export interface JetStreamSourceDeps {
  link: NatsLink;
  /** Where messages are offered (the batcher); its buffer bounds pause pulling. */
  consumer: Consumer;
  logger: Logger;
  metrics: Metrics;
}

export interface JetStreamSource extends Source {
  /** True once streams and consumers are in place and pulling has started. */
  consuming(): boolean;
}

export const ADVISORY_STREAM = 'CHRONICLE_ADVISORIES';

export function durableName(stream: string): string {
  return `chronicle-${stream}`;
}

const decoder = new TextDecoder();

/** A stream's chronicle_jetstream_paused, bound to its label. */
type PausedGauge = { set(value: number): void };

/** A reject record for `raw`, keyed (for dedup of redeliveries) by `key`, the input's own by default. */
function rejectRecord(
  input: RecordInput,
  raw: string,
  reason: string,
  detail: string,
  key = input.key,
): WriteRecord {
  return { kind: 'reject', input, reject: makeReject(raw, input, reason, detail, key) };
}

interface MaxDeliveriesAdvisory {
  stream: string;
  consumer: string;
  stream_seq: number;
  deliveries: number;
}

/*
 * States: idle → starting (waits for NATS, ensures streams and consumers; retried until it succeeds)
 * → consuming (one pull loop per stream; each pauses while the buffer is full; a timer reads the
 * durables' lag every lagRefreshMillis) → stopping (no new pulls; messages already handed to the
 * batcher settle when their batch commits) → stopped (timers cleared).
 */
export function createJetStreamSource(
  options: JetStreamSourceOptions,
  deps: JetStreamSourceDeps,
): JetStreamSource {
  const { link, consumer: batcher, logger, metrics } = deps;
  const ns = options.namespace;
  const stop = new AbortController();
  const loops: Promise<void>[] = [];
  // Messages handed to the batcher and not yet settled, with the time of their last ack-deadline reset.
  const inFlight = new Map<JsMsg, number>();
  let started = false;
  let consuming = false;
  let workingTimer: NodeJS.Timeout | undefined;
  let lagTimer: NodeJS.Timeout | undefined;
  // Metric labels name streams without the namespace: TASK_EVENTS, ..., CHRONICLE_ADVISORIES.
  const labelOf = (spec: StreamSpec | null): string => spec?.name ?? ADVISORY_STREAM;
  for (const stream of [...options.streams.map(labelOf), ADVISORY_STREAM]) {
    metrics.received.inc({ origin: 'nats', stream }, 0);
    metrics.redeliveries.inc({ stream }, 0);
    metrics.naks.inc({ stream }, 0);
    metrics.jetstreamPaused.set({ stream }, 0);
  }

  const streamName = (s: StreamSpec | string): string => `${ns}${typeof s === 'string' ? s : s.name}`;
  const localSubject = (subject: string): string =>
    ns !== '' && subject.startsWith(ns.toLowerCase()) ? subject.slice(ns.length) : subject;

  function settle(send: () => void): void {
    try {
      send();
    } catch (err) {
      // A lost settle is redelivered later and then deduplicated.
      logger.debug({ err }, 'could not settle JetStream message');
    }
  }

  /** One message as a delivery; a class, not closures, because there is one per message. */
  class MessageDelivery implements Delivery<WriteRecord> {
    readonly sizeBytes: number;
    constructor(
      private readonly msg: JsMsg,
      readonly value: WriteRecord,
      /** chronicle_jetstream_naks_total of the message's stream. */
      private readonly naks: { inc(): void },
    ) {
      this.sizeBytes = msg.data.length * 2 + 512;
      inFlight.set(msg, Date.now());
    }
    ack(): void {
      if (inFlight.delete(this.msg)) settle(() => this.msg.ack());
    }
    retry(afterMillis?: number): void {
      if (!inFlight.delete(this.msg)) return;
      this.naks.inc();
      settle(() => this.msg.nak(afterMillis));
    }
    reject(): void {
      // A bare +TERM: nats-server before 2.10 ignores a term that carries a reason, and would
      // redeliver the message. The reason is recorded in chronicle_rejects instead.
      if (inFlight.delete(this.msg)) settle(() => this.msg.term());
    }
  }

  /** Turns one message into the record the store writes; never throws. */
  function toRecord(spec: StreamSpec, msg: JsMsg): WriteRecord {
    const subject = localSubject(msg.subject);
    const seq = msg.info.streamSequence;
    const input: RecordInput = { origin: 'nats', subject, key: `nats:${streamName(spec)}:${seq}` };
    const raw = decoder.decode(msg.data);
    const reject = (reason: string, detail: string): WriteRecord => rejectRecord(input, raw, reason, detail);
    const ctx: InputContext = {
      origin: 'nats',
      subject,
      stream: streamName(spec),
      seq,
      defaultTimeMillis: Math.floor(msg.info.timestampNanos / 1e6),
      cleanText: !mayNeedCleaning(raw),
      payloadChars: raw.length,
    };
    const parsed = parseJson(raw);
    if (!parsed.ok) return reject(parsed.reason, parsed.detail);
    if (spec.kind === 'dlq') {
      const dlq = normalizeDlq(parsed.value, ctx);
      if (!dlq.ok) return reject(dlq.reason, dlq.detail);
      return { kind: 'dlq', input, entry: dlq.value.entry, event: dlq.value.event };
    }
    const event = normalizeEvent(parsed.value, ctx);
    if (!event.ok) return reject(event.reason, event.detail);
    return { kind: 'event', input, event: event.value };
  }

  /** A max_deliver advisory becomes a reject carrying the message the server gave up on. */
  async function advisoryRecord(jsm: JetStreamManager, msg: JsMsg): Promise<WriteRecord> {
    const raw = decoder.decode(msg.data);
    const input: RecordInput = {
      origin: 'nats',
      subject: msg.subject,
      key: `nats:${streamName(ADVISORY_STREAM)}:${msg.info.streamSequence}`,
    };
    const parsed = parseJson(raw);
    const advisory = (parsed.ok ? parsed.value : {}) as Partial<MaxDeliveriesAdvisory>;
    if (typeof advisory.stream !== 'string' || typeof advisory.stream_seq !== 'number') {
      return rejectRecord(input, raw, 'invalid_advisory', 'advisory without stream and stream_seq');
    }
    const key = `max_deliver:${advisory.stream}:${advisory.stream_seq}`;
    const detail = `delivered ${advisory.deliveries ?? '?'} times by ${advisory.consumer ?? '?'} without an ack; the server will not deliver it again (it may still have been stored if only its acks were lost)`;
    try {
      const stored = await jsm.streams.getMessage(advisory.stream, { seq: advisory.stream_seq });
      const subject = localSubject(stored.subject);
      return rejectRecord({ ...input, subject }, decoder.decode(stored.data), 'max_deliver', detail, key);
    } catch (err) {
      const gone = `${detail}; the message is no longer in stream ${advisory.stream} (${(err as Error).message})`;
      return rejectRecord(input, raw, 'max_deliver', gone, key);
    }
  }

  async function ensureTopology(nc: NatsConnection): Promise<JetStreamManager> {
    const jsm = await nc.jetstreamManager();
    const advisorySubjects = options.streams.map(
      (s) => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${streamName(s)}.${durableName(streamName(s))}`,
    );
    const all = [
      ...options.streams.map((s) => ({
        name: streamName(s),
        subjects: s.subjects.map((x) => `${ns.toLowerCase()}${x}`),
      })),
      { name: streamName(ADVISORY_STREAM), subjects: advisorySubjects },
    ];
    for (const s of all) {
      try {
        await jsm.streams.info(s.name);
      } catch (err) {
        if (!/stream not found/i.test((err as Error).message)) throw err;
        // Created when missing, never altered when it exists: the swarm may own and tune it.
        await jsm.streams.add({
          name: s.name,
          subjects: s.subjects,
          storage: StorageType.File,
          ...(s.name === streamName(ADVISORY_STREAM) ? { max_age: nanos(7 * 24 * 3600 * 1000) } : {}),
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

  async function sleep(millis: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        stop.signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, millis);
      stop.signal.addEventListener('abort', done, { once: true });
    });
  }

  async function offer(d: Delivery<WriteRecord>, paused: PausedGauge): Promise<void> {
    while (!batcher.offer([d])) {
      if (stop.signal.aborted || !batcher.accepting()) {
        // Shutting down: hand it back now rather than wait for ack_wait.
        d.retry();
        return;
      }
      metrics.backpressure.inc({ source: 'jetstream' });
      await pausedFor(paused, batcher.waitForRoom(1, d.sizeBytes, stop.signal));
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
    const specs: (StreamSpec | null)[] = [...options.streams, null];
    await Promise.all(
      specs.map(async (spec) => {
        const name = streamName(spec ?? ADVISORY_STREAM);
        try {
          const info = await jsm.consumers.info(name, durableName(name));
          metrics.consumerLag.set({ stream: labelOf(spec) }, info.num_pending + info.num_ack_pending);
        } catch (err) {
          // The last value stays; the pull loop reports (and repairs) a missing stream or consumer.
          logger.debug({ err, stream: name }, 'cannot read JetStream consumer lag');
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
    tick();
  }

  /** Turns a message into a record; a payload that breaks normalization itself becomes a reject. */
  async function recordOf(spec: StreamSpec | null, jsm: JetStreamManager, msg: JsMsg): Promise<WriteRecord> {
    try {
      return spec ? toRecord(spec, msg) : await advisoryRecord(jsm, msg);
    } catch (err) {
      const input: RecordInput = {
        origin: 'nats',
        subject: localSubject(msg.subject),
        key: `nats:${msg.info.stream}:${msg.info.streamSequence}`,
      };
      const detail = `payload cannot be normalized: ${(err as Error).message}`;
      return rejectRecord(input, decoder.decode(msg.data), 'invalid_event', detail);
    }
  }

  async function pullLoop(
    nc: NatsConnection,
    jsm: JetStreamManager,
    name: string,
    spec: StreamSpec | null,
  ): Promise<void> {
    const js = nc.jetstream();
    const stream = labelOf(spec);
    // Bound once per stream: counting a message allocates no label object.
    const receivedCount = metrics.received.labels({ origin: 'nats', stream });
    const redeliveredCount = metrics.redeliveries.labels({ stream });
    const naks = metrics.naks.labels({ stream });
    const paused = metrics.jetstreamPaused.labels({ stream });
    let consumer: Awaited<ReturnType<typeof js.consumers.get>> | undefined;
    while (!stop.signal.aborted) {
      try {
        if (!batcher.hasRoom(options.fetchBatch)) {
          metrics.backpressure.inc({ source: 'jetstream' });
          await pausedFor(paused, batcher.waitForRoom(options.fetchBatch, 0, stop.signal));
          if (stop.signal.aborted) break;
        }
        consumer ??= await js.consumers.get(name, durableName(name));
        const messages = await consumer.fetch({ max_messages: options.fetchBatch, expires: 1_000 });
        const onAbort = (): void => messages.stop();
        stop.signal.addEventListener('abort', onAbort, { once: true });
        // Every message is registered (its ack deadline kept alive) the moment it arrives, even while
        // an earlier one waits for buffer room: no message may sit unregistered past ack_wait.
        const arrived: MessageDelivery[] = [];
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
              received++;
              if (msg.redelivered) redelivered++;
              arrived.push(new MessageDelivery(msg, await recordOf(spec, jsm, msg), naks));
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
        consumer = undefined;
        logger.warn({ err, stream: name }, 'JetStream pull failed; retrying');
        if (/not found/i.test((err as Error).message)) {
          // The stream or consumer was deleted under us: put it back.
          await ensureTopology(nc).catch((e: unknown) =>
            logger.warn({ err: e }, 'cannot restore JetStream topology'),
          );
        }
        await sleep(1_000);
      }
    }
  }

  /** Extends the ack deadline of messages held longer than a third of ack_wait (e.g. while Postgres is down). */
  function keepAlive(): void {
    const now = Date.now();
    const every = options.ackWaitMillis / 3;
    for (const [msg, since] of inFlight) {
      if (now - since >= every) {
        try {
          msg.working();
          inFlight.set(msg, now);
        } catch {
          // Disconnected: the message will be redelivered and deduplicated.
        }
      }
    }
  }

  async function run(): Promise<void> {
    // Not forever: a shutdown while NATS has never been reachable must not wait for it.
    const nc = await Promise.race([
      link.ready(),
      new Promise<undefined>((resolve) =>
        stop.signal.addEventListener('abort', () => resolve(undefined), { once: true }),
      ),
    ]);
    if (!nc) return;
    let jsm: JetStreamManager | undefined;
    while (!stop.signal.aborted && !jsm) {
      try {
        jsm = await ensureTopology(nc);
      } catch (err) {
        logger.warn({ err }, 'cannot set up JetStream streams and consumers; retrying');
        await sleep(2_000);
      }
    }
    if (!jsm || stop.signal.aborted) return;
    consuming = true;
    workingTimer = setInterval(keepAlive, Math.max(100, options.ackWaitMillis / 6));
    startLagTimer(jsm);
    const streams = options.streams.map((s) => pullLoop(nc, jsm, streamName(s), s));
    await Promise.all([...streams, pullLoop(nc, jsm, streamName(ADVISORY_STREAM), null)]);
  }

  return {
    name: 'jetstream',
    origin: 'nats',
    consuming: () => consuming,
    health() {
      const state = link.state();
      const up = state === 'connected' && consuming;
      const detail = state === 'connected' ? 'setting up consumers' : state;
      return up
        ? { dependencies: { nats: { state: 'up' } } }
        : { dependencies: { nats: { state: 'down', detail } }, reasons: [`nats ${detail}`] };
    },
    start() {
      if (started) return Promise.resolve();
      started = true;
      loops.push(
        run().catch((err: unknown) => {
          logger.error({ err }, 'JetStream source stopped unexpectedly');
        }),
      );
      return Promise.resolve();
    },
    async shutdown(deadline) {
      if (stop.signal.aborted) return;
      stop.abort();
      consuming = false;
      await untilAborted(deadline, Promise.all(loops));
      // Held messages keep their ack deadline alive until the batcher has settled them.
      const settled = new Promise<void>((resolve) => {
        const check = (): void => {
          if (inFlight.size === 0 || deadline.aborted) {
            clearInterval(poll);
            resolve();
          }
        };
        const poll = setInterval(check, 20);
        check();
      });
      await settled;
      if (workingTimer) clearInterval(workingTimer);
      if (lagTimer) clearInterval(lagTimer);
    },
  };
}
