import { normalizeDlq } from '../events/dlq.js';
import type { CanonicalEvent } from '../events/schema.js';
import { DLQ_SUBJECT_PREFIX, type SimMessage } from './traffic.js';

/**
 * The event Chronicle stores for a message: the payload itself for a canonical event, and for a
 * dead-letter entry the `dlq.entry` event Chronicle adds to the original payload's trace (computed by
 * Chronicle's own normalizer, so ids and fields are exactly what it writes); null for an entry whose
 * original payload names no trace.
 */
export function storedEventOf(message: SimMessage): CanonicalEvent | null {
  if (!message.subject.startsWith(DLQ_SUBJECT_PREFIX)) return message.payload as unknown as CanonicalEvent;
  const normalized = normalizeDlq(message.payload, {
    origin: 'nats',
    subject: message.subject,
    defaultTimeMillis: 0,
  });
  if (!normalized.ok)
    throw new Error(`simulator produced an invalid dead-letter entry: ${normalized.detail}`);
  return normalized.value.event;
}
