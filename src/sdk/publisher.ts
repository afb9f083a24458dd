/**
 * The publisher SDK: what a swarm's TypeScript services import to publish canonical events to NATS
 * JetStream, in the shape Chronicle stores them.
 *
 *   const swarm = createSwarmPublisher({ nc, source: 'dispatcher' });
 *   await swarm.taskCreated('task-42', { title: 'Summarise', owner: 'ops' });
 *   await swarm.capture('task-42', 'search', () => tools.search(q));   // duration, outcome, error
 *
 * Every event is validated with Chronicle's own schema before it is sent (a ZodError-backed
 * SwarmEventError otherwise), and carries its event_id in the `Nats-Msg-Id` header, so JetStream drops a
 * re-publish within its duplicate window (and Chronicle deduplicates on event_id after that).
 */
import { randomUUID } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import { type JetStreamClient, type NatsConnection, headers } from 'nats';
import { type CanonicalEvent, canonicalEventSchema } from '../events/schema.js';

export interface SwarmPublisherOptions {
  nc: NatsConnection;
  /** `source` of every event (the service publishing). */
  source: string;
  /**
   * true (default): `js.publish`, which resolves once the stream stored the event (at-least-once).
   * false: a plain publish with the same header, faster, without the stream's acknowledgement.
   */
  acked?: boolean;
  /** Prepended to subjects (a namespace); '' by default. */
  subjectPrefix?: string;
}

/** An event before the SDK fills in what it can: id, source and time. */
export interface EventInput {
  trace_id: string;
  event_type: string;
  metadata?: Record<string, unknown>;
  event_id?: string;
  source?: string;
  /** Date, epoch ms or RFC 3339; default now. */
  timestamp?: Date | number | string;
}

/** An event the schema refuses: nothing was published. */
export class SwarmEventError extends Error {
  override readonly name = 'SwarmEventError';
}

export interface SwarmPublisher {
  /** Validates and publishes any canonical event on `swarm.<event_type>`; resolves to what was sent. */
  publish(input: EventInput): Promise<CanonicalEvent>;
  taskCreated(
    traceId: string,
    metadata?: { title?: string; owner?: string; [key: string]: unknown },
  ): Promise<CanonicalEvent>;
  taskAssigned(traceId: string, agent: string, metadata?: Record<string, unknown>): Promise<CanonicalEvent>;
  taskStarted(traceId: string, agent: string, metadata?: Record<string, unknown>): Promise<CanonicalEvent>;
  taskCompleted(traceId: string, agent: string, metadata?: Record<string, unknown>): Promise<CanonicalEvent>;
  taskFailed(
    traceId: string,
    agent: string,
    error: string,
    metadata?: Record<string, unknown>,
  ): Promise<CanonicalEvent>;
  taskTimeout(traceId: string, reason?: string, metadata?: Record<string, unknown>): Promise<CanonicalEvent>;
  /** An agent's heartbeat with its running totals since it started (busy_ms ≤ uptime_ms). */
  heartbeat(
    agent: string,
    totals: { busy_ms: number; uptime_ms: number },
    metadata?: Record<string, unknown>,
  ): Promise<CanonicalEvent>;
  /**
   * Runs `fn` and records the call as a `task.call` event on the trace: name, duration_ms, outcome
   * (`ok` or `error`), the error's message, and the current OpenTelemetry trace and span ids when a
   * span is active. Returns what `fn` returns, or rethrows its error after recording it.
   */
  capture<T>(
    traceId: string,
    name: string,
    fn: () => T | Promise<T>,
    metadata?: Record<string, unknown>,
  ): Promise<T>;
}

function timestampOf(value: EventInput['timestamp']): string {
  if (value === undefined) return new Date().toISOString();
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime()))
    throw new SwarmEventError(`timestamp is not a valid time: ${String(value)}`);
  return date.toISOString();
}

export function createSwarmPublisher(options: SwarmPublisherOptions): SwarmPublisher {
  const { nc, source } = options;
  const prefix = options.subjectPrefix ?? '';
  const js: JetStreamClient | undefined = options.acked === false ? undefined : nc.jetstream();
  const encoder = new TextEncoder();

  async function publish(input: EventInput): Promise<CanonicalEvent> {
    const parsed = canonicalEventSchema.safeParse({
      event_id: input.event_id ?? randomUUID(),
      trace_id: input.trace_id,
      source: input.source ?? source,
      event_type: input.event_type,
      timestamp: timestampOf(input.timestamp),
      metadata: input.metadata ?? {},
    });
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new SwarmEventError(`${issue.path.join('.') || 'event'}: ${issue.message}`, {
        cause: parsed.error,
      });
    }
    const event = parsed.data;
    const subject = `${prefix}swarm.${event.event_type}`;
    const data = encoder.encode(JSON.stringify(event));
    if (js) {
      // msgID sets Nats-Msg-Id: the stream stores an event_id once within its duplicate window.
      await js.publish(subject, data, { msgID: event.event_id });
    } else {
      const h = headers();
      h.set('Nats-Msg-Id', event.event_id);
      nc.publish(subject, data, { headers: h });
    }
    return event;
  }

  const lifecycle = (type: string) => (traceId: string, metadata: Record<string, unknown>) =>
    publish({ trace_id: traceId, event_type: type, metadata });

  return {
    publish,
    taskCreated: (traceId, metadata = {}) => lifecycle('task.created')(traceId, metadata),
    taskAssigned: (traceId, agent, metadata = {}) =>
      lifecycle('task.assigned')(traceId, { ...metadata, agent }),
    taskStarted: (traceId, agent, metadata = {}) =>
      lifecycle('task.started')(traceId, { ...metadata, agent }),
    taskCompleted: (traceId, agent, metadata = {}) =>
      lifecycle('task.completed')(traceId, { ...metadata, agent }),
    taskFailed: (traceId, agent, error, metadata = {}) =>
      lifecycle('task.failed')(traceId, { ...metadata, agent, error }),
    taskTimeout: (traceId, reason, metadata = {}) =>
      lifecycle('task.timeout')(traceId, { ...metadata, ...(reason !== undefined ? { reason } : {}) }),
    heartbeat: (agent, totals, metadata = {}) =>
      publish({
        trace_id: `agent-${agent}`,
        event_type: 'agent.heartbeat',
        metadata: { ...metadata, agent, ...totals },
      }),

    async capture<T>(
      traceId: string,
      name: string,
      fn: () => T | Promise<T>,
      metadata: Record<string, unknown> = {},
    ): Promise<T> {
      const context = trace.getActiveSpan()?.spanContext();
      const otel = context ? { otel_trace_id: context.traceId, otel_span_id: context.spanId } : {};
      const started = performance.now();
      const record = (outcome: 'ok' | 'error', error?: unknown) =>
        publish({
          trace_id: traceId,
          event_type: 'task.call',
          metadata: {
            ...metadata,
            name,
            duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
            outcome,
            ...(error !== undefined
              ? { error: error instanceof Error ? error.message : (JSON.stringify(error) ?? 'undefined') }
              : {}),
            ...otel,
          },
        });
      let result: T;
      try {
        result = await fn();
      } catch (err) {
        await record('error', err);
        throw err;
      }
      await record('ok');
      return result;
    },
  };
}
