/**
 * ReadableSpans built by hand, as the OpenTelemetry SDK hands them to an exporter, so that tests can
 * feed exact values (nanosecond times, chosen ids, every attribute type) to the official OTLP
 * serializers and exporters and compare what Chronicle decodes with what was sent.
 */
import {
  type Attributes,
  type HrTime,
  type Link,
  type SpanStatus,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
} from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import { type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';

export { SpanKind, SpanStatusCode };

export interface SpanSpec {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name?: string;
  kind?: SpanKind;
  /** [seconds, nanoseconds] since the epoch. */
  start?: HrTime;
  end?: HrTime;
  /** Values the SDK's type does not allow (nested objects, Uint8Array) are passed on as they are. */
  attributes?: Record<string, unknown>;
  events?: TimedEvent[];
  links?: Link[];
  status?: SpanStatus;
  resource?: Resource;
  scope?: InstrumentationScope;
}

export const DEFAULT_RESOURCE = resourceFromAttributes({ 'service.name': 'test-service' });
export const DEFAULT_SCOPE: InstrumentationScope = { name: 'chronicle-test', version: '1.2.3' };

/** 2026-03-01T12:00:00Z plus the given seconds and nanoseconds. */
export function at(seconds: number, nanos = 0): HrTime {
  return [1_772_366_400 + seconds, nanos];
}

/** An HrTime as decimal nanoseconds, the form a SpanRecord holds. */
export function nanos(time: HrTime): string {
  return (BigInt(time[0]) * 1_000_000_000n + BigInt(time[1])).toString();
}

/** A ReadableSpan as the SDK produces it once the span has ended. */
export function readableSpan(spec: SpanSpec): ReadableSpan {
  const start = spec.start ?? at(0);
  const end = spec.end ?? at(1);
  const context = { traceId: spec.traceId, spanId: spec.spanId, traceFlags: TraceFlags.SAMPLED };
  return {
    name: spec.name ?? 'test-span',
    kind: spec.kind ?? SpanKind.INTERNAL,
    spanContext: () => context,
    parentSpanContext:
      spec.parentSpanId === undefined
        ? undefined
        : { traceId: spec.traceId, spanId: spec.parentSpanId, traceFlags: TraceFlags.SAMPLED },
    startTime: start,
    endTime: end,
    duration: [end[0] - start[0], end[1] - start[1]],
    ended: true,
    status: spec.status ?? { code: SpanStatusCode.UNSET },
    attributes: (spec.attributes ?? {}) as Attributes,
    links: spec.links ?? [],
    events: spec.events ?? [],
    resource: spec.resource ?? DEFAULT_RESOURCE,
    instrumentationScope: spec.scope ?? DEFAULT_SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

/** A trace id (32 hex digits) that is distinct per n. */
export function traceIdOf(n: number): string {
  return `7ace${n.toString(16).padStart(28, '0')}`;
}

/** A span id (16 hex digits) that is distinct per n. */
export function spanIdOf(n: number): string {
  return `5a${n.toString(16).padStart(14, '0')}`;
}

/**
 * Spans of trace 3 that make a payload partly bad: two break an OTLP rule (a zero span id, an end before
 * the start), one a canonical rule (its metadata over 256 KiB), and the last one is fine.
 */
export function partlyBadSpans(): ReadableSpan[] {
  return [
    readableSpan({ traceId: traceIdOf(3), spanId: '0'.repeat(16), name: 'zero id' }),
    readableSpan({
      traceId: traceIdOf(3),
      spanId: spanIdOf(31),
      start: at(5),
      end: at(4),
      name: 'backwards',
    }),
    readableSpan({
      traceId: traceIdOf(3),
      spanId: spanIdOf(32),
      attributes: { blob: 'x'.repeat(300 * 1024) },
    }),
    readableSpan({ traceId: traceIdOf(3), spanId: spanIdOf(33), name: 'fine' }),
  ];
}
