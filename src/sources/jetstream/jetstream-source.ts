import type { Consumer, Source } from '../../pipeline/contracts.js';
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
} from '../nats/pulled-stream.js';
import { streamMessageRecord } from './message-record.js';

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
  // Short, so that a restart after a crash waits at most this long for the dead process's messages
  // (they hold the durable's ack-pending slots until their deadline): measured 29.9 s at 30 s, 4.3–5.0 s at
  // 5 s (test/integration/restart-stall.test.ts). Live messages are kept alive with working() from a
  // third of it on (jetstream-consumer.ts), so a long flush or outage spends no delivery.
  ackWaitMillis: 5_000,
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

  const streams = options.streams.map((spec): PulledStream => {
    const name = namespacedStream(ns, spec.name);
    return {
      name,
      label: spec.name,
      subjects: spec.subjects.map((s) => namespacedSubject(ns, s)),
      // A payload that breaks normalization itself throws: recorded as invalid_event.
      toOffers: (msg): Offer[] => [
        {
          record: streamMessageRecord(
            spec.kind,
            {
              subject: localSubject(ns, msg.subject),
              stream: name,
              seq: msg.info.streamSequence,
              timeMillis: Math.floor(msg.info.timestampNanos / 1e6),
            },
            msg.data,
          ),
          sizeBytes: msg.data.length * 2 + 512,
        },
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
