/**
 * Chronicle's own metrics (GET /metrics) after real traffic through NATS, HTTP ingest and OTLP/HTTP,
 * with spans exported to a local OTLP endpoint: the series the alert rules and the pipeline dashboard
 * read, with their values, bounded labels, and the real `promtool check metrics` on the text.
 */
import { type OtlpSink, startOtlpSink } from '../support/otlp-sink.js';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TERMINAL_STATUSES, createMetrics } from '../../src/telemetry/metrics.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  countRows,
  createChronicleTestEnv,
  sleep,
  subjectOf,
  waitFor,
} from '../support/chronicle.js';
import { generateTraffic } from '../support/generate.js';
import { at, readableSpan, spanIdOf, traceIdOf } from '../support/otlp-spans.js';
import { type Samples, labelValues, parseSamples, sampleValue } from '../support/prometheus-text.js';
import { PROMTOOL, promtoolCheckMetrics } from '../support/promtool.js';
import { SERVICES_REQUIRED, describeWithServices } from '../support/services.js';

const STREAMS = ['TASK_EVENTS', 'SYSTEM_EVENTS', 'DLQ', 'CHRONICLE_ADVISORIES'] as const;

async function scrape(c: TestChronicle): Promise<{ text: string; samples: Samples }> {
  const res = await fetch(`${c.url}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, samples: parseSamples(text) };
}

function otlpBody(n: number): string {
  const spans = [0, 1].map((i) =>
    readableSpan({ traceId: traceIdOf(n), spanId: spanIdOf(n * 10 + i), start: at(n), end: at(n + 1) }),
  );
  return new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans));
}

async function post(url: string, body: string, contentType: string): Promise<number> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
  await res.arrayBuffer();
  return res.status;
}

describeWithServices('chronicle metrics - after real traffic', () => {
  let env: ChronicleTestEnv;
  let sink: OtlpSink;
  let c: TestChronicle;
  // The exposition read at the end of the traffic test, checked by promtool below.
  let scraped: string | undefined;

  beforeAll(async () => {
    sink = await startOtlpSink();
    sink.status = 503;
    env = await createChronicleTestEnv();
    c = await env.start({
      otlpPort: 0,
      export: {
        url: sink.url,
        protocol: 'http/json',
        headers: {},
        timeoutMillis: 2_000,
        compression: 'none',
      },
    });
  });

  afterAll(async () => {
    await env?.cleanup();
    sink?.server.close();
  });

  it('counts inputs by stream, requests by route template and status, and settles lag, backlog and readiness', async () => {
    // NATS: swarm traffic on TASK_EVENTS and SYSTEM_EVENTS, and dead-letter entries on DLQ.
    const startedAt = Date.now();
    const events = generateTraffic(21, { tasks: 30, agents: 3, days: 1 });
    const dlq = [
      { dlq_id: 'd-1', original_payload: { trace_id: 'dlq-1' }, reason: 'no_agent' },
      { dlq_id: 'd-2', original_payload: { trace_id: 'dlq-2' }, reason: 'no_agent' },
      { dlq_id: 'd-3', original_payload: { trace_id: 'dlq-3' }, reason: 'not an identifier!' },
      { dlq_id: 'd-4', original_payload: { trace_id: 'dlq-4' } },
    ];
    const messages = [
      ...events.map((e) => ({ subject: subjectOf(e), payload: e })),
      ...dlq.map((entry) => ({ subject: 'dlq.tasks', payload: entry })),
    ];
    await env.publishBulk(messages);
    const published = {
      TASK_EVENTS: messages.filter((m) => m.subject.startsWith('swarm.task.')).length,
      SYSTEM_EVENTS: messages.filter(
        (m) => m.subject.startsWith('swarm.') && !m.subject.startsWith('swarm.task.'),
      ).length,
      DLQ: dlq.length,
      CHRONICLE_ADVISORIES: 0,
    };
    expect(published.TASK_EVENTS).toBeGreaterThan(0);
    expect(published.SYSTEM_EVENTS).toBeGreaterThan(0);

    // HTTP ingest: five tasks run to completion (20 events), then reads by trace id.
    const httpEvents = Array.from({ length: 5 }, (_, i) =>
      ['task.created', 'task.assigned', 'task.started', 'task.completed'].map((type, step) => ({
        trace_id: `http-task-${i}`,
        event_type: type,
        timestamp: `2026-03-02T10:0${i}:0${step}.000Z`,
        metadata: { agent: 'agent-http' },
      })),
    ).flat();
    const ingest = await fetch(`${c.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(httpEvents),
    });
    expect(ingest.status).toBe(200);
    expect(await ingest.json()).toMatchObject({ accepted: httpEvents.length, duplicates: 0 });
    for (const path of ['/api/v1/traces/http-task-1', '/api/v1/traces/http-task-2']) {
      expect((await fetch(`${c.url}${path}`)).status).toBe(200);
    }
    expect((await fetch(`${c.url}/api/v1/traces/does-not-exist`)).status).toBe(404);
    expect((await fetch(`${c.url}/no/such/path`)).status).toBe(404);

    // OTLP/HTTP on the API port and on the dedicated port; a body that does not decode; a bad type.
    expect(await post(`${c.url}/v1/traces`, otlpBody(1), 'application/json')).toBe(200);
    expect(await post(`${c.chronicle.otlpUrl()!}/v1/traces`, otlpBody(2), 'application/json')).toBe(200);
    expect(await post(`${c.url}/v1/traces`, '{"resourceSpans": 7', 'application/json')).toBe(400);
    expect(await post(`${c.url}/v1/traces`, 'hello', 'text/plain')).toBe(415);

    // The trace backend refuses everything at first: spans wait, and the oldest one ages.
    const waiting = await waitFor(
      async () => {
        const { samples } = await scrape(c);
        const backlog = sampleValue(samples, 'chronicle_span_export_backlog') ?? 0;
        const age = sampleValue(samples, 'chronicle_span_export_oldest_age_seconds') ?? 0;
        return backlog > 0 && age > 0 ? { backlog, age } : undefined;
      },
      15_000,
      'a sampled backlog with an age',
    );
    expect(waiting.backlog).toBeLessThanOrEqual(await countRows(env.db.pool, 'otel_spans'));
    expect(waiting.age).toBeLessThan((Date.now() - startedAt) / 1000);
    expect(await countRows(env.db.pool, 'otel_spans', 'exported_at IS NOT NULL')).toBe(0);
    sink.status = 200;

    // Everything settles: messages acked, spans exported. The gauges are sampled every 5 s, so one
    // more interval later every sample was taken after the drain.
    await waitFor(() => env.consumersSettled(), 20_000, 'every message to be acked');
    await waitFor(
      async () =>
        (await countRows(env.db.pool, 'otel_spans', 'exported_at IS NULL')) === 0 &&
        sink.spans === (await countRows(env.db.pool, 'otel_spans')),
      30_000,
      'every span exported',
    );
    await sleep(5_500);
    const final = await scrape(c);
    const m = final.samples;
    const value = (name: string, labels: Record<string, string> = {}) => sampleValue(m, name, labels);

    // Inputs received by origin and stream: exactly what was published or sent.
    for (const stream of STREAMS) {
      expect(value('chronicle_inputs_received_total', { origin: 'nats', stream }), stream).toBe(
        published[stream],
      );
    }
    expect(value('chronicle_inputs_received_total', { origin: 'http', stream: 'none' })).toBe(
      httpEvents.length,
    );
    // Four spans, and the body that did not decode (recorded as one reject).
    expect(value('chronicle_inputs_received_total', { origin: 'otlp', stream: 'none' })).toBe(5);
    expect(value('chronicle_inputs_rejected_total', { origin: 'otlp', reason: 'invalid_otlp' })).toBe(1);
    expect(value('chronicle_events_stored_total', { origin: 'http' })).toBe(httpEvents.length);

    // DLQ entries by reason: identifiers as they are, anything else as other, a missing one as none.
    expect(value('chronicle_dlq_entries_total', { reason: 'no_agent' })).toBe(2);
    expect(value('chronicle_dlq_entries_total', { reason: 'other' })).toBe(1);
    expect(value('chronicle_dlq_entries_total', { reason: 'none' })).toBe(1);
    expect(labelValues(m, 'chronicle_dlq_entries_total', 'reason')).toEqual(
      new Set(['no_agent', 'other', 'none']),
    );

    // HTTP requests by route template, never a raw path or id.
    const http = (route: string, method: string, status: number) =>
      value('chronicle_http_requests_total', { route, method, status: String(status) });
    expect(http('/api/v1/traces/:id', 'GET', 200)).toBe(2);
    expect(http('/api/v1/traces/:id', 'GET', 404)).toBe(1);
    expect(http('unmatched', 'GET', 404)).toBe(1);
    expect(http('/api/v1/events', 'POST', 200)).toBe(1);
    expect(http('/v1/traces', 'POST', 200)).toBe(2);
    expect(http('/v1/traces', 'POST', 400)).toBe(1);
    expect(http('/v1/traces', 'POST', 415)).toBe(1);
    expect(labelValues(m, 'chronicle_http_requests_total', 'route')).toEqual(
      new Set(['/api/v1/traces/:id', 'unmatched', '/api/v1/events', '/v1/traces', '/metrics']),
    );
    expect(
      value('chronicle_http_request_duration_seconds_count', { route: '/api/v1/traces/:id', method: 'GET' }),
    ).toBe(3);
    expect(
      value('chronicle_http_request_duration_seconds_bucket', {
        route: '/api/v1/traces/:id',
        method: 'GET',
        le: '+Inf',
      }),
    ).toBe(3);

    // OTLP requests by status, whichever port took them.
    expect(value('chronicle_otlp_requests_total', { status: '200' })).toBe(2);
    expect(value('chronicle_otlp_requests_total', { status: '400' })).toBe(1);
    expect(value('chronicle_otlp_requests_total', { status: '415' })).toBe(1);
    expect(labelValues(m, 'chronicle_otlp_requests_total', 'status')).toEqual(new Set(['200', '400', '415']));

    // JetStream: nothing paused, nothing redelivered or handed back.
    for (const stream of STREAMS) {
      expect(value('chronicle_jetstream_paused', { stream }), stream).toBe(0);
      expect(value('chronicle_jetstream_redeliveries_total', { stream }), stream).toBe(0);
      expect(value('chronicle_jetstream_naks_total', { stream }), stream).toBe(0);
    }

    // Buffer, writer and readiness.
    expect(value('chronicle_ready')).toBe(1);
    expect(value('chronicle_buffer_max_events')).toBe(c.config.batch.maxBufferEvents);
    expect(value('chronicle_buffer_max_bytes')).toBe(c.config.batch.maxBufferBytes);
    expect(value('chronicle_buffer_events')).toBe(0);
    expect(value('chronicle_write_failures_total')).toBe(0);
    expect(value('chronicle_writer_failing')).toBe(0);
    expect(value('chronicle_flushes_total', { result: 'ok' })).toBeGreaterThan(0);

    // Jetstream: every durable's lag sampled at 0 after the drain.
    for (const stream of STREAMS) {
      expect(value('chronicle_jetstream_consumer_lag_messages', { stream }), stream).toBe(0);
    }

    // Spans: all exported after the refused attempts, none waiting, so the oldest waiting has no age.
    expect(value('chronicle_spans_exported_total')).toBe(sink.spans);
    expect(value('chronicle_span_export_failures_total')).toBeGreaterThan(0);
    expect(value('chronicle_span_export_backlog')).toBe(0);
    expect(value('chronicle_span_export_oldest_age_seconds')).toBe(0);

    // Tasks that became terminal: once each, as many as the rows that have a first terminal time; at
    // least every task terminal now, at most every task with a terminal event (a task whose only
    // terminal event sorts before a later step may never have been terminal in any committed state).
    const firstTerminal = await env.db.pool.query<{ n: number; now_terminal: number }>(
      `SELECT count(*) FILTER (WHERE first_terminal_at IS NOT NULL)::int AS n,
         count(*) FILTER (WHERE status IN ('completed', 'failed', 'timed_out'))::int AS now_terminal
       FROM swarm_traces`,
    );
    const { n, now_terminal } = firstTerminal.rows[0]!;
    const counted = TERMINAL_STATUSES.map(
      (status) => value('chronicle_tasks_terminal_total', { status }) ?? NaN,
    ).reduce((a, b) => a + b, 0);
    const withTerminalEvent = new Set(
      [...events, ...httpEvents]
        .filter((e) => ['task.completed', 'task.failed', 'task.timeout'].includes(e.event_type))
        .map((e) => e.trace_id),
    );
    expect(counted).toBe(n);
    expect(n).toBeGreaterThanOrEqual(now_terminal);
    expect(n).toBeLessThanOrEqual(withTerminalEvent.size);
    expect(now_terminal).toBeGreaterThan(10);

    scraped = final.text;
  });

  it('promtool check metrics finds no problem in /metrics after that traffic, nor in the default process metrics', async (ctx) => {
    if (PROMTOOL === undefined) {
      if (SERVICES_REQUIRED) throw new Error('promtool is not installed (apt-get install prometheus)');
      ctx.skip('promtool is not installed: `promtool check metrics` not run');
    }
    expect(scraped, 'the traffic test above must have scraped /metrics').toBeDefined();
    expect(await promtoolCheckMetrics(scraped!)).toEqual({ code: 0, output: '' });

    // The test instances leave the default metrics out (they are per process); production has them.
    const defaults = await createMetrics().registry.metrics();
    expect(defaults).toContain('chronicle_process_resident_memory_bytes');
    expect(defaults).toContain('chronicle_nodejs_eventloop_lag_seconds');
    expect(defaults).toContain('chronicle_nodejs_gc_duration_seconds');
    expect(await promtoolCheckMetrics(defaults)).toEqual({ code: 0, output: '' });
  });
});

