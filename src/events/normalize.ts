import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { LIMITS, type CanonicalEvent, type PayloadEncoding, type Reject } from './schema.js';
import { isCanonicalTimestamp, parseTimestamp } from './timestamp.js';
import { isUuid, uuidV5 } from './uuid.js';

/** Where an input came from; supplies the defaults the issue assigns to each source. */
export interface InputContext {
  origin: 'nats' | 'http' | 'otlp';
  /** NATS subject, without any test prefix. */
  subject?: string;
  /** JetStream stream name and sequence: the deterministic event_id when the payload has none. */
  stream?: string;
  seq?: number;
  /**
   * Seed of a stable event_id for input without one and without a stream and sequence (a replayed HTTP
   * reject: `reject:<id>`), so that replaying it twice stores it once.
   */
  eventIdKey?: string;
  /** The JetStream message's own time (stable across redeliveries), or the receive time for HTTP. */
  defaultTimeMillis: number;
  /**
   * True when the JSON text the payload was parsed from cannot hold a NUL or a lone surrogate
   * (see mayNeedCleaning), so the per-string cleaning pass can be skipped.
   */
  cleanText?: boolean;
  /** Length (UTF-16 units) of the JSON text the payload was parsed from, when it is known. */
  payloadChars?: number;
}

/**
 * False when JSON text certainly parses to strings Postgres accepts: no NUL (raw or escaped) and no
 * escaped surrogate (decoded UTF-8 text is always well formed). A cheap scan that spares almost every
 * payload a walk over all of its strings.
 */
export function mayNeedCleaning(jsonText: string): boolean {
  return jsonText.includes('\u0000') || /\\u(?:0000|[dD][89a-fA-F])/.test(jsonText);
}

export type Normalized<T> = { ok: true; value: T } | { ok: false; reason: string; detail: string };

const KNOWN_FIELDS = new Set(['event_id', 'trace_id', 'source', 'event_type', 'timestamp', 'metadata']);

// Field shapes of an incoming event. Absent, null and '' mean "use the default" for the optional ones.
const optionalText = (field: string, max: number) =>
  z
    .union([z.string(), z.null()], { error: `${field} must be a string` })
    .optional()
    .transform((v) => (v === null || v === undefined || v === '' ? undefined : v))
    .refine((v) => v === undefined || charCount(v) <= max, `${field} is longer than ${max} characters`);

/** Length in characters (code points), not UTF-16 units. */
function charCount(value: string): number {
  // Fast path: a string of at most `max` UTF-16 units has at most that many characters.
  return value.length <= LIMITS.traceIdChars ? value.length : Array.from(value).length;
}

const inputEventSchema = z.object({
  event_id: optionalText('event_id', Number.MAX_SAFE_INTEGER),
  trace_id: z
    .string({ error: (i) => (i.input === undefined ? 'trace_id is required' : 'trace_id must be a string') })
    .min(1, 'trace_id must not be empty')
    .refine(
      (v) => charCount(v) <= LIMITS.traceIdChars,
      `trace_id is longer than ${LIMITS.traceIdChars} characters`,
    ),
  source: optionalText('source', LIMITS.sourceChars),
  event_type: optionalText('event_type', LIMITS.eventTypeChars),
});

const REASON_BY_FIELD: Record<string, string> = {
  event_id: 'invalid_event_id',
  trace_id: 'invalid_trace_id',
  source: 'invalid_source',
  event_type: 'invalid_event_type',
};

/** Parses raw bytes as JSON; the first step for every NATS message and NDJSON line. */
export function parseJson(raw: string): Normalized<unknown> {
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch (err) {
    return { ok: false, reason: 'invalid_json', detail: `payload is not JSON: ${(err as Error).message}` };
  }
}

