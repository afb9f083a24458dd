/**
 * The read endpoints the console uses, on a running Chronicle with real Postgres: trace counts against
 * the trace list they summarise, the DLQ's trace_id filter, daily agent metrics, and the pipeline
 * report against /metrics (the source of truth for the counters) and the store (for the backlog).
 */
import { type OtlpSink, startOtlpSink } from '../support/otlp-sink.js';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { addDays, todayUtc } from '../../src/api/params.js';
import type { PipelineReport } from '../../src/api/pipeline.js';
import { normalizeDlq } from '../../src/events/dlq.js';
import type { CanonicalEvent } from '../../src/events/schema.js';
import type { WriteRecord } from '../../src/pipeline/records.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { TRACE_STATUSES } from '../../src/sinks/postgres/queries.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  countRows,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { generateTraffic } from '../support/generate.js';
import { type Samples, parseSamples } from '../support/prometheus-text.js';
import { describeWithPostgres } from '../support/services.js';

type Json = Record<string, unknown>;
type ListBody = { items: Json[]; next_cursor: string | null };
type CountsBody = { counts: Record<string, number>; not_tasks: number; total: number };

const DAY_MS = 86_400_000;
const TODAY = todayUtc();
// Traffic on the 16 UTC days ending today: the default 14-day window leaves its first two days out.
const FIRST_DAY = addDays(TODAY, -15);
const dayStart = (day: string) => `${day}T00:00:00.000Z`;

function dlqRecord(payload: Json, seq: number): WriteRecord {
  const normalized = normalizeDlq(payload, {
    origin: 'nats',
    subject: 'dlq.tasks',
    stream: 'DLQ',
    seq,
    defaultTimeMillis: Date.now(),
  });
  if (!normalized.ok) throw new Error(normalized.detail);
  return { kind: 'dlq', input: { origin: 'nats', subject: 'dlq.tasks', key: null }, ...normalized.value };
}

/** The sum of a metric's series in the exposition whose labels include `labels`. */
function metricSum(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [key, value] of samples) {
    if (key.slice(0, key.indexOf('{')) !== name) continue;
    if (Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) total += value;
  }
  return total;
}

/** A metric's series summed by one label's value. */
function metricByLabel(samples: Samples, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of samples) {
    if (key.slice(0, key.indexOf('{')) !== name) continue;
    const m = new RegExp(`[{,]${label}="([^"]*)"`).exec(key);
    if (m) out[m[1]!] = (out[m[1]!] ?? 0) + value;
  }
  return out;
}

/** The counters of a pipeline report, as /metrics gives them. */
function countersFromMetrics(s: Samples) {
  const stored = metricSum(s, 'chronicle_events_stored_total');
  const duplicates = metricSum(s, 'chronicle_events_duplicate_total');
  const dlq = metricSum(s, 'chronicle_dlq_entries_total');
  return {
    writer: {
      write_failures_total: metricSum(s, 'chronicle_write_failures_total'),
      write_failure_alerts_total: metricSum(s, 'chronicle_write_failure_alerts_total'),
      flushes_total: metricSum(s, 'chronicle_flushes_total', { result: 'ok' }),
      flushed_inputs_total: metricSum(s, 'chronicle_flush_events_sum'),
    },
    export: {
      spans_built_total: metricSum(s, 'chronicle_spans_built_total'),
      span_build_failures_total: metricSum(s, 'chronicle_span_build_failures_total'),
      spans_exported_total: metricSum(s, 'chronicle_spans_exported_total'),
      export_failures_total: metricSum(s, 'chronicle_span_export_failures_total'),
    },
    ingest: {
      received_total: metricSum(s, 'chronicle_inputs_received_total'),
      received_by_origin: metricByLabel(s, 'chronicle_inputs_received_total', 'origin'),
      accepted_total: stored + duplicates + dlq,
      stored_total: stored,
      duplicates_total: duplicates,
      dlq_entries_total: dlq,
      rejected_total: metricSum(s, 'chronicle_inputs_rejected_total'),
      rejected_by_reason: metricByLabel(s, 'chronicle_inputs_rejected_total', 'reason'),
      rejected_by_origin: metricByLabel(s, 'chronicle_inputs_rejected_total', 'origin'),
      backpressure_total: metricSum(s, 'chronicle_backpressure_total'),
      backpressure_by_source: metricByLabel(s, 'chronicle_backpressure_total', 'source'),
    },
  };
}

