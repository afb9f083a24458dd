import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as HttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import express from 'express';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type Batcher,
  type BatcherOptions,
  DEFAULT_BATCHER_OPTIONS,
  createBatcher,
} from '../../src/batch/batcher.js';
import { uuidV5 } from '../../src/events/uuid.js';
import { RetryableError } from '../../src/pipeline/errors.js';
import { type EventWriter, createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { type OtlpReceiver, createOtlpReceiver } from '../../src/sources/otlp-http/otlp-receiver.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { type Metrics, createMetrics } from '../../src/telemetry/metrics.js';
import { countRows, counterValue, waitFor } from '../support/chronicle.js';
import { type TestDatabase, createTestDatabase } from '../support/db.js';
import {
  SpanKind,
  SpanStatusCode,
  at,
  partlyBadSpans,
  readableSpan,
  spanIdOf,
  traceIdOf,
} from '../support/otlp-spans.js';
import { describeWithPostgres } from '../support/services.js';

const BUFFER_EVENTS = 100;
// Above the 256 KiB metadata limit, so a span can be rejected for its size within a request.
const MAX_BODY_BYTES = 512 * 1024;
const PROTOBUF = 'application/x-protobuf';
const JSON_TYPE = 'application/json';

/** The receiver on its own port, in front of a real batcher and event writer on a fresh database. */
interface Harness {
  db: TestDatabase;
  batcher: Batcher;
  metrics: Metrics;
  receiver: OtlpReceiver;
  /** `http://127.0.0.1:<port>/v1/traces` */
  url: string;
  /** Content-Type and Content-Encoding of every request received, in order. */
  requests: { type: string | undefined; encoding: string | undefined }[];
  stop(): Promise<void>;
}

async function startHarness(
  options: { batch?: Partial<BatcherOptions>; wrapWriter?: (writer: EventWriter) => EventWriter } = {},
): Promise<Harness> {
  const db = await createTestDatabase();
  const logger = silentLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const writer = createEventWriter({ pool: db.pool, logger });
  const batcher = createBatcher(
    {
      ...DEFAULT_BATCHER_OPTIONS,
      maxBufferEvents: BUFFER_EVENTS,
      flushIntervalMillis: 5_000,
      lingerMillis: 20,
      retryInitialMillis: 20,
      retryMaxMillis: 200,
      ...options.batch,
    },
    { writer: options.wrapWriter?.(writer) ?? writer, logger, metrics },
  );
  const receiver = createOtlpReceiver(
    { maxBodyBytes: MAX_BODY_BYTES, retryAfterSeconds: 2 },
    { consumer: batcher, logger, metrics },
  );
  const requests: Harness['requests'] = [];
  const app = express();
  app.use((req, _res, next) => {
    requests.push({ type: req.headers['content-type'], encoding: req.headers['content-encoding'] });
    next();
  });
  app.use(receiver.router);
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    db,
    batcher,
    metrics,
    receiver,
    url: `http://127.0.0.1:${port}/v1/traces`,
    requests,
    async stop() {
      await receiver.shutdown(AbortSignal.abort());
      await batcher.drain(AbortSignal.timeout(5_000));
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await db.drop();
    },
  };
}

type Compression = NonNullable<NonNullable<ConstructorParameters<typeof ProtobufExporter>[0]>['compression']>;

/** Sends the spans with an official OTLP exporter and resolves with its result. */
async function exportWith(
  Exporter: typeof ProtobufExporter | typeof HttpJsonExporter,
  url: string,
  compression: 'gzip' | 'none',
  spans: ReadableSpan[],
): Promise<ExportResult> {
  const exporter = new Exporter({ url, compression: compression as Compression, timeoutMillis: 10_000 });
  try {
    return await new Promise<ExportResult>((resolve) => exporter.export(spans, resolve));
  } finally {
    await exporter.shutdown();
  }
}

interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
}

async function post(
  url: string,
  body: Uint8Array | string,
  headers: Record<string, string>,
): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', headers, body });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** Reads a google.rpc.Status (code = 1 varint, message = 2 string) straight from the wire format. */
function readRpcStatus(bytes: Uint8Array): { code: number; message: string } {
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[pos++]!;
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return value;
  };
  const status = { code: 0, message: '' };
  while (pos < bytes.length) {
    const tag = varint();
    if ((tag & 7) === 0) {
      const value = varint();
      if (tag >> 3 === 1) status.code = value;
    } else if ((tag & 7) === 2) {
      const length = varint();
      if (tag >> 3 === 2) status.message = Buffer.from(bytes.subarray(pos, pos + length)).toString('utf8');
      pos += length;
    } else {
      throw new Error(`unexpected wire type ${tag & 7}`);
    }
  }
  return status;
}

