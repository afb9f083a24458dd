/**
 * Access control with scoped API tokens on real Postgres: every route Chronicle serves (the API port and
 * the dedicated OTLP port) answers 401 without a valid token and writes nothing, 403 with a token that
 * lacks the route's scope, and as an open Chronicle would with the right one; /live and /ready stay
 * open; no token ever shows in a log line or an answer; an OTLP exporter authenticates with
 * OTEL_EXPORTER_OTLP_HEADERS; the loopback warning.
 */
import { randomUUID } from 'node:crypto';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as HttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSimulation } from '../../src/simulate/simulate.js';
import { createLogger } from '../../src/telemetry/logger.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  countRows,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { at, readableSpan, spanIdOf, traceIdOf } from '../support/otlp-spans.js';
import { describeWithPostgres } from '../support/services.js';

const TOKEN = {
  ingest: 'ingest-SECRET-5f1c9a',
  read: 'read-SECRET-0b7e44',
  admin: 'admin-SECRET-9d2a61',
  metrics: 'metrics-SECRET-e83f07',
} as const;
const WRONG = 'wrong-SECRET-77c1d2';
const SECRETS: string[] = [...Object.values(TOKEN), WRONG];
const API_TOKENS = `dispatcher:ingest:${TOKEN.ingest}, console:read:${TOKEN.read}\nops:admin:${TOKEN.admin} prom:metrics:${TOKEN.metrics}`;

type Scope = keyof typeof TOKEN;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** Everything the servers answered during the test, to look for tokens in. */
const answered: string[] = [];
/** Everything the instances logged. */
const logged: string[] = [];

function captureLogger() {
  return createLogger({ level: 'trace', name: 'auth-test' }, { write: (line: string) => logged.push(line) });
}

async function call(url: string, init: RequestInit & { token?: string } = {}): Promise<Answer> {
  const headers = new Headers(init.headers);
  if (init.token !== undefined) headers.set('authorization', `Bearer ${init.token}`);
  const res = await fetch(url, { ...init, headers });
  const text = await res.text();
  answered.push(text, JSON.stringify([...res.headers]));
  return { status: res.status, headers: res.headers, text };
}

function spans(n: number): ReadableSpan[] {
  return [readableSpan({ traceId: traceIdOf(n), spanId: spanIdOf(n * 10), start: at(n), end: at(n + 1) })];
}

function canonical(traceId: string) {
  return {
    event_id: randomUUID(),
    trace_id: traceId,
    source: 'dispatch',
    event_type: 'task.created',
    timestamp: new Date().toISOString(),
    metadata: {},
  };
}

/** The rows a refused request must not have added. */
async function stored(env: ChronicleTestEnv): Promise<{ events: number; rejects: number }> {
  return {
    events: await countRows(env.db.pool, 'swarm_events'),
    rejects: await countRows(env.db.pool, 'chronicle_rejects'),
  };
}

async function exportWith(
  Exporter: typeof ProtobufExporter | typeof HttpJsonExporter,
  url: string,
  batch: ReadableSpan[],
  otlpHeaders: string | undefined,
): Promise<ExportResult> {
  // The exporter reads the standard variable when it is built, as any OpenTelemetry SDK does.
  const saved = process.env.OTEL_EXPORTER_OTLP_HEADERS;
  if (otlpHeaders === undefined) delete process.env.OTEL_EXPORTER_OTLP_HEADERS;
  else process.env.OTEL_EXPORTER_OTLP_HEADERS = otlpHeaders;
  let exporter;
  try {
    exporter = new Exporter({ url, timeoutMillis: 10_000 });
  } finally {
    if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_HEADERS;
    else process.env.OTEL_EXPORTER_OTLP_HEADERS = saved;
  }
  try {
    return await new Promise<ExportResult>((resolve) => exporter.export(batch, resolve));
  } finally {
    await exporter.shutdown();
  }
}

