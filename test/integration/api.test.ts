import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApiApp } from '../../src/api/app.js';
import { otelTraceId } from '../../src/spans/ids.js';
import { createSpanBuilder } from '../../src/spans/span-builder.js';
import type { HealthReport } from '../../src/api/health.js';
import { normalizeDlq } from '../../src/events/dlq.js';
import { makeReject } from '../../src/events/normalize.js';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { createPool } from '../../src/db/pool.js';
import { createQueryStore } from '../../src/sinks/postgres/queries.js';
import type { WriteRecord } from '../../src/pipeline/records.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { describeWithPostgres } from '../support/services.js';

type Json = Record<string, unknown>;
interface Answer {
  status: number;
  body: Json;
  headers: Headers;
}
type ListBody = { items: Json[]; next_cursor: string | null };

const httpInput = { origin: 'http' as const, subject: null, key: null };
const DAY = '2026-02-10';
const NEXT_DAY = '2026-02-11';
const PAGE_BASE_MILLIS = Date.parse('2026-03-01T00:00:00.000Z');
const PAGE_TRACES = 120;

function event(
  trace_id: string,
  event_type: string,
  timestamp: string,
  metadata: Json = {},
  source = 'dispatch',
) {
  const value: CanonicalEvent = { event_id: randomUUID(), trace_id, source, event_type, timestamp, metadata };
  return { kind: 'event', input: httpInput, event: value } satisfies WriteRecord;
}

function dlqRecord(payload: Json, seq: number): WriteRecord {
  const ctx = {
    origin: 'nats' as const,
    subject: 'dlq.task',
    stream: 'DLQ',
    seq,
    defaultTimeMillis: Date.now(),
  };
  const normalized = normalizeDlq(payload, ctx);
  if (!normalized.ok) throw new Error(normalized.detail);
  return { kind: 'dlq', input: { ...httpInput, origin: 'nats' }, ...normalized.value };
}

function rejectRecord(origin: 'nats' | 'http', reason: string, raw: string): WriteRecord {
  const input = { origin, subject: origin === 'nats' ? 'swarm.task.created' : null, key: null };
  return { kind: 'reject', input, reject: makeReject(raw, input, reason, `${reason} detail`, null) };
}

const at = (time: string) => `${DAY}T${time}.000Z`;

