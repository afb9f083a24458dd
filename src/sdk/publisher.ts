/**
 * The publisher SDK: what a swarm's TypeScript services import to publish canonical events to NATS
 * JetStream, in the shape Chronicle stores them.
 *
 *   const swarm = createSwarmPublisher({ nc, source: 'dispatcher' });
 *   await swarm.taskCreated('task-42', { title: 'Summarise', owner: 'ops' });
 *   await swarm.capture('task-42', 'search', () => tools.search(q));   // duration, outcome, error
 *   await swarm.flush();                                               // before closing nc
 *
 * Every event is validated with Chronicle's own schema before it is sent (a ZodError-backed
 * SwarmEventError otherwise), must have an event type one of Chronicle's streams captures (see
 * SWARM_EVENT_FAMILIES), and carries its event_id in the `Nats-Msg-Id` header, so JetStream drops a
 * re-publish within its duplicate window (and Chronicle deduplicates on event_id after that).
 *
 * `capture` wraps someone else's call: recording it never changes that call's result, error or (beyond
 * building the event) its latency; failures to record go to `onError`.
 */
import { randomUUID } from 'node:crypto';
import { inspect, types } from 'node:util';
import { trace } from '@opentelemetry/api';
import { type JetStreamClient, type NatsConnection, headers } from 'nats';
import { type CanonicalEvent, canonicalEventSchema } from '../events/schema.js';

/**
 * The first token of every event type the SDK publishes. An event of type `<family>.<name>` goes out on
 * `swarm.<family>.<name>`, which Chronicle's streams capture (TASK_EVENTS: `swarm.task.>`; SYSTEM_EVENTS:
 * `swarm.agent.>`, `swarm.system.>`, `swarm.lifecycle.>`). Any other event type is refused with a
 * SwarmEventError before anything is sent: no stream would store it, so it would be lost (silently, with
 * `acked: false`).
 */
export const SWARM_EVENT_FAMILIES: readonly string[] = ['task', 'agent', 'system', 'lifecycle'];

/** Default of SwarmPublisherOptions.maxPendingRecordings. */
export const DEFAULT_MAX_PENDING_RECORDINGS = 10_000;

/** The default onError emits at most one process warning per this interval (per publisher). */
export const RECORDING_WARNING_INTERVAL_MILLIS = 10_000;

export interface SwarmPublisherOptions {
  nc: NatsConnection;
  /** `source` of every event (the service publishing). */
  source: string;
  /**
   * true (default): `js.publish`, which resolves once the stream stored the event (at-least-once), and
   * rejects when it did not: no stream captures the subject (503 no responders), a timeout, a closed
   * connection.
   *
   * false: a plain core-NATS publish with the same header: faster, and **at-most-once, with silent loss**.
   * Nothing confirms that a stream stored the event, so an event is lost without any error when no stream
   * captures its subject (a wrong `subjectPrefix`, a stream not created yet), when the stream refuses it
   * (limits, discard policy), or when NATS is unreachable and the client's reconnect buffer is lost.
   * Only a closed connection and the SDK's own checks (SwarmEventError) raise an error. Opt in only where
   * that loss is acceptable.
   */
  acked?: boolean;
  /** Prepended to subjects (a namespace); '' by default. */
  subjectPrefix?: string;
  /**
   * Receives each failure to record a `capture`d call: its event could not be built, could not be sent,
   * was not stored (acked), or was dropped because `maxPendingRecordings` were already in flight. Recording
   * never changes the captured call's outcome, so this is where such failures surface; it is called at most
   * once per capture, never for `publish` and the helpers (their promise rejects instead): synchronously,
   * before `capture` settles, when the event is refused or dropped; later when the stream does not store
   * it (`flush()` waits for that). If it throws, that is reported as a process warning.
   *
   * Default: `process.emitWarning` with type `SwarmRecordingWarning` and code
   * `CHRONICLE_SDK_RECORDING_FAILED`, at most one warning per RECORDING_WARNING_INTERVAL_MILLIS (10 s) per
   * publisher, so an outage does not write a line per call; a warning counts the failures left out since
   * the previous one.
   */
  onError?: (error: SwarmRecordingError) => void;
  /**
   * How many captured calls' events may wait for the stream's acknowledgement at once (default 10,000).
   * Beyond that (NATS slow or unreachable), a call's event is dropped and reported to `onError`, so memory
   * stays bounded.
   */
  maxPendingRecordings?: number;
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

/** An event the SDK refuses (schema, event type no stream captures, metadata not JSON): nothing was published. */
export class SwarmEventError extends Error {
  override readonly name = 'SwarmEventError';
}

/** The captured call whose recording failed. */
export interface RecordingFailure {
  traceId: string;
  /** The captured call's name. */
  callName: string;
  /** The call's own outcome, which the caller got regardless. */
  outcome: 'ok' | 'error';
  /** The `task.call` event that was not stored, when it could be built (to log or re-publish). */
  event?: CanonicalEvent | undefined;
}

/**
 * A captured call whose `task.call` event was not recorded; given to `onError`, never thrown to the
 * caller. `cause` is the underlying failure (a SwarmEventError, a NATS error, ...), absent for a drop.
 */
export class SwarmRecordingError extends Error {
  override readonly name = 'SwarmRecordingError';
  readonly traceId: string;
  readonly callName: string;
  readonly outcome: 'ok' | 'error';
  readonly event: CanonicalEvent | undefined;

