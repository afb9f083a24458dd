import { type Normalized, normalizeEvent } from '../normalize.js';
import type { CanonicalEvent } from '../schema.js';
import { uuidV5 } from '../uuid.js';
import type { AttributeValue, SpanRecord } from '../span-record.js';

/** event_type of a span that names none (no `swarm.event_type` attribute). */
export const SPAN_EVENT_TYPE = 'otel.span';

/** Prefix of the span attributes that become top-level metadata keys. */
const SWARM_PREFIX = 'swarm.';

/** Metadata keys that describe the span itself; a `swarm.<key>` attribute never replaces them. */
const SPAN_KEYS = new Set([
  'name',
  'kind',
  'trace_id',
  'span_id',
  'parent_span_id',
  'start',
  'end',
  'duration_ms',
  'status',
  'attributes',
  'resource',
  'events',
  'scope',
]);

/**
 * Turns a span received over OTLP into a canonical event, through normalizeEvent (origin `otlp`), so
 * every canonical rule applies (length limits, the metadata size limit, NUL stripping).
 *
 * - event_id: UUID v5 (Chronicle's namespace) of `otlp:{traceId}:{spanId}`, with the OTel ids in
 *   lower-case hex, so a span sent again (a client retry) is the same event and is stored once.
 * - trace_id: the span attribute `swarm.trace_id` when it is a non-empty string; else the OTel trace
 *   id (32 lower-case hex digits).
 * - event_type: the span attribute `swarm.event_type` when it is a non-empty string; else `otel.span`.
 * - source: the resource attribute `service.name` when it is a non-empty string; else `otlp`.
 * - timestamp: the span's end time, RFC 3339 UTC with milliseconds (nanoseconds truncated).
 * - metadata:
 *   - name: the span name; kind: the OTLP SpanKind number (0 unspecified, 1 internal, 2 server,
 *     3 client, 4 producer, 5 consumer);
 *   - trace_id, span_id: the OTel ids (hex); parent_span_id: hex, or null for a root span;
 *   - start, end: RFC 3339 UTC with nanoseconds (9 fractional digits);
 *   - duration_ms: end − start in milliseconds, fractional (nanosecond precision);
 *   - status: { code } with the OTLP StatusCode number (0 unset, 1 ok, 2 error), plus message when
 *     the span has one;
 *   - attributes: every span attribute, keys unchanged (`swarm.*` included), values as plain JSON
 *     (int64 as numbers, bytes as base64, arrays, kvlists as objects, NaN/±Infinity as strings);
 *   - resource: the resource attributes; scope: { name, version } of the instrumentation scope;
 *   - events: [{ name, time (RFC 3339 with nanoseconds), attributes }] in the span's order.
 *   Links are not copied into metadata (the span itself keeps them).
 * - Task and agent fields: every span attribute `swarm.<key>` other than `swarm.trace_id` and
 *   `swarm.event_type` is also copied to metadata as top-level `<key>` (so `swarm.agent`,
 *   `swarm.agent_id`, `swarm.title`, `swarm.owner`, `swarm.scoring_breakdown`, `swarm.error`,
 *   `swarm.reason`, `swarm.busy_ms`, `swarm.uptime_ms` drive task state and agent metrics exactly as
 *   the same keys in a NATS event's metadata do). A `<key>` that is one of the span keys above is
 *   not copied (it stays under attributes). When this gives no `agent` (absent, null or empty), the
 *   attribute `gen_ai.agent.name`, if a non-empty string, becomes `agent`.
 *
 * Returns the reason and detail of the first canonical rule the event breaks, as normalizeEvent does.
 */
export function spanToEvent(span: SpanRecord): Normalized<CanonicalEvent> {
  const endMillis = nanosToMillis(span.endTimeUnixNano);
  const copied: [string, AttributeValue][] = [];
  for (const [key, value] of Object.entries(span.attributes)) {
    if (!key.startsWith(SWARM_PREFIX) || key === 'swarm.trace_id' || key === 'swarm.event_type') continue;
    const name = key.slice(SWARM_PREFIX.length);
    if (name !== '' && !SPAN_KEYS.has(name)) copied.push([name, value]);
  }
  const agent = copied.find(([k]) => k === 'agent')?.[1];
  const genAiAgent = nonEmptyString(span.attributes['gen_ai.agent.name']);
  if ((agent === undefined || agent === null || agent === '') && genAiAgent !== undefined) {
    copied.push(['agent', genAiAgent]);
  }
  const metadata = Object.fromEntries([
    ...copied,
    ['name', span.name],
    ['kind', span.kind],
    ['trace_id', span.traceId],
    ['span_id', span.spanId],
    ['parent_span_id', span.parentSpanId],
    ['start', nanosToRfc3339(span.startTimeUnixNano)],
    ['end', nanosToRfc3339(span.endTimeUnixNano)],
    ['duration_ms', Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)) / 1e6],
    ['status', span.status],
    ['attributes', span.attributes],
    ['resource', span.resource],
    [
      'events',
      span.events.map((e) => ({
        name: e.name,
        time: nanosToRfc3339(e.timeUnixNano),
        attributes: e.attributes,
      })),
    ],
    ['scope', span.scope],
  ]) as Record<string, unknown>;

  const payload = {
    event_id: uuidV5(`otlp:${span.traceId}:${span.spanId}`),
    trace_id: nonEmptyString(span.attributes['swarm.trace_id']) ?? span.traceId,
    source: nonEmptyString(span.resource['service.name']) ?? 'otlp',
    event_type: nonEmptyString(span.attributes['swarm.event_type']) ?? SPAN_EVENT_TYPE,
    timestamp: new Date(endMillis).toISOString(),
    metadata,
  };
  try {
    return normalizeEvent(payload, { origin: 'otlp', defaultTimeMillis: endMillis });
  } catch (err) {
    // A value nested too deeply for the cleaning pass: a reject, like any other bad input.
    return {
      ok: false,
      reason: 'invalid_event',
      detail: `span cannot be normalized: ${(err as Error).message}`,
    };
  }
}

function nonEmptyString(value: AttributeValue | undefined): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function nanosToMillis(nanos: string): number {
  return Number(BigInt(nanos) / 1_000_000n);
}

/** `1772366400123456789` → `2026-03-01T12:00:00.123456789Z`. */
export function nanosToRfc3339(nanos: string): string {
  const n = BigInt(nanos);
  const seconds = new Date(Number(n / 1_000_000_000n) * 1000).toISOString().slice(0, 19);
  return `${seconds}.${(n % 1_000_000_000n).toString().padStart(9, '0')}Z`;
}
