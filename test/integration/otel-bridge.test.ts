/**
 * The OpenTelemetry bridge end to end, in a running Chronicle: tasks in, spans out at an OTLP endpoint
 * (both protocols), spans sent by an OpenTelemetry exporter in, and an export backend outage plus a
 * restart that lose nothing.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { ExportResult } from '@opentelemetry/core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { decodeRequest } from '../../src/events/otlp/decode.js';
import { otelTraceId } from '../../src/spans/ids.js';
import type { SpanRecord } from '../../src/events/span-record.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { generateTraffic } from '../support/generate.js';
import { at, readableSpan, spanIdOf, traceIdOf } from '../support/otlp-spans.js';
import { describeWithPostgres } from '../support/services.js';

/** A stand-in trace backend: decodes what it accepts with the OTLP schema, or answers `status`. */
interface Backend {
  server: Server;
  status: number;
  received: SpanRecord[];
  contentTypes: Set<string>;
  encodings: Set<string>;
  url(): string;
}

async function startBackend(): Promise<Backend> {
  const backend: Backend = {
    status: 200,
    received: [],
    contentTypes: new Set(),
    encodings: new Set(),
    server: createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (backend.status !== 200) {
          res.writeHead(backend.status).end();
          return;
        }
        const type = req.headers['content-type'] ?? '';
        const encoding = req.headers['content-encoding'] ?? 'identity';
        backend.contentTypes.add(type);
        backend.encodings.add(encoding);
        let body = Buffer.concat(chunks);
        if (encoding === 'gzip') body = gunzipSync(body);
        const decoded = decodeRequest(body, type.includes('protobuf') ? 'protobuf' : 'json');
        expect(decoded.rejected).toEqual([]);
        backend.received.push(...decoded.spans);
        res.writeHead(200, { 'content-type': type }).end(type.includes('protobuf') ? Buffer.alloc(0) : '{}');
      });
    }),
    url() {
      return `http://127.0.0.1:${(backend.server.address() as AddressInfo).port}/v1/traces`;
    },
  };
  await new Promise<void>((resolve) => backend.server.listen(0, '127.0.0.1', resolve));
  return backend;
}

const exportTo = (backend: Backend, protocol: 'http/json' | 'http/protobuf', compression: 'gzip' | 'none') =>
  ({
    url: backend.url(),
    protocol,
    headers: { 'x-test': 'yes' },
    timeoutMillis: 2_000,
    compression,
  }) satisfies Config['export'];

interface StoredSpan {
  trace_id: string;
  role: string;
  span: SpanRecord;
  exported_at: Date | null;
}

