import { type Context, type ContextManager, ROOT_CONTEXT, context, trace } from '@opentelemetry/api';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { connect } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type SwarmRecordingError, SwarmEventError, createSwarmPublisher } from '../../src/sdk/publisher.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { NATS_URL, describeWithServices } from '../support/services.js';

/** The smallest synchronous context manager, so a test can make a span active. */
class StackContextManager implements ContextManager {
  private current: Context = ROOT_CONTEXT;
  active(): Context {
    return this.current;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const previous = this.current;
    this.current = ctx;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = previous;
    }
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    return this;
  }
}

interface TraceAnswer {
  trace: { status: string; task_title: string; assigned_agent: string; span_count: number };
  events: { event_type: string; metadata: Record<string, unknown> }[];
  spans: {
    name: string;
    links: { traceId: string; spanId: string; attributes: Record<string, unknown> }[];
  }[];
}

describeWithServices('publisher SDK', () => {
  let env: ChronicleTestEnv;
  /** Publisher options on a subject prefix no stream captures: JetStream answers 503 no responders. */
  const nowhere = () => ({ nc: env.nc!, source: 'billing', subjectPrefix: `nowhere_${env.subject('')}` });
  /** A publisher on the test's streams whose recording failures are collected. */
  const recording = () => {
    const errors: SwarmRecordingError[] = [];
    const swarm = createSwarmPublisher({
      nc: env.nc!,
      source: 'svc',
      subjectPrefix: env.subject(''),
      onError: (error) => errors.push(error),
    });
    return { swarm, errors };
  };
  let chronicle: TestChronicle;

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    chronicle = await env.start();
    context.setGlobalContextManager(new StackContextManager());
  });

  afterAll(async () => {
    context.disable();
    await chronicle?.stop();
    await env?.cleanup();
  });

  it('sdk - lifecycle helpers, a heartbeat and captured calls land as the task Chronicle shows', async () => {
    const swarm = createSwarmPublisher({ nc: env.nc!, source: 'dispatcher', subjectPrefix: env.subject('') });
    await swarm.taskCreated('sdk-1', { title: 'Summarise', owner: 'ops' });
    await swarm.taskAssigned('sdk-1', 'scout');
    await swarm.taskStarted('sdk-1', 'scout');
    const span = new BasicTracerProvider().getTracer('test').startSpan('tool');
    const found = await context.with(trace.setSpan(context.active(), span), () =>
      swarm.capture('sdk-1', 'search', () => 42, { tool: 'web' }),
    );
    expect(found).toBe(42);
    await expect(
      swarm.capture('sdk-1', 'fetch', () => {
        throw new Error('404');
      }),
    ).rejects.toThrow('404');
    await swarm.taskCompleted('sdk-1', 'scout');
    await swarm.heartbeat('scout', { busy_ms: 100, uptime_ms: 1000 });

    const answer = await waitFor(async () => {
      const res = await fetch(`${chronicle.url}/api/v1/traces/sdk-1`);
      const body = res.status === 200 ? ((await res.json()) as TraceAnswer) : undefined;
      return body && body.trace.span_count === 6 ? body : undefined;
    });
    expect(answer.trace).toMatchObject({
      status: 'completed',
      task_title: 'Summarise',
      assigned_agent: 'scout',
    });
    const calls = answer.events.filter((e) => e.event_type === 'task.call').map((e) => e.metadata);
    expect(calls).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          name: 'search',
          outcome: 'ok',
          tool: 'web',
          otel_trace_id: span.spanContext().traceId,
          otel_span_id: span.spanContext().spanId,
        }),
        expect.objectContaining({ name: 'fetch', outcome: 'error', error: '404' }),
      ]),
    );
    expect(typeof calls[0]!.duration_ms).toBe('number');

    // In the trace backend, the task's root span links to the span the call ran in.
    const root = await waitFor(async () => {
      const body = (await (await fetch(`${chronicle.url}/api/v1/traces/sdk-1`)).json()) as TraceAnswer;
      return body.spans.find((s) => s.name === 'swarm.task');
    });
    expect(root.links.map((l) => [l.traceId, l.spanId, l.attributes['swarm.call.name']])).toEqual([
      [span.spanContext().traceId, span.spanContext().spanId, 'search'],
    ]);
  });

  it('sdk - the same event_id published twice is stored once by the stream, and a bad event is not sent', async () => {
    const swarm = createSwarmPublisher({ nc: env.nc!, source: 'svc', subjectPrefix: env.subject('') });
    const before = await env.streamMessages('TASK_EVENTS');
    const id = '4e1f2a3b-0000-4000-8000-000000000001';
    await swarm.publish({ event_id: id, trace_id: 'sdk-2', event_type: 'task.created' });
    await swarm.publish({ event_id: id, trace_id: 'sdk-2', event_type: 'task.created' });
    expect(await env.streamMessages('TASK_EVENTS')).toBe(before + 1);
    await expect(swarm.publish({ trace_id: '', event_type: 'task.created' })).rejects.toThrow(
      SwarmEventError,
    );
    await expect(
      swarm.publish({ trace_id: 'x', event_type: 'task.created', timestamp: 'soon' }),
    ).rejects.toThrow(/timestamp/);
    expect(await env.streamMessages('TASK_EVENTS')).toBe(before + 1);
  });

  it('sdk - capture returns the result and rethrows the original error when no stream stores the event', async () => {
    const errors: SwarmRecordingError[] = [];
    // acked, on a subject prefix no stream captures: JetStream answers 503 no responders.
    const swarm = createSwarmPublisher({ ...nowhere(), onError: (error) => errors.push(error) });
    let charges = 0;
    const receipt = { id: 'ch_1' };
    const charged = await swarm.capture('sdk-3', 'charge_card', () => {
      charges += 1;
      return receipt;
    });
    expect(charged).toBe(receipt);
    expect(charges).toBe(1);
    // capture did not wait for JetStream's answer; flush does.
    expect(errors).toHaveLength(0);

    const declined = new Error('card declined');
    await expect(swarm.capture('sdk-3', 'charge_card', () => Promise.reject(declined))).rejects.toBe(
      declined,
    );
    await swarm.flush();

    expect(errors.map((e) => [e.name, e.traceId, e.callName, e.outcome])).toEqual([
      ['SwarmRecordingError', 'sdk-3', 'charge_card', 'ok'],
      ['SwarmRecordingError', 'sdk-3', 'charge_card', 'error'],
    ]);
    expect((errors[0]!.cause as { code?: string }).code).toBe('503');
    expect(errors[0]!.message).toMatch(/nowhere_.*swarm\.task\.call: 503 no responders: no stream captures/);
    expect(errors[1]!.event).toMatchObject({
      event_type: 'task.call',
      metadata: { name: 'charge_card', outcome: 'error', error: 'card declined', error_type: 'Error' },
    });
    expect(errors[1]!.message).toMatch(/charge_card.*sdk-3.*not recorded/);
  });

  it('sdk - beyond maxPendingRecordings a call is still returned and its event dropped and reported', async () => {
    const errors: SwarmRecordingError[] = [];
    const swarm = createSwarmPublisher({
      ...nowhere(),
      maxPendingRecordings: 1,
      onError: (error) => errors.push(error),
    });
    // The first event waits for JetStream's answer, so the second finds the one slot taken.
    expect(await swarm.capture('sdk-9', 'first', () => 1)).toBe(1);
    expect(await swarm.capture('sdk-9', 'second', () => 2)).toBe(2);
    await swarm.flush();
    expect(errors.map((e) => [e.callName, e.cause === undefined])).toEqual([
      ['second', true],
      ['first', false],
    ]);
    expect(errors[0]!.message).toMatch(/dropped: 1 recordings are already waiting/);
    expect(errors[0]!.event?.metadata).toMatchObject({ name: 'second', outcome: 'ok' });
    expect(() => createSwarmPublisher({ nc: env.nc!, source: 'x', maxPendingRecordings: 0 })).toThrow(
      RangeError,
    );
  });

  it('sdk - capture on a closed connection keeps the outcome, acked or not, and reports to onError', async () => {
    const closed = await connect({ servers: NATS_URL, name: 'chronicle-test-closed' });
    await closed.close();
    for (const acked of [true, false]) {
      const errors: SwarmRecordingError[] = [];
      const swarm = createSwarmPublisher({
        nc: closed,
        source: 'billing',
        acked,
        subjectPrefix: env.subject(''),
        onError: (error) => errors.push(error),
      });
      expect(await swarm.capture('sdk-4', 'charge_card', () => 'ok')).toBe('ok');
      const refused = new RangeError('over limit');
      await expect(
        swarm.capture('sdk-4', 'charge_card', () => {
          throw refused;
        }),
      ).rejects.toBe(refused);
      await swarm.flush();
      expect(errors.map((e) => e.outcome)).toEqual(['ok', 'error']);
      expect(errors.every((e) => /closed/i.test(e.message))).toBe(true);
      // The plain publisher rejects instead: its caller asked for the publish itself.
      await expect(swarm.taskCreated('sdk-4')).rejects.toThrow(/closed/i);
    }
  });

  it('sdk - an onError that throws, and the default process warning, leave the outcome alone', async () => {
    const options = nowhere();
    const throwing = createSwarmPublisher({
      ...options,
      onError: () => {
        throw new Error('handler bug');
      },
    });
    expect(await throwing.capture('sdk-5a', 'charge_card', () => 7)).toBe(7);
    await throwing.flush();

    const warnings: Error[] = [];
    const listener = (warning: Error) => warnings.push(warning);
    process.on('warning', listener);
    try {
      const quiet = createSwarmPublisher(options);
      for (let i = 0; i < 3; i++) expect(await quiet.capture('sdk-5b', 'charge_card', () => i)).toBe(i);
      await quiet.flush();
      const ours = () =>
        warnings.filter((w) => w.name === 'SwarmRecordingWarning' && /sdk-5b/.test(w.message));
      await waitFor(() => ours().length > 0);
      // One warning for the three failures: an outage does not write a line per call.
      const recording = ours();
      expect(recording).toHaveLength(1);
      expect(recording[0]).toMatchObject({ code: 'CHRONICLE_SDK_RECORDING_FAILED' });
      expect(recording[0]!.message).toMatch(/charge_card.*not recorded/);
    } finally {
      process.off('warning', listener);
    }
  });

  it('sdk - circular, BigInt and non-Error thrown values are rethrown unchanged and recorded safely', async () => {
    const { swarm, errors } = recording();
    const circular: Record<string, unknown> = { code: 'E_LOOP' };
    circular.self = circular;
    const thrown: unknown[] = [circular, { amount: 10n }, 'plain text', undefined, 404];
    for (const [i, value] of thrown.entries()) {
      const outcome = swarm.capture('sdk-6', `call-${i}`, () => {
        throw value;
      });
      await expect(outcome).rejects.toBe(value);
    }
    await swarm.flush();
    expect(errors).toEqual([]);

    const answer = await waitFor(async () => {
      const res = await fetch(`${chronicle.url}/api/v1/traces/sdk-6`);
      const body = res.status === 200 ? ((await res.json()) as TraceAnswer) : undefined;
      return body && body.events.length === thrown.length ? body : undefined;
    });
    const recorded = Object.fromEntries(
      answer.events.map((e) => [
        String(e.metadata.name),
        [e.metadata.outcome, e.metadata.error_type, e.metadata.error],
      ]),
    );
    expect(recorded).toEqual({
      'call-0': ['error', 'object', "<ref *1> { code: 'E_LOOP', self: [Circular *1] }"],
      'call-1': ['error', 'object', '{ amount: 10n }'],
      'call-2': ['error', 'string', 'plain text'],
      'call-3': ['error', 'undefined', 'undefined'],
      'call-4': ['error', 'number', '404'],
    });
  });

  it('sdk - event types no Chronicle stream captures are refused before anything is sent', async () => {
    for (const acked of [true, false]) {
      const swarm = createSwarmPublisher({
        nc: env.nc!,
        source: 'svc',
        acked,
        subjectPrefix: env.subject(''),
      });
      const before = await Promise.all(['TASK_EVENTS', 'SYSTEM_EVENTS'].map((s) => env.streamMessages(s)));
      for (const eventType of [
        'billing.charged',
        'task',
        'Task.created',
        'task.*',
        'task.>',
        'task..x',
        'task.a b',
      ]) {
        await expect(swarm.publish({ trace_id: 'sdk-7', event_type: eventType })).rejects.toThrow(
          SwarmEventError,
        );
      }
      await expect(
        swarm.publish({ trace_id: 'sdk-7', event_type: 'task.created', metadata: { amount: 10n } }),
      ).rejects.toThrow(/metadata: cannot be serialized as JSON/);
      await env.nc!.flush();
      const after = await Promise.all(['TASK_EVENTS', 'SYSTEM_EVENTS'].map((s) => env.streamMessages(s)));
      expect(after).toEqual(before);

      // Accepted families still go through, acked or not.
      await swarm.publish({ trace_id: 'sdk-7', event_type: 'system.error', metadata: { acked } });
      await env.nc!.flush();
      await waitFor(async () => (await env.streamMessages('SYSTEM_EVENTS')) === before[1]! + 1);
    }
  });

  it('sdk - capture with metadata that is not JSON still returns the result and reports why', async () => {
    const { swarm, errors } = recording();
    expect(await swarm.capture('sdk-8', 'charge_card', () => 'done', { amount: 10n })).toBe('done');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.cause).toBeInstanceOf(SwarmEventError);
    expect(errors[0]!.message).toMatch(/cannot be serialized as JSON/);
  });
});