describeWithPostgres('access control - API tokens', () => {
  let env: ChronicleTestEnv;
  let secured: TestChronicle;
  let open: TestChronicle;
  let otlpUrl: string;

  beforeAll(async () => {
    env = await createChronicleTestEnv({ nats: false });
    secured = await env.start({ apiTokens: API_TOKENS, otlpPort: 0, logger: captureLogger() });
    otlpUrl = secured.chronicle.otlpUrl()!;
    // The same store without tokens: what the right token must get.
    open = await env.start({ logger: captureLogger() });
    // Data for the read routes: a task and an agent's heartbeat.
    const seeded = await call(`${open.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        canonical('auth-t1'),
        {
          ...canonical('hb-agent-a'),
          source: 'agent-a',
          event_type: 'agent.heartbeat',
          metadata: { busy_ms: 1000, uptime_ms: 4000 },
        },
      ]),
    });
    expect(seeded.status).toBe(200);
  });

  afterAll(async () => {
    await env?.cleanup();
  });

  /** Asserts the 401/403 answer: JSON error, challenge, and the status. */
  function expectRefused(answer: Answer, how: 'missing' | 'invalid' | Scope): void {
    if (how === 'missing' || how === 'invalid') {
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe(
        how === 'missing' ? 'Bearer realm="chronicle"' : 'Bearer realm="chronicle", error="invalid_token"',
      );
      const body = JSON.parse(answer.text) as { error: unknown; message: unknown };
      expect(Object.keys(body).sort()).toEqual(['error', 'message']);
      expect(body.error).toBe('unauthorized');
      expect(typeof body.message).toBe('string');
    } else {
      expect(answer.status).toBe(403);
      expect(answer.headers.get('www-authenticate')).toBe(
        `Bearer realm="chronicle", error="insufficient_scope", scope="${how}"`,
      );
      const body = JSON.parse(answer.text) as { error: unknown; message: unknown };
      expect(Object.keys(body).sort()).toEqual(['error', 'message']);
      expect(body.error).toBe('forbidden');
      expect(body.message).toMatch(new RegExp(`needs scope ${how}$`));
    }
  }

  const READ_ROUTES = [
    '/api/v1/health',
    '/api/v1/pipeline',
    '/api/v1/events',
    '/api/v1/traces',
    '/api/v1/trace-counts',
    '/api/v1/traces/auth-t1',
    '/api/v1/metrics/summary',
    '/api/v1/metrics/daily',
    '/api/v1/metrics/agent-a/latest',
    '/api/v1/dlq',
    '/api/v1/rejects',
  ];

  it('read routes - 401 without a token or with a wrong one, 403 with another scope, the open answer with read', async () => {
    for (const route of READ_ROUTES) {
      for (const method of ['GET', 'HEAD']) {
        const url = `${secured.url}${route}`;
        const what = `${method} ${route}`;
        const none = await call(url, { method });
        expect(none.status, what).toBe(401);
        expect(none.headers.get('www-authenticate'), what).toBe('Bearer realm="chronicle"');
        if (method === 'GET') {
          expectRefused(none, 'missing');
          expectRefused(await call(url, { method, token: WRONG }), 'invalid');
          for (const other of ['ingest', 'admin', 'metrics'] as const) {
            expectRefused(await call(url, { method, token: TOKEN[other] }), 'read');
          }
        }
        const granted = await call(url, { method, token: TOKEN.read });
        const unsecured = await call(`${open.url}${route}`, { method });
        expect(granted.status, what).toBe(200);
        expect(granted.status, what).toBe(unsecured.status);
        if (method === 'GET' && route !== '/api/v1/health' && route !== '/api/v1/pipeline') {
          // (health and pipeline carry each instance's own buffer and counters)
          expect(JSON.parse(granted.text), what).toEqual(JSON.parse(unsecured.text));
        }
      }
    }
    // Express routes without regard to case or a trailing slash: neither gets round the scope.
    expectRefused(await call(`${secured.url}/API/V1/EVENTS/`), 'missing');
    expectRefused(await call(`${secured.url}/Metrics`, { token: TOKEN.read }), 'metrics');
    const shouted = await call(`${secured.url}/Api/V1/Events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(canonical('auth-shouted')),
      token: TOKEN.read,
    });
    expectRefused(shouted, 'ingest');
    expect(await countRows(env.db.pool, 'swarm_events', "trace_id = 'auth-shouted'")).toBe(0);
    // A scheme other than Bearer is no token at all.

    const basic = await call(`${secured.url}/api/v1/events`, {
      headers: { authorization: `Basic ${Buffer.from(`console:${TOKEN.read}`).toString('base64')}` },
    });
    expectRefused(basic, 'missing');
    // The scheme's case does not matter (RFC 7235).
    expect(
      (await call(`${secured.url}/api/v1/events`, { headers: { authorization: `bearer ${TOKEN.read}` } }))
        .status,
    ).toBe(200);
  });

  it('/live and /ready are open; the console pages and files are open, their data is not', async () => {
    for (const route of ['/live', '/ready', '/', '/tasks', '/tasks/auth-t1', '/tail', '/console/app.js']) {
      expect((await call(`${secured.url}${route}`)).status, route).toBe(200);
    }
    expectRefused(await call(`${secured.url}/api/v1/traces?limit=5`), 'missing');
    // The open probe says ready and no more; the health report needs read.
    expect(JSON.parse((await call(`${secured.url}/ready`)).text)).toEqual({ status: 'ready' });
    expectRefused(await call(`${secured.url}/api/v1/health`), 'missing');
  });

  it('POST /api/v1/events - refused requests write nothing; only ingest writes', async () => {
    const before = await stored(env);
    const post = (token?: string) =>
      call(`${secured.url}/api/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([canonical('auth-ingest'), { not: 'an event' }]),
        token,
      });
    expectRefused(await post(), 'missing');
    expectRefused(await post(WRONG), 'invalid');
    for (const other of ['read', 'admin', 'metrics'] as const)
      expectRefused(await post(TOKEN[other]), 'ingest');
    expect(await stored(env)).toEqual(before);

    const ok = await post(TOKEN.ingest);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text)).toMatchObject({ accepted: 1 });
    expect(await stored(env)).toEqual({ events: before.events + 1, rejects: before.rejects + 1 });
  });

  it('POST /v1/traces on both ports - JSON error or google.rpc.Status as the request is; only ingest writes', async () => {
    for (const [i, base] of [secured.url, otlpUrl].entries()) {
      const before = await stored(env);
      const json = new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans(i * 2 + 1)));
      const protobuf = ProtobufTraceSerializer.serializeRequest(spans(i * 2 + 2))!;
      const postJson = (token?: string) =>
        call(`${base}/v1/traces`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: json,
          token,
        });
      expectRefused(await postJson(), 'missing');
      expectRefused(await postJson(WRONG), 'invalid');
      expectRefused(await postJson(TOKEN.read), 'ingest');

      for (const [token, code] of [
        [undefined, 16],
        [WRONG, 16],
        [TOKEN.admin, 7],
      ] as const) {
        const headers = new Headers({ 'content-type': 'application/x-protobuf' });
        if (token !== undefined) headers.set('authorization', `Bearer ${token}`);
        const res = await fetch(`${base}/v1/traces`, { method: 'POST', headers, body: protobuf });
        const body = Buffer.from(await res.arrayBuffer());
        answered.push(body.toString('latin1'));
        expect(res.status).toBe(token === TOKEN.admin ? 403 : 401);
        expect(res.headers.get('content-type')).toMatch(/^application\/x-protobuf/);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="chronicle"/);
        // google.rpc.Status: field 1 (code) as a varint, then field 2 (message).
        expect([body[0], body[1], body[2]]).toEqual([0x08, code, 0x12]);
      }
      expect(await stored(env)).toEqual(before);
      const ok = await postJson(TOKEN.ingest);
      expect(ok.status, base).toBe(200);
      expect((await stored(env)).events).toBe(before.events + 1);
      // The dedicated port serves nothing else, and says so only to a client with a token.
      if (base === otlpUrl) {
        expectRefused(await call(`${base}/api/v1/events`), 'missing');
        expect((await call(`${base}/api/v1/events`, { token: TOKEN.read })).status).toBe(404);
      }
    }
  });

  it('an OTLP exporter authenticates with OTEL_EXPORTER_OTLP_HEADERS, on both ports, both encodings', async () => {
    let n = 10;
    for (const base of [secured.url, otlpUrl]) {
      for (const Exporter of [ProtobufExporter, HttpJsonExporter]) {
        n++;
        const refused = await exportWith(Exporter, `${base}/v1/traces`, spans(n), undefined);
        expect(refused.code).toBe(ExportResultCode.FAILED);
        const wrongScope = await exportWith(
          Exporter,
          `${base}/v1/traces`,
          spans(n),
          `Authorization=Bearer%20${TOKEN.read}`,
        );
        expect(wrongScope.code).toBe(ExportResultCode.FAILED);
        const ok = await exportWith(
          Exporter,
          `${base}/v1/traces`,
          spans(n),
          `Authorization=Bearer%20${TOKEN.ingest}`,
        );
        expect(ok).toEqual({ code: ExportResultCode.SUCCESS });
        expect(await countRows(env.db.pool, 'swarm_events', `trace_id = '${traceIdOf(n)}'`)).toBe(1);
      }
    }
  });

  it('/metrics needs the metrics scope; refusals and clients are counted', async () => {
    expectRefused(await call(`${secured.url}/metrics`), 'missing');
    expectRefused(await call(`${secured.url}/metrics`, { token: TOKEN.read }), 'metrics');
    const scraped = await call(`${secured.url}/metrics`, { token: TOKEN.metrics });
    expect(scraped.status).toBe(200);
    const value = (series: string) => Number(new RegExp(`^${series} (\\S+)$`, 'm').exec(scraped.text)?.[1]);
    expect(value('chronicle_http_auth_failures_total{reason="missing"}')).toBeGreaterThan(0);
    expect(value('chronicle_http_auth_failures_total{reason="invalid"}')).toBeGreaterThan(0);
    expect(value('chronicle_http_auth_failures_total{reason="scope"}')).toBeGreaterThan(0);
    expect(value('chronicle_http_client_requests_total{client="console",scope="read"}')).toBeGreaterThan(0);
    expect(value('chronicle_http_client_requests_total{client="dispatcher",scope="ingest"}')).toBeGreaterThan(
      0,
    );
    expect(value('chronicle_otlp_requests_total{status="401"}')).toBeGreaterThan(0);
    expect(value('chronicle_otlp_requests_total{status="403"}')).toBeGreaterThan(0);
    // Client labels come only from the configured names.
    const clients = new Set([...scraped.text.matchAll(/client="([^"]*)"/g)].map((m) => m[1]));
    expect([...clients].every((c) => ['dispatcher', 'console', 'ops', 'prom'].includes(c!))).toBe(true);
  });

  it('routes under /api for other methods need admin; unknown routes need read and then 404', async () => {
    for (const [method, route, withAdmin] of [
      // With admin the request reaches its handler: a bulk pin without a filter is a 400, unpinning a
      // trace that is not pinned a 404, and there is no PUT route (404).
      ['POST', '/api/v1/pins', 400],
      ['DELETE', '/api/v1/traces/auth-t1/pin', 404],
      ['PUT', '/api/v1/events', 404],
    ] as const) {
      expectRefused(await call(`${secured.url}${route}`, { method }), 'missing');
      expectRefused(await call(`${secured.url}${route}`, { method, token: TOKEN.read }), 'admin');
      expectRefused(await call(`${secured.url}${route}`, { method, token: TOKEN.ingest }), 'admin');
      expect((await call(`${secured.url}${route}`, { method, token: TOKEN.admin })).status).toBe(withAdmin);
    }
    expectRefused(await call(`${secured.url}/nowhere`), 'missing');
    expectRefused(await call(`${secured.url}/v1/metrics`, { method: 'POST', token: TOKEN.ingest }), 'read');
    expect((await call(`${secured.url}/nowhere`, { token: TOKEN.read })).status).toBe(404);
  });

  it('GET /api/v1/stream - 401 without the read scope; with it, events arrive as they commit', async () => {
    expectRefused(await call(`${secured.url}/api/v1/stream`), 'missing');
    expectRefused(await call(`${secured.url}/api/v1/stream`, { token: TOKEN.ingest }), 'read');
    const controller = new AbortController();
    const res = await fetch(`${secured.url}/api/v1/stream`, {
      headers: { authorization: `Bearer ${TOKEN.read}`, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    let text = '';
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const reading = (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    })().catch(() => undefined);
    const posted = await call(`${secured.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(canonical('auth-streamed')),
      token: TOKEN.ingest,
    });
    expect(posted.status).toBe(200);
    // (Generous: on a shared Postgres cluster, another database's long transaction holds the stream's
    // horizon back, docs/adr/0007.)
    await waitFor(() => text.includes('auth-streamed'), 30_000, 'the posted event on the stream');
    controller.abort();
    await reading;
    answered.push(text);
  });

  it('chronicle simulate sends CHRONICLE_API_TOKEN: publishes and verifies with it, and says why without it', async () => {
    const run = { count: 200, seed: 7, startTimeMillis: Date.now() - 60_000, wholeTasks: true };
    await expect(runSimulation({ ...run, target: { kind: 'http', url: secured.url } })).rejects.toThrow(
      /answered 401: .*\(set CHRONICLE_API_TOKEN to a token with the ingest scope\)$/,
    );
    const token = `sim-${randomUUID()}-SECRET`;
    const sim = await env.start({
      apiTokens: `${API_TOKENS},sim:ingest+read:${token}`,
      logger: captureLogger(),
    });
    SECRETS.push(token);
    const result = await runSimulation({
      ...run,
      target: { kind: 'http', url: sim.url, token },
      verify: { apiUrl: sim.url, timeoutMillis: 30_000, token },
    });
    expect(result.differences).toEqual([]);
    await expect(
      runSimulation({
        ...run,
        target: { kind: 'http', url: sim.url, token },
        verify: { apiUrl: sim.url, timeoutMillis: 1_000, token: TOKEN.ingest },
      }),
    ).rejects.toThrow(/answered 403 \(set CHRONICLE_API_TOKEN to a token with the read scope\)/);
    await sim.stop();
  });

  it('no token appears in any answer nor in any log line', () => {
    expect(answered.length).toBeGreaterThan(100);
    const refusals = logged.filter((l) => l.includes('request refused'));
    expect(refusals.length).toBeGreaterThan(10);
    // Refusals name the client when its token was valid, and the scope that was missing.
    expect(refusals.some((l) => (JSON.parse(l) as { client?: string }).client === 'console')).toBe(true);
    for (const secret of SECRETS) {
      expect(answered.filter((a) => a.includes(secret))).toEqual([]);
      expect(logged.filter((l) => l.includes(secret))).toEqual([]);
    }
  });
});

