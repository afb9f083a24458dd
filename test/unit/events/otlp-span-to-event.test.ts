import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../../src/events/schema.js';
import { uuidV5 } from '../../../src/events/uuid.js';
import { nanosToRfc3339, spanToEvent } from '../../../src/events/otlp/span-to-event.js';
import type { SpanRecord } from '../../../src/events/span-record.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const PARENT = '53995c3f42cd8ad8';

function span(overrides: Partial<SpanRecord> = {}): SpanRecord {
  return {
    traceId: TRACE,
    spanId: SPAN,
    parentSpanId: PARENT,
    name: 'run task',
    kind: 2,
    startTimeUnixNano: '1772366400123456789',
    endTimeUnixNano: '1772366402987654321',
    attributes: { 'http.method': 'POST' },
    events: [{ name: 'retry', timeUnixNano: '1772366401000000007', attributes: { attempt: 2 } }],
    links: [{ traceId: TRACE, spanId: PARENT, attributes: {} }],
    status: { code: 2, message: 'boom' },
    resource: { 'service.name': 'dispatcher', 'host.name': 'h1' },
    scope: { name: 'swarm-sdk', version: '0.4.0' },
    ...overrides,
  };
}

function eventOf(s: SpanRecord): CanonicalEvent {
  const result = spanToEvent(s);
  if (!result.ok) throw new Error(`expected an event, got ${result.reason}: ${result.detail}`);
  return result.value;
}

describe('otlp span to event - canonical fields', () => {
  it('a plain span - every field as the mapping says', () => {
    expect(eventOf(span())).toEqual({
      event_id: uuidV5(`otlp:${TRACE}:${SPAN}`),
      trace_id: TRACE,
      source: 'dispatcher',
      event_type: 'otel.span',
      timestamp: '2026-03-01T12:00:02.987Z',
      metadata: {
        name: 'run task',
        kind: 2,
        trace_id: TRACE,
        span_id: SPAN,
        parent_span_id: PARENT,
        start: '2026-03-01T12:00:00.123456789Z',
        end: '2026-03-01T12:00:02.987654321Z',
        duration_ms: 2864.197532,
        status: { code: 2, message: 'boom' },
        attributes: { 'http.method': 'POST' },
        resource: { 'service.name': 'dispatcher', 'host.name': 'h1' },
        events: [{ name: 'retry', time: '2026-03-01T12:00:01.000000007Z', attributes: { attempt: 2 } }],
        scope: { name: 'swarm-sdk', version: '0.4.0' },
      },
    });
  });

  it('event_id is the same for the same trace and span ids (a client retry), and differs otherwise', () => {
    const first = eventOf(span());
    const again = eventOf(span({ name: 'renamed', endTimeUnixNano: '1772366409000000000' }));
    const otherSpan = eventOf(span({ spanId: 'a'.repeat(16) }));
    const otherTrace = eventOf(span({ traceId: 'b'.repeat(32) }));

    expect(again.event_id).toBe(first.event_id);
    expect(new Set([first.event_id, otherSpan.event_id, otherTrace.event_id]).size).toBe(3);
  });

  it('swarm.trace_id and swarm.event_type name the trace and the type when they are non-empty strings', () => {
    const event = eventOf(
      span({ attributes: { 'swarm.trace_id': 'task-42', 'swarm.event_type': 'task.started' } }),
    );

    expect(event).toMatchObject({ trace_id: 'task-42', event_type: 'task.started' });
    expect(event.metadata).toMatchObject({
      trace_id: TRACE,
      attributes: { 'swarm.trace_id': 'task-42', 'swarm.event_type': 'task.started' },
    });
    // Neither is copied to a top-level key.
    expect(event.metadata).not.toHaveProperty('event_type');
  });

  it('swarm.trace_id or swarm.event_type that is not a non-empty string falls back to the defaults', () => {
    for (const value of [42, '', null, true, ['task-1']]) {
      const event = eventOf(span({ attributes: { 'swarm.trace_id': value, 'swarm.event_type': value } }));
      expect(event).toMatchObject({ trace_id: TRACE, event_type: 'otel.span' });
    }
  });

  it('source is the resource service.name, else otlp', () => {
    expect(eventOf(span({ resource: {} })).source).toBe('otlp');
    expect(eventOf(span({ resource: { 'service.name': '' } })).source).toBe('otlp');
    expect(eventOf(span({ resource: { 'service.name': 7 } })).source).toBe('otlp');
    // A span attribute does not name the source.
    expect(eventOf(span({ resource: {}, attributes: { 'service.name': 'x' } })).source).toBe('otlp');
  });

  it('timestamp is the span end with milliseconds (truncated, not rounded), in UTC', () => {
    expect(eventOf(span({ endTimeUnixNano: '1772366402999999999' })).timestamp).toBe(
      '2026-03-01T12:00:02.999Z',
    );
  });

  it('a root span has parent_span_id null; status without a message has only its code', () => {
    const event = eventOf(span({ parentSpanId: null, status: { code: 0 } }));

    expect(event.metadata).toMatchObject({ parent_span_id: null, status: { code: 0 } });
  });

  it('duration_ms keeps sub-millisecond precision and is 0 for an instant span', () => {
    const short = eventOf(span({ startTimeUnixNano: '1000000000', endTimeUnixNano: '1000250500' }));
    const instant = eventOf(span({ startTimeUnixNano: '1000000000', endTimeUnixNano: '1000000000' }));

    expect(short.metadata.duration_ms).toBe(0.2505);
    expect(instant.metadata.duration_ms).toBe(0);
  });

  it('nanosToRfc3339 keeps nine fractional digits', () => {
    expect(nanosToRfc3339('1')).toBe('1970-01-01T00:00:00.000000001Z');
    expect(nanosToRfc3339('1772366400000000000')).toBe('2026-03-01T12:00:00.000000000Z');
  });
});

