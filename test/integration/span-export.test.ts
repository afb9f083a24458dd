import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createExportLoop, createOtlpExporter, type ExportLoop } from '../../src/spans/span-export.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { generateTraffic } from '../support/generate.js';
import { describeWithPostgres } from '../support/services.js';
import { storeWithSpans } from '../support/spans.js';

interface OtlpJsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
}

interface OtlpJsonRequest {
  resourceSpans: { scopeSpans: { spans: OtlpJsonSpan[] }[] }[];
}

/** A stand-in OTLP/HTTP JSON backend: answers `status`, and keeps what it accepted. */
function backend(): {
  server: Server;
  status: number;
  received: OtlpJsonSpan[];
  requests: number;
  /** Span ids the backend refuses (400 for any request holding one), as a collector does bad data. */
  refuse: Set<string>;
  largestBody: number;
} {
  const state = {
    status: 200,
    received: [] as OtlpJsonSpan[],
    requests: 0,
    refuse: new Set<string>(),
    largestBody: 0,
    server: undefined as unknown as Server,
  };
  state.server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.requests += 1;
      const raw = Buffer.concat(chunks);
      state.largestBody = Math.max(state.largestBody, raw.length);
      let status = state.status;
      if (status === 200) {
        const body = JSON.parse(raw.toString('utf8')) as OtlpJsonRequest;
        const spans = body.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
        if (spans.some((s) => state.refuse.has(s.spanId))) status = 400;
        else state.received.push(...spans);
      }
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return state;
}

describeWithPostgres('span export', () => {
  let db: TestDatabase;
  let otlp: ReturnType<typeof backend>;
  let loop: ExportLoop;

  beforeAll(async () => {
    db = await createTestDatabase();
    otlp = backend();
    await new Promise<void>((resolve) => otlp.server.listen(0, '127.0.0.1', resolve));
    const { port } = otlp.server.address() as AddressInfo;
    const exporter = createOtlpExporter({
      url: `http://127.0.0.1:${port}/v1/traces`,
      protocol: 'http/json',
      headers: {},
      timeoutMillis: 2_000,
      compression: 'none',
    });
    loop = createExportLoop(
      {
        batchSpans: 100,
        idleMillis: 20,
        minBackoffMillis: 0,
        maxBackoffMillis: 0,
        leaseMillis: 10_000,
        shutdownGraceMillis: 1_000,
        maxBatchBytes: 4 * 1024 * 1024,
      },
      { pool: db.pool, exporter, logger: silentLogger(), metrics: createMetrics({ defaultMetrics: false }) },
    );
  });

  afterAll(async () => {
    await loop?.shutdown(AbortSignal.timeout(1_000));
    otlp?.server.close();
    await db?.drop();
  });

  it('span export - a backend outage loses nothing; once it is back every span arrives exactly once', async () => {
    await storeWithSpans(db.pool, generateTraffic(5));
    const { rows } = await db.pool.query<{ otel_trace_id: string; span_id: string }>(
      'SELECT otel_trace_id, span_id FROM otel_spans',
    );
    expect(rows.length).toBeGreaterThan(50);

    otlp.status = 503;
    expect(await loop.exportOnce()).toBe(-1);
    const pending = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM otel_spans WHERE exported_at IS NULL',
    );
    expect(pending.rows[0]!.n).toBe(rows.length);

    otlp.status = 200;
    while ((await loop.exportOnce()) !== 0);
    const sent = otlp.received.map((s) => `${s.traceId}/${s.spanId}`).sort();
    expect(sent).toEqual(rows.map((r) => `${r.otel_trace_id}/${r.span_id}`).sort());
    expect(new Set(sent).size).toBe(sent.length);
    const left = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM otel_spans WHERE exported_at IS NULL',
    );
    expect(left.rows[0]!.n).toBe(0);
  });

  it('span export - a span the backend refuses waits alone; the rest of its batch goes out, in requests of bounded size', async () => {
    await db.pool.query(
      'TRUNCATE otel_spans, otel_pending, swarm_event_ids, swarm_events, swarm_traces, agent_metrics',
    );
    otlp.received = [];
    otlp.requests = 0;
    otlp.largestBody = 0;
    await storeWithSpans(db.pool, generateTraffic(6));
    const { rows } = await db.pool.query<{ span_id: string }>(
      'SELECT span_id FROM otel_spans ORDER BY span_id',
    );
    const poisoned = rows[Math.floor(rows.length / 2)]!.span_id;
    otlp.refuse.add(poisoned);
    const small = createExportLoop(
      {
        batchSpans: 100,
        idleMillis: 20,
        minBackoffMillis: 0,
        maxBackoffMillis: 0,
        leaseMillis: 10_000,
        shutdownGraceMillis: 1_000,
        maxBatchBytes: 16 * 1024,
      },
      {
        pool: db.pool,
        exporter: createOtlpExporter({
          url: `http://127.0.0.1:${(otlp.server.address() as AddressInfo).port}/v1/traces`,
          protocol: 'http/json',
          headers: {},
          timeoutMillis: 2_000,
          compression: 'none',
        }),
        logger: silentLogger(),
        metrics: createMetrics({ defaultMetrics: false }),
      },
    );
    while ((await small.exportOnce()) > 0);
    otlp.refuse.clear();

    const { rows: left } = await db.pool.query<{ span_id: string; export_attempts: number }>(
      'SELECT span_id, export_attempts FROM otel_spans WHERE exported_at IS NULL',
    );
    expect(left).toEqual([{ span_id: poisoned, export_attempts: 1 }]);
    expect(otlp.received.map((s) => s.spanId).sort()).toEqual(
      rows.map((r) => r.span_id).filter((id) => id !== poisoned),
    );
    // ~16 KiB of stored spans per request (one span over it would still go alone).
    expect(otlp.requests).toBeGreaterThan(3);
    expect(otlp.largestBody).toBeLessThan(64 * 1024);
    await small.shutdown(AbortSignal.timeout(1_000));
  });
});