/** `swarm.task.completed` → `task.completed`; undefined when the subject does not name a type. */
export function eventTypeFromSubject(subject: string | undefined): string | undefined {
  if (!subject) return undefined;
  const tokens = subject.split('.');
  const rest = tokens[0] === 'swarm' ? tokens.slice(1) : tokens;
  if (rest.length < 2 || rest.some((t) => t === '' || t === '*' || t === '>')) return undefined;
  return rest.join('.');
}

/** A string Postgres accepts: NUL removed, lone UTF-16 surrogates replaced by U+FFFD. */
export function cleanText(value: string): string {
  const noNul = value.includes('\u0000') ? value.replaceAll('\u0000', '') : value;
  return noNul.isWellFormed() ? noNul : noNul.toWellFormed();
}

/**
 * Makes every string and key storable (see cleanText) throughout a JSON value. Copy-on-write: returns
 * the same value when there is nothing to change, which is almost always.
 */
export function stripNul(value: unknown): unknown {
  if (typeof value === 'string') return cleanText(value);
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((v, i) => {
      const c = stripNul(v);
      if (c !== v) (out ??= value.slice())[i] = c;
    });
    return out ?? value;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    let changed = false;
    const cleaned = entries.map(([k, v]) => {
      const ck = stripNul(k) as string;
      const cv = stripNul(v);
      if (ck !== k || cv !== v) changed = true;
      return [ck, cv] as const;
    });
    return changed ? Object.fromEntries(cleaned) : value;
  }
  return value;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Turns one parsed payload into a canonical event, or says why it cannot be one.
 * Deterministic for NATS input: the same message always gives the same event.
 */
export function normalizeEvent(original: unknown, ctx: InputContext): Normalized<CanonicalEvent> {
  // NUL is stripped first, so the rules below (non-empty, lengths) judge what will be stored.
  const payload = ctx.cleanText ? original : stripNul(original);
  if (!isPlainObject(payload)) {
    return {
      ok: false,
      reason: 'not_object',
      detail: `payload must be a JSON object, got ${describe(payload)}`,
    };
  }
  const parsed = inputEventSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = String(issue.path[0] ?? '');
    const reason =
      field === 'trace_id' && payload.trace_id === undefined
        ? 'missing_trace_id'
        : (REASON_BY_FIELD[field] ?? 'invalid_event');
    return { ok: false, reason, detail: issue.message };
  }
  const input = parsed.data;

  let eventId: string;
  let sourceEventId: string | undefined;
  if (input.event_id !== undefined) {
    if (isUuid(input.event_id)) {
      eventId = input.event_id.toLowerCase();
    } else {
      eventId = uuidV5(input.event_id);
      sourceEventId = input.event_id;
    }
  } else if (ctx.stream !== undefined && ctx.seq !== undefined) {
    eventId = uuidV5(`jetstream:${ctx.stream}:${ctx.seq}`);
  } else if (ctx.eventIdKey !== undefined) {
    eventId = uuidV5(ctx.eventIdKey);
  } else {
    eventId = randomUUID();
  }

  const eventType = input.event_type ?? eventTypeFromSubject(ctx.subject);
  if (eventType === undefined) {
    return {
      ok: false,
      reason: 'missing_event_type',
      detail: ctx.subject
        ? `event_type is missing and cannot be derived from subject ${ctx.subject}`
        : 'event_type is required',
    };
  }

  let timestamp: string;
  if (payload.timestamp !== undefined && payload.timestamp !== null) {
    const parsedTime = parseTimestamp(payload.timestamp);
    if (parsedTime === undefined) {
      return {
        ok: false,
        reason: 'invalid_timestamp',
        detail: `timestamp must be RFC 3339 or epoch milliseconds, got ${describe(payload.timestamp)}`,
      };
    }
    // Already canonical (parseTimestamp checked the round trip): keep the string.
    timestamp = isCanonicalTimestamp(payload.timestamp)
      ? payload.timestamp
      : new Date(parsedTime).toISOString();
  } else {
    timestamp = new Date(ctx.defaultTimeMillis).toISOString();
  }

  let metadata: Record<string, unknown>;
  if (payload.metadata === undefined || payload.metadata === null) {
    metadata = {};
  } else if (isPlainObject(payload.metadata)) {
    metadata = payload.metadata;
  } else {
    return {
      ok: false,
      reason: 'invalid_metadata',
      detail: `metadata must be a JSON object, got ${describe(payload.metadata)}`,
    };
  }
  if (sourceEventId !== undefined) metadata = { ...metadata, _source_event_id: sourceEventId };
  let extraKeys: string[] | undefined;
  for (const key in payload) {
    if (!KNOWN_FIELDS.has(key)) (extraKeys ??= []).push(key);
  }
  if (extraKeys !== undefined && !('_extra' in metadata)) {
    // Unknown top-level fields are kept, not silently dropped.
    metadata = { ...metadata, _extra: Object.fromEntries(extraKeys.map((k) => [k, payload[k]])) };
  }
  // Serialized, metadata is at most 5.25 times its source text (a number such as 1e20 grows from 4 to 21
  // characters; nothing grows more), plus the keys added above: a small payload cannot exceed the limit.
  const metadataBytes =
    ctx.payloadChars !== undefined && ctx.payloadChars * 6 + 64 <= LIMITS.metadataBytes
      ? 0
      : Buffer.byteLength(JSON.stringify(metadata));
  if (metadataBytes > LIMITS.metadataBytes) {
    return {
      ok: false,
      reason: 'metadata_too_large',
      detail: `metadata is ${metadataBytes} bytes serialized, over the ${LIMITS.metadataBytes}-byte limit`,
    };
  }

  return {
    ok: true,
    value: {
      event_id: eventId,
      trace_id: input.trace_id,
      source: input.source ?? defaultSource(ctx),
      event_type: eventType,
      timestamp,
      metadata,
    },
  };
}

