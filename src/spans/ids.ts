import { createHash } from 'node:crypto';

const HEX32 = /^[0-9a-f]{32}$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ZERO_TRACE = '0'.repeat(32);

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * The OpenTelemetry trace id of a swarm trace_id: 32 hex digits are used as they are (lower-cased), so a
 * producer can join an existing OTel trace; a UUID gives its 32 hex digits; anything else (and the
 * invalid all-zero id) the first 16 bytes of SHA-256(trace_id).
 */
export function otelTraceId(traceId: string): string {
  if (HEX32.test(traceId) && traceId !== ZERO_TRACE) return traceId.toLowerCase();
  if (UUID.test(traceId)) {
    const hex = traceId.replace(/-/g, '').toLowerCase();
    if (hex !== ZERO_TRACE) return hex;
  }
  const id = sha256(traceId).subarray(0, 16);
  // All-zero is invalid in OTLP; 2^-128, but cheap to rule out.
  if (id.every((b) => b === 0)) id[15] = 1;
  return id.toString('hex');
}

/**
 * A deterministic span id: the first 8 bytes of SHA-256 over the trace_id and the span's role and
 * position (e.g. `execution`, 2). The same trace always gives the same ids, so an export retried after
 * a crash sends the same spans.
 */
export function otelSpanId(traceId: string, role: string, position: number | string = 0): string {
  const digest = sha256(`${traceId}\u0000${role}\u0000${position}`);
  const id = digest.subarray(0, 8);
  // All-zero is invalid in OTLP; 2^-64, but cheap to rule out.
  if (id.every((b) => b === 0)) id[7] = 1;
  return id.toString('hex');
}

/** Milliseconds since the epoch (or an RFC 3339 string) as OTLP's nanosecond decimal string. */
export function unixNanos(time: number | string | Date): string {
  const millis = typeof time === 'number' ? time : new Date(time).getTime();
  return (BigInt(Math.round(millis)) * 1_000_000n).toString();
}