describe('otlp span to event - task and agent fields', () => {
  it('every swarm.<key> attribute is copied to metadata as <key>, values unchanged', () => {
    const event = eventOf(
      span({
        attributes: {
          'swarm.trace_id': 'task-7',
          'swarm.event_type': 'task.created',
          'swarm.title': 'Index the corpus',
          'swarm.owner': 'alice',
          'swarm.scoring_breakdown': { priority: 3, weights: [0.5, 0.5] },
          'swarm.agent_id': 'scout-1',
          'swarm.error': 'OOM',
          'swarm.reason': 'cancelled',
          'swarm.busy_ms': 1200,
          'swarm.uptime_ms': 6000,
          'swarm.custom.nested': 'kept',
          'other.attribute': 'not copied',
        },
      }),
    );

    expect(event).toMatchObject({ trace_id: 'task-7', event_type: 'task.created' });
    expect(event.metadata).toMatchObject({
      title: 'Index the corpus',
      owner: 'alice',
      scoring_breakdown: { priority: 3, weights: [0.5, 0.5] },
      agent_id: 'scout-1',
      error: 'OOM',
      reason: 'cancelled',
      busy_ms: 1200,
      uptime_ms: 6000,
      'custom.nested': 'kept',
    });
    expect(event.metadata).not.toHaveProperty('attribute');
    expect(event.metadata).not.toHaveProperty('other.attribute');
  });

  it('a swarm.<key> that names a span key does not replace it (it stays under attributes)', () => {
    const event = eventOf(
      span({
        attributes: { 'swarm.name': 'spoof', 'swarm.status': 'done', 'swarm.attributes': 1, 'swarm.': 'x' },
      }),
    );

    expect(event.metadata).toMatchObject({ name: 'run task', status: { code: 2, message: 'boom' } });
    expect(event.metadata.attributes).toEqual({
      'swarm.name': 'spoof',
      'swarm.status': 'done',
      'swarm.attributes': 1,
      'swarm.': 'x',
    });
    expect(Object.keys(event.metadata)).not.toContain('');
  });

  it('a swarm.__proto__ attribute becomes an ordinary key, not a prototype', () => {
    const event = eventOf(
      span({ attributes: Object.fromEntries([['swarm.__proto__', { polluted: true }]]) }),
    );

    expect(Object.getPrototypeOf(event.metadata)).toBe(Object.prototype);
    expect(Object.keys(event.metadata)).toContain('__proto__');
    expect((event.metadata as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('gen_ai.agent.name becomes agent when no swarm.agent gives one', () => {
    const fromGenAi = eventOf(span({ attributes: { 'gen_ai.agent.name': 'planner' } }));
    const swarmWins = eventOf(
      span({ attributes: { 'gen_ai.agent.name': 'planner', 'swarm.agent': 'scout' } }),
    );
    const emptySwarm = eventOf(span({ attributes: { 'gen_ai.agent.name': 'planner', 'swarm.agent': '' } }));
    const nullSwarm = eventOf(span({ attributes: { 'gen_ai.agent.name': 'planner', 'swarm.agent': null } }));
    const withAgentId = eventOf(
      span({ attributes: { 'gen_ai.agent.name': 'planner', 'swarm.agent_id': 'a-7' } }),
    );
    const neither = eventOf(span({ attributes: { 'gen_ai.agent.name': '' } }));

    expect(fromGenAi.metadata.agent).toBe('planner');
    expect(swarmWins.metadata.agent).toBe('scout');
    expect(emptySwarm.metadata.agent).toBe('planner');
    expect(nullSwarm.metadata.agent).toBe('planner');
    expect(withAgentId.metadata).toMatchObject({ agent: 'planner', agent_id: 'a-7' });
    expect(neither.metadata).not.toHaveProperty('agent');
  });
});

describe('otlp span to event - canonical rules apply', () => {
  it('NUL is stripped from every string, keys included', () => {
    const event = eventOf(
      span({
        name: 'na\u0000me',
        attributes: {
          'swarm.trace_id': 'task\u0000-1',
          'k\u0000ey': 'v\u0000al',
          'swarm.title': 'ti\u0000tle',
        },
        resource: { 'service.name': 'svc\u0000' },
      }),
    );

    expect(event).toMatchObject({ trace_id: 'task-1', source: 'svc' });
    expect(event.metadata).toMatchObject({ name: 'name', title: 'title', attributes: { key: 'val' } });
  });

  it('a swarm.trace_id past 256 characters is rejected as invalid_trace_id', () => {
    const result = spanToEvent(span({ attributes: { 'swarm.trace_id': 'x'.repeat(257) } }));

    expect(result).toMatchObject({ ok: false, reason: 'invalid_trace_id' });
  });

  it('a swarm.event_type past 256 characters is rejected as invalid_event_type', () => {
    const result = spanToEvent(span({ attributes: { 'swarm.event_type': 'e'.repeat(257) } }));

    expect(result).toMatchObject({ ok: false, reason: 'invalid_event_type' });
  });

  it('a service.name past 256 characters is rejected as invalid_source', () => {
    expect(spanToEvent(span({ resource: { 'service.name': 's'.repeat(257) } }))).toMatchObject({
      ok: false,
      reason: 'invalid_source',
    });
  });

  it('metadata past 256 KiB is rejected as metadata_too_large', () => {
    const result = spanToEvent(span({ attributes: { blob: 'x'.repeat(300 * 1024) } }));

    expect(result).toMatchObject({ ok: false, reason: 'metadata_too_large' });
  });
});
