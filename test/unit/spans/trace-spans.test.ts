import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../../src/events/schema.js';
import { otelSpanId } from '../../../src/spans/ids.js';
import type { Attributes, SpanEventRecord, SpanRecord } from '../../../src/events/span-record.js';
import {
  SCOPE,
  type PlannedSpan,
  type SpanRole,
  type StoredSpan,
  type TraceSpansOptions,
  type TraceState,
  planTraceSpans,
  spansToEmit,
} from '../../../src/spans/trace-spans.js';
import { type Random, createRandom, generateTraffic } from '../../support/generate.js';
import { referenceRows } from '../../support/reference.js';

// ---------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------

const TRACE = 'task-42';
const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const OPTIONS: TraceSpansOptions = {
  resource: { 'deployment.environment.name': 'test' },
  serviceName: 'chronicle',
};
const INTERNAL = 1;
const CLIENT = 3;
const UNSET = { code: 0 };

/** The OTel trace id of TRACE (not a UUID, not 32 hex): the first 16 bytes of SHA-256, computed here. */
const OTEL_TRACE = createHash('sha256').update(TRACE, 'utf8').digest().subarray(0, 16).toString('hex');
const ROOT_ID = otelSpanId(TRACE, 'root', 0);

/** T0 + seconds as OTLP nanoseconds, computed independently of unixNanos. */
const ns = (seconds: number): string => (BigInt(T0 + seconds * 1000) * 1_000_000n).toString();

/** Event ids whose code-unit order is their number's order. */
const uid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

function ev(
  n: number,
  type: string,
  seconds: number,
  metadata: Record<string, unknown> = {},
  source = 'orchestrator',
  traceId = TRACE,
): CanonicalEvent {
  return {
    event_id: uid(n),
    trace_id: traceId,
    source,
    event_type: type,
    timestamp: new Date(T0 + seconds * 1000).toISOString(),
    metadata,
  };
}

/**
 * The trace row the store computes from these events: the task-state rules of the issue, as written in
 * test/support/reference.ts (status from the last lifecycle event in (timestamp, rank, event_id) order;
 * created_at the earliest task.created, else the earliest event; agent of the latest task.assigned;
 * completed_at = last's timestamp when terminal; duration, pickup; error = error ?? reason ?? 'timeout').
 */
function stateOf(events: readonly CanonicalEvent[], traceId = TRACE): TraceState {
  const row = referenceRows(events).traces.find((t) => t.trace_id === traceId);
  if (!row) throw new Error(`no events for ${traceId}`);
  return row;
}

const plan = (events: readonly CanonicalEvent[]): PlannedSpan[] =>
  planTraceSpans(stateOf(events), events, OPTIONS);

const emit = (events: readonly CanonicalEvent[], stored: readonly StoredSpan[]): PlannedSpan[] =>
  spansToEmit(stateOf(events), events, stored, OPTIONS);

function only(planned: readonly PlannedSpan[], role: SpanRole, attempt = 0): PlannedSpan {
  const found = planned.filter((p) => p.role === role && p.attempt === attempt);
  if (found.length !== 1) throw new Error(`expected one ${role}#${attempt}, found ${found.length}`);
  return found[0]!;
}
const spanOf = (planned: readonly PlannedSpan[], role: SpanRole, attempt = 0): SpanRecord =>
  only(planned, role, attempt).span;

const shape = (planned: readonly PlannedSpan[]): string[] =>
  planned.map((p) => (p.attempt > 0 && p.role !== 'update' ? `${p.span.name}#${p.attempt}` : p.span.name));

const resource = (service: string) => ({ 'deployment.environment.name': 'test', 'service.name': service });