function statusOf(answer: Answer, format: 'protobuf' | 'json'): { code: number; message: string } {
  return format === 'protobuf'
    ? readRpcStatus(answer.body)
    : (JSON.parse(answer.body.toString()) as { code: number; message: string });
}

interface EventRow {
  event_id: string;
  trace_id: string;
  source: string;
  event_type: string;
  timestamp: Date;
  metadata: Record<string, unknown>;
}

async function events(db: TestDatabase): Promise<EventRow[]> {
  const { rows } = await db.pool.query<EventRow>(
    'SELECT event_id::text, trace_id, source, event_type, "timestamp", metadata FROM swarm_events ORDER BY "timestamp", event_id',
  );
  return rows;
}

const RESOURCE = resourceFromAttributes({ 'service.name': 'dispatcher', 'deployment.environment': 'test' });

/** A parent and a child span of one trace, with times to the nanosecond. */
function twoSpans(n: number): ReadableSpan[] {
  return [
    readableSpan({
      traceId: traceIdOf(n),
      spanId: spanIdOf(n * 10),
      name: `handle ${n}`,
      kind: SpanKind.SERVER,
      start: at(n, 100_000_001),
      end: at(n + 2, 250_000_002),
      attributes: { 'http.route': '/tasks', attempt: 2, ok: true, ratio: 0.5, tags: ['a', 'b'] },
      events: [{ name: 'queued', time: at(n, 500_000_000), attributes: { depth: 3 } }],
      status: { code: SpanStatusCode.ERROR, message: 'agent crashed' },
      resource: RESOURCE,
    }),
    readableSpan({
      traceId: traceIdOf(n),
      spanId: spanIdOf(n * 10 + 1),
      parentSpanId: spanIdOf(n * 10),
      name: `call ${n}`,
      kind: SpanKind.CLIENT,
      start: at(n + 1),
      end: at(n + 1, 999_999_999),
      resource: RESOURCE,
    }),
  ];
}

/** The stored event of twoSpans(n)[0], as the mapping in span-to-event.ts gives it. */
function expectedParentEvent(n: number): EventRow {
  return {
    event_id: uuidV5(`otlp:${traceIdOf(n)}:${spanIdOf(n * 10)}`),
    trace_id: traceIdOf(n),
    source: 'dispatcher',
    event_type: 'otel.span',
    timestamp: new Date(Date.UTC(2026, 2, 1, 12, 0, n + 2, 250)),
    metadata: {
      name: `handle ${n}`,
      kind: 2,
      trace_id: traceIdOf(n),
      span_id: spanIdOf(n * 10),
      parent_span_id: null,
      start: `2026-03-01T12:00:${String(n).padStart(2, '0')}.100000001Z`,
      end: `2026-03-01T12:00:${String(n + 2).padStart(2, '0')}.250000002Z`,
      duration_ms: 2150.000001,
      status: { code: 2, message: 'agent crashed' },
      attributes: { 'http.route': '/tasks', attempt: 2, ok: true, ratio: 0.5, tags: ['a', 'b'] },
      resource: { 'service.name': 'dispatcher', 'deployment.environment': 'test' },
      events: [
        {
          name: 'queued',
          time: `2026-03-01T12:00:${String(n).padStart(2, '0')}.500000000Z`,
          attributes: { depth: 3 },
        },
      ],
      scope: { name: 'chronicle-test', version: '1.2.3' },
    },
  };
}

