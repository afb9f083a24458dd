import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { EXIT, runCli } from '../../src/cli/chronicle.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { generateTraffic } from '../support/generate.js';
import { describeWithPostgres } from '../support/services.js';
import { storeWithSpans } from '../support/spans.js';

interface JsonSpan {
  traceId: string;
  spanId: string;
}

describeWithPostgres('chronicle export - backfill a trace backend', () => {
  let db: TestDatabase;
  let server: Server;
  const received: JsonSpan[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: { scopeSpans: { spans: JsonSpan[] }[] }[];
        };
        for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) received.push(...ss.spans);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    await storeWithSpans(db.pool, generateTraffic(12));
  });

  afterAll(async () => {
    server?.close();
    await db?.drop();
  });

  it('export - re-sends the stored spans of the traces active in the window, once each, leaving the outbox alone', async () => {
    const since = '2026-03-01T00:00:00.000Z';
    const until = '2026-03-02T00:00:00.000Z';
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const code = await runCli(
      [
        'export',
        '--since',
        since,
        '--until',
        until,
        '--endpoint',
        `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
        '--batch',
        '7',
      ],
      { DATABASE_URL: db.url, LOG_LEVEL: 'silent', NATS_URL: 'none' },
    );
    vi.restoreAllMocks();
    expect(code).toBe(EXIT.ok);
    const { rows } = await db.pool.query<{ otel_trace_id: string; span_id: string }>(
      `SELECT s.otel_trace_id, s.span_id FROM otel_spans s JOIN swarm_traces t USING (trace_id)
       WHERE t.last_event_at >= $1 AND t.first_event_at < $2`,
      [since, until],
    );
    const { rows: all } = await db.pool.query<{ n: number; exported: number }>(
      'SELECT count(*)::int AS n, count(exported_at)::int AS exported FROM otel_spans',
    );
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.length).toBeLessThan(all[0]!.n);
    expect(received.map((s) => `${s.traceId}/${s.spanId}`).sort()).toEqual(
      rows.map((r) => `${r.otel_trace_id}/${r.span_id}`).sort(),
    );
    expect(all[0]!.exported).toBe(0);
  });

  it('export - says how many traces of the window still wait for their spans, so a later run sends them', async () => {
    const { rows } = await db.pool.query<{ trace_id: string }>(
      `SELECT trace_id FROM swarm_traces WHERE first_event_at >= '2026-03-01' ORDER BY trace_id LIMIT 2`,
    );
    // Two traces changed since their spans were built: queued for the builder, as a flush leaves them.
    for (const { trace_id } of rows) {
      await db.pool.query(
        `INSERT INTO otel_pending (trace_id, first_at, last_at) VALUES ($1, now(), now())`,
        [trace_id],
      );
    }
    const out: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => out.push(String(chunk)) > 0);
    const code = await runCli(
      [
        'export',
        '--since',
        '2026-03-01T00:00:00.000Z',
        '--until',
        '2026-03-02T00:00:00.000Z',
        '--endpoint',
        `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
      ],
      { DATABASE_URL: db.url, LOG_LEVEL: 'silent', NATS_URL: 'none' },
    );
    vi.restoreAllMocks();
    expect(code).toBe(EXIT.ok);
    expect(out.join('')).toMatch(
      /spans sent to .*; 2 traces in the window still wait for their spans to be built \(SPAN_SETTLE_MS\): export again later\n$/,
    );
  });
});