/** The same fields of a pipeline report. */
function countersOf(p: PipelineReport): ReturnType<typeof countersFromMetrics> {
  const only = <T extends object>(o: T, keys: readonly (keyof T)[]) =>
    Object.fromEntries(keys.map((k) => [k, o[k]]));
  const reference = countersFromMetrics(new Map());
  return {
    writer: only(p.writer, Object.keys(reference.writer) as (keyof PipelineReport['writer'])[]),
    export: only(p.export, Object.keys(reference.export) as (keyof PipelineReport['export'])[]),
    ingest: only(p.ingest, Object.keys(reference.ingest) as (keyof PipelineReport['ingest'])[]),
  } as ReturnType<typeof countersFromMetrics>;
}

describeWithPostgres('console API', () => {
  let env: ChronicleTestEnv;
  let sink: OtlpSink;
  let c: TestChronicle;

  async function request(path: string, on: TestChronicle = c): Promise<{ status: number; body: Json }> {
    const res = await fetch(on.url + path);
    return { status: res.status, body: (await res.json()) as Json };
  }

  async function ok<T = Json>(path: string, on: TestChronicle = c): Promise<T> {
    const { status, body } = await request(path, on);
    expect(status, `${path} → ${JSON.stringify(body)}`).toBe(200);
    return body as T;
  }

  async function expectBadParameter(path: string, parameter: string): Promise<void> {
    const { status, body } = await request(path);
    expect(status, `${path} → ${JSON.stringify(body)}`).toBe(400);
    expect(body).toMatchObject({ error: 'bad_request', parameter });
    expect(String(body.message).startsWith(`invalid parameter ${parameter}: `)).toBe(true);
  }

  /** Every item of a list, following next_cursor to the end. */
  async function walk(path: string): Promise<Json[]> {
    const items: Json[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const page: ListBody = await ok<ListBody>(
        `${path}${sep}limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`,
      );
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor !== null);
    return items;
  }

  async function post(events: unknown[]): Promise<Json> {
    const res = await fetch(`${c.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    const body = (await res.json()) as Json;
    expect(res.status, JSON.stringify(body)).toBe(200);
    return body;
  }

  async function scrape(): Promise<Samples> {
    const res = await fetch(`${c.url}/metrics`);
    expect(res.status).toBe(200);
    return parseSamples(await res.text());
  }

  /** Spans all built and exported: nothing moves until new input arrives. */
  async function quiescent(): Promise<void> {
    await waitFor(
      async () =>
        (await countRows(env.db.pool, 'otel_pending')) === 0 &&
        (await countRows(env.db.pool, 'otel_spans', 'exported_at IS NULL')) === 0 &&
        (await c.chronicle.health()).buffer.events === 0,
      30_000,
      'spans built and exported',
    );
  }

  beforeAll(async () => {
    sink = await startOtlpSink();
    env = await createChronicleTestEnv({ nats: false });
    c = await env.start({
      export: {
        url: sink.url,
        protocol: 'http/json',
        headers: {},
        timeoutMillis: 2_000,
        compression: 'none',
      },
    });
    // Two runs of simulator-like traffic: every status, several agents and owners, traces that are
    // not tasks, and two trace id prefixes (task-31-…, task-32-…).
    const events: CanonicalEvent[] = [
      ...generateTraffic(31, { tasks: 160, agents: 4, days: 16, firstDay: FIRST_DAY }),
      ...generateTraffic(32, { tasks: 60, agents: 3, days: 16, firstDay: FIRST_DAY, otherTraces: 4 }),
    ];
    for (let i = 0; i < events.length; i += 1000) {
      const answer = await post(events.slice(i, i + 1000));
      expect(answer.rejected).toEqual([]);
    }
  });

  afterAll(async () => {
    await env?.cleanup();
    sink?.server.close();
  });

  // --- GET /api/v1/trace-counts ------------------------------------------------------------------

  it('trace counts - equal to counting the pages of /api/v1/traces with the same filters', async () => {
    const all = await ok<CountsBody>('/api/v1/trace-counts');
    expect(Object.keys(all).sort()).toEqual(['counts', 'not_tasks', 'total']);
    expect(Object.keys(all.counts).sort()).toEqual([...TRACE_STATUSES].sort());
    // The data holds every status and traces that are not tasks.
    for (const status of TRACE_STATUSES) expect(all.counts[status], status).toBeGreaterThan(0);
    expect(all.not_tasks).toBeGreaterThan(0);

    // A trace's own created_at as a bound: since is inclusive, until exclusive, as on the list.
    const [edge] = await walk(`/api/v1/traces?since=${dayStart(addDays(FIRST_DAY, 7))}`).then((items) =>
      items.slice(-1),
    );
    const edgeTime = String(edge!.created_at);
    const edgeMillis = Date.parse(edgeTime);

    const filters = [
      '',
      `since=${dayStart(addDays(FIRST_DAY, 3))}&until=${dayStart(addDays(FIRST_DAY, 9))}`,
      'agent=agent-2',
      `owner=alice&since=${dayStart(addDays(FIRST_DAY, 5))}`,
      `trace_prefix=task-31-&agent=agent-1&until=${dayStart(addDays(FIRST_DAY, 12))}`,
      `trace_prefix=task-32-&owner=bob&agent=agent-3&since=${Date.parse(dayStart(addDays(FIRST_DAY, 2)))}`,
      'trace_prefix=system-',
      'trace_prefix=heartbeat-',
      `since=${edgeTime}&until=${new Date(edgeMillis + 1).toISOString()}`,
      `since=${edgeMillis - DAY_MS}&until=${edgeTime}`,
      'agent=nobody',
      'task=true',
      'task=false',
      `task=true&since=${dayStart(addDays(FIRST_DAY, 3))}&owner=alice`,
      'task=false&trace_prefix=heartbeat-',
    ];
    let someZero = false;
    for (const filter of filters) {
      const counts = await ok<CountsBody>(`/api/v1/trace-counts?${filter}`);
      const items = await walk(`/api/v1/traces?${filter}`);
      const expected = Object.fromEntries(
        TRACE_STATUSES.map((s) => [s, items.filter((t) => t.status === s).length]),
      );
      expect(counts, filter).toEqual({
        counts: expected,
        not_tasks: items.filter((t) => t.is_task === false).length,
        total: items.length,
      });
      if (TRACE_STATUSES.some((s) => counts.counts[s] === 0)) someZero = true;
    }
    expect(someZero).toBe(true);

    // And per status, against the list filtered by that status.
    const window = `agent=agent-1&since=${dayStart(addDays(FIRST_DAY, 4))}`;
    const counts = await ok<CountsBody>(`/api/v1/trace-counts?${window}`);
    for (const status of TRACE_STATUSES) {
      expect(counts.counts[status], status).toBe(
        (await walk(`/api/v1/traces?status=${status}&${window}`)).length,
      );
    }
    expect(counts.total).toBe(Object.values(counts.counts).reduce((a, b) => a + b, 0) + counts.not_tasks);

    // task=true: the tasks, each with a status; task=false: the rest, none with a status.
    const tasks = await walk('/api/v1/traces?task=true');
    const others = await walk('/api/v1/traces?task=false');
    expect(tasks.every((t) => t.is_task === true && t.status !== null)).toBe(true);
    expect(others.every((t) => t.is_task === false && t.status === null)).toBe(true);
    expect(tasks.length + others.length).toBe(all.total);
    expect((await ok<CountsBody>('/api/v1/trace-counts?task=true')).not_tasks).toBe(0);
  });

  it('trace counts - bad, unknown and repeated parameters get 400 naming them', async () => {
    await expectBadParameter('/api/v1/trace-counts?status=failed', 'status');
    await expectBadParameter('/api/v1/trace-counts?limit=10', 'limit');
    await expectBadParameter('/api/v1/trace-counts?cursor=abc', 'cursor');
    await expectBadParameter('/api/v1/trace-counts?task=yes', 'task');
    await expectBadParameter('/api/v1/trace-counts?since=yesterday', 'since');
    await expectBadParameter('/api/v1/trace-counts?until=2026-13-01T00:00:00Z', 'until');
    await expectBadParameter('/api/v1/trace-counts?agent=', 'agent');
    await expectBadParameter('/api/v1/trace-counts?owner=a&owner=b', 'owner');
    await expectBadParameter('/api/v1/trace-counts?trace_prefix=a%00b', 'trace_prefix');
  });

  // --- GET /api/v1/dlq?trace_id= -------------------------------------------------------------------

  it('dlq - trace_id keeps the entries of that trace (exact), newest first, with the other filters', async () => {
    const writer = createEventWriter({ pool: env.db.pool, logger: silentLogger() });
    const entries = [
      { dlq_id: 'dlq-a1', original_payload: { trace_id: 'dlq-trace-a' }, reason: 'max_retries' },
      { dlq_id: 'dlq-b1', original_payload: { trace_id: 'dlq-trace-b' }, reason: 'max_retries' },
      { dlq_id: 'dlq-a2', original_payload: { trace_id: 'dlq-trace-a' }, reason: 'poison' },
      { dlq_id: 'dlq-ab', original_payload: { trace_id: 'dlq-trace-a-b' }, reason: 'poison' },
      { dlq_id: 'dlq-none', original_payload: 'opaque', reason: 'poison' },
    ];
    // One write each, so received_at orders them.
    for (const [i, entry] of entries.entries()) await writer.write([dlqRecord(entry, i + 1)]);

    const ids = async (query: string) =>
      (await walk(`/api/v1/dlq?${query}`)).map((row) => [row.dlq_id, row.trace_id]);
    expect(await ids('trace_id=dlq-trace-a')).toEqual([
      ['dlq-a2', 'dlq-trace-a'],
      ['dlq-a1', 'dlq-trace-a'],
    ]);
    expect(await ids('trace_id=dlq-trace-b')).toEqual([['dlq-b1', 'dlq-trace-b']]);
    expect(await ids('trace_id=dlq-trace-a&reason=poison')).toEqual([['dlq-a2', 'dlq-trace-a']]);
    expect(await ids('trace_id=dlq-trace')).toEqual([]);
    expect(await ids('trace_id=unknown')).toEqual([]);
    // Paging within one trace.
    const first = await ok<ListBody>('/api/v1/dlq?trace_id=dlq-trace-a&limit=1');
    expect(first.items.map((r) => r.dlq_id)).toEqual(['dlq-a2']);
    const second = await ok<ListBody>(`/api/v1/dlq?trace_id=dlq-trace-a&limit=1&cursor=${first.next_cursor}`);
    expect(second.items.map((r) => r.dlq_id)).toEqual(['dlq-a1']);
    expect(second.next_cursor).toBeNull();
    // Without it, every entry.
    expect((await ids('')).length).toBe(entries.length);

    await expectBadParameter('/api/v1/dlq?trace_id=', 'trace_id');
    await expectBadParameter('/api/v1/dlq?trace_id=a&trace_id=b', 'trace_id');
  });

  // --- GET /api/v1/metrics/daily -----------------------------------------------------------------

  it('metrics daily - 14 days ending today by default, every agent, the rows of agent_metrics', async () => {
    const body = await ok<{ from: string; to: string; agents: Json[] }>('/api/v1/metrics/daily');
    expect(Object.keys(body).sort()).toEqual(['agents', 'from', 'to']);
    // The day may turn while the test runs.
    expect([TODAY, todayUtc()]).toContain(body.to);
    expect(body.from).toBe(addDays(body.to, -13));
    const days = Array.from({ length: 14 }, (_, i) => addDays(body.from, i));

    // Ordered by agent_id, metric_date; every agent (heartbeats each day) has its 14 days.
    const keys = body.agents.map((r) => `${String(r.agent_id)} ${String(r.metric_date)}`);
    expect(keys).toEqual([...keys].sort());
    const agents = [...new Set(body.agents.map((r) => String(r.agent_id)))];
    expect(agents.sort()).toEqual(['agent-1', 'agent-2', 'agent-3', 'agent-4', 'agent-idle']);
    for (const agent of agents) {
      expect(body.agents.filter((r) => r.agent_id === agent).map((r) => r.metric_date)).toEqual(days);
    }
    // Days before the window have rows too, and are left out.
    expect(await countRows(env.db.pool, 'agent_metrics', `metric_date < '${body.from}'`)).toBeGreaterThan(0);
    expect(body.agents.length).toBe(
      await countRows(env.db.pool, 'agent_metrics', `metric_date BETWEEN '${body.from}' AND '${body.to}'`),
    );

    // The same rows as the summary of each day (same shape and values)...
    for (const day of days) {
      const summary = await ok<{ agents: Json[] }>(`/api/v1/metrics/summary?date=${day}`);
      expect(body.agents.filter((r) => r.metric_date === day)).toEqual(summary.agents);
    }
    // ...and the values stored in agent_metrics.
    const { rows } = await env.db.pool.query<Json>(
      `SELECT agent_id, metric_date::text AS metric_date, tasks_completed, tasks_failed, tasks_timed_out,
         p95_duration_ms, time_to_pickup_avg_ms, utilization_pct
       FROM agent_metrics WHERE metric_date BETWEEN $1 AND $2 ORDER BY agent_id, metric_date`,
      [body.from, body.to],
    );
    expect(body.agents.map((r) => Object.fromEntries(Object.keys(rows[0]!).map((k) => [k, r[k]])))).toEqual(
      rows,
    );
    expect(body.agents.some((r) => Number(r.tasks_completed) > 0)).toBe(true);
  });

  it('metrics daily - from, to and agent choose the rows', async () => {
    const all = await ok<{ agents: Json[] }>(`/api/v1/metrics/daily?from=${FIRST_DAY}&to=${TODAY}`);
    const pick = (agent: string | null, from: string, to: string) =>
      all.agents.filter(
        (r) =>
          (agent === null || r.agent_id === agent) &&
          String(r.metric_date) >= from &&
          String(r.metric_date) <= to,
      );
    expect(all.agents.length).toBe(5 * 16);

    const one = await ok<{ from: string; to: string; agents: Json[] }>('/api/v1/metrics/daily?agent=agent-2');
    expect(one.agents).toEqual(pick('agent-2', one.from, one.to));
    expect(one.agents.length).toBe(14);

    const three = await ok<{ from: string; to: string; agents: Json[] }>(
      `/api/v1/metrics/daily?from=${FIRST_DAY}&to=${addDays(FIRST_DAY, 2)}`,
    );
    expect([three.from, three.to]).toEqual([FIRST_DAY, addDays(FIRST_DAY, 2)]);
    expect(three.agents).toEqual(pick(null, FIRST_DAY, addDays(FIRST_DAY, 2)));
    expect(three.agents.length).toBe(5 * 3);

    // Only `to`: the 14 days ending there; only `from`: up to today.
    const toOnly = await ok<{ from: string; to: string }>(
      `/api/v1/metrics/daily?to=${addDays(FIRST_DAY, 13)}`,
    );
    expect([toOnly.from, toOnly.to]).toEqual([FIRST_DAY, addDays(FIRST_DAY, 13)]);
    const fromOnly = await ok<{ from: string; to: string }>(
      `/api/v1/metrics/daily?from=${addDays(TODAY, -2)}`,
    );
    expect(fromOnly.from).toBe(addDays(TODAY, -2));
    expect([TODAY, todayUtc()]).toContain(fromOnly.to);

    // One day, a 92-day range, an unknown agent.
    const single = await ok<{ agents: Json[] }>(`/api/v1/metrics/daily?from=${TODAY}&to=${TODAY}`);
    expect(single.agents).toEqual(pick(null, TODAY, TODAY));
    const longest = await ok<{ agents: Json[] }>(
      `/api/v1/metrics/daily?from=${addDays(TODAY, -91)}&to=${TODAY}`,
    );
    expect(longest.agents).toEqual(all.agents);
    expect((await ok<{ agents: Json[] }>('/api/v1/metrics/daily?agent=nobody')).agents).toEqual([]);
    // A `to` in the first days of year 1 still gets a valid range.
    expect(await ok('/api/v1/metrics/daily?to=0001-01-05')).toEqual({
      from: '0001-01-01',
      to: '0001-01-05',
      agents: [],
    });
  });

  it('metrics daily - from after to, over 92 days and bad values get 400 naming them', async () => {
    await expectBadParameter(`/api/v1/metrics/daily?from=${TODAY}&to=${addDays(TODAY, -1)}`, 'from');
    await expectBadParameter(`/api/v1/metrics/daily?from=${addDays(TODAY, -92)}&to=${TODAY}`, 'from');
    await expectBadParameter(`/api/v1/metrics/daily?from=${addDays(TODAY, 1)}`, 'from');
    await expectBadParameter('/api/v1/metrics/daily?from=2026-02-30', 'from');
    await expectBadParameter('/api/v1/metrics/daily?to=yesterday', 'to');
    await expectBadParameter('/api/v1/metrics/daily?agent=', 'agent');
    await expectBadParameter('/api/v1/metrics/daily?date=2026-01-01', 'date');
    await expectBadParameter('/api/v1/metrics/daily?agent=a&agent=b', 'agent');
  });

  // --- GET /api/v1/pipeline ----------------------------------------------------------------------

  it('pipeline - writer, export and ingest agree with /metrics, and change after input, a reject and an export outage', async () => {
    await quiescent();
    const before = await ok<PipelineReport>('/api/v1/pipeline');
    expect(Object.keys(before).sort()).toEqual(['export', 'health', 'ingest', 'writer']);
    expect(countersOf(before)).toEqual(countersFromMetrics(await scrape()));
    expect(before.health).toEqual(await ok('/api/v1/health'));
    expect(before.writer).toMatchObject({ failing: false, consecutive_failures: 0, write_failures_total: 0 });
    expect(before.export).toMatchObject({
      enabled: true,
      backlog_spans: 0,
      backlog_capped: false,
      oldest_waiting_seconds: 0,
      backlog_error: null,
    });
    expect(before.export.spans_exported_total).toBeGreaterThan(0);
    expect(before.export.spans_exported_total).toBe(await countRows(env.db.pool, 'otel_spans'));
    expect(before.ingest.jetstream).toEqual({});
    expect(before.ingest.rejected_total).toBe(0);

    // The backend refuses exports; a new task and a reject arrive over HTTP.
    sink.status = 503;
    const ts = (s: number) => new Date(Date.now() - 60_000 + s * 1000).toISOString();
    const task = ['task.created', 'task.assigned', 'task.started', 'task.failed'].map((event_type, i) => ({
      event_id: randomUUID(),
      trace_id: 'pipeline-task',
      event_type,
      timestamp: ts(i),
      metadata: { agent: 'agent-1', error: 'boom' },
    }));
    const answer = await post([...task, { event_type: 'task.created' }, task[0]]);
    expect(answer).toMatchObject({ accepted: 4, duplicates: 1 });
    // The failure is counted before the export loop records it (its health says down just after).
    await waitFor(
      async () => {
        const report = await ok<PipelineReport>('/api/v1/pipeline');
        return (
          report.export.export_failures_total > before.export.export_failures_total &&
          report.health.dependencies.otlp_export?.state === 'down' &&
          (await countRows(env.db.pool, 'otel_pending')) === 0
        );
      },
      30_000,
      'a failed export',
    );

    const during = await ok<PipelineReport>('/api/v1/pipeline');
    const samples = await scrape();
    const after = await ok<PipelineReport>('/api/v1/pipeline');
    // Only the retried export can move between the three reads.
    expect(countersOf(during).ingest).toEqual(countersFromMetrics(samples).ingest);
    expect(countersOf(during).writer).toEqual(countersFromMetrics(samples).writer);
    const failures = metricSum(samples, 'chronicle_span_export_failures_total');
    expect(failures).toBeGreaterThanOrEqual(during.export.export_failures_total);
    expect(failures).toBeLessThanOrEqual(after.export.export_failures_total);

    expect(during.ingest.received_total).toBe(before.ingest.received_total + 6);
    expect(during.ingest.received_by_origin.http).toBe((before.ingest.received_by_origin.http ?? 0) + 6);
    expect(during.ingest.stored_total).toBe(before.ingest.stored_total + 4);
    expect(during.ingest.duplicates_total).toBe(before.ingest.duplicates_total + 1);
    expect(during.ingest.accepted_total).toBe(before.ingest.accepted_total + 5);
    expect(during.ingest.rejected_total).toBe(1);
    expect(during.ingest.rejected_by_reason).toEqual({ missing_trace_id: 1 });
    expect(during.ingest.rejected_by_origin).toEqual({ http: 1 });
    expect(during.writer.flushes_total).toBeGreaterThan(before.writer.flushes_total);
    expect(during.writer.flushed_inputs_total).toBe(before.writer.flushed_inputs_total + 6);
    expect(during.export.spans_built_total).toBeGreaterThan(before.export.spans_built_total);
    expect(during.export.spans_exported_total).toBe(before.export.spans_exported_total);
    // The backlog is the store's: the new task's spans, waiting.
    const waiting = await countRows(env.db.pool, 'otel_spans', 'exported_at IS NULL');
    expect(waiting).toBeGreaterThan(0);
    expect(during.export.backlog_spans).toBe(waiting);
    expect(during.export.oldest_waiting_seconds).toBeGreaterThan(0);
    expect(during.health.dependencies.otlp_export?.state).toBe('down');

    // The backend is back: the backlog drains and the counters settle on /metrics' values.
    sink.status = 200;
    await quiescent();
    const settled = await ok<PipelineReport>('/api/v1/pipeline');
    expect(countersOf(settled)).toEqual(countersFromMetrics(await scrape()));
    expect(settled.export).toMatchObject({ backlog_spans: 0, oldest_waiting_seconds: 0 });
    // Nothing waits to be built: the builder's next sample (every second) says so.
    await waitFor(
      async () => (await ok<PipelineReport>('/api/v1/pipeline')).export.build_lag_seconds === 0,
      5_000,
      'a build lag of 0',
    );
    expect(settled.export.spans_exported_total).toBe(await countRows(env.db.pool, 'otel_spans'));
    expect(settled.health.dependencies.otlp_export?.state).toBe('up');
  });

  it('pipeline - another replica without export: its own counters, no backlog', async () => {
    const replica = await env.start();
    try {
      const report = await ok<PipelineReport>('/api/v1/pipeline', replica);
      expect(report.health.dependencies.otlp_export?.state).toBe('disabled');
      expect(report.export).toEqual({
        enabled: false,
        backlog_spans: null,
        backlog_capped: null,
        oldest_waiting_seconds: null,
        backlog_error: null,
        // The store's, sampled by this replica's own span builder.
        build_lag_seconds: report.export.build_lag_seconds,
        spans_built_total: report.export.spans_built_total,
        span_build_failures_total: 0,
        spans_exported_total: 0,
        export_failures_total: 0,
      });
      // This process received nothing: the first replica's traffic is not in its counters.
      expect(report.ingest).toMatchObject({ received_total: 0, stored_total: 0, rejected_total: 0 });
      expect(report.writer).toMatchObject({
        flushes_total: 0,
        flushed_inputs_total: 0,
        write_failures_total: 0,
      });
    } finally {
      await replica.stop();
    }
  });

  it('pipeline - parameters are refused', async () => {
    await expectBadParameter('/api/v1/pipeline?verbose=1', 'verbose');
  });
});