describeWithPostgres('otlp receiver - POST /v1/traces', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness();
  });

  afterAll(async () => {
    await h?.stop();
  });

  beforeEach(async () => {
    await h.db.pool.query(
      'TRUNCATE swarm_event_ids, swarm_events, swarm_traces, agent_metrics, chronicle_rejects, swarm_dlq RESTART IDENTITY',
    );
    h.requests.length = 0;
  });

  const exporters = [
    { name: 'protobuf exporter', Exporter: ProtobufExporter, type: PROTOBUF },
    { name: 'JSON exporter', Exporter: HttpJsonExporter, type: JSON_TYPE },
  ] as const;

  for (const { name, Exporter, type } of exporters) {
    for (const compression of ['gzip', 'none'] as const) {
      it(`${name}, compression ${compression} - spans land in swarm_events with the span mapping`, async () => {
        const result = await exportWith(Exporter, h.url, compression, twoSpans(1));

        expect(result).toEqual({ code: ExportResultCode.SUCCESS });
        expect(h.requests).toEqual([
          {
            type: expect.stringContaining(type) as unknown,
            encoding: compression === 'gzip' ? 'gzip' : undefined,
          },
        ]);
        const rows = await events(h.db);
        expect(rows).toHaveLength(2);
        expect(rows.find((r) => r.metadata.span_id === spanIdOf(10))).toEqual(expectedParentEvent(1));
        expect(rows.find((r) => r.metadata.span_id === spanIdOf(11))).toMatchObject({
          event_id: uuidV5(`otlp:${traceIdOf(1)}:${spanIdOf(11)}`),
          trace_id: traceIdOf(1),
          timestamp: new Date(Date.UTC(2026, 2, 1, 12, 0, 2, 999)),
          metadata: { kind: 3, parent_span_id: spanIdOf(10), duration_ms: 999.999999, status: { code: 0 } },
        });
        const trace = await h.db.pool.query(
          'SELECT is_task, span_count FROM swarm_traces WHERE trace_id = $1',
          [traceIdOf(1)],
        );
        expect(trace.rows).toEqual([{ is_task: false, span_count: 2 }]);
      });
    }
  }

  it('a client retry (the same spans sent again) is stored once and counted as duplicates', async () => {
    const spans = [...twoSpans(1), ...twoSpans(2)];
    const duplicatesBefore = await counterValue(h.metrics.duplicates, { origin: 'otlp' });

    expect(await exportWith(ProtobufExporter, h.url, 'gzip', spans)).toEqual({
      code: ExportResultCode.SUCCESS,
    });
    expect(await exportWith(HttpJsonExporter, h.url, 'none', spans)).toEqual({
      code: ExportResultCode.SUCCESS,
    });

    expect(await countRows(h.db.pool, 'swarm_events')).toBe(4);
    expect((await counterValue(h.metrics.duplicates, { origin: 'otlp' })) - duplicatesBefore).toBe(4);
    const traces = await h.db.pool.query<{ span_count: number }>(
      'SELECT span_count FROM swarm_traces ORDER BY 1',
    );
    expect(traces.rows).toEqual([{ span_count: 2 }, { span_count: 2 }]);
  });

  it('lifecycle spans drive task state and agent metrics as NATS events do', async () => {
    const task = 'task-otlp-1';
    const lifecycle = (
      n: number,
      type: string,
      seconds: number,
      attributes: Record<string, unknown>,
      resource = RESOURCE,
    ): ReadableSpan =>
      readableSpan({
        traceId: traceIdOf(7),
        spanId: spanIdOf(700 + n),
        name: type,
        start: at(seconds - 1),
        end: at(seconds, 400_000_000),
        attributes: { 'swarm.trace_id': task, 'swarm.event_type': type, ...attributes },
        resource,
      });
    const agentResource = resourceFromAttributes({ 'service.name': 'agent-scout' });
    const spans = [
      lifecycle(1, 'task.created', 10, {
        'swarm.title': 'Index the corpus',
        'swarm.owner': 'alice',
        'swarm.scoring_breakdown': { priority: 3, weights: [0.5, 0.5] },
      }),
      // No swarm.agent: the GenAI convention names the agent.
      lifecycle(2, 'task.assigned', 20, { 'gen_ai.agent.name': 'scout' }),
      lifecycle(3, 'task.started', 30, { 'swarm.agent_id': 'scout' }, agentResource),
      lifecycle(4, 'task.completed', 90, { 'swarm.agent': 'scout', 'swarm.result': 'ok' }, agentResource),
      readableSpan({
        traceId: traceIdOf(8),
        spanId: spanIdOf(800),
        name: 'heartbeat',
        start: at(99),
        end: at(100),
        attributes: {
          'swarm.trace_id': 'agent-scout-heartbeats',
          'swarm.event_type': 'agent.heartbeat',
          'swarm.busy_ms': 1500,
          'swarm.uptime_ms': 6000,
        },
        resource: agentResource,
      }),
    ];

    expect(await exportWith(ProtobufExporter, h.url, 'gzip', spans)).toEqual({
      code: ExportResultCode.SUCCESS,
    });

    const { rows } = await h.db.pool.query(
      `SELECT is_task, task_title, owner, status, assigned_agent, attempts, span_count, scoring_breakdown,
              created_at, assigned_at, started_at, completed_at, duration_ms, time_to_pickup_ms, error
         FROM swarm_traces WHERE trace_id = $1`,
      [task],
    );
    const t = (seconds: number) => new Date(Date.UTC(2026, 2, 1, 12, 0, seconds, 400));
    expect(rows).toEqual([
      {
        is_task: true,
        task_title: 'Index the corpus',
        owner: 'alice',
        status: 'completed',
        assigned_agent: 'scout',
        attempts: 1,
        span_count: 4,
        scoring_breakdown: { priority: 3, weights: [0.5, 0.5] },
        created_at: t(10),
        assigned_at: t(20),
        started_at: t(30),
        completed_at: t(90),
        duration_ms: 60_000,
        time_to_pickup_ms: 10_000,
        error: null,
      },
    ]);
    const metrics = await h.db.pool.query(
      'SELECT agent_id, tasks_completed, uptime_ms, busy_ms, utilization_pct FROM agent_metrics ORDER BY agent_id',
    );
    expect(metrics.rows).toEqual([
      { agent_id: 'agent-scout', tasks_completed: 0, uptime_ms: 6000, busy_ms: 1500, utilization_pct: 25 },
      { agent_id: 'scout', tasks_completed: 1, uptime_ms: null, busy_ms: null, utilization_pct: null },
    ]);
  });

  for (const format of ['protobuf', 'json'] as const) {
    const type = format === 'protobuf' ? PROTOBUF : JSON_TYPE;
    const serializer = format === 'protobuf' ? ProtobufTraceSerializer : JsonTraceSerializer;

    it(`${format} - partial_success counts the bad spans, which are recorded as rejects; the good ones are stored`, async () => {
      const spans = [...twoSpans(1), ...partlyBadSpans()];
      const body = gzipSync(serializer.serializeRequest(spans)!);

      const answer = await post(h.url, body, { 'content-type': type, 'content-encoding': 'gzip' });

      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toContain(type);
      const response = serializer.deserializeResponse(answer.body);
      expect(response.partialSuccess).toMatchObject({ rejectedSpans: format === 'protobuf' ? 3 : '3' });
      const message = response.partialSuccess!.errorMessage!;
      expect(message).toMatch(/^3 spans rejected: /);
      expect(message).toContain('invalid_span_id ×1');
      expect(message).toContain('invalid_span_time ×1');
      expect(message).toContain('metadata_too_large ×1');

      const stored = await events(h.db);
      expect(stored.map((r) => r.metadata.span_id).sort()).toEqual(
        [spanIdOf(10), spanIdOf(11), spanIdOf(33)].sort(),
      );
      const { rows } = await h.db.pool.query<{
        origin: string;
        subject: string | null;
        reason: string;
        payload: string;
        reject_key: string;
      }>('SELECT origin, subject, reason, payload, reject_key FROM chronicle_rejects ORDER BY reason');
      expect(rows.map((r) => [r.origin, r.subject, r.reason])).toEqual([
        ['otlp', null, 'invalid_span_id'],
        ['otlp', null, 'invalid_span_time'],
        ['otlp', null, 'metadata_too_large'],
      ]);
      for (const r of rows) expect(r.reject_key).toMatch(/^otlp:/);
      // The payload is the span's JSON (cut to 64 KiB for the oversized one).
      expect(JSON.parse(rows[0]!.payload)).toMatchObject({
        traceId: traceIdOf(3),
        spanId: '0'.repeat(16),
        name: 'zero id',
      });
      expect(JSON.parse(rows[1]!.payload)).toMatchObject({ spanId: spanIdOf(31), name: 'backwards' });
      expect(rows[2]!.payload.startsWith(`{"traceId":"${traceIdOf(3)}","spanId":"${spanIdOf(32)}"`)).toBe(
        true,
      );
    });

    it(`${format} - 400 with a google.rpc.Status for a body that does not decode, and the body is recorded`, async () => {
      const body = format === 'protobuf' ? Buffer.from([0x0a, 0x05, 0x01]) : '{"resourceSpans": [';

      const answer = await post(h.url, body, { 'content-type': type });

      expect(answer.status).toBe(400);
      expect(answer.headers.get('content-type')).toContain(type);
      expect(statusOf(answer, format)).toEqual({ code: 3, message: expect.stringMatching(/\S/) as unknown });
      const { rows } = await h.db.pool.query<{ origin: string; reason: string; payload: string }>(
        'SELECT origin, reason, payload FROM chronicle_rejects',
      );
      expect(rows).toEqual([
        {
          origin: 'otlp',
          reason: 'invalid_otlp',
          payload: format === 'protobuf' ? Buffer.from(body).toString('base64') : body,
        },
      ]);
      expect(await countRows(h.db.pool, 'swarm_events')).toBe(0);
    });

    it(`${format} - 400 for a gzip body that does not inflate`, async () => {
      const answer = await post(h.url, Buffer.from('not gzip at all'), {
        'content-type': type,
        'content-encoding': 'gzip',
      });

      expect(answer.status).toBe(400);
      expect(statusOf(answer, format).code).toBe(3);
    });

    it(`${format} - 413 for a small gzip body that inflates past the limit`, async () => {
      const inflated =
        format === 'protobuf'
          ? // One resource_spans (field 1) whose content is zero bytes: field 0 is invalid, but the limit comes first.
            Buffer.concat([Buffer.from([0x0a, 0x80, 0x80, 0x80, 0x01]), Buffer.alloc(2 * 1024 * 1024)])
          : Buffer.from(`{"resourceSpans": [], "padding": "${' '.repeat(2 * 1024 * 1024)}"}`);
      const body = gzipSync(inflated);
      expect(body.length).toBeLessThan(MAX_BODY_BYTES / 50);

      const answer = await post(h.url, body, { 'content-type': type, 'content-encoding': 'gzip' });

      expect(answer.status).toBe(413);
      expect(answer.headers.get('content-type')).toContain(type);
      expect(statusOf(answer, format)).toEqual({
        code: 8,
        message: `request body is over the limit of ${MAX_BODY_BYTES} bytes (after decompression)`,
      });
    });

    it(`${format} - 413 for a plain body over the limit`, async () => {
      const span = readableSpan({
        traceId: traceIdOf(1),
        spanId: spanIdOf(1),
        attributes: { blob: 'x'.repeat(MAX_BODY_BYTES) },
      });

      const answer = await post(h.url, serializer.serializeRequest([span])!, { 'content-type': type });

      expect(answer.status).toBe(413);
      expect(statusOf(answer, format).code).toBe(8);
      expect(await countRows(h.db.pool, 'swarm_events')).toBe(0);
    });

    it(`${format} - 413 for more spans than the buffer can hold`, async () => {
      const spans = Array.from({ length: BUFFER_EVENTS + 1 }, (_, i) =>
        readableSpan({ traceId: traceIdOf(1), spanId: spanIdOf(i + 1) }),
      );

      const answer = await post(h.url, serializer.serializeRequest(spans)!, { 'content-type': type });

      expect(answer.status).toBe(413);
      expect(statusOf(answer, format)).toEqual({
        code: 8,
        message: `a request may carry at most ${BUFFER_EVENTS} spans; got ${BUFFER_EVENTS + 1}`,
      });
      expect(await countRows(h.db.pool, 'swarm_events')).toBe(0);
    });

    it(`${format} - an empty body is 200 with an empty response`, async () => {
      const answer = await post(h.url, new Uint8Array(), { 'content-type': type });

      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toContain(type);
      expect(format === 'protobuf' ? answer.body.length : JSON.parse(answer.body.toString())).toEqual(
        format === 'protobuf' ? 0 : {},
      );
    });

    it(`${format} - 429 with Retry-After while the buffer is full; the request holding it is answered once it commits`, async () => {
      const batch = (from: number, count: number) =>
        serializer.serializeRequest(
          Array.from({ length: count }, (_, i) =>
            readableSpan({ traceId: traceIdOf(1), spanId: spanIdOf(from + i) }),
          ),
        )!;
      // A lock on swarm_events holds the first request's flush, so its spans fill most of the buffer.
      const locker = await h.db.pool.connect();
      let first: Promise<Answer> | undefined;
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE swarm_events IN ACCESS EXCLUSIVE MODE');
        first = post(h.url, batch(1, 80), { 'content-type': type });
        await waitFor(() => h.batcher.state().heldEvents === 80, 5_000, '80 spans held');

        const refused = await post(h.url, batch(100, 30), { 'content-type': type });

        expect(refused.status).toBe(429);
        expect(refused.headers.get('retry-after')).toBe('2');
        expect(refused.headers.get('content-type')).toContain(type);
        expect(statusOf(refused, format).code).toBe(8);
      } finally {
        await locker.query('COMMIT');
        locker.release();
      }
      const answered = await first;
      expect(answered.status).toBe(200);
      expect(serializer.deserializeResponse(answered.body)).toEqual({});
      expect((await post(h.url, batch(100, 30), { 'content-type': type })).status).toBe(200);
      expect(await countRows(h.db.pool, 'swarm_events')).toBe(110);
    });
  }

  it('415 for another content type, with a JSON google.rpc.Status', async () => {
    for (const type of ['text/plain', 'application/x-ndjson', 'application/protobuf']) {
      const answer = await post(h.url, '{}', { 'content-type': type });

      expect(answer.status, type).toBe(415);
      expect(answer.headers.get('content-type')).toContain(JSON_TYPE);
      expect(statusOf(answer, 'json').code).toBe(3);
    }
    const untyped = await fetch(h.url, { method: 'POST', body: new Uint8Array([1, 2, 3]) });
    expect(untyped.status).toBe(415);
  });

  it('415 for a Content-Encoding other than gzip or none', async () => {
    const answer = await post(h.url, 'xyz', { 'content-type': PROTOBUF, 'content-encoding': 'compress' });

    expect(answer.status).toBe(415);
    expect(statusOf(answer, 'protobuf').code).toBe(3);
  });

  it('charset and other parameters of the content type are allowed', async () => {
    const body = JsonTraceSerializer.serializeRequest(twoSpans(1))!;

    const answer = await post(h.url, body, { 'content-type': 'Application/JSON; charset=utf-8' });

    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body.toString())).toEqual({});
    expect(await countRows(h.db.pool, 'swarm_events')).toBe(2);
  });

  it('NUL in a span is stripped before it is stored, as in every canonical event', async () => {
    const span = readableSpan({
      traceId: traceIdOf(1),
      spanId: spanIdOf(1),
      name: 'na\u0000me',
      attributes: { 'swarm.title': 'ti\u0000tle', 'k\u0000ey': 'v\u0000al' },
    });

    const result = await exportWith(ProtobufExporter, h.url, 'none', [span]);

    expect(result).toEqual({ code: ExportResultCode.SUCCESS });
    const [row] = await events(h.db);
    expect(row?.metadata).toMatchObject({ name: 'name', title: 'title', attributes: { key: 'val' } });
  });

  it('received spans are counted with origin otlp', async () => {
    const before = await counterValue(h.metrics.received, { origin: 'otlp' });

    await exportWith(ProtobufExporter, h.url, 'none', [...twoSpans(1), ...twoSpans(2)]);

    expect((await counterValue(h.metrics.received, { origin: 'otlp' })) - before).toBe(4);
    expect(await counterValue(h.metrics.stored, { origin: 'otlp' })).toBeGreaterThanOrEqual(4);
  });
});