/** The span event a raw event becomes on the root: name, time, scalar metadata, event id and source. */
function spanEvent(e: CanonicalEvent, attributes: Attributes): SpanEventRecord {
  return {
    name: e.event_type,
    timeUnixNano: (BigInt(Date.parse(e.timestamp)) * 1_000_000n).toString(),
    attributes: { ...attributes, 'swarm.event_id': e.event_id, 'swarm.source': e.source },
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** A task that ran once: created by the planner, assigned to agent-a, which started and completed it. */
const created = ev(1, 'task.created', 0, { title: 'Index the corpus', owner: 'alice' }, 'planner');
const assigned = ev(2, 'task.assigned', 5, { agent: 'agent-a', attempt: 1 });
const started = ev(
  3,
  'task.started',
  12,
  { agent: 'agent-a', provider: 'anthropic', model: 'claude-sonnet-4' },
  'agent-a',
);
const progress = ev(
  4,
  'task.progress',
  20,
  { agent: 'agent-a', pct: 50, detail: { step: 'index' }, tags: ['a', 'b'], note: null },
  'agent-a',
);
const completed = ev(
  5,
  'task.completed',
  42,
  { agent: 'agent-a', result: 'ok', tokens: 1234, cached: false },
  'agent-a',
);
const COMPLETED_TASK = [created, assigned, started, progress, completed];

/** A retried task: agent-a fails (retryable), the orchestrator reassigns it to agent-b, which completes it. */
const retry = {
  created: ev(1, 'task.created', 0, { title: 'Summarize logs' }, 'planner'),
  assignedA: ev(2, 'task.assigned', 5, { agent: 'agent-a', attempt: 1 }),
  startedA: ev(3, 'task.started', 10, { agent: 'agent-a' }, 'agent-a'),
  failedA: ev(4, 'task.failed', 20, { agent: 'agent-a', error: 'OOM', retryable: true }, 'agent-a'),
  assignedB: ev(5, 'task.assigned', 30, { agent_id: 'agent-b', attempt: 2 }),
  startedB: ev(6, 'task.started', 33, { agent_id: 'agent-b', model: 'gpt-5' }, 'agent-b'),
  completedB: ev(7, 'task.completed', 50, { agent_id: 'agent-b' }, 'agent-b'),
};
const RETRIED_TASK = Object.values(retry);
const FIRST_ATTEMPT_FAILED = [retry.created, retry.assignedA, retry.startedA, retry.failedA];

// ---------------------------------------------------------------------------------------------------
// planTraceSpans: a task
// ---------------------------------------------------------------------------------------------------

describe('planTraceSpans - a completed task', () => {
  it('trace spans - a completed task gives the root, then queue wait, pickup and execution of its attempt', () => {
    const planned = plan(COMPLETED_TASK);
    expect(shape(planned)).toEqual([
      'swarm.task',
      'swarm.task.queue_wait#1',
      'swarm.task.pickup#1',
      'invoke_agent agent-a#1',
    ]);
    expect(planned.map((p) => p.role)).toEqual(['root', 'queue_wait', 'pickup', 'execution']);
  });

  it('trace spans - the root swarm.task spans created_at → completed_at, under the task.created source, with the task attributes', () => {
    expect(only(plan(COMPLETED_TASK), 'root')).toEqual({
      role: 'root',
      attempt: 0,
      eventIds: [uid(1), uid(2), uid(3), uid(4), uid(5)],
      span: {
        traceId: OTEL_TRACE,
        spanId: ROOT_ID,
        parentSpanId: null,
        name: 'swarm.task',
        kind: INTERNAL,
        startTimeUnixNano: ns(0),
        endTimeUnixNano: ns(42),
        attributes: {
          'swarm.trace_id': TRACE,
          'swarm.task.title': 'Index the corpus',
          'swarm.task.owner': 'alice',
          'swarm.task.status': 'completed',
          'swarm.task.attempts': 1,
          'swarm.agent': 'agent-a',
          'swarm.task.duration_ms': 30_000,
          'swarm.task.pickup_ms': 7_000,
        },
        events: [
          spanEvent(created, { title: 'Index the corpus', owner: 'alice' }),
          spanEvent(assigned, { agent: 'agent-a', attempt: 1 }),
          spanEvent(started, { agent: 'agent-a', provider: 'anthropic', model: 'claude-sonnet-4' }),
          // Only top-level scalars: the nested object, the array and the null are left out.
          spanEvent(progress, { agent: 'agent-a', pct: 50 }),
          spanEvent(completed, { agent: 'agent-a', result: 'ok', tokens: 1234, cached: false }),
        ],
        links: [],
        status: UNSET,
        resource: resource('planner'),
        scope: SCOPE,
      },
    });
  });

  it('trace spans - swarm.task.queue_wait runs from created to the assignment, under the agent', () => {
    expect(only(plan(COMPLETED_TASK), 'queue_wait', 1)).toEqual({
      role: 'queue_wait',
      attempt: 1,
      eventIds: [],
      span: {
        traceId: OTEL_TRACE,
        spanId: otelSpanId(TRACE, 'queue_wait', 1),
        parentSpanId: ROOT_ID,
        name: 'swarm.task.queue_wait',
        kind: INTERNAL,
        startTimeUnixNano: ns(0),
        endTimeUnixNano: ns(5),
        attributes: {
          'swarm.trace_id': TRACE,
          'swarm.attempt': 1,
          'swarm.agent': 'agent-a',
          'swarm.queue_wait_ms': 5_000,
        },
        events: [],
        links: [],
        status: UNSET,
        resource: resource('agent-a'),
        scope: SCOPE,
      },
    });
  });

  it('trace spans - swarm.task.pickup runs from the assignment to the start, under the agent', () => {
    expect(only(plan(COMPLETED_TASK), 'pickup', 1)).toEqual({
      role: 'pickup',
      attempt: 1,
      eventIds: [],
      span: {
        traceId: OTEL_TRACE,
        spanId: otelSpanId(TRACE, 'pickup', 1),
        parentSpanId: ROOT_ID,
        name: 'swarm.task.pickup',
        kind: INTERNAL,
        startTimeUnixNano: ns(5),
        endTimeUnixNano: ns(12),
        attributes: {
          'swarm.trace_id': TRACE,
          'swarm.attempt': 1,
          'swarm.agent': 'agent-a',
          'swarm.task.pickup_ms': 7_000,
        },
        events: [],
        links: [],
        status: UNSET,
        resource: resource('agent-a'),
        scope: SCOPE,
      },
    });
  });

  it('trace spans - the execution is a CLIENT invoke_agent {agent} span from start to end, with the GenAI attributes', () => {
    expect(only(plan(COMPLETED_TASK), 'execution', 1)).toEqual({
      role: 'execution',
      attempt: 1,
      eventIds: [],
      span: {
        traceId: OTEL_TRACE,
        spanId: otelSpanId(TRACE, 'execution', 1),
        parentSpanId: ROOT_ID,
        name: 'invoke_agent agent-a',
        kind: CLIENT,
        startTimeUnixNano: ns(12),
        endTimeUnixNano: ns(42),
        attributes: {
          'swarm.trace_id': TRACE,
          'swarm.attempt': 1,
          'swarm.agent': 'agent-a',
          'gen_ai.operation.name': 'invoke_agent',
          'gen_ai.agent.name': 'agent-a',
          'gen_ai.agent.id': 'agent-a',
          'gen_ai.provider.name': 'anthropic',
          'gen_ai.request.model': 'claude-sonnet-4',
          'swarm.attempt.outcome': 'completed',
          'swarm.task.duration_ms': 30_000,
        },
        events: [],
        links: [],
        status: UNSET,
        resource: resource('agent-a'),
        scope: SCOPE,
      },
    });
  });

  it('trace spans - without provider or model in the metadata, the execution has no gen_ai.provider.name / gen_ai.request.model', () => {
    const events = [created, assigned, ev(3, 'task.started', 12, { agent: 'agent-a' }, 'agent-a'), completed];
    const attributes = spanOf(plan(events), 'execution', 1).attributes;
    expect(attributes).not.toHaveProperty('gen_ai.provider.name');
    expect(attributes).not.toHaveProperty('gen_ai.request.model');
    expect(attributes['gen_ai.operation.name']).toBe('invoke_agent');
  });

  it('trace spans - provider and model are read from any lifecycle event of the attempt (also under their gen_ai names)', () => {
    const events = [
      created,
      ev(2, 'task.assigned', 5, { agent: 'agent-a', 'gen_ai.provider.name': 'openai' }),
      ev(3, 'task.started', 12, { agent: 'agent-a' }, 'agent-a'),
      ev(5, 'task.completed', 42, { agent: 'agent-a', 'gen_ai.request.model': 'gpt-5' }, 'agent-a'),
    ];
    const attributes = spanOf(plan(events), 'execution', 1).attributes;
    expect(attributes['gen_ai.provider.name']).toBe('openai');
    expect(attributes['gen_ai.request.model']).toBe('gpt-5');
  });

  it('trace spans - an agent named by agent_id names the execution and its service', () => {
    const events = [
      created,
      ev(2, 'task.assigned', 5, { agent_id: 'agent-z' }),
      ev(3, 'task.started', 12, { agent_id: 'agent-z' }, 'agent-z'),
      ev(5, 'task.completed', 42, {}, 'agent-z'),
    ];
    const execution = spanOf(plan(events), 'execution', 1);
    expect(execution.name).toBe('invoke_agent agent-z');
    expect(execution.attributes['gen_ai.agent.name']).toBe('agent-z');
    expect(execution.attributes['gen_ai.agent.id']).toBe('agent-z');
    expect(execution.resource['service.name']).toBe('agent-z');
    expect(spanOf(plan(events), 'root').attributes['swarm.agent']).toBe('agent-z');
  });

  it('trace spans - the root service.name is the source of the earliest task.created, whatever the input order', () => {
    const events = [
      ev(9, 'system.error', -5, { error: 'warming up' }, 'swarm'), // earlier, but not a task.created
      ev(8, 'task.created', 3, { title: 're-announced' }, 'orchestrator'),
      ...COMPLETED_TASK, // its task.created (at 0, from planner) is the earliest
    ].reverse();
    const root = spanOf(plan(events), 'root');
    expect(root.resource).toEqual(resource('planner'));
    expect(root.startTimeUnixNano).toBe(ns(0));
    expect(root.events.map((e) => e.name)).toEqual([
      'system.error',
      'task.created',
      'task.created',
      'task.assigned',
      'task.started',
      'task.progress',
      'task.completed',
    ]);
  });

  it('trace spans - without a task.created, the root starts at the earliest event and takes its source', () => {
    const events = [
      ev(2, 'task.assigned', 5, { agent: 'agent-a' }, 'dispatcher'),
      ev(3, 'task.started', 12, { agent: 'agent-a' }, 'agent-a'),
      ev(5, 'task.completed', 42, { agent: 'agent-a' }, 'agent-a'),
    ];
    const planned = plan(events);
    const root = spanOf(planned, 'root');
    expect(root.resource).toEqual(resource('dispatcher'));
    expect(root.startTimeUnixNano).toBe(ns(5));
    expect(root.attributes).not.toHaveProperty('swarm.task.title');
    expect(root.attributes).not.toHaveProperty('swarm.task.owner');
    // The queue wait starts at created_at (here the assignment itself): zero-length.
    const wait = spanOf(planned, 'queue_wait', 1);
    expect([wait.startTimeUnixNano, wait.endTimeUnixNano]).toEqual([ns(5), ns(5)]);
    expect(wait.attributes['swarm.queue_wait_ms']).toBe(0);
  });

  it('trace spans - a dlq.entry span event carries error.type and error.message', () => {
    const dlq = ev(
      6,
      'dlq.entry',
      45,
      {
        dlq_id: 'dlq-1',
        reason: 'max_retries',
        reason_detail: 'gave up after 5 attempts',
        original_subject: null,
        retry_count: 5,
        recoverable: true,
      },
      'dlq',
    );
    const events = [...COMPLETED_TASK, dlq];
    const root = spanOf(planTraceSpans(stateOf(COMPLETED_TASK), events, OPTIONS), 'root');
    expect(root.events.at(-1)).toEqual({
      name: 'dlq.entry',
      timeUnixNano: ns(45),
      attributes: {
        dlq_id: 'dlq-1',
        reason: 'max_retries',
        reason_detail: 'gave up after 5 attempts',
        retry_count: 5,
        recoverable: true,
        'swarm.event_id': uid(6),
        'swarm.source': 'dlq',
        'error.type': 'max_retries',
        'error.message': 'gave up after 5 attempts',
      },
    });
  });

  it('trace spans - span event attributes keep strings, finite numbers and booleans only', () => {
    const odd = ev(
      6,
      'task.progress',
      30,
      { s: '', n: 0, f: 1.5, t: true, inf: Infinity, nan: Number.NaN, u: undefined, o: {}, a: [] },
      'agent-a',
    );
    const root = spanOf(planTraceSpans(stateOf(COMPLETED_TASK), [...COMPLETED_TASK, odd], OPTIONS), 'root');
    expect(root.events.find((e) => e.attributes['swarm.event_id'] === uid(6))?.attributes).toEqual({
      s: '',
      n: 0,
      f: 1.5,
      t: true,
      'swarm.event_id': uid(6),
      'swarm.source': 'agent-a',
    });
  });

  it('trace spans - metadata cannot overwrite swarm.event_id or swarm.source of a span event', () => {
    const sneaky = ev(6, 'task.progress', 30, { 'swarm.event_id': 'x', 'swarm.source': 'y' }, 'agent-a');
    const root = spanOf(
      planTraceSpans(stateOf(COMPLETED_TASK), [...COMPLETED_TASK, sneaky], OPTIONS),
      'root',
    );
    expect(root.events.find((e) => e.timeUnixNano === ns(30))?.attributes).toEqual({
      'swarm.event_id': uid(6),
      'swarm.source': 'agent-a',
    });
  });
});

describe("planTraceSpans - links to the services' own spans", () => {
  const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const CALLER_SPAN = '00f067aa0ba902b7';

  it('trace spans - an event carrying an OpenTelemetry context links the span holding it to that span, once per context', () => {
    const call = (n: number, seconds: number, metadata: Record<string, unknown>) =>
      ev(n, 'task.call', seconds, { name: 'web_search', outcome: 'ok', ...metadata }, 'agent-a');
    const events = [
      ...COMPLETED_TASK,
      call(6, 30, { otel_trace_id: CALLER_TRACE, otel_span_id: CALLER_SPAN }),
      call(7, 31, { otel_trace_id: CALLER_TRACE, otel_span_id: CALLER_SPAN }), // the same context again
      call(8, 32, { otel_trace_id: CALLER_TRACE.toUpperCase(), otel_span_id: CALLER_SPAN }), // not OTLP's form
      call(9, 33, { otel_trace_id: '0'.repeat(32), otel_span_id: CALLER_SPAN }), // the invalid context
      call(10, 34, { otel_trace_id: CALLER_TRACE }), // no span id
    ];
    const planned = plan(events);
    expect(spanOf(planned, 'root').links).toEqual([
      {
        traceId: CALLER_TRACE,
        spanId: CALLER_SPAN,
        attributes: {
          'swarm.event_id': uid(6),
          'swarm.event_type': 'task.call',
          'swarm.call.name': 'web_search',
        },
      },
    ]);
    for (const p of planned.filter((q) => q.role !== 'root')) expect(p.span.links).toEqual([]);
    expect(plan(COMPLETED_TASK).every((p) => p.span.links.length === 0)).toBe(true);
  });

  it("trace spans - in a trace that is not a task, the event's own span carries the link", () => {
    const beat = ev(
      1,
      'agent.heartbeat',
      0,
      { otel_trace_id: CALLER_TRACE, otel_span_id: CALLER_SPAN },
      'agent-a',
      'hb-1',
    );
    const planned = planTraceSpans(stateOf([beat], 'hb-1'), [beat], OPTIONS);
    expect(planned.map((p) => p.span.links)).toEqual([
      [
        {
          traceId: CALLER_TRACE,
          spanId: CALLER_SPAN,
          attributes: { 'swarm.event_id': uid(1), 'swarm.event_type': 'agent.heartbeat' },
        },
      ],
    ]);
  });
});

describe('planTraceSpans - failed and timed-out tasks', () => {
  it('trace spans - a failed task: root and execution have status ERROR with the error text', () => {
    const events = [...FIRST_ATTEMPT_FAILED];
    const planned = plan(events);
    expect(shape(planned)).toEqual([
      'swarm.task',
      'swarm.task.queue_wait#1',
      'swarm.task.pickup#1',
      'invoke_agent agent-a#1',
    ]);
    const root = spanOf(planned, 'root');
    expect(root.status).toEqual({ code: 2, message: 'OOM' });
    expect(root.attributes['swarm.task.status']).toBe('failed');
    expect(root.endTimeUnixNano).toBe(ns(20));
    const execution = spanOf(planned, 'execution', 1);
    expect(execution.status).toEqual({ code: 2, message: 'OOM' });
    expect(execution.attributes['swarm.attempt.outcome']).toBe('failed');
    expect([execution.startTimeUnixNano, execution.endTimeUnixNano]).toEqual([ns(10), ns(20)]);
    expect(spanOf(planned, 'pickup', 1).status).toEqual(UNSET);
    expect(spanOf(planned, 'queue_wait', 1).status).toEqual(UNSET);
  });

  it('trace spans - the error text is the metadata error, else the reason', () => {
    const failedWith = (metadata: Record<string, unknown>) => {
      const events = [
        retry.created,
        retry.assignedA,
        retry.startedA,
        ev(4, 'task.failed', 20, { agent: 'agent-a', ...metadata }, 'agent-a'),
      ];
      const planned = plan(events);
      return [spanOf(planned, 'root').status, spanOf(planned, 'execution', 1).status];
    };
    const error = { code: 2, message: 'tool crashed' };
    expect(failedWith({ error: 'tool crashed', reason: 'cancelled' })).toEqual([error, error]);
    const reason = { code: 2, message: 'cancelled' };
    expect(failedWith({ reason: 'cancelled' })).toEqual([reason, reason]);
    // Neither: still an error, with some message.
    for (const status of failedWith({})) {
      expect(status.code).toBe(2);
      expect(status.message).toEqual(expect.any(String));
    }
  });

  it("trace spans - a timeout while running: root and execution ERROR 'timeout', outcome timed_out", () => {
    const events = [retry.created, retry.assignedA, retry.startedA, ev(4, 'task.timeout', 60)];
    const planned = plan(events);
    const root = spanOf(planned, 'root');
    expect(root.status).toEqual({ code: 2, message: 'timeout' });
    expect(root.attributes['swarm.task.status']).toBe('timed_out');
    const execution = spanOf(planned, 'execution', 1);
    expect(execution.status).toEqual({ code: 2, message: 'timeout' });
    expect(execution.attributes['swarm.attempt.outcome']).toBe('timed_out');
    expect(execution.endTimeUnixNano).toBe(ns(60));
  });

  it('trace spans - a timeout with a reason uses the reason', () => {
    const events = [
      retry.created,
      retry.assignedA,
      retry.startedA,
      ev(4, 'task.timeout', 60, { reason: 'deadline exceeded', deadline_ms: 60_000 }),
    ];
    const planned = plan(events);
    expect(spanOf(planned, 'root').status).toEqual({ code: 2, message: 'deadline exceeded' });
    expect(spanOf(planned, 'execution', 1).status).toEqual({ code: 2, message: 'deadline exceeded' });
  });

  it('trace spans - a timeout before the start: the pickup runs to the timeout with status ERROR, and there is no execution', () => {
    const events = [retry.created, retry.assignedA, ev(4, 'task.timeout', 60)];
    const planned = plan(events);
    expect(shape(planned)).toEqual(['swarm.task', 'swarm.task.queue_wait#1', 'swarm.task.pickup#1']);
    const pickup = spanOf(planned, 'pickup', 1);
    expect([pickup.startTimeUnixNano, pickup.endTimeUnixNano]).toEqual([ns(5), ns(60)]);
    expect(pickup.status.code).toBe(2);
    expect(pickup.status.message).toBe('timeout (before the attempt started)');
    expect(pickup.attributes['swarm.attempt.outcome']).toBe('timed_out');
    expect(pickup.attributes['swarm.task.pickup_ms']).toBe(55_000);
    expect(spanOf(planned, 'root').status).toEqual({ code: 2, message: 'timeout' });
  });

  it('trace spans - a timeout while pending gives the root alone', () => {
    const planned = plan([retry.created, ev(4, 'task.timeout', 60)]);
    expect(shape(planned)).toEqual(['swarm.task']);
    expect(planned[0]!.span.status).toEqual({ code: 2, message: 'timeout' });
    expect([planned[0]!.span.startTimeUnixNano, planned[0]!.span.endTimeUnixNano]).toEqual([ns(0), ns(60)]);
  });
});

describe('planTraceSpans - attempts', () => {
  it('trace spans - a retried task has two attempts, each with its own spans and ids', () => {
    const planned = plan(RETRIED_TASK);
    expect(shape(planned)).toEqual([
      'swarm.task',
      'swarm.task.queue_wait#1',
      'swarm.task.pickup#1',
      'invoke_agent agent-a#1',
      'swarm.task.queue_wait#2',
      'swarm.task.pickup#2',
      'invoke_agent agent-b#2',
    ]);
    const ids = planned.map((p) => p.span.spanId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of planned.filter((x) => x.role !== 'root')) {
      expect(p.span.spanId).toBe(otelSpanId(TRACE, p.role, p.attempt));
      expect(p.span.parentSpanId).toBe(ROOT_ID);
    }

    const first = spanOf(planned, 'execution', 1);
    expect(first.status).toEqual({ code: 2, message: 'OOM' });
    expect(first.resource['service.name']).toBe('agent-a');
    expect(first.attributes).toMatchObject({ 'swarm.attempt': 1, 'swarm.attempt.outcome': 'failed' });

    // The second wait runs from the end of the first attempt to the new assignment.
    const wait = spanOf(planned, 'queue_wait', 2);
    expect([wait.startTimeUnixNano, wait.endTimeUnixNano]).toEqual([ns(20), ns(30)]);
    expect(wait.attributes).toMatchObject({ 'swarm.attempt': 2, 'swarm.queue_wait_ms': 10_000 });
    expect(wait.resource['service.name']).toBe('agent-b');

    const second = spanOf(planned, 'execution', 2);
    expect(second.status).toEqual(UNSET);
    expect([second.startTimeUnixNano, second.endTimeUnixNano]).toEqual([ns(33), ns(50)]);
    expect(second.attributes).toMatchObject({
      'swarm.attempt': 2,
      'swarm.agent': 'agent-b',
      'gen_ai.agent.name': 'agent-b',
      'gen_ai.request.model': 'gpt-5',
      'swarm.attempt.outcome': 'completed',
    });
    expect(second.attributes).not.toHaveProperty('gen_ai.provider.name');
    expect(first.attributes).not.toHaveProperty('gen_ai.request.model');

    const root = spanOf(planned, 'root');
    expect(root.status).toEqual(UNSET);
    expect(root.attributes).toMatchObject({
      'swarm.task.status': 'completed',
      'swarm.task.attempts': 2,
      'swarm.agent': 'agent-b',
      'swarm.task.duration_ms': 17_000,
      'swarm.task.pickup_ms': 3_000,
    });
  });

  it('trace spans - a reassignment while running ends the execution (outcome reassigned, not an error) and starts a zero wait', () => {
    const events = [
      created,
      assigned,
      ev(3, 'task.started', 10, { agent: 'agent-a' }, 'agent-a'),
      ev(6, 'task.assigned', 25, { agent: 'agent-b' }),
      ev(7, 'task.started', 27, { agent: 'agent-b' }, 'agent-b'),
      ev(8, 'task.completed', 40, { agent: 'agent-b' }, 'agent-b'),
    ];
    const planned = plan(events);
    const first = spanOf(planned, 'execution', 1);
    expect(first.name).toBe('invoke_agent agent-a');
    expect([first.startTimeUnixNano, first.endTimeUnixNano]).toEqual([ns(10), ns(25)]);
    expect(first.attributes['swarm.attempt.outcome']).toBe('reassigned');
    expect(first.status).toEqual(UNSET);
    const wait = spanOf(planned, 'queue_wait', 2);
    expect([wait.startTimeUnixNano, wait.endTimeUnixNano]).toEqual([ns(25), ns(25)]);
    expect(wait.attributes['swarm.queue_wait_ms']).toBe(0);
    expect(spanOf(planned, 'execution', 2).name).toBe('invoke_agent agent-b');
  });

  it('trace spans - an attempt reassigned before it started: pickup up to the reassignment (not an error), no execution', () => {
    const events = [
      created,
      assigned,
      ev(6, 'task.assigned', 15, { agent: 'agent-b' }),
      ev(7, 'task.started', 17, { agent: 'agent-b' }, 'agent-b'),
      ev(8, 'task.completed', 30, { agent: 'agent-b' }, 'agent-b'),
    ];
    const planned = plan(events);
    expect(shape(planned)).toEqual([
      'swarm.task',
      'swarm.task.queue_wait#1',
      'swarm.task.pickup#1',
      'swarm.task.queue_wait#2',
      'swarm.task.pickup#2',
      'invoke_agent agent-b#2',
    ]);
    const pickup = spanOf(planned, 'pickup', 1);
    expect([pickup.startTimeUnixNano, pickup.endTimeUnixNano]).toEqual([ns(5), ns(15)]);
    // A reassignment is not an error: the issue reserves ERROR for failures and timeouts.
    expect(pickup.status).toEqual(UNSET);
    expect(pickup.attributes['swarm.attempt.outcome']).toBe('reassigned');
    expect(pickup.resource['service.name']).toBe('agent-a');
    expect(spanOf(planned, 'pickup', 2).status).toEqual(UNSET);
  });

  it('trace spans - events of one millisecond are ordered by rank, not by event_id', () => {
    // Ids in reverse of the lifecycle: ordering by event_id alone would start before the assignment.
    const events = [
      ev(9, 'task.created', 0, {}, 'planner'),
      ev(8, 'task.assigned', 0, { agent: 'agent-a' }),
      ev(7, 'task.started', 0, { agent: 'agent-a' }, 'agent-a'),
      ev(6, 'task.completed', 9, { agent: 'agent-a' }, 'agent-a'),
    ];
    const planned = plan(events);
    expect(shape(planned)).toEqual([
      'swarm.task',
      'swarm.task.queue_wait#1',
      'swarm.task.pickup#1',
      'invoke_agent agent-a#1',
    ]);
    const pickup = spanOf(planned, 'pickup', 1);
    expect([pickup.startTimeUnixNano, pickup.endTimeUnixNano]).toEqual([ns(0), ns(0)]);
    expect(pickup.status).toEqual(UNSET);
    expect(spanOf(planned, 'execution', 1).startTimeUnixNano).toBe(ns(0));
  });

  it('trace spans - two assignments in one millisecond: the greater event_id is the later attempt', () => {
    const events = [
      created,
      ev(7, 'task.assigned', 5, { agent: 'agent-b' }),
      ev(6, 'task.assigned', 5, { agent: 'agent-a' }),
      ev(8, 'task.started', 8, { agent: 'agent-b' }, 'agent-b'),
      ev(9, 'task.completed', 20, { agent: 'agent-b' }, 'agent-b'),
    ];
    const planned = plan(events);
    expect(shape(planned)).toEqual([
      'swarm.task',
      'swarm.task.queue_wait#1',
      'swarm.task.pickup#1',
      'swarm.task.queue_wait#2',
      'swarm.task.pickup#2',
      'invoke_agent agent-b#2',
    ]);
    expect(spanOf(planned, 'queue_wait', 1).attributes['swarm.agent']).toBe('agent-a');
    expect(spanOf(planned, 'pickup', 1).attributes['swarm.attempt.outcome']).toBe('reassigned');
    expect(spanOf(planned, 'root').attributes['swarm.agent']).toBe('agent-b');
  });

  it('trace spans - the input order of the events does not matter', () => {
    const rnd = createRandom(7);
    const events = [
      ...RETRIED_TASK,
      ev(19, 'task.progress', 15, { agent: 'agent-a', pct: 50 }, 'agent-a'),
      ev(20, 'system.error', 31, { error: 'worker restarted' }, 'swarm'),
    ];
    const expected = plan(events);
    for (let i = 0; i < 20; i++) expect(plan(rnd.shuffle(events))).toEqual(expected);
  });

  it('trace spans - Date and string times give the same spans', () => {
    const state = stateOf(RETRIED_TASK);
    const withDates: TraceState = {
      ...state,
      created_at: new Date(state.created_at),
      completed_at: state.completed_at === null ? null : new Date(state.completed_at),
    };
    const events = RETRIED_TASK.map((e) => ({ ...e, timestamp: new Date(e.timestamp) }));
    expect(planTraceSpans(withDates, events, OPTIONS)).toEqual(planTraceSpans(state, RETRIED_TASK, OPTIONS));
  });

  it('trace spans - the same trace always gives the same spans, ids included; another trace other ids', () => {
    expect(plan(RETRIED_TASK)).toEqual(plan(RETRIED_TASK));
    const other = RETRIED_TASK.map((e) => ({ ...e, trace_id: 'task-43' }));
    const otherIds = planTraceSpans(stateOf(other, 'task-43'), other, OPTIONS).map((p) => p.span.spanId);
    const ids = plan(RETRIED_TASK).map((p) => p.span.spanId);
    expect(otherIds.filter((id) => ids.includes(id))).toEqual([]);
  });

  it('trace spans - a UUID or 32-hex trace_id keeps its hex digits as the OTel trace id', () => {
    for (const [traceId, otel] of [
      ['1B4E28BA-2FA1-41D2-883F-0016D3CCA427', '1b4e28ba2fa141d2883f0016d3cca427'],
      ['4BF92F3577B34DA6A3CE929D0E0E4736', '4bf92f3577b34da6a3ce929d0e0e4736'],
    ] as const) {
      const events = RETRIED_TASK.map((e) => ({ ...e, trace_id: traceId }));
      const planned = planTraceSpans(stateOf(events, traceId), events, OPTIONS);
      expect(planned.length).toBeGreaterThan(0);
      for (const p of planned) {
        expect(p.span.traceId).toBe(otel);
        expect(p.span.attributes['swarm.trace_id']).toBe(traceId);
      }
    }
  });

  it('trace spans - options.resource is on every span, service.name falls back to options.serviceName', () => {
    // The assignment names no agent and nothing else does either: the agent is unknown.
    const events = [
      created,
      ev(2, 'task.assigned', 5),
      ev(3, 'task.started', 12, {}, 'worker'),
      ev(5, 'task.completed', 42, {}, 'worker'),
    ];
    const planned = plan(events);
    for (const p of planned) expect(p.span.resource['deployment.environment.name']).toBe('test');
    const execution = spanOf(planned, 'execution', 1);
    expect(execution.resource['service.name']).toBe('chronicle');
    expect(execution.attributes).not.toHaveProperty('swarm.agent');
    expect(execution.name).toMatch(/^invoke_agent( \S+)?$/);
    expect(spanOf(planned, 'root').resource['service.name']).toBe('planner');
  });
});

describe('planTraceSpans - only ended spans', () => {
  it('trace spans - a running task shows its finished phases (queue wait, pickup) and no root or execution', () => {
    const planned = plan([created, assigned, started, progress]);
    expect(shape(planned)).toEqual(['swarm.task.queue_wait#1', 'swarm.task.pickup#1']);
  });

  it('trace spans - a task stuck in assigned shows its queue wait only', () => {
    expect(shape(plan([created, assigned]))).toEqual(['swarm.task.queue_wait#1']);
  });

  it('trace spans - a pending task has no spans', () => {
    expect(plan([created])).toEqual([]);
  });

  it('trace spans - the running second attempt of a retried task has no execution span yet', () => {
    const planned = plan(RETRIED_TASK.slice(0, 6));
    expect(shape(planned)).toEqual([
      'swarm.task.queue_wait#1',
      'swarm.task.pickup#1',
      'invoke_agent agent-a#1',
      'swarm.task.queue_wait#2',
      'swarm.task.pickup#2',
    ]);
  });

  it('trace spans - times are nanosecond decimal strings and no span ends before it starts, even with skewed clocks', () => {
    // The agent's clock is behind: assigned before created, completed before started.
    const events = [
      ev(1, 'task.created', 10, {}, 'planner'),
      ev(2, 'task.assigned', 5, { agent: 'agent-a' }),
      ev(3, 'task.started', 12, { agent: 'agent-a' }, 'agent-a'),
      ev(4, 'task.completed', 11, { agent: 'agent-a' }, 'agent-a'),
    ];
    const planned = plan(events);
    expect(planned.length).toBeGreaterThan(0);
    for (const p of planned) {
      expect(p.span.startTimeUnixNano).toMatch(/^\d+$/);
      expect(p.span.endTimeUnixNano).toMatch(/^\d+$/);
      expect(BigInt(p.span.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(p.span.startTimeUnixNano));
    }
    const wait = spanOf(planned, 'queue_wait', 1);
    expect([wait.startTimeUnixNano, wait.endTimeUnixNano]).toEqual([ns(5), ns(5)]);
    expect(wait.attributes['swarm.queue_wait_ms']).toBe(0);
  });

  it('trace spans - a root whose completed_at is before created_at still ends no earlier than it starts', () => {
    const state: TraceState = { ...stateOf(COMPLETED_TASK), completed_at: new Date(T0 - 60_000) };
    const root = spanOf(planTraceSpans(state, COMPLETED_TASK, OPTIONS), 'root');
    expect(root.startTimeUnixNano).toBe(ns(0));
    expect(root.endTimeUnixNano).toBe(ns(0));
  });

  it('trace spans - a terminal status without completed_at plans no root', () => {
    const state: TraceState = { ...stateOf(COMPLETED_TASK), completed_at: null };
    expect(planTraceSpans(state, COMPLETED_TASK, OPTIONS).map((p) => p.role)).not.toContain('root');
  });
});

describe('planTraceSpans - a trace that is not a task', () => {
  const SYSTEM = 'system-7';
  const error = ev(
    1,
    'system.error',
    0,
    { error: 'disk full', component: 'agent-a', code: 17, nested: { a: 1 } },
    'swarm',
    SYSTEM,
  );
  const dlq = ev(
    2,
    'dlq.entry',
    3,
    {
      dlq_id: 'dlq-9',
      reason: 'max_retries',
      reason_detail: 'gave up',
      original_subject: null,
      retry_count: 5,
    },
    'dlq',
    SYSTEM,
  );
  const registered = ev(3, 'agent.registered', 3, { agent: 'agent-a' }, 'agent-a', SYSTEM);
  const events = [registered, dlq, error];

  it('trace spans - each event becomes its own zero-length root span named by its event_type', () => {
    const state = stateOf(events, SYSTEM);
    expect(state.is_task).toBe(false);
    const planned = planTraceSpans(state, events, OPTIONS);
    const otel = createHash('sha256').update(SYSTEM, 'utf8').digest().subarray(0, 16).toString('hex');
    const expected = (
      e: CanonicalEvent,
      attributes: Record<string, unknown>,
      status: SpanRecord['status'],
    ) => ({
      role: 'event',
      attempt: 0,
      eventIds: [e.event_id],
      span: {
        traceId: otel,
        spanId: otelSpanId(SYSTEM, 'event', e.event_id),
        parentSpanId: null,
        name: e.event_type,
        kind: INTERNAL,
        startTimeUnixNano: (BigInt(Date.parse(e.timestamp)) * 1_000_000n).toString(),
        endTimeUnixNano: (BigInt(Date.parse(e.timestamp)) * 1_000_000n).toString(),
        attributes: {
          'swarm.trace_id': SYSTEM,
          ...attributes,
          'swarm.event_type': e.event_type,
          'swarm.event_id': e.event_id,
        },
        events: [],
        links: [],
        status,
        resource: resource(e.source),
        scope: SCOPE,
      },
    });
    expect(planned).toEqual([
      expected(error, { error: 'disk full', component: 'agent-a', code: 17 }, UNSET),
      expected(
        dlq,
        { dlq_id: 'dlq-9', reason: 'max_retries', reason_detail: 'gave up', retry_count: 5 },
        { code: 2, message: 'max_retries' },
      ),
      expected(registered, { agent: 'agent-a' }, UNSET),
    ]);
  });

  it('trace spans - a dlq.entry span without a reason is still an error', () => {
    const bare = ev(4, 'dlq.entry', 5, { dlq_id: 'dlq-10' }, 'dlq', SYSTEM);
    const planned = planTraceSpans(stateOf([bare], SYSTEM), [bare], OPTIONS);
    expect(planned).toHaveLength(1);
    expect(planned[0]!.span.status.code).toBe(2);
    expect(planned[0]!.span.status.message).toEqual(expect.any(String));
  });

  it('trace spans - spansToEmit for a non-task trace sends each new event span once, and never an update', () => {
    const first = spansToEmit(stateOf([error], SYSTEM), [error], [], OPTIONS);
    expect(first.map((p) => p.span.name)).toEqual(['system.error']);
    const second = spansToEmit(stateOf(events, SYSTEM), events, first, OPTIONS);
    expect(second.map((p) => p.span.name)).toEqual(['dlq.entry', 'agent.registered']);
    expect(spansToEmit(stateOf(events, SYSTEM), events, [...first, ...second], OPTIONS)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// spansToEmit
// ---------------------------------------------------------------------------------------------------

describe('spansToEmit', () => {
  it('spansToEmit - with nothing stored, the whole plan and no update', () => {
    expect(emit(RETRIED_TASK, [])).toEqual(plan(RETRIED_TASK));
  });

  it('spansToEmit - with the whole plan stored, nothing', () => {
    expect(emit(RETRIED_TASK, plan(RETRIED_TASK))).toEqual([]);
  });

  it('spansToEmit - a running task sends its finished phases, then the root and the execution when it ends', () => {
    const running = [created, assigned, started];
    const first = emit(running, []);
    expect(shape(first)).toEqual(['swarm.task.queue_wait#1', 'swarm.task.pickup#1']);
    const second = emit(COMPLETED_TASK, first);
    expect(shape(second)).toEqual(['swarm.task', 'invoke_agent agent-a#1']);
    expect(emit(COMPLETED_TASK, [...first, ...second])).toEqual([]);
  });

  it('spansToEmit - an event after the root went out gives one swarm.task.update carrying it', () => {
    const withoutProgress = COMPLETED_TASK.filter((e) => e !== progress);
    const stored = plan(withoutProgress);
    const out = emit(COMPLETED_TASK, stored);
    expect(out).toEqual([
      {
        role: 'update',
        attempt: 1,
        eventIds: [uid(4)],
        reported: {},
        span: {
          traceId: OTEL_TRACE,
          spanId: otelSpanId(TRACE, 'update', 1),
          parentSpanId: ROOT_ID,
          name: 'swarm.task.update',
          kind: INTERNAL,
          startTimeUnixNano: ns(20),
          endTimeUnixNano: ns(20),
          attributes: {
            'swarm.trace_id': TRACE,
            'swarm.task.attempts': 1,
            'swarm.update.changed_spans': [],
            'swarm.update.events': 1,
            'swarm.task.status': 'completed',
            'swarm.agent': 'agent-a',
          },
          events: [spanEvent(progress, { agent: 'agent-a', pct: 50 })],
          links: [],
          status: UNSET,
          resource: resource('agent-a'),
          scope: SCOPE,
        },
      },
    ]);
    // Idempotent: the update is stored, nothing more to say.
    expect(emit(COMPLETED_TASK, [...stored, ...out])).toEqual([]);
  });

  it('spansToEmit - a late lifecycle event that changes sent spans names them in one update, with the new spans', () => {
    // The start arrives after the rest: pickup#1 went out running to the completion, the root without duration.
    const early = [created, assigned, completed];
    const stored = emit(early, []);
    expect(shape(stored)).toEqual(['swarm.task', 'swarm.task.queue_wait#1', 'swarm.task.pickup#1']);
    expect(spanOf(stored, 'pickup', 1).attributes['swarm.attempt.outcome']).toBe('completed');
    expect(spanOf(stored, 'pickup', 1).status).toEqual(UNSET);

    const all = [created, assigned, started, completed];
    const out = emit(all, stored);
    expect(shape(out)).toEqual(['invoke_agent agent-a#1', 'swarm.task.update']);
    const update = only(out, 'update', 1);
    expect(update.span.attributes['swarm.update.changed_spans']).toEqual([
      'swarm.task',
      'swarm.task.pickup#1',
    ]);
    expect(update.span.attributes['swarm.update.events']).toBe(1);
    expect(update.eventIds).toEqual([uid(3)]);
    expect(update.span.events.map((e) => e.name)).toEqual(['task.started']);
    expect([update.span.startTimeUnixNano, update.span.endTimeUnixNano]).toEqual([ns(12), ns(12)]);
    expect(Object.keys(update.reported ?? {}).sort()).toEqual(
      [ROOT_ID, otelSpanId(TRACE, 'pickup', 1)].sort(),
    );
    // The stored spans themselves are not re-sent.
    expect(out.map((p) => p.span.spanId)).not.toContain(ROOT_ID);
    expect(out.map((p) => p.span.spanId)).not.toContain(otelSpanId(TRACE, 'pickup', 1));
    expect(emit(all, [...stored, ...out])).toEqual([]);
  });

  it('spansToEmit - a retry after a terminal failure: the new attempt, and an update for the root, numbered in sequence', () => {
    const stored: StoredSpan[] = emit(FIRST_ATTEMPT_FAILED, []);
    expect(spanOf(stored, 'root').status).toEqual({ code: 2, message: 'OOM' });

    const step1 = [...FIRST_ATTEMPT_FAILED, retry.assignedB];
    const out1 = emit(step1, stored);
    expect(shape(out1)).toEqual(['swarm.task.queue_wait#2', 'swarm.task.update']);
    const update1 = only(out1, 'update', 1);
    expect(update1.span.spanId).toBe(otelSpanId(TRACE, 'update', 1));
    expect(update1.span.attributes).toMatchObject({
      'swarm.task.status': 'assigned',
      'swarm.agent': 'agent-b',
      'swarm.task.attempts': 2,
      'swarm.update.events': 1,
    });
    expect(update1.span.status).toEqual(UNSET);
    expect(update1.eventIds).toEqual([retry.assignedB.event_id]);
    stored.push(...out1);
    expect(emit(step1, stored)).toEqual([]);

    const out2 = emit(RETRIED_TASK, stored);
    expect(shape(out2)).toEqual(['swarm.task.pickup#2', 'invoke_agent agent-b#2', 'swarm.task.update']);
    const update2 = only(out2, 'update', 2);
    expect(update2.span.spanId).toBe(otelSpanId(TRACE, 'update', 2));
    expect(update2.span.attributes).toMatchObject({
      'swarm.task.status': 'completed',
      'swarm.agent': 'agent-b',
      'swarm.update.changed_spans': ['swarm.task'],
      'swarm.update.events': 2,
    });
    expect(update2.eventIds).toEqual([retry.startedB.event_id, retry.completedB.event_id]);
    expect([update2.span.startTimeUnixNano, update2.span.endTimeUnixNano]).toEqual([ns(33), ns(50)]);
    expect(update2.span.resource['service.name']).toBe('agent-b');
    stored.push(...out2);
    expect(emit(RETRIED_TASK, stored)).toEqual([]);
  });

  it('spansToEmit - the retry arriving in one batch gives the new attempt and a single update naming the root', () => {
    const stored = emit(FIRST_ATTEMPT_FAILED, []);
    const out = emit(RETRIED_TASK, stored);
    expect(shape(out)).toEqual([
      'swarm.task.queue_wait#2',
      'swarm.task.pickup#2',
      'invoke_agent agent-b#2',
      'swarm.task.update',
    ]);
    const update = only(out, 'update', 1);
    expect(update.span.attributes['swarm.update.changed_spans']).toEqual(['swarm.task']);
    expect(update.span.attributes['swarm.update.events']).toBe(3);
    expect(update.span.events.map((e) => e.attributes['swarm.event_id'])).toEqual([
      retry.assignedB.event_id,
      retry.startedB.event_id,
      retry.completedB.event_id,
    ]);
    expect(emit(RETRIED_TASK, [...stored, ...out])).toEqual([]);
  });

  it('spansToEmit - an update on a failed task has status ERROR with the error', () => {
    const stored = emit(FIRST_ATTEMPT_FAILED, []);
    const late = ev(8, 'task.progress', 15, { pct: 90 }, 'agent-a');
    const out = emit([...FIRST_ATTEMPT_FAILED, late], stored);
    expect(shape(out)).toEqual(['swarm.task.update']);
    expect(out[0]!.span.status).toEqual({ code: 2, message: 'OOM' });
    expect(out[0]!.span.attributes['swarm.task.status']).toBe('failed');
  });

  it('spansToEmit - a changed span is named by one update only, until it changes again', () => {
    const early = [created, assigned, completed];
    const stored: StoredSpan[] = emit(early, []);
    const withStart = [created, assigned, started, completed];
    stored.push(...emit(withStart, stored));

    // An unrelated late event: a second update, which does not name the spans the first one reported.
    const withProgress = [...withStart, progress];
    const out = emit(withProgress, stored);
    expect(shape(out)).toEqual(['swarm.task.update']);
    expect(out[0]!.attempt).toBe(2);
    expect(out[0]!.span.attributes['swarm.update.changed_spans']).toEqual([]);
    expect(out[0]!.eventIds).toEqual([uid(4)]);
    stored.push(...out);

    // A later start (the latest task.started counts, as in the trace row): the root's duration and the
    // pickup and execution change again, and are named again.
    const laterStart = ev(10, 'task.started', 30, { agent: 'agent-a' }, 'agent-a');
    const final = [...withProgress, laterStart];
    const again = emit(final, stored);
    expect(shape(again)).toEqual(['swarm.task.update']);
    expect(again[0]!.attempt).toBe(3);
    expect(again[0]!.span.attributes['swarm.update.changed_spans']).toEqual([
      'swarm.task',
      'swarm.task.pickup#1',
      'invoke_agent agent-a#1',
    ]);
    stored.push(...again);
    expect(emit(final, stored)).toEqual([]);
  });

  it('spansToEmit - before the root went out, a changed span still gives an update, without events', () => {
    // No task.created yet: created_at is the assignment, so the first wait is zero-length.
    const early = [assigned, started];
    const stored = emit(early, []);
    expect(shape(stored)).toEqual(['swarm.task.queue_wait#1', 'swarm.task.pickup#1']);

    const all = [created, assigned, started];
    const out = emit(all, stored);
    expect(shape(out)).toEqual(['swarm.task.update']);
    const update = out[0]!;
    expect(update.eventIds).toEqual([]);
    expect(update.span.events).toEqual([]);
    expect(update.span.parentSpanId).toBe(ROOT_ID);
    expect(update.span.attributes).toMatchObject({
      'swarm.update.changed_spans': ['swarm.task.queue_wait#1'],
      'swarm.update.events': 0,
      'swarm.task.status': 'in_progress',
    });
    // Without events of its own it sits at the trace's latest event.
    expect([update.span.startTimeUnixNano, update.span.endTimeUnixNano]).toEqual([ns(12), ns(12)]);
    expect(emit(all, [...stored, ...out])).toEqual([]);
  });

  it('spansToEmit - a late non-lifecycle event before the root went out needs no update', () => {
    const stored = emit([created, assigned, started], []);
    expect(emit([created, assigned, started, progress], stored)).toEqual([]);
  });

  it('spansToEmit - never changes the stored spans or the events it is given', () => {
    const stored = deepFreeze(emit([created, assigned, completed], []));
    const events = deepFreeze([...COMPLETED_TASK]);
    const before = structuredClone(stored);
    const out = emit(events, stored);
    expect(out.some((p) => p.role === 'update')).toBe(true);
    expect(stored).toEqual(before);
  });

  it('spansToEmit - a renumbered attempt: the sent spans of old numbers that changed are named in the update', () => {
    // All four lifecycle spans went out; then an earlier assignment (to agent-x) arrives, so agent-a's run
    // becomes attempt 2.
    const events = [
      created,
      ev(2, 'task.assigned', 10, { agent: 'agent-a' }),
      ev(3, 'task.started', 20, { agent: 'agent-a' }, 'agent-a'),
      ev(5, 'task.completed', 30, { agent: 'agent-a' }, 'agent-a'),
    ];
    const stored = emit(events, []);
    const late = ev(6, 'task.assigned', 4, { agent: 'agent-x' });
    const all = [...events, late];
    const out = emit(all, stored);
    expect(shape(out)).toEqual([
      'swarm.task.queue_wait#2',
      'swarm.task.pickup#2',
      'invoke_agent agent-a#2',
      'swarm.task.update',
    ]);
    const changed = only(out, 'update', 1).span.attributes['swarm.update.changed_spans'];
    expect(changed).toEqual(
      expect.arrayContaining(['swarm.task', 'swarm.task.queue_wait#1', 'swarm.task.pickup#1']),
    );
    expect(emit(all, [...stored, ...out])).toEqual([]);
  });

  // A sent span the plan no longer has is stale too: here agent-a's run went out as `invoke_agent agent-a#1`
  // and is now planned as #2, so the update must say #1 is stale (else Jaeger shows the run twice with
  // nothing marking the old copy).
  it('spansToEmit - a renumbered attempt: a sent execution that is no longer planned is named as stale, once', () => {
    const events = [
      created,
      ev(2, 'task.assigned', 10, { agent: 'agent-a' }),
      ev(3, 'task.started', 20, { agent: 'agent-a' }, 'agent-a'),
      ev(5, 'task.completed', 30, { agent: 'agent-a' }, 'agent-a'),
    ];
    const stored: StoredSpan[] = emit(events, []);
    const all = [...events, ev(6, 'task.assigned', 4, { agent: 'agent-x' })];
    const out = emit(all, stored);
    expect(
      [...(only(out, 'update', 1).span.attributes['swarm.update.changed_spans'] as string[])].sort(),
    ).toEqual(
      ['invoke_agent agent-a#1', 'swarm.task', 'swarm.task.pickup#1', 'swarm.task.queue_wait#1'].sort(),
    );
    stored.push(...out);
    expect(emit(all, stored)).toEqual([]);
    // A later unrelated event does not name it again.
    const later = [...all, ev(7, 'task.progress', 31, { pct: 100 }, 'agent-a')];
    const next = emit(later, stored);
    expect(shape(next)).toEqual(['swarm.task.update']);
    expect(next[0]!.span.attributes['swarm.update.changed_spans']).toEqual([]);
  });

  // docs/spans.md: "a retry after a terminal failure" goes out as an update naming the stale spans. The
  // root went out as failed; the retry's assignment makes the task non-terminal, so the root leaves the
  // plan: it is stale at once, and named again when it comes back with new content.
  it('spansToEmit - a retry after a terminal failure names the sent root as stale at once, and again when it ends', () => {
    const stored: StoredSpan[] = emit(FIRST_ATTEMPT_FAILED, []);
    const step = [...FIRST_ATTEMPT_FAILED, retry.assignedB];
    const out = emit(step, stored);
    expect(only(out, 'update', 1).span.attributes['swarm.update.changed_spans']).toEqual(['swarm.task']);
    stored.push(...out);
    expect(emit(step, stored)).toEqual([]);
    stored.push(...emit([...step, retry.startedB], stored));
    const done = emit(RETRIED_TASK, stored);
    const update = done.find((p) => p.role === 'update');
    expect(update?.span.attributes['swarm.update.changed_spans']).toEqual(['swarm.task']);
    stored.push(...done);
    expect(emit(RETRIED_TASK, stored)).toEqual([]);
  });

  it('spansToEmit - event spans sent while the trace was not yet a task are named as stale once it is one', () => {
    // A system error of the task arrives before any lifecycle event: the trace is not a task yet.
    const early = ev(9, 'system.error', 1, { error: 'worker restarted' }, 'swarm');
    const stored: StoredSpan[] = emit([early], []);
    expect(stored.map((p) => p.role)).toEqual(['event']);
    const events = [early, created, assigned];
    const out = emit(events, stored);
    expect(shape(out)).toEqual(['swarm.task.queue_wait#1', 'swarm.task.update']);
    expect(only(out, 'update', 1).span.attributes['swarm.update.changed_spans']).toEqual(['system.error']);
    stored.push(...out);
    expect(emit(events, stored)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Properties: any order and batching converges
// ---------------------------------------------------------------------------------------------------

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;

function expectWellFormed(p: PlannedSpan, otelTrace: string, rootId: string | null): void {
  const s = p.span;
  expect(s.traceId).toBe(otelTrace);
  expect(s.traceId).toMatch(HEX32);
  expect(s.traceId).not.toBe('0'.repeat(32));
  expect(s.spanId).toMatch(HEX16);
  expect(s.spanId).not.toBe('0'.repeat(16));
  if (rootId === null) expect(s.parentSpanId).toBeNull();
  else if (p.role === 'root') expect(s.parentSpanId).toBeNull();
  else expect(s.parentSpanId).toBe(rootId);
  expect(s.startTimeUnixNano).toMatch(/^\d+$/);
  expect(s.endTimeUnixNano).toMatch(/^\d+$/);
  expect(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano)).toBe(true);
  expect([0, 2]).toContain(s.status.code);
  if (s.status.code === 2) expect(s.status.message).toEqual(expect.stringMatching(/./));
  expect(s.resource['service.name']).toEqual(expect.stringMatching(/./));
  expect(s.scope).toEqual(SCOPE);
  for (const e of s.events) expect(e.timeUnixNano).toMatch(/^\d+$/);
}

/** Same content, a root's span events aside (they are covered by event ids, not by content). */
function sameContent(a: PlannedSpan, b: PlannedSpan): boolean {
  const strip = (p: PlannedSpan) => (p.role === 'root' ? { ...p.span, events: [] } : p.span);
  return isDeepStrictEqual(strip(a), strip(b));
}

/**
 * Feeds the trace's events in one random order, in random prefixes, calling spansToEmit after each with
 * everything emitted so far as stored, and checks every call; returns what was stored.
 */
function feedInRandomBatches(traceId: string, events: readonly CanonicalEvent[], rnd: Random): StoredSpan[] {
  const order = rnd.shuffle(events);
  const stored: StoredSpan[] = [];
  const otelTrace = planTraceSpans(stateOf(events, traceId), events, OPTIONS)[0]?.span.traceId;
  for (let n = 0; n < order.length;) {
    n = Math.min(order.length, n + rnd.int(1, 3));
    const prefix = order.slice(0, n);
    const state = stateOf(prefix, traceId);
    const out = spansToEmit(state, prefix, stored, OPTIONS);
    const storedIds = new Set(stored.map((s) => s.span.spanId));
    const ids = out.map((p) => p.span.spanId);
    expect(new Set(ids).size, 'ids within one call are distinct').toBe(ids.length);
    for (const id of ids) expect(storedIds.has(id), 'a stored span id is never emitted again').toBe(false);
    expect(out.filter((p) => p.role === 'update').length).toBeLessThanOrEqual(1);
    const rootId = state.is_task ? otelSpanId(traceId, 'root', 0) : null;
    for (const p of out) expectWellFormed(p, otelTrace ?? p.span.traceId, p.role === 'event' ? null : rootId);
    stored.push(...out);
  }
  return stored;
}

function checkConverged(
  traceId: string,
  events: readonly CanonicalEvent[],
  stored: readonly StoredSpan[],
): void {
  const state = stateOf(events, traceId);
  // Nothing further: idempotent, no endless updates.
  expect(spansToEmit(state, events, stored, OPTIONS)).toEqual([]);

  const final = planTraceSpans(state, events, OPTIONS);
  const storedById = new Map(stored.map((s) => [s.span.spanId, s]));
  expect(storedById.size, 'every span id stored once').toBe(stored.length);
  for (const p of final)
    expect(storedById.has(p.span.spanId), `${p.span.name}#${p.attempt} stored`).toBe(true);

  const roots = stored.filter((s) => s.role === 'root');
  expect(roots.length).toBeLessThanOrEqual(1);
  const finalRoot = final.find((p) => p.role === 'root');
  if (finalRoot) expect(stored.filter((s) => s.span.spanId === finalRoot.span.spanId)).toHaveLength(1);

  if (!state.is_task) return;
  // Once the root went out, every event is shown by the root or an update.
  if (roots.length > 0) {
    const covered = new Set(
      stored.filter((s) => s.role === 'root' || s.role === 'update').flatMap((s) => s.eventIds),
    );
    for (const e of events) expect(covered.has(e.event_id), `event ${e.event_type} covered`).toBe(true);
  }
  // Every sent span whose content is now different was reported by an update.
  const reported = new Set(stored.flatMap((s) => Object.keys(s.reported ?? {})));
  for (const p of final) {
    const sent = storedById.get(p.span.spanId)!;
    if (!sameContent(sent, p))
      expect(reported.has(p.span.spanId), `${p.span.name}#${p.attempt} reported`).toBe(true);
  }
  // Every sent span the mapping no longer produces was reported (as stale) by an update.
  const finalIds = new Set(final.map((p) => p.span.spanId));
  for (const s of stored) {
    if (s.role === 'update' || finalIds.has(s.span.spanId)) continue;
    expect(reported.has(s.span.spanId), `stale ${s.span.name}#${s.attempt} reported`).toBe(true);
  }
  // Updates are numbered 1..n with their deterministic ids.
  const updates = stored.filter((s) => s.role === 'update').map((s) => s.attempt);
  expect([...updates].sort((a, b) => a - b)).toEqual(updates.map((_, i) => i + 1));
  for (const u of stored.filter((s) => s.role === 'update'))
    expect(u.span.spanId).toBe(otelSpanId(traceId, 'update', u.attempt));
}

describe('spansToEmit - properties', () => {
  it('spansToEmit - a retried task fed in any order and batching converges, the root sent exactly once', () => {
    const events = [
      ...RETRIED_TASK,
      ev(19, 'task.progress', 15, { agent: 'agent-a', pct: 50 }, 'agent-a'),
      ev(20, 'system.error', 31, { error: 'worker restarted' }, 'swarm'),
      ev(21, 'dlq.entry', 45, { reason: 'max_retries', reason_detail: 'gave up' }, 'dlq'),
      ev(22, 'task.created', 2, { title: 'Summarize logs (again)' }, 'orchestrator'),
    ];
    const rnd = createRandom(2026);
    for (let run = 0; run < 60; run++) {
      const stored = feedInRandomBatches(TRACE, events, rnd);
      checkConverged(TRACE, events, stored);
      expect(stored.filter((s) => s.span.spanId === ROOT_ID)).toHaveLength(1);
    }
  });

  it('spansToEmit - every generated scenario fed in any order and batching converges', () => {
    const traffic = generateTraffic(31, { tasks: 72, otherTraces: 6 });
    const byTrace = new Map<string, CanonicalEvent[]>();
    for (const e of traffic) {
      if (e.trace_id.startsWith('heartbeat-')) continue;
      byTrace.set(e.trace_id, [...(byTrace.get(e.trace_id) ?? []), e]);
    }
    expect(byTrace.size).toBe(78);
    const rnd = createRandom(5);
    for (const [traceId, events] of byTrace) {
      for (let run = 0; run < 6; run++)
        checkConverged(traceId, events, feedInRandomBatches(traceId, events, rnd));
    }
  });

  it('trace spans - every generated trace plans well-formed spans with distinct ids, whatever the input order', () => {
    const traffic = generateTraffic(47, { tasks: 90 });
    const byTrace = new Map<string, CanonicalEvent[]>();
    for (const e of traffic) byTrace.set(e.trace_id, [...(byTrace.get(e.trace_id) ?? []), e]);
    const rnd = createRandom(3);
    for (const [traceId, events] of byTrace) {
      const state = stateOf(events, traceId);
      const planned = planTraceSpans(state, events, OPTIONS);
      const ids = planned.map((p) => p.span.spanId);
      expect(new Set(ids).size).toBe(ids.length);
      const rootId = state.is_task ? otelSpanId(traceId, 'root', 0) : null;
      for (const p of planned) expectWellFormed(p, planned[0]!.span.traceId, rootId);
      const terminal = ['completed', 'failed', 'timed_out'].includes(state.status ?? '');
      expect(planned.some((p) => p.role === 'root')).toBe(state.is_task && terminal);
      if (!state.is_task) expect(planned).toHaveLength(events.length);
      expect(planTraceSpans(state, rnd.shuffle(events), OPTIONS)).toEqual(planned);
    }
  });
});

describe('review follow-ups', () => {
  it('spansToEmit - a stuck task shows its dead-letter entry at once, on an update, and only once', () => {
    const stuck = [created, assigned];
    const stored = emit(stuck, []);
    expect(shape(stored)).toEqual(['swarm.task.queue_wait#1']);
    const dlq = ev(30, 'dlq.entry', 20, { reason: 'max_retries', reason_detail: 'gave up' }, 'dlq');
    const out = emit([...stuck, dlq], stored);
    expect(shape(out)).toEqual(['swarm.task.update']);
    expect(out[0]!.span.events.map((e) => [e.name, e.attributes['error.type']])).toEqual([
      ['dlq.entry', 'max_retries'],
    ]);
    expect(out[0]!.span.parentSpanId).toBe(ROOT_ID);
    const after = [...stored, ...out];
    expect(emit([...stuck, dlq], after)).toEqual([]);
    // Progress events of a running task wait for the root instead.
    expect(emit([...stuck, dlq, ev(31, 'task.progress', 25, { pct: 10 })], after)).toEqual([]);
  });

  it('spansToEmit - Chronicle resource attributes that differ between replicas change nothing', () => {
    const stored = emit(COMPLETED_TASK, []);
    const other = {
      ...OPTIONS,
      resource: { 'deployment.environment.name': 'test', 'service.instance.id': 'pod-7' },
    };
    expect(spansToEmit(stateOf(COMPLETED_TASK), COMPLETED_TASK, stored, other)).toEqual([]);
  });

  it('trace spans - a failed execution carries error.type; an unknown agent gives a bare invoke_agent', () => {
    const failedRun = [
      created,
      ev(11, 'task.started', 12, {}, 'runtime'),
      ev(12, 'task.failed', 20, { error: 'boom', error_type: 'ToolError' }, 'runtime'),
    ];
    const execution = spanOf(plan(failedRun), 'execution', 1);
    expect(execution.name).toBe('invoke_agent');
    expect(execution.attributes['gen_ai.agent.name']).toBeUndefined();
    expect(execution.attributes['error.type']).toBe('ToolError');
    expect(execution.status).toEqual({ code: 2, message: 'boom' });
  });
});
