import { z } from 'zod';

/** Bounds of the canonical event, enforced by normalize(). */
export const LIMITS = {
  traceIdChars: 256,
  sourceChars: 256,
  eventTypeChars: 256,
  metadataBytes: 256 * 1024,
  rejectPayloadBytes: 64 * 1024,
} as const;

/** The canonical event: every input becomes exactly this shape before it is written. */
export const canonicalEventSchema = z.object({
  event_id: z.uuid(),
  trace_id: z.string().min(1).max(LIMITS.traceIdChars),
  source: z.string().min(1).max(LIMITS.sourceChars),
  event_type: z.string().min(1).max(LIMITS.eventTypeChars),
  /** RFC 3339 UTC with milliseconds, e.g. 2026-02-12T14:30:00.000Z. */
  timestamp: z.iso.datetime(),
  metadata: z.record(z.string(), z.unknown()),
});

export type CanonicalEvent = z.infer<typeof canonicalEventSchema>;

/** Lifecycle event types and their rank: stated in ./lifecycle.ts, re-exported for existing importers. */
export { LIFECYCLE_RANK } from './lifecycle.js';

/** A dead-letter entry as the swarm publishes it on `dlq.>`, after normalization. */
export interface DlqEntry {
  dlq_id: string;
  original_subject: string | null;
  original_payload: unknown;
  reason: string | null;
  reason_detail: string | null;
  failed_at: string | null;
  retry_count: number | null;
  max_retries: number | null;
  retry_history: unknown[] | null;
  source: string | null;
  recoverable: boolean | null;
  recovered: boolean;
  /** trace_id of the original payload, when it has one. */
  trace_id: string | null;
  subject: string | null;
}

/** Input that could not be accepted, with its reason; stored in chronicle_rejects. */
export interface Reject {
  origin: 'nats' | 'http' | 'otlp';
  subject: string | null;
  /** Short stable code, e.g. `invalid_timestamp`. */
  reason: string;
  /** Human-readable explanation. */
  detail: string;
  /** Raw payload, truncated to LIMITS.rejectPayloadBytes. */
  payload: string;
  payloadBytes: number;
  /** Dedup key so a redelivered reject is recorded once (e.g. `nats:TASK_EVENTS:42`); null for HTTP. */
  rejectKey: string | null;
  /** How `payload` holds the input: `utf8` text as received (the default) or `base64` bytes. */
  encoding?: PayloadEncoding;
  /** The time an input without a timestamp takes (JetStream message time, HTTP receive time), RFC 3339. */
  inputTime?: string | null;
}

/** How chronicle_rejects.payload holds the raw input (payload_encoding). */
export type PayloadEncoding = 'utf8' | 'base64';
