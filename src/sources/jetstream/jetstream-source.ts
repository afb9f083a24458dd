import type { JsMsg } from 'nats';
import { normalizeDlq } from '../../events/dlq.js';
import { type InputContext, mayNeedCleaning, normalizeEvent, parseJson } from '../../events/normalize.js';
import type { Consumer, Source } from '../../pipeline/contracts.js';
import type { RecordInput, WriteRecord } from '../../pipeline/records.js';
import type { Offer } from '../../pipeline/settle.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import {
  DEFAULT_LAG_REFRESH_MILLIS,
  type JetStreamPullOptions,
  createJetStreamPuller,
} from '../nats/jetstream-consumer.js';
import { maxDeliveriesAdvisories } from '../nats/max-deliver-advisories.js';
import type { NatsLink } from '../nats/nats-link.js';
import {
  type PulledStream,
  durableName,
  localSubject,
  namespacedStream,
  namespacedSubject,
  rejectOffer,
} from '../nats/pulled-stream.js';

export { DEFAULT_LAG_REFRESH_MILLIS, durableName };

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

/** The streams, and the pulling's tunables (the namespace lets tests run side by side on one server). */
export interface JetStreamSourceOptions extends JetStreamPullOptions {
  streams: readonly StreamSpec[];
}

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

/** Captures the max_deliver advisories of the event streams' durables (see maxDeliveriesAdvisories). */
export const ADVISORY_STREAM = 'CHRONICLE_ADVISORIES';

const decoder = new TextDecoder();

/**
 * The swarm's event streams (canonical events and dead-letter entries, JSON), pulled by durable
 * consumers; each message is one record, acked after its commit. See jetstream-consumer.ts for the
 * pulling, the backpressure and the settling.
 */
export function createJetStreamSource(
  options: JetStreamSourceOptions,
  deps: JetStreamSourceDeps,
): JetStreamSource {
  const ns = options.namespace;

  /** Turns one message into the record the store writes (a payload that breaks normalization itself throws: recorded as invalid_event). */
  function toRecord(spec: StreamSpec, name: string, msg: JsMsg): WriteRecord {
    const subject = localSubject(ns, msg.subject);
    const seq = msg.info.streamSequence;
    const input: RecordInput = { origin: 'nats', subject, key: `nats:${name}:${seq}` };
    const raw = decoder.decode(msg.data);
    const reject = (reason: string, detail: string): WriteRecord =>
      rejectOffer(input, raw, reason, detail).record;
    const ctx: InputContext = {
      origin: 'nats',
      subject,
      stream: name,
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

  const streams = options.streams.map((spec): PulledStream => {
    const name = namespacedStream(ns, spec.name);
    return {
      name,
      label: spec.name,
      subjects: spec.subjects.map((s) => namespacedSubject(ns, s)),
      toOffers: (msg): Offer[] => [
        { record: toRecord(spec, name, msg), sizeBytes: msg.data.length * 2 + 512 },
      ],
      failureReason: 'invalid_event',
      tooManyReason: 'too_many_records',
    };
  });
  const advisories = maxDeliveriesAdvisories({
    name: namespacedStream(ns, ADVISORY_STREAM),
    label: ADVISORY_STREAM,
    namespace: ns,
    watched: streams.map((s) => s.name),
  });
  const puller = createJetStreamPuller(options, [...streams, advisories], {
    ...deps,
    backpressureSource: 'jetstream',
  });

  return {
    name: 'jetstream',
    origin: 'nats',
    consuming: () => puller.consuming(),
    health: () => puller.health(),
    start() {
      puller.start();
      return Promise.resolve();
    },
    shutdown: (deadline) => puller.shutdown(deadline),
  };
}
