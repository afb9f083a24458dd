import { type JsMsg, Match } from 'nats';
import type { OtlpFormat } from '../../events/otlp/decode.js';
import { otlpFormatOf } from '../../events/otlp/request-inputs.js';
import type { Consumer, Source } from '../../pipeline/contracts.js';
import type { Offer } from '../../pipeline/settle.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import { type JetStreamPullOptions, createJetStreamPuller } from '../nats/jetstream-consumer.js';
import { maxDeliveriesAdvisories } from '../nats/max-deliver-advisories.js';
import type { NatsLink } from '../nats/nats-link.js';
import {
  type PulledStream,
  messageInput,
  namespacedStream,
  namespacedSubject,
  rejectOffer,
} from '../nats/pulled-stream.js';
import { otlpMessageOffers, otlpPayloadText } from './message-offers.js';

/** Tunables of the OTLP-over-NATS source (see config.ts for the variables that set them). */
export interface OtlpNatsSourceOptions extends JetStreamPullOptions {
  /** The JetStream stream, without the namespace (`OTLP_TRACES`). */
  stream: string;
  /** Its subjects when Chronicle creates it, without the namespace (`otlp.traces`). */
  subjects: readonly string[];
}

export const DEFAULT_OTLP_NATS_STREAM = 'OTLP_TRACES';
export const DEFAULT_OTLP_NATS_SUBJECTS: readonly string[] = ['otlp.traces'];

/**
 * The stream that captures the max_deliver advisories of the OTLP stream's durable: the source's own,
 * not the event streams' CHRONICLE_ADVISORIES, because a stream is created with its subjects and never
 * altered: a shared one would listen only for the durables of whichever source created it first, and
 * the other's given-up messages would be lost silently. Named after the OTLP stream, so that a
 * renamed stream gets an advisory stream that listens for it.
 */
export function otlpAdvisoryStream(stream: string): string {
  return `CHRONICLE_ADVISORIES_${stream}`;
}

export interface OtlpNatsSourceDeps {
  link: NatsLink;
  /** Where the spans are offered (the batcher); its buffer bounds pause pulling. */
  consumer: Consumer;
  logger: Logger;
  /** chronicle_inputs_received_total (origin nats, stream OTLP_TRACES) counts records: spans and rejects. */
  metrics: Metrics;
}

export interface OtlpNatsSource extends Source {
  /** True once the streams and durables are in place and pulling has started. */
  consuming(): boolean;
}

/**
 * OTLP trace payloads published on NATS (as the OpenTelemetry Collector's NATS exporter and receiver
 * do): each JetStream message holds one ExportTraceServiceRequest, binary protobuf or OTLP/JSON as its
 * `Content-Type` header says (protobuf when it has none). Its spans become canonical events exactly as
 * over OTLP/HTTP (request-inputs.ts), so the same span received both ways is stored once. The message
 * is acked after its spans are committed; a payload that does not decode, or whose content type is
 * neither, is recorded in chronicle_rejects and terminated; a span that breaks a rule is recorded and
 * the others are kept.
 */
export function createOtlpNatsSource(
  options: OtlpNatsSourceOptions,
  deps: OtlpNatsSourceDeps,
): OtlpNatsSource {
  const ns = options.namespace;

  /** The reject that stands for the whole message. */
  function messageReject(msg: JsMsg, reason: string, detail: string): Offer[] {
    return [rejectOffer(messageInput(ns, msg), otlpPayloadText(msg.data, msg.headers), reason, detail)];
  }

  /** The records of one message: an event per span (with the span to forward), a reject per bad span. */
  function toOffers(msg: JsMsg): Offer[] {
    const contentType = msg.headers?.get('Content-Type', Match.IgnoreCase) ?? '';
    const format: OtlpFormat | undefined = contentType === '' ? 'protobuf' : otlpFormatOf(contentType);
    if (format === undefined) {
      const detail = `Content-Type must be application/x-protobuf or application/json (none: protobuf), got ${JSON.stringify(contentType)} (payload: the message, base64)`;
      return messageReject(msg, 'unsupported_content_type', detail);
    }
    return otlpMessageOffers(msg.data, format, messageInput(ns, msg));
  }

  const name = namespacedStream(ns, options.stream);
  const traces: PulledStream = {
    name,
    label: options.stream,
    subjects: options.subjects.map((s) => namespacedSubject(ns, s)),
    toOffers,
    failureReason: 'invalid_otlp',
    tooManyReason: 'too_many_spans',
    manyRecordsPerMessage: true,
    payloadText: otlpPayloadText,
  };
  const advisories = maxDeliveriesAdvisories({
    name: namespacedStream(ns, otlpAdvisoryStream(options.stream)),
    label: otlpAdvisoryStream(options.stream),
    namespace: ns,
    watched: [name],
    payloadText: otlpPayloadText,
  });
  const puller = createJetStreamPuller(options, [traces, advisories], {
    ...deps,
    backpressureSource: 'otlp-nats',
  });

  return {
    name: 'otlp-nats',
    origin: 'nats',
    consuming: () => puller.consuming(),
    health: () => puller.health('OTLP traces'),
    start() {
      puller.start();
      return Promise.resolve();
    },
    shutdown: (deadline) => puller.shutdown(deadline),
  };
}
