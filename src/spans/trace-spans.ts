import { createHash } from 'node:crypto';
import {
  LIFECYCLE_RANK,
  TERMINAL_STATUS_OF,
  type TerminalStatus,
  isTerminalStatus,
  shownAtOnce,
} from '../events/lifecycle.js';
import { otelSpanId, otelTraceId, unixNanos } from './ids.js';
import type {
  AttributeValue,
  Attributes,
  SpanEventRecord,
  SpanLinkRecord,
  SpanRecord,
} from '../events/span-record.js';

/**
 * Events → spans: the one deterministic mapping (docs/spans.md). Pure: the same trace row and events
 * always give the same spans, ids included.
 *
 * A task trace becomes a root span `swarm.task` (created → terminal) and, for each attempt (each
 * task.assigned), `swarm.task.queue_wait` (waiting to be assigned), `swarm.task.pickup` (assigned →
 * started) and the execution `invoke_agent {agent}` (started → the attempt's end), under the agent's
 * service.name. Every raw event is a span event of the root. A trace that is not a task becomes one
 * zero-length span per event, named by its event_type.
 *
 * Only ended spans are planned: a span is exported once, when it has ended, and never re-sent with
 * changed content. What changes after a span went out (a late or out-of-order event) goes out as a
 * `swarm.task.update` span (see spansToEmit).
 */

/** The trace as the store computed it (the columns of swarm_traces the mapping reads). */
export interface TraceState {
  trace_id: string;
  is_task: boolean;
  task_title: string | null;
  owner: string | null;
  status: string | null;
  assigned_agent: string | null;
  created_at: Date | string;
  completed_at: Date | string | null;
  duration_ms: number | null;
  time_to_pickup_ms: number | null;
  attempts: number;
  error: string | null;
}

/** One stored event of the trace. */
export interface TraceEvent {
  event_id: string;
  source: string;
  event_type: string;
  timestamp: Date | string;
  metadata: Record<string, unknown>;
}

export type SpanRole = 'root' | 'queue_wait' | 'pickup' | 'execution' | 'event' | 'update';

/** A span with where it sits in the mapping. */
export interface PlannedSpan {
  role: SpanRole;
  /** The attempt (1-based) for attempt spans, the sequence number of an update span; 0 otherwise. */
  attempt: number;
  span: SpanRecord;
  /** The events this span shows as span events (root and update spans). */
  eventIds: string[];
  /** Update spans: the content (by fingerprint) they reported for each changed span id. */
  reported?: Record<string, string>;
}

export interface TraceSpansOptions {
  /** Resource attributes added to every built span (OTEL_RESOURCE_ATTRIBUTES); service.name is the actor's. */
  resource: Attributes;
  /** service.name when an actor is unknown (OTEL_SERVICE_NAME). */
  serviceName: string;
}

/** The instrumentation scope of every span Chronicle builds. */
export const SCOPE = { name: 'chronicle.swarm' } as const;

const STATUS_UNSET = 0;
const STATUS_ERROR = 2;
const KIND_INTERNAL = 1;
const KIND_CLIENT = 3;

interface Ev {
  id: string;
  type: string;
  millis: number;
  source: string;
  metadata: Record<string, unknown>;
}

interface Attempt {
  n: number;
  agent: string | null;
  assigned: Ev | null;
  started: Ev | null;
  end: { millis: number; outcome: TerminalStatus | 'reassigned'; ev: Ev | null } | null;
  events: Ev[];
}

const millisOf = (t: Date | string): number => (t instanceof Date ? t.getTime() : Date.parse(t));

function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function agentOf(ev: Ev | null): string | null {
  return ev ? (text(ev.metadata.agent) ?? text(ev.metadata.agent_id)) : null;
}

/** Top-level scalar metadata, as span attributes. */
function scalarAttributes(metadata: Record<string, unknown>): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value === 'string' || typeof value === 'boolean') out[key] = value;
    else if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
  }
  return out;
}

const OTEL_TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;
const OTEL_SPAN_ID = /^(?!0{16})[0-9a-f]{16}$/;
// OpenTelemetry's default limit of links per span.
const MAX_LINKS = 128;

/**
 * Links to the spans of the services that produced the events: an event carrying the OpenTelemetry
 * context it was recorded in (`otel_trace_id`, `otel_span_id`, as the SDK's `capture` records them)
 * links the span holding it to that span, so a backend leads from the task to the service's own trace.
 */