function defaultSource(ctx: InputContext): string {
  if (ctx.origin === 'nats' && ctx.subject) return ctx.subject;
  return ctx.origin;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value) ?? String(typeof value)}`;
}

/** How a reject's payload is held, and the time the input would default to (see Reject). */
export interface RejectPayloadOptions {
  /** `base64` when `raw` is the input's bytes in base64 (not text); `utf8` by default. */
  encoding?: PayloadEncoding;
  /** Epoch milliseconds an input without a timestamp takes (kept for replay). */
  inputTimeMillis?: number;
}

/** Builds the chronicle_rejects record for an input, truncating the payload to 64 KiB. */
export function makeReject(
  raw: string,
  ctx: { origin: InputContext['origin']; subject?: string | null },
  reason: string,
  detail: string,
  rejectKey: string | null,
  options: RejectPayloadOptions = {},
): Reject {
  const bytes = Buffer.byteLength(raw);
  let payload = raw;
  if (bytes > LIMITS.rejectPayloadBytes) {
    // Cut at the last character boundary at or before the limit (never inside a UTF-8 sequence).
    const buf = Buffer.from(raw);
    let end = LIMITS.rejectPayloadBytes;
    while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
    payload = buf.subarray(0, end).toString('utf8');
  }
  return {
    origin: ctx.origin,
    subject: ctx.subject == null ? null : cleanText(ctx.subject),
    reason,
    // A parser's message quotes the input, so it may carry what Postgres refuses too.
    detail: cleanText(detail),
    payload: cleanText(payload),
    payloadBytes: bytes,
    rejectKey,
    // Only when given: absent, the store takes utf8 and no input time.
    ...(options.encoding === undefined ? {} : { encoding: options.encoding }),
    ...(options.inputTimeMillis === undefined
      ? {}
      : { inputTime: new Date(options.inputTimeMillis).toISOString() }),
  };
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** Bytes as text when they are well-formed UTF-8; undefined when they are not (never replaced with U+FFFD). */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The detail of an `invalid_utf8` reject. */
export function invalidUtf8Detail(what: string): string {
  return `${what} is not valid UTF-8 (payload: the bytes, base64)`;
}
