import { type MsgHdrs, Match } from 'nats';
import {
  type DecodedRequest,
  type OtlpFormat,
  OtlpDecodeError,
  decodeRequest,
} from '../../events/otlp/decode.js';
import { otlpFormatOf, spanInputs, undecodableInput } from '../../events/otlp/request-inputs.js';
import type { RecordInput } from '../../pipeline/records.js';
import type { Offer } from '../../pipeline/settle.js';
import { type RawPayload, rejectOffer, utf8Text } from '../nats/pulled-stream.js';

/*
 * What one OTLP-over-NATS message becomes: shared by the source and `chronicle replay-rejects`, which
 * feeds a given-up message back through the same conversion (each span's event_id comes from its ids,
 * so a replay stores nothing twice).
 */

/**
 * A payload as text for chronicle_rejects: OTLP/JSON as it is (when it is UTF-8), anything else
 * (protobuf) as base64.
 */
export function otlpPayloadText(data: Uint8Array, headers: MsgHdrs | undefined): RawPayload {
  const contentType = headers?.get('Content-Type', Match.IgnoreCase) ?? '';
  if (contentType !== '' && otlpFormatOf(contentType) === 'json') return utf8Text(data);
  return {
    text: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'),
    encoding: 'base64',
  };
}

/**
 * The records of one message in `format`, from `message` (its input, keyed by stream and sequence):
 * an event per span (with the span to forward), a reject per bad span, or one reject for a payload
 * that does not decode (`invalid_otlp`, `invalid_utf8`).
 */
export function otlpMessageOffers(data: Uint8Array, format: OtlpFormat, message: RecordInput): Offer[] {
  let decoded: DecodedRequest;
  try {
    decoded = decodeRequest(data, format);
  } catch (err) {
    if (!(err instanceof OtlpDecodeError)) throw err;
    const { reason, detail, raw, encoding } = undecodableInput(data, format, err);
    return [rejectOffer(message, { text: raw, encoding }, reason, detail)];
  }
  return spanInputs(decoded).map((span, i): Offer => {
    // Keyed per span, so that a redelivered message records its bad spans once.
    const input: RecordInput = { ...message, key: `${message.key}:${i}` };
    if (!span.ok) return rejectOffer(input, span.raw, span.reason, span.detail);
    // The event's metadata and the forwarded span each hold about the span's JSON.
    return {
      record: { kind: 'event', input, event: span.event, forward: span.forward },
      sizeBytes: span.raw.length * 4 + 512,
    };
  });
}