describeWithPostgres('OpenTelemetry bridge', () => {
  let env: ChronicleTestEnv;
  let backend: Backend;
  const running: TestChronicle[] = [];

  async function stored(): Promise<StoredSpan[]> {
    const { rows } = await env.db.pool.query<StoredSpan>(
      'SELECT trace_id, role, span, exported_at FROM otel_spans ORDER BY otel_trace_id, span_id',
    );
    return rows;
  }

  async function postEvents(chronicle: TestChronicle, events: unknown[]): Promise<void> {
    const res = await fetch(`${chronicle.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    expect(res.status).toBe(200);
  }

  /** Waits until every stored span is exported and the backend holds each exactly once. */
  async function allExported(): Promise<StoredSpan[]> {
    return waitFor(
      async () => {
        const rows = await stored();
        return rows.length > 0 && rows.every((r) => r.exported_at !== null) ? rows : undefined;
      },
      20_000,
      'every span exported',
    );
  }

  beforeAll(async () => {
    env = await createChronicleTestEnv({ nats: false });
    backend = await startBackend();
  });

  afterEach(async () => {
    for (const c of running.splice(0)) await c.stop();
    await env.db.pool.query(
      'TRUNCATE swarm_event_ids, swarm_events, swarm_traces, agent_metrics, otel_spans, otel_pending',
    );
    backend.received = [];
    backend.status = 200;
    backend.contentTypes.clear();
    backend.encodings.clear();
  });

  afterAll(async () => {
    for (const c of running.splice(0)) await c.stop();
    backend?.server.close();
    await env?.cleanup();
  });

  for (const [protocol, compression] of [
    ['http/json', 'gzip'],
    ['http/protobuf', 'none'],
  ] as const) {
    it(`bridge - tasks become traces at the OTLP endpoint (${protocol}, ${compression}), each span sent once as stored`, async () => {
      const chronicle = await env.start({ export: exportTo(backend, protocol, compression) });
      running.push(chronicle);
      const events: CanonicalEvent[] = generateTraffic(3, { tasks: 40 });
      // Two tasks were dead-lettered on the way: their roots carry the DLQ entry as an error event.
      const dlqTraces = [
        ...new Set(events.filter((e) => e.event_type === 'task.failed').map((e) => e.trace_id)),
      ].slice(0, 2);
      for (const [i, traceId] of dlqTraces.entries()) {
        const first = events
          .filter((e) => e.trace_id === traceId)
          .sort((a, b) => a.timestamp.localeCompare(b.timestamp))[0]!;
        events.push({
          event_id: `00000000-0000-4000-a000-00000000000${i}`,
          trace_id: traceId,
          source: 'dlq',
          event_type: 'dlq.entry',
          timestamp: first.timestamp,
          metadata: { dlq_id: `dlq-${i}`, reason: 'max_retries', reason_detail: 'gave up after 3 tries' },
        });
      }
      await postEvents(chronicle, events);
      const rows = await allExported();
      await waitFor(() => backend.received.length >= rows.length, 5_000, 'the backend to hold every span');

      expect(backend.contentTypes).toEqual(
        new Set([protocol === 'http/json' ? 'application/json' : 'application/x-protobuf']),
      );
      expect(backend.encodings).toEqual(new Set([compression === 'gzip' ? 'gzip' : 'identity']));
      // Once each, and exactly as stored: ids, parentage, times, status, attributes, events, resource.
      const key = (s: SpanRecord) => `${s.traceId}/${s.spanId}`;
      expect(backend.received.map(key).sort()).toEqual(rows.map((r) => key(r.span)).sort());
      const byKey = new Map(backend.received.map((s) => [key(s), s]));
      for (const r of rows) {
        // Chronicle's own spans go out sampled, with the parent known to be local (OTLP flags 0x101).
        expect(byKey.get(key(r.span)), r.span.name).toEqual({ ...r.span, flags: 0x101 });
      }

      const { rows: traces } = await env.db.pool.query<{
        trace_id: string;
        status: string;
        error: string | null;
        created_at: Date;
        completed_at: Date;
        attempts: number;
        assigned_agent: string | null;
      }>(
        `SELECT trace_id, status, error, created_at, completed_at, attempts, assigned_agent FROM swarm_traces
         WHERE is_task AND status IN ('completed', 'failed', 'timed_out')`,
      );
      expect(new Set(traces.map((t) => t.status))).toEqual(new Set(['completed', 'failed', 'timed_out']));
      expect(traces.some((t) => t.attempts > 1)).toBe(true);
      expect(traces.length).toBeGreaterThan(5);
      for (const t of traces) {
        const spans = backend.received.filter((s) => s.traceId === otelTraceId(t.trace_id));
        const root = spans.filter((s) => s.name === 'swarm.task');
        expect(root, t.trace_id).toHaveLength(1);
        expect(root[0]!.status.code).toBe(t.status === 'completed' ? 0 : 2);
        if (t.status !== 'completed') expect(root[0]!.status.message).toBe(t.error);
        // Timing from the task row, to the nanosecond; one queue wait per assignment.
        expect(root[0]!.startTimeUnixNano).toBe(`${t.created_at.getTime()}000000`);
        expect(root[0]!.endTimeUnixNano).toBe(`${t.completed_at.getTime()}000000`);
        expect(root[0]!.attributes['swarm.task.attempts']).toBe(t.attempts);
        const waits = spans.filter(
          (s) => s.name === 'swarm.task.queue_wait' && s.parentSpanId === root[0]!.spanId,
        );
        // One per task.assigned (a start without an assignment is an attempt without a queue wait).
        expect(waits, t.trace_id).toHaveLength(t.attempts);
        expect(new Set(waits.map((s) => s.attributes['swarm.attempt'])).size).toBe(t.attempts);
        if (dlqTraces.includes(t.trace_id)) {
          const dlq = root[0]!.events.find((e) => e.name === 'dlq.entry');
          expect(dlq?.attributes).toMatchObject({
            'error.type': 'max_retries',
            'error.message': 'gave up after 3 tries',
          });
        }
        for (const child of spans.filter((s) => s !== root[0] && s.name !== 'swarm.task.update')) {
          expect(child.parentSpanId).toBe(root[0]!.spanId);
        }
        // An attempt that started and ended is an execution span.
        const ran = events.some((e) => e.trace_id === t.trace_id && e.event_type === 'task.started');
        if (ran)
          expect(
            spans.some((s) => s.name.startsWith('invoke_agent ')),
            t.trace_id,
          ).toBe(true);
      }
    });
  }

  it('bridge - a backend outage and a restart in between lose nothing, and nothing arrives twice', async () => {
    backend.status = 503;
    const first = await env.start({ export: exportTo(backend, 'http/protobuf', 'gzip') });
    running.push(first);
    await postEvents(first, generateTraffic(9, { tasks: 30 }));
    // Spans are built and export attempts fail.
    await waitFor(
      async () => {
        const { rows } = await env.db.pool.query<{ failed: number }>(
          'SELECT count(*)::int AS failed FROM otel_spans WHERE export_attempts > 0',
        );
        return rows[0]!.failed > 0;
      },
      20_000,
      'failed export attempts',
    );
    expect(backend.received).toEqual([]);
    // Reported, but Chronicle stays ready: ingest does not depend on the trace backend.
    const health = await first.chronicle.health();
    expect(health.ready).toBe(true);
    expect(health.dependencies.otlp_export).toMatchObject({ state: 'down' });
    await first.stop();
    running.splice(running.indexOf(first), 1);

    backend.status = 200;
    const second = await env.start({ export: exportTo(backend, 'http/protobuf', 'gzip') });
    running.push(second);
    const rows = await allExported();
    const key = (s: SpanRecord) => `${s.traceId}/${s.spanId}`;
    expect(backend.received.map(key).sort()).toEqual(rows.map((r) => key(r.span)).sort());
    expect((await second.chronicle.health()).dependencies.otlp_export).toMatchObject({ state: 'up' });
  });

  it('bridge - spans sent by an OpenTelemetry exporter land in the tables and the API, and are forwarded unchanged', async () => {
    const chronicle = await env.start({ otlpPort: 0, export: exportTo(backend, 'http/json', 'none') });
    running.push(chronicle);
    const otlpUrl = chronicle.chronicle.otlpUrl();
    expect(otlpUrl).toBeDefined();
    const client = new ProtoExporter({ url: `${otlpUrl}/v1/traces` });
    const traceId = traceIdOf(77);
    const spans = [
      readableSpan({ traceId, spanId: spanIdOf(1), name: 'GET /plan', start: at(0), end: at(2, 500) }),
      readableSpan({
        traceId,
        spanId: spanIdOf(2),
        parentSpanId: spanIdOf(1),
        name: 'lookup',
        start: at(1),
        end: at(1, 250_000),
        attributes: { 'db.system': 'postgresql' },
      }),
    ];
    // A span of another OTel trace, placed on the swarm trace "run-7".
    spans.push(
      readableSpan({
        traceId: traceIdOf(78),
        spanId: spanIdOf(3),
        name: 'run step',
        attributes: { 'swarm.trace_id': 'run-7' },
      }),
    );
    const result = await new Promise<ExportResult>((resolve) => client.export(spans, resolve));
    expect(result.code).toBe(0);
    await client.shutdown();

    const { rows } = await env.db.pool.query<{ event_type: string; source: string; trace_id: string }>(
      'SELECT event_type, source, trace_id FROM swarm_events ORDER BY "timestamp"',
    );
    expect(rows).toEqual(
      expect.arrayContaining([
        { event_type: 'otel.span', source: 'test-service', trace_id: traceId },
        { event_type: 'otel.span', source: 'test-service', trace_id: 'run-7' },
      ]),
    );
    expect(rows).toHaveLength(3);
    // A swarm trace made only of received spans: its OTel id is theirs, and so are the links.
    const run = (await (await fetch(`${chronicle.url}/api/v1/traces/run-7`)).json()) as {
      otel_trace_id: string;
    };
    expect(run.otel_trace_id).toBe(traceIdOf(78));
    const api = (await (await fetch(`${chronicle.url}/api/v1/traces/${traceId}`)).json()) as {
      otel_trace_id: string;
      events: unknown[];
      spans: (SpanRecord & { children: SpanRecord[] })[];
    };
    expect(api.otel_trace_id).toBe(traceId);
    expect(api.events).toHaveLength(2);
    expect(api.spans.map((s) => s.name)).toEqual(['GET /plan']);
    expect(api.spans[0]!.children.map((s) => s.name)).toEqual(['lookup']);

    // Forwarded as received, and only those: a trace that is not a task gets no built copies of them.
    await allExported();
    await waitFor(() => backend.received.length >= 3, 5_000, 'the forwarded spans');
    expect(
      backend.received.map((s) => [s.spanId, s.parentSpanId, s.name, s.startTimeUnixNano, s.endTimeUnixNano]),
    ).toEqual(
      expect.arrayContaining([
        [spanIdOf(1), null, 'GET /plan', '1772366400000000000', '1772366402000000500'],
        [spanIdOf(2), spanIdOf(1), 'lookup', '1772366401000000000', '1772366401000250000'],
      ]),
    );
    expect(backend.received).toHaveLength(3);
    // Exactly as received and stored, flags included.
    const { rows: received } = await env.db.pool.query<{ span: SpanRecord }>(
      `SELECT span FROM otel_spans WHERE role = 'received'`,
    );
    const sent = new Map(backend.received.map((s) => [s.spanId, s]));
    for (const { span } of received) expect(sent.get(span.spanId)).toEqual(span);
  });
});