// The columns of a table, for "JSON keys are the column names".
async function columnsOf(db: TestDatabase, table: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY column_name`,
    [table],
  );
  return rows.map((r) => r.column_name);
}

// An event's keys: the swarm_events columns, and the event's agent and error flag (migration 0007).
async function eventKeys(db: TestDatabase): Promise<string[]> {
  return [...(await columnsOf(db, 'swarm_events')), 'agent', 'is_error'].sort();
}

describeWithPostgres('query API', () => {
  let db: TestDatabase;
  let server: http.Server;
  let base: string;
  let report: HealthReport;
  let healthFails = false;
  const logLines: string[] = [];
  const metrics = createMetrics({ defaultMetrics: false });

  const readyReport: HealthReport = {
    status: 'ok',
    ready: true,
    reasons: [],
    dependencies: { postgres: { state: 'up' }, nats: { state: 'up' } },
    buffer: { events: 3, bytes: 1200, max_events: 10_000, max_bytes: 64 << 20 },
    writer: { failing: false, consecutive_failures: 0 },
  };

  async function request(path: string, init?: RequestInit): Promise<Answer> {
    const res = await fetch(base + path, init);
    const text = await res.text();
    const json = res.headers.get('content-type')?.includes('application/json');
    return { status: res.status, body: json ? (JSON.parse(text) as Json) : { text }, headers: res.headers };
  }

  async function list(path: string): Promise<ListBody> {
    const { status, body } = await request(path);
    expect(status, JSON.stringify(body)).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['items', 'next_cursor']);
    return body as unknown as ListBody;
  }

  // Follows next_cursor to the end; returns every item and how many pages it took.
  async function walk(path: string): Promise<{ items: Json[]; pages: number }> {
    const items: Json[] = [];
    let pages = 0;
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const page = await list(cursor === null ? path : `${path}${sep}cursor=${cursor}`);
      items.push(...page.items);
      pages += 1;
      cursor = page.next_cursor;
      expect(pages).toBeLessThan(500);
    } while (cursor !== null);
    return { items, pages };
  }

  async function expectBadParameter(path: string, parameter: string): Promise<Json> {
    const { status, body } = await request(path);
    expect(status, `${path} → ${JSON.stringify(body)}`).toBe(400);
    expect(Object.keys(body).sort()).toEqual(['error', 'message', 'parameter']);
    expect(body.error).toBe('bad_request');
    expect(body.parameter).toBe(parameter);
    expect(String(body.message).startsWith(`invalid parameter ${parameter}: `)).toBe(true);
    return body;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    const writer = createEventWriter({ pool: db.pool, logger: createLogger({ level: 'silent' }) });

    await writer.write([
      event('t-completed', 'task.created', at('10:00:00'), { title: 'Write docs', owner: 'alice' }),
      event('t-completed', 'task.assigned', at('10:00:01'), { agent: 'agent-a' }),
      event('t-completed', 'task.started', at('10:00:03')),
      event('t-completed', 'task.completed', at('10:00:10')),
      event('t-failed', 'task.created', at('11:00:00'), { title: 'Fix build', owner: 'bob' }),
      event('t-failed', 'task.assigned', at('11:00:01'), { agent: 'agent-b' }),
      event('t-failed', 'task.started', at('11:00:02')),
      event('t-failed', 'task.failed', at('11:00:05'), { error: 'boom' }),
      event('t-progress', 'task.created', at('12:00:00'), { title: 'Review', owner: 'alice' }),
      event('t-progress', 'task.assigned', at('12:00:01'), { agent: 'agent-a' }),
      event('t-progress', 'task.started', at('12:00:04')),
      event('t-note', 'custom.note', at('09:00:00'), { text: 'not a task' }, 'scout'),
      event('hb-a1', 'agent.heartbeat', at('10:30:00'), { busy_ms: 1000, uptime_ms: 4000 }, 'agent-a'),
      event(
        'hb-a2',
        'agent.heartbeat',
        `${NEXT_DAY}T08:00:00.000Z`,
        { busy_ms: 3000, uptime_ms: 6000 },
        'agent-a',
      ),
      event('hb-c1', 'agent.heartbeat', at('13:00:00'), { busy_ms: 0, uptime_ms: 1000 }, 'agent-c'),
    ]);

    // Separate writes, so received_at / rejected_at differ between them.
    await writer.write([
      dlqRecord(
        {
          dlq_id: 'dlq-1',
          original_subject: 'swarm.task.failed',
          original_payload: { trace_id: 't-failed', event_type: 'task.failed' },
          reason: 'max_retries',
          reason_detail: 'gave up after 3',
          failed_at: at('11:00:06'),
          retry_count: 3,
          max_retries: 3,
          retry_history: [{ attempt: 1 }],
          source: 'dispatch',
          recoverable: true,
        },
        1,
      ),
    ]);
    await writer.write([
      dlqRecord(
        { dlq_id: 'dlq-2', original_payload: 'opaque', reason: 'poison', source: 'warren', recovered: true },
        2,
      ),
    ]);
    await writer.write([rejectRecord('nats', 'invalid_json', '{not json')]);
    await writer.write([rejectRecord('http', 'invalid_timestamp', '{"timestamp":"yesterday"}')]);
    // Many rejects in one transaction share rejected_at: ties broken by id.
    await writer.write(
      Array.from({ length: 25 }, (_, i) => rejectRecord('http', 'missing_trace_id', JSON.stringify({ i }))),
    );
    await writer.write([rejectRecord('nats', 'missing_trace_id', '{}')]);

    // Traces for pagination: created_at in groups of four equal times, every fifth one assigned.
    const paging: WriteRecord[] = [];
    for (let i = 0; i < PAGE_TRACES; i++) {
      const id = `page-${String(i).padStart(3, '0')}`;
      const created = new Date(PAGE_BASE_MILLIS + Math.floor(i / 4) * 1000).toISOString();
      paging.push(event(id, 'task.created', created, { owner: 'pager' }));
      if (i % 5 === 0) paging.push(event(id, 'task.assigned', created, { agent: 'pager-agent' }));
    }
    await writer.write(paging);
    const builder = createSpanBuilder(
      {
        resource: {},
        serviceName: 'chronicle',
        batchTraces: 1000,
        concurrency: 1,
        parkMillis: 60_000,
        settleMillis: 0,
        maxDelayMillis: 0,
        idleMillis: 50,
      },
      { pool: db.pool, logger: createLogger({ level: 'silent' }), metrics },
    );
    while ((await builder.buildOnce()) > 0);

    report = readyReport;
    const ingest = express.Router();
    ingest.post('/api/v1/events', express.json({ limit: 200 }), (req, res) => {
      res.json({ received: req.body as unknown });
    });
    ingest.get('/api/v1/boom', () => {
      throw new Error('secret internal detail');
    });
    const app = createApiApp({
      store: createQueryStore(db.pool),
      health: () => (healthFails ? Promise.reject(new Error('probe broke')) : Promise.resolve(report)),
      metrics,
      logger: createLogger({ level: 'info' }, { write: (line: string) => void logLines.push(line) }),
      ingest,
      links: {
        jaegerUiUrl: 'http://jaeger:16686/',
        grafanaUrl: 'http://grafana:3000',
        tempoDatasourceUid: 'tempo',
      },
    });
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await db?.drop();
  });

  // --- probes, health, metrics -------------------------------------------------------------------

  it('live - answers 200 live without touching dependencies', async () => {
    const { status, body, headers } = await request('/live');
    expect(status).toBe(200);
    expect(body).toEqual({ status: 'live' });
    expect(headers.get('x-powered-by')).toBeNull();
  });

  it('ready - 200 with the report when ready', async () => {
    report = readyReport;
    const { status, body } = await request('/ready');
    expect(status).toBe(200);
    expect(body).toEqual(readyReport);
  });

  it('ready - 503 with the reasons when the health check says not ready', async () => {
    report = {
      ...readyReport,
      status: 'degraded',
      ready: false,
      reasons: ['nats disconnected'],
      dependencies: { postgres: { state: 'up' }, nats: { state: 'down', detail: 'connection refused' } },
    };
    try {
      const { status, body } = await request('/ready');
      expect(status).toBe(503);
      expect(body).toEqual({ status: 'not_ready', reasons: ['nats disconnected'] });

      const health = await request('/api/v1/health');
      expect(health.status).toBe(200);
      expect(health.body).toEqual(report);
    } finally {
      report = readyReport;
    }
  });

  it('ready - 503 when the health check itself throws', async () => {
    healthFails = true;
    try {
      const { status, body } = await request('/ready');
      expect(status).toBe(503);
      expect(body).toEqual({ status: 'not_ready', reasons: ['health check failed'] });
    } finally {
      healthFails = false;
    }
  });

  it('health - 200 with the full report', async () => {
    const { status, body } = await request('/api/v1/health');
    expect(status).toBe(200);
    expect(body).toEqual(readyReport);
  });

  it('metrics - serves the registry as Prometheus text', async () => {
    metrics.stored.inc({ origin: 'http' }, 7);
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain('# TYPE chronicle_events_stored_total counter');
    expect(text).toContain('chronicle_events_stored_total{origin="http"} 7');
  });

  // --- traces -----------------------------------------------------------------------------------

  it('traces - JSON keys are the swarm_traces columns and times are RFC 3339 UTC', async () => {
    const { items } = await list('/api/v1/traces?owner=bob');
    expect(items).toHaveLength(1);
    const trace = items[0]!;
    expect(Object.keys(trace).sort()).toEqual(await columnsOf(db, 'swarm_traces'));
    expect(trace).toMatchObject({
      trace_id: 't-failed',
      is_task: true,
      task_title: 'Fix build',
      owner: 'bob',
      status: 'failed',
      assigned_agent: 'agent-b',
      created_at: at('11:00:00'),
      assigned_at: at('11:00:01'),
      started_at: at('11:00:02'),
      completed_at: at('11:00:05'),
      duration_ms: 3000,
      time_to_pickup_ms: 1000,
      attempts: 1,
      span_count: 5, // four lifecycle events and the dlq.entry event
      error: 'boom',
      scoring_breakdown: null,
    });
    expect(trace.updated_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it('traces - newest first, non-task traces included and marked', async () => {
    const { items, next_cursor } = await list(
      `/api/v1/traces?since=${DAY}T00:00:00Z&until=${NEXT_DAY}T00:00:00Z`,
    );
    expect(next_cursor).toBeNull();
    // Heartbeat traces (hb-*) are non-task traces too.
    expect(items.map((t) => t.trace_id)).toEqual([
      'hb-c1',
      't-progress',
      't-failed',
      'hb-a1',
      't-completed',
      't-note',
    ]);
    const note = items.find((t) => t.trace_id === 't-note')!;
    expect(note).toMatchObject({ is_task: false, status: null, span_count: 1, created_at: at('09:00:00') });
    expect(items.find((t) => t.trace_id === 't-progress')).toMatchObject({
      status: 'in_progress',
      completed_at: null,
      duration_ms: null,
      time_to_pickup_ms: 3000,
    });
  });

  it('traces - status, agent and owner filters', async () => {
    const ids = async (query: string) => (await list(`/api/v1/traces?${query}`)).items.map((t) => t.trace_id);
    expect(await ids('status=completed')).toEqual(['t-completed']);
    expect(await ids('status=in_progress')).toEqual(['t-progress']);
    expect(await ids('status=timed_out')).toEqual([]);
    expect(await ids('agent=agent-a')).toEqual(['t-progress', 't-completed']);
    expect(await ids('owner=alice')).toEqual(['t-progress', 't-completed']);
    expect(await ids('owner=alice&status=completed')).toEqual(['t-completed']);
    expect(await ids('agent=nobody')).toEqual([]);
  });

  it('traces and events - trace_prefix keeps the traces whose id starts with it, matched literally', async () => {
    const idsOf = async (path: string) => (await list(path)).items.map((row) => String(row.trace_id));
    const all = await idsOf('/api/v1/traces?limit=1000');
    expect((await idsOf('/api/v1/traces?trace_prefix=t-')).sort()).toEqual(
      all.filter((id) => id.startsWith('t-')).sort(),
    );
    expect(await idsOf('/api/v1/traces?trace_prefix=t-&status=completed')).toEqual(['t-completed']);
    expect(new Set(await idsOf('/api/v1/events?trace_prefix=hb-a'))).toEqual(new Set(['hb-a1', 'hb-a2']));
    // LIKE's wildcards are plain characters here.
    expect(await idsOf('/api/v1/traces?trace_prefix=%25')).toEqual([]);
    expect(await idsOf('/api/v1/traces?trace_prefix=t_')).toEqual([]);
    expect((await request('/api/v1/traces?trace_prefix=')).status).toBe(400);
  });

  it('traces - since is inclusive and until exclusive, RFC 3339 with any offset or epoch ms', async () => {
    const ids = async (query: string) => (await list(`/api/v1/traces?${query}`)).items.map((t) => t.trace_id);
    expect(await ids(`since=${DAY}T10:30:00Z&until=${DAY}T12:00:00Z`)).toEqual(['t-failed', 'hb-a1']);
    expect(await ids(`since=${DAY}T11:30:00%2B01:00&until=${DAY}T12:00:00Z`)).toEqual(['t-failed', 'hb-a1']);
    const since = Date.parse(at('10:30:00'));
    const until = Date.parse(at('12:00:00'));
    expect(await ids(`since=${since}&until=${until}`)).toEqual(['t-failed', 'hb-a1']);
    expect(await ids(`since=${until}&until=${since}`)).toEqual([]);
  });

  it('traces - pagination walks every row once, in order, across equal created_at', async () => {
    const expected = (
      await db.pool.query<{ trace_id: string }>(
        `SELECT trace_id FROM swarm_traces WHERE owner = 'pager' ORDER BY created_at DESC, trace_id DESC`,
      )
    ).rows.map((r) => r.trace_id);
    expect(expected).toHaveLength(PAGE_TRACES);

    for (const limit of [1, 7, 4, 50, 119, 120, 1000]) {
      const { items, pages } = await walk(`/api/v1/traces?owner=pager&limit=${limit}`);
      expect(items.map((t) => t.trace_id)).toEqual(expected);
      expect(pages).toBe(Math.max(1, Math.ceil(PAGE_TRACES / limit)));
    }
  });

  it('traces - a page of exactly limit rows with nothing after has no next_cursor', async () => {
    const page = await list('/api/v1/traces?owner=pager&limit=120');
    expect(page.items).toHaveLength(120);
    expect(page.next_cursor).toBeNull();
    const short = await list('/api/v1/traces?owner=pager&limit=119');
    expect(short.items).toHaveLength(119);
    expect(short.next_cursor).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('traces - pagination with filters and every row unfiltered', async () => {
    const filtered = (
      await db.pool.query<{ trace_id: string }>(
        `SELECT trace_id FROM swarm_traces WHERE assigned_agent = 'pager-agent' ORDER BY created_at DESC, trace_id DESC`,
      )
    ).rows.map((r) => r.trace_id);
    expect(filtered).toHaveLength(PAGE_TRACES / 5);
    const byAgent = await walk('/api/v1/traces?agent=pager-agent&status=assigned&limit=5');
    expect(byAgent.items.map((t) => t.trace_id)).toEqual(filtered);

    const all = (
      await db.pool.query<{ trace_id: string }>(
        `SELECT trace_id FROM swarm_traces ORDER BY created_at DESC, trace_id DESC`,
      )
    ).rows.map((r) => r.trace_id);
    const walked = await walk('/api/v1/traces');
    expect(walked.items.map((t) => t.trace_id)).toEqual(all);
    expect(new Set(all).size).toBe(all.length);
    expect(walked.pages).toBe(Math.ceil(all.length / 50));

    const windowed = await walk(
      `/api/v1/traces?owner=pager&since=${PAGE_BASE_MILLIS + 5_000}&until=${PAGE_BASE_MILLIS + 12_000}&limit=3`,
    );
    expect(windowed.items).toHaveLength(7 * 4);
  });

  it('traces - limit defaults to 50 and accepts 1 to 1000', async () => {
    expect((await list('/api/v1/traces')).items).toHaveLength(50);
    expect((await list('/api/v1/traces?limit=1')).items).toHaveLength(1);
    expect((await list('/api/v1/traces?limit=1000')).items.length).toBeGreaterThan(PAGE_TRACES);
  });

  it('traces - bad limit gets 400 naming limit', async () => {
    for (const limit of ['0', '-1', '1001', '1.5', 'abc', '', '1e3', '99999999999999999999']) {
      await expectBadParameter(`/api/v1/traces?limit=${limit}`, 'limit');
    }
  });

  it('traces - bad status, since, until and empty filters get 400 naming them', async () => {
    const body = await expectBadParameter('/api/v1/traces?status=done', 'status');
    expect(body.message).toBe(
      'invalid parameter status: must be one of pending, assigned, in_progress, completed, failed, timed_out',
    );
    await expectBadParameter('/api/v1/traces?since=yesterday', 'since');
    await expectBadParameter('/api/v1/traces?since=2026-02-30T00:00:00Z', 'since');
    await expectBadParameter('/api/v1/traces?since=2026-02-10', 'since');
    await expectBadParameter('/api/v1/traces?until=99999999999999999', 'until');
    await expectBadParameter('/api/v1/traces?owner=', 'owner');
    await expectBadParameter(`/api/v1/traces?agent=${'x'.repeat(1025)}`, 'agent');
    await expectBadParameter('/api/v1/traces?owner=a%00b', 'owner');
  });

  it('traces - unknown and repeated parameters get 400', async () => {
    const unknown = await expectBadParameter('/api/v1/traces?stauts=completed', 'stauts');
    expect(unknown.message).toBe('invalid parameter stauts: unknown parameter');
    await expectBadParameter('/api/v1/traces?status=completed&status=failed', 'status');
    await expectBadParameter('/api/v1/traces?owner[x]=1', 'owner[x]');
    await expectBadParameter('/api/v1/traces/t-failed?verbose=1', 'verbose');
  });

  it('traces - bad cursors get 400 naming cursor', async () => {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const good = (await list('/api/v1/traces?limit=1')).next_cursor!;
    const eventsCursor = (await list('/api/v1/events?limit=1')).next_cursor!;
    const bad = [
      '!!!',
      'not-a-cursor',
      encode({ time: 1 }),
      encode(['traces', '2026-02-10T00:00:00Z', 'x']), // not microsecond form
      encode(['traces', '2026-02-30T00:00:00.000000Z', 'x']),
      encode(['traces', '0000-01-01T00:00:00.000000Z', 'x']),
      encode(['traces', '2026-02-10T00:00:00.000000Z', '']),
      encode(['traces', '2026-02-10T00:00:00.000000Z', 'a\u0000b']),
      encode(['traces', '2026-02-10T00:00:00.000000Z', 7]),
      eventsCursor,
      good.slice(0, -3),
      'x'.repeat(5000),
    ];
    for (const cursor of bad) await expectBadParameter(`/api/v1/traces?cursor=${cursor}`, 'cursor');
    expect((await request(`/api/v1/traces?cursor=${good}`)).status).toBe(200);
  });

  it('trace - the row and its events in time order', async () => {
    const { status, body } = await request('/api/v1/traces/t-completed');
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['events', 'links', 'otel_trace_id', 'spans', 'trace']);
    expect(body.trace).toMatchObject({
      trace_id: 't-completed',
      status: 'completed',
      assigned_agent: 'agent-a',
      duration_ms: 7000,
      time_to_pickup_ms: 2000,
      span_count: 4,
    });
    const events = body.events as Json[];
    expect(events.map((e) => e.event_type)).toEqual([
      'task.created',
      'task.assigned',
      'task.started',
      'task.completed',
    ]);
    expect(events.map((e) => e.timestamp)).toEqual([
      at('10:00:00'),
      at('10:00:01'),
      at('10:00:03'),
      at('10:00:10'),
    ]);
    expect(Object.keys(events[0]!).sort()).toEqual(await eventKeys(db));
    expect(events[0]).toMatchObject({
      trace_id: 't-completed',
      source: 'dispatch',
      metadata: { title: 'Write docs', owner: 'alice' },
    });
  });

  it('trace - the OTel trace id, the spans as a tree exactly as stored, and links to Jaeger and Grafana', async () => {
    const { status, body } = await request('/api/v1/traces/t-completed');
    expect(status).toBe(200);
    const traceId = otelTraceId('t-completed');
    expect(body.otel_trace_id).toBe(traceId);
    const spans = body.spans as Json[];
    expect(spans.map((s) => s.name)).toEqual(['swarm.task']);
    const root = spans[0]!;
    expect(root).toMatchObject({ traceId, parentSpanId: null, exported_at: null });
    const children = root.children as Json[];
    expect(children.map((c) => c.name)).toEqual([
      'swarm.task.queue_wait',
      'swarm.task.pickup',
      'invoke_agent agent-a',
    ]);
    for (const child of children) expect(child.parentSpanId).toBe(root.spanId);
    // Exactly what the store holds (and the exporter sends), apart from the tree fields.
    const { rows } = await db.pool.query<{ span: Json }>(
      `SELECT span FROM otel_spans WHERE trace_id = 't-completed' AND role = 'root'`,
    );
    const asServed: Json = { ...root };
    delete asServed.children;
    delete asServed.exported_at;
    expect(asServed).toEqual(rows[0]!.span);
    const links = body.links as { jaeger: string; grafana: string };
    expect(links.jaeger).toBe(`http://jaeger:16686/trace/${traceId}`);
    const grafana = new URL(links.grafana);
    expect(grafana.origin + grafana.pathname).toBe('http://grafana:3000/explore');
    expect(grafana.searchParams.get('panes')).toContain(`"query":"${traceId}"`);

    // A running task: its finished phases only, hanging from a root not built yet.
    const running = await request('/api/v1/traces/t-progress');
    expect((running.body.spans as Json[]).map((s) => s.name)).toEqual([
      'swarm.task.queue_wait',
      'swarm.task.pickup',
    ]);
  });

  it('trace - ids with reserved characters round-trip through the path', async () => {
    const writer = createEventWriter({ pool: db.pool, logger: createLogger({ level: 'silent' }) });
    const id = 'odd/id ?#%é';
    await writer.write([event(id, 'task.created', '2020-01-01T00:00:00.000Z')]);
    const { status, body } = await request(`/api/v1/traces/${encodeURIComponent(id)}`);
    expect(status).toBe(200);
    expect((body.trace as Json).trace_id).toBe(id);
  });

  it('trace - unknown id is a JSON 404, a NUL in the id a 400', async () => {
    const { status, body } = await request('/api/v1/traces/no-such-trace');
    expect(status).toBe(404);
    expect(body).toEqual({ error: 'not_found', message: 'no trace "no-such-trace"' });
    await expectBadParameter('/api/v1/traces/a%00b', 'id');
    const undecodable = await request('/api/v1/traces/%E0%A4%A');
    expect(undecodable.status).toBe(400);
    expect(undecodable.body.error).toBe('bad_request');
  });

  // --- events -----------------------------------------------------------------------------------

  it('events - a trace oldest first, keys are the swarm_events columns', async () => {
    const { items, next_cursor } = await list('/api/v1/events?trace_id=t-failed');
    expect(next_cursor).toBeNull();
    expect(items.map((e) => e.event_type)).toEqual([
      'task.created',
      'task.assigned',
      'task.started',
      'task.failed',
      'dlq.entry',
    ]);
    expect(Object.keys(items[0]!).sort()).toEqual(await eventKeys(db));
    // The agent its metadata names, and the error events: the failure and its dead letter.
    expect(items.map((e) => [e.agent, e.is_error])).toEqual([
      [null, false],
      ['agent-b', false],
      [null, false],
      [null, true],
      [null, true],
    ]);
    expect(items[3]).toMatchObject({
      timestamp: at('11:00:05'),
      metadata: { error: 'boom' },
      source: 'dispatch',
    });
    expect(items[0]!.event_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('events - event_type, source, since and until filters', async () => {
    const types = async (query: string) => (await list(`/api/v1/events?${query}`)).items;
    expect((await types('event_type=task.failed')).map((e) => e.trace_id)).toEqual(['t-failed']);
    expect((await types('source=agent-a')).map((e) => e.trace_id)).toEqual(['hb-a1', 'hb-a2']);
    expect((await types('source=agent-a&event_type=agent.heartbeat&since=2026-02-11T00:00:00Z')).length).toBe(
      1,
    );
    const window = await types(`since=${at('10:00:01')}&until=${at('10:00:10')}`);
    expect(window.map((e) => e.timestamp)).toEqual([at('10:00:01'), at('10:00:03')]);
  });

  it('events - pagination walks every event once in (timestamp, event_id) order', async () => {
    const expected = (
      await db.pool.query<{ event_id: string }>(
        `SELECT event_id::text FROM swarm_events ORDER BY "timestamp", event_id`,
      )
    ).rows.map((r) => r.event_id);
    for (const limit of [9, 50]) {
      const { items } = await walk(`/api/v1/events?limit=${limit}`);
      expect(items.map((e) => e.event_id)).toEqual(expected);
    }
    const pager = await walk('/api/v1/events?event_type=task.created&since=2026-03-01T00:00:00Z&limit=11');
    expect(pager.items).toHaveLength(PAGE_TRACES);
  });

  it('events - bad parameters get 400', async () => {
    await expectBadParameter('/api/v1/events?limit=0', 'limit');
    await expectBadParameter('/api/v1/events?since=2026-13-01T00:00:00Z', 'since');
    await expectBadParameter('/api/v1/events?trace_id=%00', 'trace_id');
    await expectBadParameter('/api/v1/events?status=completed', 'status');
    const tracesCursor = (await list('/api/v1/traces?limit=1')).next_cursor!;
    await expectBadParameter(`/api/v1/events?cursor=${tracesCursor}`, 'cursor');
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    await expectBadParameter(
      `/api/v1/events?cursor=${encode(['events', '2026-02-10T00:00:00.000000Z', 'x'])}`,
      'cursor',
    );
  });

  // --- metrics ----------------------------------------------------------------------------------

  it('metrics - latest row of an agent is its latest day', async () => {
    const { status, body } = await request('/api/v1/metrics/agent-a/latest');
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(
      [...(await columnsOf(db, 'agent_metrics')), 'failure_rate'].sort(),
    );
    expect(body).toMatchObject({
      agent_id: 'agent-a',
      metric_date: NEXT_DAY,
      tasks_completed: 0,
      uptime_ms: 6000,
      busy_ms: 3000,
      utilization_pct: 50,
    });
  });

  it('metrics - unknown agent is a JSON 404', async () => {
    const { status, body } = await request('/api/v1/metrics/nobody/latest');
    expect(status).toBe(404);
    expect(body).toEqual({ error: 'not_found', message: 'no metrics for agent "nobody"' });
  });

  it('metrics - summary lists every agent of the day ordered by agent_id', async () => {
    const { status, body } = await request(`/api/v1/metrics/summary?date=${DAY}`);
    expect(status).toBe(200);
    expect(body.date).toBe(DAY);
    const agents = body.agents as Json[];
    expect(agents.map((a) => a.agent_id)).toEqual(['agent-a', 'agent-b', 'agent-c']);
    expect(agents[0]).toMatchObject({
      metric_date: DAY,
      tasks_completed: 1,
      tasks_failed: 0,
      avg_duration_ms: 7000,
      p95_duration_ms: 7000,
      min_duration_ms: 7000,
      max_duration_ms: 7000,
      time_to_pickup_avg_ms: 2000,
      uptime_ms: 4000,
      busy_ms: 1000,
      utilization_pct: 25,
      failure_rate: 0,
    });
    expect(agents[1]).toMatchObject({
      tasks_completed: 0,
      tasks_failed: 1,
      avg_duration_ms: null,
      uptime_ms: null,
      failure_rate: 1,
    });
    // No finished task: no failure rate.
    expect(agents[2]).toMatchObject({
      tasks_completed: 0,
      uptime_ms: 1000,
      busy_ms: 0,
      utilization_pct: 0,
      failure_rate: null,
    });
  });

  it('metrics - summary defaults to today (UTC) and is empty for a day without rows', async () => {
    const before = new Date().toISOString().slice(0, 10);
    const { status, body } = await request('/api/v1/metrics/summary');
    const after = new Date().toISOString().slice(0, 10);
    expect(status).toBe(200);
    expect([before, after]).toContain(body.date);
    expect(body.agents).toEqual([]);
  });

  it('metrics - a bad date gets 400 naming date', async () => {
    for (const date of ['2026-13-01', '2026-02-30', 'today', '2026-2-1', '0000-01-01', '']) {
      await expectBadParameter(`/api/v1/metrics/summary?date=${date}`, 'date');
    }
    await expectBadParameter(`/api/v1/metrics/summary?day=${DAY}`, 'day');
  });

  // --- dlq and rejects --------------------------------------------------------------------------

  it('dlq - entries newest first with their columns', async () => {
    const { items, next_cursor } = await list('/api/v1/dlq');
    expect(next_cursor).toBeNull();
    expect(items.map((d) => d.dlq_id)).toEqual(['dlq-2', 'dlq-1']);
    expect(Object.keys(items[0]!).sort()).toEqual(await columnsOf(db, 'swarm_dlq'));
    expect(items[1]).toMatchObject({
      dlq_id: 'dlq-1',
      trace_id: 't-failed',
      subject: 'dlq.task',
      original_subject: 'swarm.task.failed',
      original_payload: { trace_id: 't-failed', event_type: 'task.failed' },
      reason: 'max_retries',
      reason_detail: 'gave up after 3',
      failed_at: at('11:00:06'),
      retry_count: 3,
      max_retries: 3,
      retry_history: [{ attempt: 1 }],
      source: 'dispatch',
      recoverable: true,
      recovered: false,
      recovered_at: null,
    });
    expect(items[0]).toMatchObject({ dlq_id: 'dlq-2', trace_id: null, recovered: true });
  });

  it('dlq - reason, source and recovered filters', async () => {
    const ids = async (query: string) => (await list(`/api/v1/dlq?${query}`)).items.map((d) => d.dlq_id);
    expect(await ids('reason=max_retries')).toEqual(['dlq-1']);
    expect(await ids('source=warren')).toEqual(['dlq-2']);
    expect(await ids('recovered=true')).toEqual(['dlq-2']);
    expect(await ids('recovered=false')).toEqual(['dlq-1']);
    expect(await ids('recovered=false&reason=poison')).toEqual([]);
    await expectBadParameter('/api/v1/dlq?recovered=yes', 'recovered');
    await expectBadParameter('/api/v1/dlq?limit=1001', 'limit');
    await expectBadParameter('/api/v1/dlq?origin=nats', 'origin');
  });

  it('dlq - cursors keep microseconds: rows 1 µs apart page without gaps or repeats', async () => {
    // received_at is set by the database (now()), with microseconds; craft rows 1 µs apart and equal.
    await db.pool.query(`
      INSERT INTO swarm_dlq (dlq_id, reason, received_at)
      SELECT 'us-' || lpad(g::text, 3, '0'), 'precision',
             timestamptz '2026-04-01 00:00:00.000001+00' + (g / 2) * interval '1 microsecond'
      FROM generate_series(0, 39) g`);
    const expected = (
      await db.pool.query<{ dlq_id: string }>(
        `SELECT dlq_id FROM swarm_dlq WHERE reason = 'precision' ORDER BY received_at DESC, dlq_id DESC`,
      )
    ).rows.map((r) => r.dlq_id);
    for (const limit of [1, 3]) {
      const { items } = await walk(`/api/v1/dlq?reason=precision&limit=${limit}`);
      expect(items.map((d) => d.dlq_id)).toEqual(expected);
    }
    const all = await walk('/api/v1/dlq?limit=7');
    expect(all.items).toHaveLength(42);
  });

  it('rejects - newest first with their columns, ties on rejected_at broken by id', async () => {
    const expected = (
      await db.pool.query<{ id: number }>(
        `SELECT id FROM chronicle_rejects ORDER BY rejected_at DESC, id DESC`,
      )
    ).rows.map((r) => r.id);
    expect(expected).toHaveLength(28);
    const first = await list('/api/v1/rejects?limit=1');
    expect(Object.keys(first.items[0]!).sort()).toEqual(await columnsOf(db, 'chronicle_rejects'));
    expect(first.items[0]).toMatchObject({
      origin: 'nats',
      subject: 'swarm.task.created',
      reason: 'missing_trace_id',
      detail: 'missing_trace_id detail',
      payload: '{}',
      payload_bytes: 2,
      reject_key: null,
    });
    for (const limit of [1, 4, 50]) {
      const { items } = await walk(`/api/v1/rejects?limit=${limit}`);
      expect(items.map((r) => r.id)).toEqual(expected);
    }
  });

  it('rejects - reason and origin filters', async () => {
    const reasons = async (query: string) => (await walk(`/api/v1/rejects?${query}`)).items;
    expect((await reasons('reason=invalid_json')).map((r) => r.payload)).toEqual(['{not json']);
    expect(await reasons('reason=missing_trace_id&limit=10')).toHaveLength(26);
    expect(await reasons('origin=nats')).toHaveLength(2);
    expect((await reasons('origin=http&reason=invalid_timestamp'))[0]).toMatchObject({ subject: null });
    await expectBadParameter('/api/v1/rejects?origin=smtp', 'origin');
    await expectBadParameter('/api/v1/rejects?source=nats', 'source');
    const dlqCursor = (await list('/api/v1/dlq?limit=1')).next_cursor!;
    await expectBadParameter(`/api/v1/rejects?cursor=${dlqCursor}`, 'cursor');
  });

  // --- routing and errors -----------------------------------------------------------------------

  it('routing - unknown routes and methods are JSON 404s', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/api/v1/trace'],
      ['GET', '/api/v1/metrics/agent-a'],
      ['DELETE', '/api/v1/traces/t-failed'],
      ['POST', '/api/v1/traces'],
    ] as const) {
      const { status, body } = await request(path, { method });
      expect(status).toBe(404);
      expect(body).toEqual({ error: 'not_found', message: `no route for ${method} ${path}` });
    }
  });

  it('ingest - mounted first; body-parser errors map to 413 and 400', async () => {
    const post = (body: string) =>
      request('/api/v1/events', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const ok = await post('{"trace_id":"x"}');
    expect(ok).toMatchObject({ status: 200, body: { received: { trace_id: 'x' } } });
    const tooLarge = await post(JSON.stringify({ pad: 'x'.repeat(500) }));
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body).toEqual({
      error: 'payload_too_large',
      message: 'request body is over the limit of 200 bytes',
    });
    const malformed = await post('{"trace_id":');
    expect(malformed.status).toBe(400);
    expect(malformed.body).toEqual({ error: 'bad_request', message: 'request body is not valid JSON' });
  });

  it('errors - an unexpected error is a generic 500 and is logged', async () => {
    const { status, body } = await request('/api/v1/boom');
    expect(status).toBe(500);
    expect(body).toEqual({ error: 'internal_error', message: 'internal server error' });
    const logged = logLines.map((l) => JSON.parse(l) as Json).find((l) => l.path === '/api/v1/boom');
    expect(logged).toMatchObject({
      level: 50,
      msg: 'request failed',
      err: { message: 'secret internal detail' },
    });
  });

  it('errors - an unreachable database is a 503, not a 500', async () => {
    const pool = createPool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', maxConnections: 1 });
    const app = createApiApp({
      store: createQueryStore(pool),
      health: () => Promise.resolve(readyReport),
      metrics: createMetrics({ defaultMetrics: false }),
      logger: createLogger({ level: 'silent' }),
    });
    const other = http.createServer(app);
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
      for (const path of ['/api/v1/traces', '/api/v1/traces/t-1', '/api/v1/metrics/summary']) {
        const res = await fetch(url + path);
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        expect(await res.json()).toEqual({
          error: 'unavailable',
          message: 'the database is unavailable; retry later',
        });
      }
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
      await pool.end();
    }
  });
});