  constructor(message: string, failure: RecordingFailure, options?: ErrorOptions) {
    super(message, options);
    this.traceId = failure.traceId;
    this.callName = failure.callName;
    this.outcome = failure.outcome;
    this.event = failure.event;
  }
}

/** What a captured call threw, as `capture` records it: plain bounded strings, safe to serialize. */
export interface ThrownDescription {
  /**
   * An Error's message (its name when the message is empty); any other value rendered with
   * `util.inspect` (circular references, BigInts, symbols and Proxies included, custom inspectors not run),
   * at most 1,000 characters.
   */
  error: string;
  /** An Error's name (`TypeError`, ...); for any other value its type: `string`, `object`, `null`, `bigint`, ... */
  error_type: string;
}

const MAX_ERROR_CHARS = 1000;
const MAX_ERROR_TYPE_CHARS = 100;

/** `text` well formed (no lone surrogate) and at most `max` UTF-16 units, without splitting a pair. */
function bounded(text: string, max: number): string {
  const wellFormed = text.toWellFormed();
  if (wellFormed.length <= max) return wellFormed;
  let end = max - 1;
  const last = wellFormed.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${wellFormed.slice(0, end)}…`;
}

function rendered(value: unknown): string {
  return inspect(value, {
    depth: 2,
    maxArrayLength: 20,
    maxStringLength: MAX_ERROR_CHARS,
    breakLength: Infinity,
    customInspect: false,
    getters: false,
  });
}

/**
 * Describes any thrown value without throwing: for an Error its name and message, for anything else a
 * bounded rendering (see ThrownDescription). Property getters of an Error that throw, revoked Proxies and
 * the like give a placeholder rather than an exception.
 */
export function describeThrown(value: unknown): ThrownDescription {
  try {
    if (value instanceof Error || types.isNativeError(value)) {
      const { name, message } = value as { name: unknown; message: unknown };
      const errorType =
        typeof name === 'string' && name !== '' ? bounded(name, MAX_ERROR_TYPE_CHARS) : 'Error';
      const text = typeof message === 'string' ? message : rendered(message);
      return { error: bounded(text === '' ? errorType : text, MAX_ERROR_CHARS), error_type: errorType };
    }
    const errorType = value === null ? 'null' : typeof value;
    const text = typeof value === 'string' ? value : rendered(value);
    return { error: bounded(text, MAX_ERROR_CHARS), error_type: errorType };
  } catch {
    return { error: '[a value that could not be described]', error_type: 'unknown' };
  }
}

export interface SwarmPublisher {
  /**
   * Validates and publishes any canonical event on `swarm.<event_type>`; resolves to what was sent (with
   * `acked`, once the stream stored it). Rejects with a SwarmEventError, having sent nothing, when the
   * schema refuses the event, its type is not one of SWARM_EVENT_FAMILIES (`task.*`, `agent.*`, `system.*`,
   * `lifecycle.*`, with subject-safe tokens) or its metadata cannot be serialized as JSON.
   */
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
   * Runs `fn` and records the call as a `task.call` event on the trace: `name`, `duration_ms`, `outcome`
   * (`ok` or `error`), for a failed call `error` and `error_type` (see describeThrown), and the current
   * OpenTelemetry `otel_trace_id` and `otel_span_id` when a span is active; `metadata` is merged in first.
   *
   * Recording never changes the call's outcome: the promise resolves to exactly what `fn` returned, or
   * rejects with exactly the value `fn` threw (the same object, whatever it is), even when the event cannot
   * be built, sent or stored. Such failures go to `onError` (SwarmRecordingError).
   *
   * Nor does the caller wait for the stream: the event is built and handed to NATS as soon as `fn` settles
   * (so its timestamp and its place among this publisher's events are the call's), and `capture` settles
   * without waiting for JetStream's acknowledgement, which would add a round trip to every call, and up to
   * the JetStream timeout while NATS is unreachable. `flush()` waits for the acknowledgements.
   */
  capture<T>(
    traceId: string,
    name: string,
    fn: () => T | Promise<T>,
    metadata?: Record<string, unknown>,
  ): Promise<T>;
  /**
   * Resolves once the event of every call captured so far has settled: stored, or reported to `onError`.
   * Never rejects. Call it before draining or closing the connection, so events still waiting for their
   * acknowledgement are not reported as failures of a closed connection.
   */
  flush(): Promise<void>;
}

function timestampOf(value: EventInput['timestamp']): string {
  if (value === undefined) return new Date().toISOString();
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime()))
    throw new SwarmEventError(`timestamp is not a valid time: ${String(value)}`);
  return date.toISOString();
}

/** `<family>.<token>[.<token>...]`, every token a literal NATS subject token (no wildcard, space or control). */
const EVENT_TYPE_SHAPE = new RegExp(`^(?:${SWARM_EVENT_FAMILIES.join('|')})(?:\\.[^.*>\\s\\p{Cc}]+)+$`, 'u');

/** The default onError: rate-limited process warnings. */
function recordingWarnings(): (error: SwarmRecordingError) => void {
  let lastAt = -Infinity;
  let leftOut = 0;
  return (error) => {
    const now = Date.now();
    if (now - lastAt < RECORDING_WARNING_INTERVAL_MILLIS) {
      leftOut += 1;
      return;
    }
    lastAt = now;
    const suffix = leftOut > 0 ? ` (and ${leftOut} more recording failures since the previous warning)` : '';
    leftOut = 0;
    process.emitWarning(`${error.message}${suffix}`, {
      type: 'SwarmRecordingWarning',
      code: 'CHRONICLE_SDK_RECORDING_FAILED',
    });
  };
}

/** A string as a JSON literal; anything else (from untyped callers) described. */
function quoted(value: unknown): string {
  return typeof value === 'string'
    ? JSON.stringify(bounded(value, MAX_ERROR_CHARS))
    : describeThrown(value).error;
}

interface Prepared {
  event: CanonicalEvent;
  subject: string;
  data: Uint8Array;
}

export function createSwarmPublisher(options: SwarmPublisherOptions): SwarmPublisher {
  const { nc, source } = options;
  const prefix = options.subjectPrefix ?? '';
  const maxPending = options.maxPendingRecordings ?? DEFAULT_MAX_PENDING_RECORDINGS;
  if (!Number.isInteger(maxPending) || maxPending < 1)
    throw new RangeError(`maxPendingRecordings must be a positive integer, not ${String(maxPending)}`);
  const js: JetStreamClient | undefined = options.acked === false ? undefined : nc.jetstream();
  const encoder = new TextEncoder();
  const warn = recordingWarnings();
  const onError = options.onError ?? warn;
  /** Recordings waiting for their acknowledgement; each settles (never rejects) and removes itself. */
  const pending = new Set<Promise<void>>();

  /** The event, checked and encoded; throws SwarmEventError. */
  function prepare(input: EventInput): Prepared {
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
    if (!EVENT_TYPE_SHAPE.test(event.event_type))
      throw new SwarmEventError(
        `event_type: ${JSON.stringify(event.event_type)} would be published on a subject no Chronicle stream ` +
          `captures; event types are ${SWARM_EVENT_FAMILIES.map((f) => `${f}.<name>`).join(', ')}, ` +
          `without spaces, '*', '>' or empty tokens`,
      );
    let json: string;
    try {
      json = JSON.stringify(event);
    } catch (err) {
      throw new SwarmEventError(`metadata: cannot be serialized as JSON (${describeThrown(err).error})`, {
        cause: err,
      });
    }
    return { event, subject: `${prefix}swarm.${event.event_type}`, data: encoder.encode(json) };
  }

  /** Sends synchronously (in call order); with `acked`, settles when the stream answered. */
  async function send({ event, subject, data }: Prepared): Promise<void> {
    if (js) {
      // msgID sets Nats-Msg-Id: the stream stores an event_id once within its duplicate window.
      await js.publish(subject, data, { msgID: event.event_id });
    } else {
      const h = headers();
      h.set('Nats-Msg-Id', event.event_id);
      nc.publish(subject, data, { headers: h });
    }
  }

  async function publish(input: EventInput): Promise<CanonicalEvent> {
    const prepared = prepare(input);
    await send(prepared);
    return prepared.event;
  }

  /** Hands a recording failure to onError; never throws. */
  function report(error: SwarmRecordingError): void {
    try {
      onError(error);
    } catch (thrown) {
      try {
        warn(
          new SwarmRecordingError(
            `onError threw ${describeThrown(thrown).error} while handling: ${error.message}`,
            error,
            { cause: thrown },
          ),
        );
      } catch {
        // Nowhere left to report to; the caller's outcome matters more.
      }
    }
  }

  function failed(failure: RecordingFailure, cause: unknown, subject?: string): SwarmRecordingError {
    const what = failure.event ? `event ${failure.event.event_id}` : 'event';
    const where = subject === undefined ? '' : ` on ${subject}`;
    // nats.js says only "503" when nothing answers a JetStream publish.
    const noResponders = (cause as { code?: unknown } | undefined)?.code === '503';
    const why = noResponders
      ? '503 no responders: no stream captures the subject'
      : describeThrown(cause).error;
    return new SwarmRecordingError(
      `capture: the task.call ${what} of ${quoted(failure.callName)} on trace ${quoted(failure.traceId)} ` +
        `was not recorded${where}: ${why}`,
      failure,
      { cause },
    );
  }

  /** report(failed(...)), never throwing: the caller's outcome, and flush(), come first. */
  function reportFailure(failure: RecordingFailure, cause: unknown, subject?: string): void {
    try {
      report(failed(failure, cause, subject));
    } catch {
      // Only building the message can throw here (a hostile cause); there is nowhere to report that.
    }
  }

  /**
   * Builds and sends a call's event now (`fields` over the caller's `metadata`); failures, now or when the
   * stream answers, go to onError. Never throws.
   */
  function record(
    failure: RecordingFailure,
    metadata: Record<string, unknown>,
    fields: Record<string, unknown>,
  ): void {
    try {
      const prepared = prepare({
        trace_id: failure.traceId,
        event_type: 'task.call',
        metadata: { ...metadata, ...fields },
      });
      failure.event = prepared.event;
      if (pending.size >= maxPending) {
        report(
          new SwarmRecordingError(
            `capture: the task.call event ${prepared.event.event_id} of ${quoted(failure.callName)} was ` +
              `dropped: ${maxPending} recordings are already waiting for NATS (maxPendingRecordings)`,
            failure,
          ),
        );
        return;
      }
      const settled: Promise<void> = send(prepared).then(
        () => {
          pending.delete(settled);
        },
        (err: unknown) => {
          pending.delete(settled);
          reportFailure(failure, err, prepared.subject);
        },
      );
      pending.add(settled);
    } catch (err) {
      reportFailure(failure, err);
    }
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
      const durationMillis = () => Math.round((performance.now() - started) * 1000) / 1000;
      let result: T;
      try {
        result = await fn();
      } catch (err) {
        const fields = {
          name,
          duration_ms: durationMillis(),
          outcome: 'error',
          ...describeThrown(err),
          ...otel,
        };
        record({ traceId, callName: name, outcome: 'error' }, metadata, fields);
        throw err;
      }
      const fields = { name, duration_ms: durationMillis(), outcome: 'ok', ...otel };
      record({ traceId, callName: name, outcome: 'ok' }, metadata, fields);
      return result;
    },

    async flush(): Promise<void> {
      await Promise.all(pending);
    },
  };
}
