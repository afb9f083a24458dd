import type { JetStreamManager, JsMsg, MsgHdrs } from 'nats';
import { type RejectPayloadOptions, decodeUtf8, makeReject } from '../../events/normalize.js';
import type { PayloadEncoding } from '../../events/schema.js';
import type { RecordInput, WriteRecord } from '../../pipeline/records.js';
import type { Offer } from '../../pipeline/settle.js';

/*
 * What a NATS source tells the shared pulling (jetstream-consumer.ts) about each of its streams, and the
 * small helpers its conversions share: names with the namespace, the input of a message, a reject.
 */

/** A stream a NATS source pulls from, and how its messages become records. */
export interface PulledStream {
  /** The stream's name on the server (with the namespace). */
  readonly name: string;
  /** Its name in metric labels (without the namespace). */
  readonly label: string;
  /** Subjects it is created with when missing (with the namespace); an existing stream is never altered. */
  readonly subjects: readonly string[];
  /** max_age it is created with; unset: kept within the server's limits. */
  readonly maxAgeMillis?: number;
  /**
   * The records of one message, in order; none: the message is acked at once. A throw makes the message
   * one reject with `failureReason`.
   */
  toOffers(msg: JsMsg, jsm: JetStreamManager): Offer[] | Promise<Offer[]>;
  /** Reason code of the reject recorded for a message toOffers throws on. */
  readonly failureReason: string;
  /** Reason code of the reject recorded for a message with more records than the consumer holds. */
  readonly tooManyReason: string;
  /**
   * True when one message may become many records (an OTLP request of thousands of spans): each pull
   * is then bounded in bytes too, so that what has arrived and waits for buffer room stays small.
   */
  readonly manyRecordsPerMessage?: boolean;
  /** A payload as text for chronicle_rejects (utf8Text when absent; base64 suits binary payloads). */
  payloadText?(data: Uint8Array, headers: MsgHdrs | undefined): RawPayload;
}

/** The durable consumer Chronicle keeps on a stream. */
export function durableName(stream: string): string {
  return `chronicle-${stream}`;
}

/** `TASK_EVENTS` → `T1A2B3C4D_TASK_EVENTS`. */
export function namespacedStream(namespace: string, stream: string): string {
  return `${namespace}${stream}`;
}

/** `swarm.task.>` → `t1a2b3c4d_swarm.task.>`. */
export function namespacedSubject(namespace: string, subject: string): string {
  return `${namespace.toLowerCase()}${subject}`;
}

/** A subject as records name it: without the namespace. */
export function localSubject(namespace: string, subject: string): string {
  return namespace !== '' && subject.startsWith(namespace.toLowerCase())
    ? subject.slice(namespace.length)
    : subject;
}

/** A payload as chronicle_rejects holds it: its text, or its bytes in base64 when they are not text. */
export interface RawPayload {
  text: string;
  encoding: PayloadEncoding;
}

/**
 * A payload as UTF-8 text, the default of PulledStream.payloadText; bytes that are not UTF-8 are kept
 * as they are (base64), never decoded with replacement characters.
 */
export function utf8Text(data: Uint8Array): RawPayload {
  const text = decodeUtf8(data);
  return text === undefined
    ? {
        text: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'),
        encoding: 'base64',
      }
    : { text, encoding: 'utf8' };
}

/** The input a message's records come from: keyed by stream and sequence, so a redelivery dedups. */
export function messageInput(namespace: string, msg: JsMsg): RecordInput {
  return {
    origin: 'nats',
    subject: localSubject(namespace, msg.subject),
    key: `nats:${msg.info.stream}:${msg.info.streamSequence}`,
  };
}

/** A reject of `raw` to offer, keyed (for dedup of redeliveries) by `key`, the input's own by default. */
export function rejectOffer(
  input: RecordInput,
  raw: string | RawPayload,
  reason: string,
  detail: string,
  key = input.key,
  options: RejectPayloadOptions = {},
): Offer {
  const text = typeof raw === 'string' ? raw : raw.text;
  const encoding = typeof raw === 'string' ? options.encoding : raw.encoding;
  const reject = makeReject(text, input, reason, detail, key, { ...options, encoding });
  return {
    record: { kind: 'reject', input, reject } satisfies WriteRecord,
    sizeBytes: text.length * 2 + 512,
  };
}