describe.each([
  ['protobuf', PROTOBUF],
  ['json', JSON_TYPE],
] as const)('otlp receiver - %s, unavailable', (format, type) => {
  // Runs only with Postgres, like the suite above.
  describeWithPostgres('503', () => {
    let h: Harness;
    let failing = false;

    beforeAll(async () => {
      h = await startHarness({
        wrapWriter: (writer) => ({
          write: (records) =>
            failing ? Promise.reject(new RetryableError('database is down')) : writer.write(records),
        }),
      });
    });

    afterAll(async () => {
      failing = false;
      await h?.stop();
    });

    const body = () =>
      (format === 'protobuf' ? ProtobufTraceSerializer : JsonTraceSerializer).serializeRequest(twoSpans(1))!;

    it('503 with Retry-After while writes fail; the request already taken is answered once they recover', async () => {
      failing = true;
      const taken = post(h.url, body(), { 'content-type': type });
      await waitFor(() => h.batcher.state().failing, 5_000, 'writes to fail');

      const refused = await post(h.url, body(), { 'content-type': type });

      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('2');
      expect(statusOf(refused, format)).toEqual({
        code: 14,
        message: 'writes to Postgres are failing; retry later',
      });
      failing = false;
      expect((await taken).status).toBe(200);
      expect(await countRows(h.db.pool, 'swarm_events')).toBe(2);
    });

    it('503 with Retry-After once intake has stopped (shutdown)', async () => {
      await h.receiver.shutdown(AbortSignal.abort());

      const refused = await post(h.url, body(), { 'content-type': type });

      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('2');
      expect(statusOf(refused, format)).toEqual({ code: 14, message: 'Chronicle is shutting down' });
    });
  });
});
