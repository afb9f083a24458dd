import { z } from 'zod';
import { type InputContext, type Normalized, isPlainObject, parseJson, stripNul } from './normalize.js';
import { LIMITS, type CanonicalEvent, type DlqEntry } from './schema.js';
import { parseTimestamp } from './timestamp.js';
import { uuidV5 } from './uuid.js';

const text = z.union([z.string(), z.number()]).transform(String).nullish();
const count = z.number().int().nonnegative().nullish();

// The swarm's dead-letter shape; every field optional so a partial entry is still kept.
const dlqSchema = z.object({
  dlq_id: text,
  original_subject: text,
  original_payload: z.unknown().optional(),
  reason: text,
  reason_detail: text,
  failed_at: z.unknown().optional(),
  retry_count: count,
  max_retries: count,
  retry_history: z.array(z.unknown()).nullish(),
  source: text,
  recoverable: z.boolean().nullish(),
  recovered: z.boolean().nullish(),
});

export interface NormalizedDlq {
  entry: DlqEntry;
  /** The `dlq.entry` event on the original payload's trace, when it has a trace_id. */
  event: CanonicalEvent | null;
}

/** Reads the original payload's trace_id, whether it was embedded as an object or as a JSON string. */
function traceIdOf(original: unknown): string | null {
  let value = original;
  if (typeof value === 'string') {
    const parsed = parseJson(value);
    value = parsed.ok ? parsed.value : undefined;
  }
  if (!isPlainObject(value)) return null;
  const id = stripNul(value.trace_id);
  return typeof id === 'string' && id !== '' && id.length <= LIMITS.traceIdChars ? id : null;
}

/** Normalizes a dead-letter entry from `dlq.>`; deterministic for the same message. */
export function normalizeDlq(payload: unknown, ctx: InputContext): Normalized<NormalizedDlq> {
  if (!isPlainObject(payload)) {
    return { ok: false, reason: 'not_object', detail: 'a dead-letter entry must be a JSON object' };
  }
  const parsed = dlqSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return {
      ok: false,
      reason: 'invalid_dlq_entry',
      detail: `${issue.path.join('.') || 'entry'}: ${issue.message}`,
    };
  }
  const d = stripNul(parsed.data) as z.infer<typeof dlqSchema>;
  let failedAt: string | null = null;
  if (d.failed_at !== undefined && d.failed_at !== null) {
    const millis = parseTimestamp(d.failed_at);
    if (millis === undefined) {
      return {
        ok: false,
        reason: 'invalid_timestamp',
        detail: 'failed_at must be RFC 3339 or epoch milliseconds',
      };
    }
    failedAt = new Date(millis).toISOString();
  }
  const dlqId =
    d.dlq_id ??
    uuidV5(ctx.stream !== undefined ? `jetstream:${ctx.stream}:${ctx.seq}` : JSON.stringify(payload));
  const traceId = traceIdOf(d.original_payload);
  const entry: DlqEntry = {
    dlq_id: dlqId,
    original_subject: d.original_subject ?? null,
    original_payload: d.original_payload ?? null,
    reason: d.reason ?? null,
    reason_detail: d.reason_detail ?? null,
    failed_at: failedAt,
    retry_count: d.retry_count ?? null,
    max_retries: d.max_retries ?? null,
    retry_history: d.retry_history ?? null,
    source: d.source ?? null,
    recoverable: d.recoverable ?? null,
    recovered: d.recovered ?? false,
    trace_id: traceId,
    subject: ctx.subject ?? null,
  };
  if (Buffer.byteLength(JSON.stringify(entry)) > LIMITS.metadataBytes) {
    return {
      ok: false,
      reason: 'metadata_too_large',
      detail: `dead-letter entry is over the ${LIMITS.metadataBytes}-byte limit`,
    };
  }
  const event: CanonicalEvent | null =
    traceId === null
      ? null
      : {
          event_id: uuidV5(`dlq:${dlqId}`),
          trace_id: traceId,
          source: entry.source ?? ctx.subject ?? ctx.origin,
          event_type: 'dlq.entry',
          timestamp: failedAt ?? new Date(ctx.defaultTimeMillis).toISOString(),
          metadata: {
            dlq_id: dlqId,
            reason: entry.reason,
            reason_detail: entry.reason_detail,
            original_subject: entry.original_subject,
            retry_count: entry.retry_count,
            max_retries: entry.max_retries,
            recoverable: entry.recoverable,
          },
        };
  return { ok: true, value: { entry, event } };
}
