import { type Context, type ContextManager, ROOT_CONTEXT, context, trace } from '@opentelemetry/api';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SwarmEventError, createSwarmPublisher } from '../../src/sdk/publisher.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { describeWithServices } from '../support/services.js';

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
}

describeWithServices('publisher SDK', () => {
  let env: ChronicleTestEnv;
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
});
