import { isUtf8 } from 'node:buffer';
import { stripNul } from '../normalize.js';
import type { CanonicalEvent, PayloadEncoding } from '../schema.js';
import type { SpanRecord } from '../span-record.js';
import type { DecodedRequest, OtlpDecodeError, OtlpFormat } from './decode.js';
import { spanToEvent } from './span-to-event.js';

/**
 * What one span of an OTLP request becomes, whatever carried it (OTLP/HTTP, NATS): a canonical event
 * with the span to forward, or a reject with its reason. `raw` is the span as JSON: the payload of a
 * reject, and a measure of the memory the input holds.
 */
export type SpanInput =
  | { ok: true; event: CanonicalEvent; forward: SpanRecord; raw: string }
  | { ok: false; reason: string; detail: string; raw: string };

const MEDIA_TYPES: Record<string, OtlpFormat> = {
  'application/x-protobuf': 'protobuf',
  'application/json': 'json',
};

/**
 * The encoding a Content-Type names (`application/x-protobuf` or `application/json`; parameters such
 * as charset ignored, case too); undefined for any other media type.
 */
export function otlpFormatOf(contentType: string): OtlpFormat | undefined {
  return MEDIA_TYPES[contentType.split(';')[0]!.trim().toLowerCase()];
}

function rawOf(span: SpanRecord): string {
  try {
    return JSON.stringify(span);
  } catch {
    return '(not serializable: nested too deeply)';
  }
}

/**
 * Every span of a decoded request, in order: the spans that passed OTLP validation mapped by
 * span-to-event.ts (a span that breaks a canonical rule becomes a reject), then the ones that broke an
 * OTLP rule. The forwarded span is the one received, except for what Postgres cannot store (NUL, lone
 * surrogates), as in its event.
 */
export function spanInputs(decoded: DecodedRequest): SpanInput[] {
  const inputs = decoded.spans.map((span): SpanInput => {
    const raw = rawOf(span);
    const event = spanToEvent(span);
    if (!event.ok) return { ok: false, reason: event.reason, detail: event.detail, raw };
    return { ok: true, event: event.value, forward: stripNul(span) as SpanRecord, raw };
  });
  for (const r of decoded.rejected) {
    inputs.push({ ok: false, reason: r.reason, detail: r.detail, raw: rawOf(r.span) });
  }
  return inputs;
}

/**
 * The reject of a body that does not decode (reason `invalid_otlp`, or `invalid_utf8` for JSON or a
 * protobuf string that is not UTF-8): the payload as text when it is UTF-8 sent as OTLP/JSON, else its
 * bytes in base64 (the detail and `encoding` say so).
 */
export function undecodableInput(
  body: Uint8Array,
  format: OtlpFormat,
  err: OtlpDecodeError,
): { reason: 'invalid_otlp' | 'invalid_utf8'; detail: string; raw: string; encoding: PayloadEncoding } {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return format === 'json' && isUtf8(bytes)
    ? { reason: err.reason, detail: err.message, raw: bytes.toString('utf8'), encoding: 'utf8' }
    : {
        reason: err.reason,
        detail: `${err.message} (payload: the body, base64)`,
        raw: bytes.toString('base64'),
        encoding: 'base64',
      };
}