describeWithServices('chronicle metrics - JetStream lag, pause, naks and redeliveries', () => {
  let env: ChronicleTestEnv;
  let locker: pg.Client;

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    locker = new pg.Client({ connectionString: env.db.url });
    await locker.connect();
  });

  afterAll(async () => {
    await locker?.end();
    await env?.cleanup();
  });

  /** Holds an exclusive lock on swarm_events: flushes wait (they do not fail) until release. */
  async function blockWrites(): Promise<() => Promise<void>> {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE swarm_events IN ACCESS EXCLUSIVE MODE');
    return async () => void (await locker.query('ROLLBACK'));
  }

  function taskEvents(prefix: string, n: number): { subject: string; payload: unknown }[] {
    return Array.from({ length: n }, (_, i) => ({
      subject: 'swarm.task.created',
      payload: { trace_id: `${prefix}-${i}`, event_type: 'task.created', metadata: {} },
    }));
  }

  it('lag counts the backlog while pulling is paused by a full buffer, and goes to 0 once drained', async () => {
    const c = await env.start({ batch: { maxBufferEvents: 50, flushThresholdEvents: 20 } });
    const release = await blockWrites();
    try {
      await env.publishBulk(taskEvents('lag', 300));
      // Nothing can be acked while the writes wait: the durable's lag is every message published, and
      // every stream's pull loop waits for room (each pulls up to a full buffer at a time).
      await waitFor(
        async () => {
          const { samples } = await scrape(c);
          return (
            STREAMS.every((stream) => sampleValue(samples, 'chronicle_jetstream_paused', { stream }) === 1) &&
            sampleValue(samples, 'chronicle_jetstream_consumer_lag_messages', { stream: 'TASK_EVENTS' }) ===
              300
          );
        },
        15_000,
        'every stream paused, with a lag of 300 on TASK_EVENTS',
      );
      const { samples } = await scrape(c);
      expect(sampleValue(samples, 'chronicle_buffer_events')).toBe(50);
      expect(sampleValue(samples, 'chronicle_backpressure_total', { source: 'jetstream' })).toBeGreaterThan(
        0,
      );
      expect(
        sampleValue(samples, 'chronicle_jetstream_consumer_lag_messages', { stream: 'SYSTEM_EVENTS' }),
      ).toBe(0);
    } finally {
      await release();
    }
    await waitFor(() => env.consumersSettled(), 20_000, 'the backlog to drain');
    await waitFor(
      async () => {
        const { samples } = await scrape(c);
        return STREAMS.every(
          (stream) =>
            sampleValue(samples, 'chronicle_jetstream_consumer_lag_messages', { stream }) === 0 &&
            sampleValue(samples, 'chronicle_jetstream_paused', { stream }) === 0,
        );
      },
      15_000,
      'lag sampled at 0 and pulling resumed',
    );
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(300);
    await c.stop();
  });

  it('messages handed back at a hard stop count as naks, and as redeliveries where they arrive again', async () => {
    // A short ack_wait: a nak the hard stop cut off still comes back soon, as a redelivery.
    const jetstream = { ackWaitMillis: 2_000 };
    const first = await env.start({ batch: { maxBufferEvents: 50, flushThresholdEvents: 20 }, jetstream });
    const release = await blockWrites();
    let crashed: Promise<void> | undefined;
    try {
      await env.publishBulk(taskEvents('nak', 120));
      // Delivered (as the server counts) and held by the batcher: a message the server has sent but the
      // client has not taken from its fetch yet is dropped by the stop, not handed back (ack_wait
      // redelivers it), so it would be no nak.
      await waitFor(
        async () =>
          (await env.consumerInfo('TASK_EVENTS')).num_ack_pending === 50 &&
          first.chronicle.batcher.state().heldEvents === 50,
        10_000,
        'a full buffer of delivered messages',
      );
      // A hard stop hands back every delivered message. Not awaited here: its flushes, waiting on the
      // lock, keep their connections until the lock is released below.
      crashed = first.crash();
      const naks = async () =>
        sampleValue(
          parseSamples(await first.chronicle.metrics.registry.metrics()),
          'chronicle_jetstream_naks_total',
          {
            stream: 'TASK_EVENTS',
          },
        );
      await waitFor(async () => (await naks()) === 50, 5_000, 'the 50 delivered messages to be handed back');
    } finally {
      await release();
    }
    await crashed;
    const second = await env.start({ jetstream });
    await waitFor(() => env.consumersSettled(), 20_000, 'every message to be acked by the second instance');
    const { samples } = await scrape(second);
    // Exactly the messages the first instance handed back arrive again; the other 70 arrive once.
    expect(sampleValue(samples, 'chronicle_jetstream_redeliveries_total', { stream: 'TASK_EVENTS' })).toBe(
      50,
    );
    expect(
      sampleValue(samples, 'chronicle_inputs_received_total', { origin: 'nats', stream: 'TASK_EVENTS' }),
    ).toBe(120);
    expect(sampleValue(samples, 'chronicle_jetstream_naks_total', { stream: 'TASK_EVENTS' })).toBe(0);
    expect(await countRows(env.db.pool, 'swarm_events', "trace_id LIKE 'nak-%'")).toBe(120);
  });
});