describeWithPostgres('access control - the warning when open beyond loopback', () => {
  let env: ChronicleTestEnv;

  beforeAll(async () => {
    env = await createChronicleTestEnv({ nats: false });
  });

  afterAll(async () => {
    await env?.cleanup();
  });

  async function warningsOf(overrides: { host: string; apiTokens?: string }): Promise<string[]> {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const c = await env.start({ ...overrides, logger });
    await c.stop();
    return lines
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .filter((l) => l.level === 40 && l.msg.includes('API tokens'))
      .map((l) => l.msg);
  }

  it('no tokens on 0.0.0.0: one warning in plain words; on loopback or with tokens: none', async () => {
    const warnings = await warningsOf({ host: '0.0.0.0' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^no API tokens configured: anyone who can reach 0\.0\.0\.0:\d+ can read every event and send their own; set CHRONICLE_API_TOKENS$/,
    );
    expect(await warningsOf({ host: '127.0.0.1' })).toEqual([]);
    expect(await warningsOf({ host: '0.0.0.0', apiTokens: API_TOKENS })).toEqual([]);
  });
});

describe('access control - test fixture', () => {
  it('the test tokens are all different (a copy-paste slip would hide a failure)', () => {
    expect(new Set(SECRETS).size).toBe(SECRETS.length);
  });
});
