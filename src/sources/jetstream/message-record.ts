import { normalizeDlq } from '../../events/dlq.js';
import {
  type InputContext,
  decodeUtf8,
  invalidUtf8Detail,
  mayNeedCleaning,
  normalizeEvent,
  parseJson,
} from '../../events/normalize.js';
import type { RecordInput, WriteRecord } from '../../pipeline/records.js';
import { rejectOffer } from '../nats/pulled-stream.js';

/*
 * What one message of the swarm's event streams becomes: shared by the JetStream source and
 * `chronicle replay-rejects`, which rebuilds a given-up message from its reject and feeds it back
 * through the same conversion (same event_id, same default timestamp).
 */

/** Where a message of an event stream sits. */
export interface StreamMessage {
  /** Its subject without the namespace. */
  subject: string;
  /** The stream's name on the server (with the namespace): with `seq`, the stable event_id of an event without one. */
  stream: string;
  seq: number;
  /** The message's own time, the timestamp of an event without one. */
  timeMillis: number;
}

/**
 * The record a message of an event stream is: its event (`events`), its dead-letter entry (`dlq`),
 * or the reject that says why it is neither (a payload that is not UTF-8: `invalid_utf8`, its bytes
 * kept). Throws only for a payload that breaks normalization itself (recorded as invalid_event).
 */
export function streamMessageRecord(
  kind: 'events' | 'dlq',
  message: StreamMessage,
  data: Uint8Array,
): WriteRecord {
  const { subject, stream, seq } = message;
  const input: RecordInput = { origin: 'nats', subject, key: `nats:${stream}:${seq}` };
  const options = { inputTimeMillis: message.timeMillis };
  const raw = decodeUtf8(data);
  if (raw === undefined) {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
    return rejectOffer(input, bytes, 'invalid_utf8', invalidUtf8Detail('the payload'), input.key, {
      ...options,
      encoding: 'base64',
    }).record;
  }
  const reject = (reason: string, detail: string): WriteRecord =>
    rejectOffer(input, raw, reason, detail, input.key, options).record;
  const ctx: InputContext = {
    origin: 'nats',
    subject,
    stream,
    seq,
    defaultTimeMillis: message.timeMillis,
    cleanText: !mayNeedCleaning(raw),
    payloadChars: raw.length,
  };
  const parsed = parseJson(raw);
  if (!parsed.ok) return reject(parsed.reason, parsed.detail);
  if (kind === 'dlq') {
    const dlq = normalizeDlq(parsed.value, ctx);
    if (!dlq.ok) return reject(dlq.reason, dlq.detail);
    return { kind: 'dlq', input, entry: dlq.value.entry, event: dlq.value.event };
  }
  const event = normalizeEvent(parsed.value, ctx);
  if (!event.ok) return reject(event.reason, event.detail);
  return { kind: 'event', input, event: event.value };
}