function contextLinks(evs: readonly Ev[]): SpanLinkRecord[] {
  const links: SpanLinkRecord[] = [];
  const seen = new Set<string>();
  for (const ev of evs) {
    const traceId = text(ev.metadata.otel_trace_id);
    const spanId = text(ev.metadata.otel_span_id);
    if (traceId === null || spanId === null || !OTEL_TRACE_ID.test(traceId) || !OTEL_SPAN_ID.test(spanId))
      continue;
    const key = `${traceId}/${spanId}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const attributes: Attributes = { 'swarm.event_id': ev.id, 'swarm.event_type': ev.type };
    const name = text(ev.metadata.name);
    if (name !== null) attributes['swarm.call.name'] = name;
    links.push({ traceId, spanId, attributes });
    if (links.length === MAX_LINKS) break;
  }
  return links;
}

function spanEvent(ev: Ev): SpanEventRecord {
  const attributes: Attributes = {
    ...scalarAttributes(ev.metadata),
    'swarm.event_id': ev.id,
    'swarm.source': ev.source,
  };
  if (ev.type === 'dlq.entry') {
    // Dead-lettered: an error event, in the error.* vocabulary.
    attributes['error.type'] = text(ev.metadata.reason) ?? 'dlq';
    const detail = text(ev.metadata.reason_detail);
    if (detail !== null) attributes['error.message'] = detail;
  }
  return { name: ev.type, timeUnixNano: unixNanos(ev.millis), attributes };
}

const byTime = (a: Ev, b: Ev): number => a.millis - b.millis || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

const byLifecycle = (a: Ev, b: Ev): number =>
  a.millis - b.millis ||
  LIFECYCLE_RANK[a.type]! - LIFECYCLE_RANK[b.type]! ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The events as the mapping reads them, oldest first (ties by event_id). */
function inTimeOrder(events: readonly TraceEvent[]): Ev[] {
  return events
    .map((e) => ({
      id: e.event_id,
      type: e.event_type,
      millis: millisOf(e.timestamp),
      source: e.source,
      metadata: e.metadata,
    }))
    .sort(byTime);
}

function errorText(ev: Ev | null, outcome: string): string {
  return (
    (ev && (text(ev.metadata.error) ?? text(ev.metadata.reason))) ??
    (outcome === 'timed_out' ? 'timeout' : outcome)
  );
}

/** Walks the lifecycle events in (timestamp, rank, event_id) order into attempts. */
function attemptsOf(lifecycle: readonly Ev[]): Attempt[] {
  const attempts: Attempt[] = [];
  let current: Attempt | null = null;
  const open = (assigned: Ev | null, agentFrom: Ev): Attempt => {
    const attempt: Attempt = {
      n: attempts.length + 1,
      agent: agentOf(agentFrom),
      assigned,
      started: null,
      end: null,
      events: [],
    };
    attempts.push(attempt);
    return attempt;
  };
  for (const ev of lifecycle) {
    const outcome = TERMINAL_STATUS_OF[ev.type];
    if (ev.type === 'task.assigned') {
      if (current && !current.end) current.end = { millis: ev.millis, outcome: 'reassigned', ev: null };
      current = open(ev, ev);
    } else if (ev.type === 'task.started') {
      if (!current || current.end) current = open(null, ev);
      // The latest start and the latest terminal event win, as in the task state (started_at, last).
      current.started = ev;
      current.agent ??= agentOf(ev);
    } else if (outcome !== undefined && current && (!current.end || current.end.ev !== null)) {
      current.end = { millis: ev.millis, outcome, ev };
      current.agent ??= agentOf(ev);
    }
    if (current) current.events.push(ev);
  }
  return attempts;
}

/** The agent's id when the attempt's events carry one (metadata agent_id). */
function agentIdOf(attempt: Attempt): string | null {
  for (const ev of attempt.events) {
    const id = text(ev.metadata.agent_id);
    if (id !== null) return id;
  }
  return null;
}

/** The model the attempt ran on, and its provider, when its events say so. */
function modelAttributes(attempt: Attempt): Attributes {
  const out: Attributes = {};
  for (const ev of attempt.events) {
    const provider = text(ev.metadata.provider) ?? text(ev.metadata['gen_ai.provider.name']);
    const model = text(ev.metadata.model) ?? text(ev.metadata['gen_ai.request.model']);
    if (provider !== null) out['gen_ai.provider.name'] = provider;
    if (model !== null) out['gen_ai.request.model'] = model;
  }
  return out;
}

/** Every ended span of the trace, in a fixed order (root first). */
export function planTraceSpans(
  trace: TraceState,
  events: readonly TraceEvent[],
  options: TraceSpansOptions,
): PlannedSpan[] {
  const traceId = otelTraceId(trace.trace_id);
  const evs = inTimeOrder(events);
  const resourceOf = (service: string | null): Attributes => ({
    ...options.resource,
    'service.name': service ?? options.serviceName,
  });
  const make = (
    role: SpanRole,
    position: number | string,
    fields: Pick<SpanRecord, 'name' | 'attributes'> &
      Partial<Pick<SpanRecord, 'status' | 'events' | 'links'>> & {
        start: number;
        end: number;
        parent: string | null;
        service: string | null;
      },
  ): SpanRecord => ({
    traceId,
    spanId: otelSpanId(trace.trace_id, role, position),
    parentSpanId: fields.parent,
    name: fields.name,
    // The execution calls out to a remote agent (CLIENT, as the GenAI conventions' invoke_agent span).
    kind: role === 'execution' ? KIND_CLIENT : KIND_INTERNAL,
    startTimeUnixNano: unixNanos(fields.start),
    endTimeUnixNano: unixNanos(Math.max(fields.start, fields.end)),
    attributes: { 'swarm.trace_id': trace.trace_id, ...fields.attributes },
    events: fields.events ?? [],
    links: fields.links ?? [],
    status: fields.status ?? { code: STATUS_UNSET },
    resource: resourceOf(fields.service),
    scope: { ...SCOPE },
  });

  if (!trace.is_task) {
    return evs.map((ev) => ({
      role: 'event',
      attempt: 0,
      eventIds: [ev.id],
      span: make('event', ev.id, {
        name: ev.type,
        start: ev.millis,
        end: ev.millis,
        parent: null,
        service: ev.source,
        links: contextLinks([ev]),
        attributes: {
          ...scalarAttributes(ev.metadata),
          'swarm.event_type': ev.type,
          'swarm.event_id': ev.id,
        },
        ...(ev.type === 'dlq.entry'
          ? { status: { code: STATUS_ERROR, message: errorText(ev, 'dead-lettered') } }
          : {}),
      }),
    }));
  }

  const rootId = otelSpanId(trace.trace_id, 'root', 0);
  const lifecycle = evs.filter((e) => LIFECYCLE_RANK[e.type] !== undefined).sort(byLifecycle);
  const created = lifecycle.find((e) => e.type === 'task.created') ?? null;
  const createdMillis = millisOf(trace.created_at);
  const planned: PlannedSpan[] = [];

  if (isTerminalStatus(trace.status) && trace.completed_at !== null) {
    const attributes: Attributes = {
      'swarm.task.status': trace.status,
      'swarm.task.attempts': trace.attempts,
    };
    const optional: [string, AttributeValue | null][] = [
      ['swarm.task.title', trace.task_title],
      ['swarm.task.owner', trace.owner],
      ['swarm.agent', trace.assigned_agent],
      ['swarm.task.duration_ms', trace.duration_ms],
      ['swarm.task.pickup_ms', trace.time_to_pickup_ms],
    ];
    for (const [key, value] of optional) if (value !== null) attributes[key] = value;
    planned.push({
      role: 'root',
      attempt: 0,
      eventIds: evs.map((e) => e.id),
      span: make('root', 0, {
        name: 'swarm.task',
        start: createdMillis,
        end: millisOf(trace.completed_at),
        parent: null,
        service: created?.source ?? evs[0]?.source ?? null,
        attributes,
        events: evs.map(spanEvent),
        links: contextLinks(evs),
        ...(trace.status === 'completed'
          ? {}
          : { status: { code: STATUS_ERROR, message: trace.error ?? trace.status } }),
      }),
    });
  }

  let waitingSince = createdMillis;
  for (const attempt of attemptsOf(lifecycle)) {
    const agent = attempt.agent ?? trace.assigned_agent;
    const common: Attributes = {
      'swarm.attempt': attempt.n,
      ...(agent !== null ? { 'swarm.agent': agent } : {}),
    };
    const endMillis = attempt.end?.millis;
    if (attempt.assigned) {
      const assignedAt = attempt.assigned.millis;
      planned.push({
        role: 'queue_wait',
        attempt: attempt.n,
        eventIds: [],
        span: make('queue_wait', attempt.n, {
          name: 'swarm.task.queue_wait',
          start: Math.min(waitingSince, assignedAt),
          end: assignedAt,
          parent: rootId,
          service: agent,
          attributes: { ...common, 'swarm.queue_wait_ms': Math.max(0, assignedAt - waitingSince) },
        }),
      });
      const pickupEnd = attempt.started?.millis ?? endMillis;
      if (pickupEnd !== undefined) {
        // Ended before it started: an error only when the attempt failed or timed out (a reassignment
        // before pickup is not an error).
        const endedUnstarted = attempt.started === null ? attempt.end!.outcome : undefined;
        const unstartedFailure = endedUnstarted === 'failed' || endedUnstarted === 'timed_out';
        planned.push({
          role: 'pickup',
          attempt: attempt.n,
          eventIds: [],
          span: make('pickup', attempt.n, {
            name: 'swarm.task.pickup',
            start: assignedAt,
            end: pickupEnd,
            parent: rootId,
            service: agent,
            attributes: {
              ...common,
              'swarm.task.pickup_ms': Math.max(0, pickupEnd - assignedAt),
              ...(endedUnstarted !== undefined ? { 'swarm.attempt.outcome': endedUnstarted } : {}),
            },
            ...(unstartedFailure
              ? {
                  status: {
                    code: STATUS_ERROR,
                    message: `${errorText(attempt.end!.ev, endedUnstarted)} (before the attempt started)`,
                  },
                }
              : {}),
          }),
        });
      }
    }
    if (attempt.started && attempt.end) {
      const { outcome, ev } = attempt.end;
      const failed = outcome === 'failed' || outcome === 'timed_out';
      const agentId = agentIdOf(attempt) ?? agent;
      const attributes: Attributes = {
        ...common,
        'gen_ai.operation.name': 'invoke_agent',
        ...(agent !== null ? { 'gen_ai.agent.name': agent } : {}),
        ...(agentId !== null ? { 'gen_ai.agent.id': agentId } : {}),
        ...modelAttributes(attempt),
        'swarm.attempt.outcome': outcome,
        'swarm.task.duration_ms': Math.max(0, attempt.end.millis - attempt.started.millis),
      };
      // Required on error by the conventions: the class of the error.
      if (failed)
        attributes['error.type'] =
          outcome === 'timed_out' ? 'timeout' : (text(ev?.metadata.error_type) ?? '_OTHER');
      planned.push({
        role: 'execution',
        attempt: attempt.n,
        eventIds: [],
        span: make('execution', attempt.n, {
          // GenAI conventions: `invoke_agent {gen_ai.agent.name}`, or `invoke_agent` when it is unknown.
          name: agent === null ? 'invoke_agent' : `invoke_agent ${agent}`,
          start: attempt.started.millis,
          end: attempt.end.millis,
          parent: rootId,
          service: agent,
          attributes,
          ...(failed ? { status: { code: STATUS_ERROR, message: errorText(ev, outcome) } } : {}),
        }),
      });
    }
    if (endMillis !== undefined) waitingSince = endMillis;
  }
  return planned;
}

/** A span already stored for the trace (and exported, or queued for export). */
export type StoredSpan = PlannedSpan;

/** What an update span reports for a sent span that the mapping no longer produces. */
const GONE = 'gone';

/** JSON with object keys sorted, so a span read back from jsonb (which reorders keys) prints the same. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Content that must not change once a span went out; a root's events are covered separately. */
function fingerprint(planned: { role: SpanRole; span: SpanRecord }): string {
  // Only the actor of the resource counts: Chronicle's own resource attributes (OTEL_RESOURCE_ATTRIBUTES)
  // may differ between replicas or deployments without the span having changed.
  const span = {
    ...planned.span,
    resource: { 'service.name': planned.span.resource['service.name'] ?? null },
  };
  const content = canonicalJson(planned.role === 'root' ? { ...span, events: [] } : span);
  return createHash('sha256').update(content).digest('base64url').slice(0, 22);
}

/**
 * The spans to store (and export) now, given what is already stored: every planned span not stored
 * yet, and, when something already sent has changed (a late or out-of-order event), one
 * `swarm.task.update` span carrying the trace's current state, the names of the changed spans, and the
 * events no sent span shows. Stored spans are never changed.
 */
export function spansToEmit(
  trace: TraceState,
  events: readonly TraceEvent[],
  stored: readonly StoredSpan[],
  options: TraceSpansOptions,
): PlannedSpan[] {
  const plan = planTraceSpans(trace, events, options);
  const storedById = new Map(stored.map((s) => [s.span.spanId, s]));
  const fresh = plan.filter((p) => !storedById.has(p.span.spanId));
  if (!trace.is_task) return fresh;

  // What each sent span last said: its own content, or what the latest update span reported for it.
  const said = new Map(stored.filter((s) => s.role !== 'update').map((s) => [s.span.spanId, fingerprint(s)]));
  const updateSpans = stored.filter((s) => s.role === 'update').sort((a, b) => a.attempt - b.attempt);
  for (const u of updateSpans)
    for (const [id, print] of Object.entries(u.reported ?? {})) said.set(id, print);
  const changed: { span: PlannedSpan; print: string }[] = plan
    .filter((p) => said.has(p.span.spanId) && said.get(p.span.spanId) !== fingerprint(p))
    .map((p) => ({ span: p, print: fingerprint(p) }));
  // A sent span the plan no longer has (a retry reopened the task; attempts were renumbered) is stale too.
  const planned = new Set(plan.map((p) => p.span.spanId));
  for (const s of stored) {
    if (s.role === 'update' || planned.has(s.span.spanId) || said.get(s.span.spanId) === GONE) continue;
    changed.push({ span: s, print: GONE });
  }
  const rootSent = stored.some((s) => s.role === 'root');
  const rootPlanned = plan.some((p) => p.role === 'root');
  const covered = new Set(
    stored.filter((s) => s.role === 'root' || s.role === 'update').flatMap((s) => s.eventIds),
  );
  // Once the root went out, every event no sent span shows goes out on an update. Before (a task still
  // running, or stuck), only events an operator must see at once do: dead-letter entries and errors.
  const uncovered = events.filter(
    (e) => !covered.has(e.event_id) && (rootSent || (!rootPlanned && shownAtOnce(e.event_type))),
  );
  if (changed.length === 0 && uncovered.length === 0) return fresh;

  const updates = updateSpans.length;
  const traceId = otelTraceId(trace.trace_id);
  const evs = inTimeOrder(uncovered);
  const latest = events.reduce(
    (max, e) => Math.max(max, millisOf(e.timestamp)),
    millisOf(trace.completed_at ?? trace.created_at),
  );
  const start = evs[0]?.millis ?? latest;
  const end = evs.at(-1)?.millis ?? latest;
  const failed = trace.status === 'failed' || trace.status === 'timed_out';
  const attributes: Attributes = {
    'swarm.trace_id': trace.trace_id,
    'swarm.task.attempts': trace.attempts,
    'swarm.update.changed_spans': changed.map(({ span: p }) =>
      p.attempt > 0 ? `${p.span.name}#${p.attempt}` : p.span.name,
    ),
    'swarm.update.events': evs.length,
  };
  if (trace.status !== null) attributes['swarm.task.status'] = trace.status;
  if (trace.assigned_agent !== null) attributes['swarm.agent'] = trace.assigned_agent;
  const update: PlannedSpan = {
    role: 'update',
    attempt: updates + 1,
    eventIds: evs.map((e) => e.id),
    reported: Object.fromEntries(changed.map((c) => [c.span.span.spanId, c.print])),
    span: {
      traceId,
      spanId: otelSpanId(trace.trace_id, 'update', updates + 1),
      parentSpanId: otelSpanId(trace.trace_id, 'root', 0),
      name: 'swarm.task.update',
      kind: KIND_INTERNAL,
      startTimeUnixNano: unixNanos(start),
      endTimeUnixNano: unixNanos(Math.max(start, end)),
      attributes,
      events: evs.map(spanEvent),
      links: contextLinks(evs),
      status: failed ? { code: STATUS_ERROR, message: trace.error ?? trace.status! } : { code: STATUS_UNSET },
      resource: { ...options.resource, 'service.name': evs[0]?.source ?? options.serviceName },
      scope: { ...SCOPE },
    },
  };
  return [...fresh, update];
}
