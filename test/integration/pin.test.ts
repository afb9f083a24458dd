/**
 * Pinned tasks: pinning copies a trace (row, events, spans, dead letters) into the archive tables; the API
 * serves it from there once retention dropped the originals. Retention is simulated by deleting the
 * trace's rows from swarm_events, swarm_traces, otel_spans and swarm_dlq, as it will. One Chronicle with
 * NATS (dead letters arrive on dlq.>) on its own database.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPinStore, refreshPinned } from '../../src/sinks/postgres/archive.js';
import { runMaintenancePass } from '../../src/sinks/postgres/partition-maintenance.js';
import { createPinRefresher } from '../../src/sinks/postgres/pin-refresher.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  countRows,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { testMaintenance } from '../support/retention.js';
import { describeWithServices } from '../support/services.js';

type Json = Record<string, unknown>;
interface Answer {
  status: number;
  body: Json;
}

const PIN_MARKERS = ['pinned', 'pinned_at', 'refreshed_at', 'pinned_by', 'note', 'archived', 'dlq'];

function without(body: Json, keys: readonly string[]): Json {
  return Object.fromEntries(Object.entries(body).filter(([k]) => !keys.includes(k)));
}

const at = (minute: number, second = 0) => new Date(Date.UTC(2026, 2, 1, 10, minute, second)).toISOString();

function ev(trace_id: string, event_type: string, timestamp: string, metadata: Json = {}) {
  return { event_id: randomUUID(), trace_id, source: 'dispatch', event_type, timestamp, metadata };
}

/** A failed task: created, assigned, started, failed; ends so its root span is built. */
function failedTask(traceId: string, minute = 0) {
  return [
    ev(traceId, 'task.created', at(minute), { title: `Task ${traceId}`, owner: 'ops' }),
    ev(traceId, 'task.assigned', at(minute, 5), { agent: 'agent-1' }),
    ev(traceId, 'task.started', at(minute, 9), { agent: 'agent-1' }),
    ev(traceId, 'task.failed', at(minute, 30), { agent: 'agent-1', error: 'model refused' }),
  ];
}

describeWithServices('pinned tasks', () => {
  let env: ChronicleTestEnv;
  let chronicle: TestChronicle;

  async function request(method: string, path: string, body?: unknown): Promise<Answer> {
    const res = await fetch(chronicle.url + path, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Json };
  }

  async function get(path: string): Promise<Json> {
    const { status, body } = await request('GET', path);
    expect(status, `GET ${path}: ${JSON.stringify(body)}`).toBe(200);
    return body;
  }

  async function post(events: unknown[]): Promise<Json> {
    const { status, body } = await request('POST', '/api/v1/events', events);
    expect(status, JSON.stringify(body)).toBe(200);
    return body;
  }

  const detail = (traceId: string) => get(`/api/v1/traces/${encodeURIComponent(traceId)}`);

  /** Every touched trace's spans built. */
  async function spansBuilt(): Promise<void> {
    await waitFor(async () => (await countRows(env.db.pool, 'otel_pending')) === 0, 20_000, 'spans built');
  }

  /** What retention will do to a trace: its rows gone from the four tables (the ledger keeps its ids). */
  async function dropOriginals(traceId: string): Promise<void> {
    for (const table of ['swarm_events', 'swarm_traces', 'otel_spans', 'swarm_dlq']) {
      await env.db.pool.query(`DELETE FROM ${table} WHERE trace_id = $1`, [traceId]);
    }
  }

  async function archivedCount(table: string, traceId: string): Promise<number> {
    return countRows(env.db.pool, table, `trace_id = '${traceId.replace(/'/g, "''")}'`);
  }

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    chronicle = await env.start();
  });

  afterAll(async () => {
    await env?.cleanup();
  });

  it('pin - copies the row, events, spans and dead letters; the detail is the unpinned answer plus the pin; once retention dropped the originals the archive serves the same answer', async () => {
    const traceId = 'pin-a';
    await post(failedTask(traceId));
    await env.publish('dlq.swarm.task.assigned', {
      dlq_id: 'dlq-pin-a',
      original_subject: 'swarm.task.assigned',
      original_payload: { trace_id: traceId, event_type: 'task.assigned' },
      reason: 'max_retries',
      reason_detail: 'agent-1 unreachable',
      failed_at: at(0, 20),
      retry_count: 3,
      max_retries: 3,
      source: 'orchestrator',
      recoverable: true,
    });
    await waitFor(async () => (await countRows(env.db.pool, 'swarm_dlq')) === 1, 10_000, 'the dead letter');
    await waitFor(() => env.consumersSettled(), 10_000, 'every message settled');
    await spansBuilt();

    const unpinned = await detail(traceId);
    expect(Object.keys(unpinned).sort()).toEqual(['events', 'links', 'otel_trace_id', 'spans', 'trace']);
    const events = unpinned.events as Json[];
    expect(events.map((e) => e.event_type)).toEqual([
      'task.created',
      'task.assigned',
      'task.started',
      'dlq.entry',
      'task.failed',
    ]);
    expect((unpinned.spans as Json[]).length).toBeGreaterThan(0);
    const dlqList = (await get(`/api/v1/dlq?trace_id=${traceId}`)).items as Json[];
    expect(dlqList.map((d) => d.dlq_id)).toEqual(['dlq-pin-a']);

    const pinned = await request('POST', `/api/v1/traces/${traceId}/pin`, { note: 'keep for the review' });
    expect(pinned.status, JSON.stringify(pinned.body)).toBe(201);
    expect(pinned.body).toMatchObject({
      pinned: true,
      trace_id: traceId,
      created: true,
      archived: false,
      note: 'keep for the review',
      pinned_by: null,
      events: events.length,
      spans: await countRows(env.db.pool, 'otel_spans', `trace_id = '${traceId}'`),
      dlq: 1,
    });

    // The archive holds exactly the stored rows.
    const same = async (columns: string, live: string, archive: string, order: string) => {
      const a = await env.db.pool.query(
        `SELECT ${columns} FROM ${live} WHERE trace_id = $1 ORDER BY ${order}`,
        [traceId],
      );
      const b = await env.db.pool.query(
        `SELECT ${columns} FROM ${archive} WHERE trace_id = $1 ORDER BY ${order}`,
        [traceId],
      );
      expect(b.rows).toEqual(a.rows);
      expect(a.rows.length).toBeGreaterThan(0);
    };
    await same('*', 'swarm_events', 'archive_events', 'event_id');
    await same(
      'otel_trace_id, span_id, role, position, span::text, event_ids, reported, created_at, exported_at',
      'otel_spans',
      'archive_spans',
      'span_id',
    );
    await same('*', 'swarm_dlq', 'archive_dlq', 'dlq_id');
    const liveRow = (
      await env.db.pool.query<Json>('SELECT * FROM swarm_traces WHERE trace_id = $1', [traceId])
    ).rows[0];
    const archivedRow = (
      await env.db.pool.query('SELECT * FROM archive_traces WHERE trace_id = $1', [traceId])
    ).rows[0] as Json;
    expect(without(archivedRow, ['pinned_at', 'refreshed_at', 'pinned_by', 'note'])).toEqual(liveRow);

    const withPin = await detail(traceId);
    expect(without(withPin, PIN_MARKERS)).toEqual(unpinned);
    expect(withPin).toMatchObject({ pinned: true, archived: false, note: 'keep for the review' });
    expect(withPin.pinned_at).toBe(pinned.body.pinned_at);
    expect(withPin.dlq).toEqual(dlqList);

    // Retention drops the originals: the same answer, from the archive.
    await dropOriginals(traceId);
    expect((await request('GET', `/api/v1/events?trace_id=${traceId}`)).body.items).toEqual([]);
    const archived = await detail(traceId);
    expect(archived).toEqual({ ...withPin, archived: true });

    // Listed among the pinned traces (from the archive), and counted there; not in the stored list.
    const list = await get(`/api/v1/traces?pinned=true&trace_prefix=${traceId}`);
    expect(list.items).toEqual([
      { ...(archived.trace as Json), pinned_at: withPin.pinned_at, archived: true },
    ]);
    expect((await get(`/api/v1/traces?trace_prefix=${traceId}`)).items).toEqual([]);
    expect((await get(`/api/v1/trace-counts?pinned=true&trace_prefix=${traceId}`)).counts).toMatchObject({
      failed: 1,
    });

    // Pinning it again changes nothing it holds.
    const again = await request('POST', `/api/v1/traces/${traceId}/pin`);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ created: false, archived: true, events: events.length, dlq: 1 });
    expect(await detail(traceId)).toEqual(archived);
  });

  it('late events - ingest and dedup are unaffected by a pin; a late event for an archived task is served beside the copy, which keeps its row', async () => {
    const traceId = 'pin-late';
    const sent = failedTask(traceId);
    await post(sent);
    expect((await request('POST', `/api/v1/traces/${traceId}/pin`)).status).toBe(201);
    const before = await detail(traceId);
    await dropOriginals(traceId);

    // An event sent again is still a duplicate (the ledger keeps its id); a new one is stored.
    expect(await post([sent[0]])).toEqual({ accepted: 0, duplicates: 1, rejected: [] });
    const late = ev(traceId, 'custom.note', at(5), { text: 'late' });
    expect(await post([late])).toEqual({ accepted: 1, duplicates: 0, rejected: [] });

    const after = await detail(traceId);
    expect(after.archived).toBe(true);
    // The row is the archived one (the stored row was made from the late event alone).
    expect(after.trace).toEqual(before.trace);
    expect((after.events as Json[]).map((e) => e.event_id)).toEqual([
      ...(before.events as Json[]).map((e) => e.event_id),
      late.event_id,
    ]);
    expect(await archivedCount('archive_events', traceId)).toBe(sent.length);

    // Pinning again adds the late event and keeps the archived row.
    await request('POST', `/api/v1/traces/${traceId}/pin`);
    expect(await archivedCount('archive_events', traceId)).toBe(sent.length + 1);
    const row = (
      await env.db.pool.query<Json>('SELECT status, span_count FROM archive_traces WHERE trace_id = $1', [
        traceId,
      ])
    ).rows[0];
    expect(row).toEqual({ status: 'failed', span_count: sent.length });
  });

  it('re-pin - refreshes the copy with what came after the first pin; a partly dropped task is served whole', async () => {
    const traceId = 'pin-refresh';
    const [created, assigned, started, failed] = failedTask(traceId);
    await post([created, assigned]);
    expect((await request('POST', `/api/v1/traces/${traceId}/pin`)).body).toMatchObject({
      created: true,
      events: 2,
    });
    await post([started, failed]);
    await spansBuilt();
    // While the originals are stored the answer is theirs.
    const live = await detail(traceId);
    expect((live.trace as Json).status).toBe('failed');
    expect(live.archived).toBe(false);
    expect(await archivedCount('archive_events', traceId)).toBe(2);

    const refreshed = await request('POST', `/api/v1/traces/${traceId}/pin`);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body).toMatchObject({ created: false, events: 4 });
    expect(Date.parse(refreshed.body.refreshed_at as string)).toBeGreaterThanOrEqual(
      Date.parse(refreshed.body.pinned_at as string),
    );
    const archivedStatus = await env.db.pool.query('SELECT status FROM archive_traces WHERE trace_id = $1', [
      traceId,
    ]);
    expect(archivedStatus.rows).toEqual([{ status: 'failed' }]);

    // Retention dropped the day of its first two events only: all four are served, from both.
    await env.db.pool.query('DELETE FROM swarm_events WHERE event_id = ANY($1::uuid[])', [
      [created!.event_id, assigned!.event_id],
    ]);
    const partly = await detail(traceId);
    expect(partly.archived).toBe(true);
    expect(without(partly, PIN_MARKERS)).toEqual(without(live, PIN_MARKERS));
  });

  it('refresh - a task pinned while running is archived as it ends: the refresher copies what reached it after the pin, and nothing when nothing did', async () => {
    const traceId = 'pin-running';
    const [created, assigned, started, failed] = failedTask(traceId);
    await post([created, assigned, started]);
    expect((await request('POST', `/api/v1/traces/${traceId}/pin`)).body).toMatchObject({ events: 3 });
    await post([failed]);
    await spansBuilt();
    const ended = await detail(traceId);
    expect((ended.trace as Json).status).toBe('failed');

    // One round copies the end, the root span and the new row; a second finds nothing to do.
    const first = await refreshPinned(env.db.pool);
    expect(first.refreshed).toBeGreaterThanOrEqual(1);
    expect(first.checked).toBe(await countRows(env.db.pool, 'archive_traces'));
    expect((await refreshPinned(env.db.pool)).refreshed).toBe(0);
    expect(await archivedCount('archive_events', traceId)).toBe(4);

    // Retention drops it all: the archive serves the ended task.
    await dropOriginals(traceId);
    const archived = await detail(traceId);
    expect(archived.archived).toBe(true);
    expect(without(archived, PIN_MARKERS)).toEqual(without(ended, PIN_MARKERS));

    // A late event after the drop: copied by the next round, the archived row kept, then quiet again.
    await post([ev(traceId, 'custom.note', at(7), { text: 'late' })]);
    await spansBuilt();
    expect((await refreshPinned(env.db.pool, { batchTraces: 2 })).refreshed).toBe(1);
    expect((await refreshPinned(env.db.pool, { batchTraces: 2 })).refreshed).toBe(0);
    expect(await archivedCount('archive_events', traceId)).toBe(5);
    expect((await detail(traceId)).trace).toEqual(archived.trace);
  });

  it('refresher - the component refreshes on its interval and stops on shutdown', async () => {
    const traceId = 'pin-refresher';
    const [created, assigned, started, failed] = failedTask(traceId);
    await post([created, assigned, started]);
    await request('POST', `/api/v1/traces/${traceId}/pin`);
    const refresher = createPinRefresher(
      { intervalMillis: 50, batchTraces: 100 },
      { pool: env.db.pool, logger: silentLogger() },
    );
    await refresher.start();
    try {
      await post([failed]);
      await waitFor(
        async () =>
          (
            await env.db.pool.query('SELECT 1 FROM archive_traces WHERE trace_id = $1 AND status = $2', [
              traceId,
              'failed',
            ])
          ).rowCount === 1,
        10_000,
        'the refreshed row',
      );
    } finally {
      await refresher.shutdown(AbortSignal.timeout(5_000));
    }
    expect(await archivedCount('archive_events', traceId)).toBe(4);
  });

  it('unpin - deletes the copy: a task whose originals are gone is then gone; unknown traces and a second unpin answer 404', async () => {
    const traceId = 'pin-gone';
    await post(failedTask(traceId));
    expect((await request('POST', `/api/v1/traces/${traceId}/pin`)).status).toBe(201);
    await dropOriginals(traceId);
    expect((await request('GET', `/api/v1/traces/${traceId}`)).status).toBe(200);

    const unpinned = await request('DELETE', `/api/v1/traces/${traceId}/pin`);
    expect(unpinned).toEqual({ status: 200, body: { trace_id: traceId, pinned: false } });
    for (const table of ['archive_traces', 'archive_events', 'archive_spans', 'archive_dlq']) {
      expect(await archivedCount(table, traceId)).toBe(0);
    }
    expect((await request('GET', `/api/v1/traces/${traceId}`)).status).toBe(404);
    expect(await request('DELETE', `/api/v1/traces/${traceId}/pin`)).toEqual({
      status: 404,
      body: { error: 'not_found', message: `trace "${traceId}" is not pinned` },
    });
    expect(await request('POST', '/api/v1/traces/no-such-trace/pin')).toEqual({
      status: 404,
      body: { error: 'not_found', message: 'no trace "no-such-trace"' },
    });

    // A stored task unpinned is served as before, without the pin.
    await post(failedTask('pin-kept'));
    await request('POST', '/api/v1/traces/pin-kept/pin');
    await request('DELETE', '/api/v1/traces/pin-kept/pin');
    expect(Object.keys(await detail('pin-kept')).sort()).toEqual([
      'events',
      'links',
      'otel_trace_id',
      'spans',
      'trace',
    ]);
  });

  it('bulk - pins the stored traces of a prefix and window, newest first up to the limit, in batches, and reports it; unpins by the same filter', async () => {
    // 12 tasks of one run, one a minute from 11:00; the window takes 11:01 to 11:10 (10 of them).
    const traces = Array.from({ length: 12 }, (_, i) => `run-7f-${String(i).padStart(2, '0')}`);
    await post(
      traces.map((id, i) =>
        ev(id, 'task.created', new Date(Date.UTC(2026, 2, 2, 11, i)).toISOString(), { title: id }),
      ),
    );
    await post([ev('run-8a-00', 'task.created', new Date(Date.UTC(2026, 2, 2, 11, 5)).toISOString())]);
    const filter = { trace_prefix: 'run-7f-', since: '2026-03-02T11:01:00Z', until: '2026-03-02T11:11:00Z' };
    const inWindow = traces.slice(1, 11).reverse(); // newest first

    const first = await request('POST', '/api/v1/pins', { ...filter, limit: 4 });
    expect(first).toEqual({
      status: 200,
      body: { matched: 10, pinned: 4, already_pinned: 0, truncated: true, limit: 4 },
    });
    const pinnedIds = async () =>
      ((await get('/api/v1/traces?pinned=true&trace_prefix=run-&limit=100')).items as Json[]).map(
        (t) => t.trace_id,
      );
    expect(await pinnedIds()).toEqual(inWindow.slice(0, 4));

    // The store itself, in batches of 3 transactions' worth.
    const store = createPinStore(env.db.pool, { batchTraces: 3 });
    expect(await store.pinMatching({ ...filter, limit: 10 })).toEqual({
      matched: 10,
      pinned: 6,
      already_pinned: 4,
      truncated: false,
      limit: 10,
    });
    expect(await pinnedIds()).toEqual(inWindow);
    // Keyset paging over the pinned list reaches each once, in order.
    const paged: unknown[] = [];
    let cursor: string | null = null;
    do {
      const page = await get(
        `/api/v1/traces?pinned=true&trace_prefix=run-&limit=3${cursor === null ? '' : `&cursor=${cursor}`}`,
      );
      paged.push(...(page.items as Json[]).map((t) => t.trace_id));
      cursor = page.next_cursor as string | null;
    } while (cursor !== null);
    expect(paged).toEqual(inWindow);

    // Without a limit: up to 10,000.
    expect((await request('POST', '/api/v1/pins', { trace_prefix: 'run-7f-' })).body).toEqual({
      matched: 12,
      pinned: 2,
      already_pinned: 10,
      truncated: false,
      limit: 10_000,
    });

    expect((await request('DELETE', '/api/v1/pins', { ...filter, limit: 3 })).body).toEqual({
      matched: 10,
      unpinned: 3,
      truncated: true,
      limit: 3,
    });
    expect(await pinnedIds()).toEqual([traces[11], ...inWindow.slice(3), traces[0]]);
    expect((await request('DELETE', '/api/v1/pins', { trace_prefix: 'run-7f-' })).body).toMatchObject({
      matched: 9,
      unpinned: 9,
    });
    expect(await pinnedIds()).toEqual([]);

    // Bad requests say what is wrong.
    const bad = async (body: unknown, parameter: string) => {
      const answer = await request('POST', '/api/v1/pins', body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.parameter).toBe(parameter);
    };
    await bad({}, 'trace_prefix');
    await bad({ trace_prefix: 'run-', limit: 10_001 }, 'limit');
    await bad({ trace_prefix: 'run-', limit: 0 }, 'limit');
    await bad({ trace_prefix: 'run-', since: 'yesterday' }, 'since');
    await bad({ trace_prefix: 'run-', status: 'failed' }, 'status');
    await bad(['run-'], 'body');
    expect((await request('GET', '/api/v1/traces?pinned=false')).status).toBe(400);
    expect((await request('POST', '/api/v1/traces/run-7f-00/pin', { note: 'x'.repeat(1025) })).status).toBe(
      400,
    );
    expect(await countRows(env.db.pool, 'archive_traces', "trace_id LIKE 'run-%'")).toBe(0);
  });

  it('concurrency - pins taken while ingest writes the same trace are each a consistent copy', async () => {
    const traceId = 'pin-busy';
    await post([ev(traceId, 'task.created', at(20))]);
    const EVENTS = 300;
    const writing = (async () => {
      for (let i = 0; i < EVENTS; i += 5) {
        await post(
          Array.from({ length: 5 }, (_, k) =>
            ev(traceId, 'custom.progress', at(21, (i + k) % 60), { i: i + k }),
          ),
        );
      }
    })();
    let done = false;
    void writing.finally(() => (done = true));
    let pins = 0;
    while (!done || pins < 3) {
      const answer = await request('POST', `/api/v1/traces/${traceId}/pin`);
      expect([200, 201]).toContain(answer.status);
      pins++;
      const { rows } = await env.db.pool.query<{ span_count: number; n: number; last_ok: boolean }>(
        `SELECT a.span_count,
           (SELECT count(*)::int FROM archive_events e WHERE e.trace_id = a.trace_id) AS n,
           a.last_event_at = (SELECT max("timestamp") FROM archive_events e WHERE e.trace_id = a.trace_id) AS last_ok
         FROM archive_traces a WHERE a.trace_id = $1`,
        [traceId],
      );
      expect(rows[0]!.n).toBe(rows[0]!.span_count);
      expect(rows[0]!.last_ok).toBe(true);
      expect(answer.body.events).toBe(rows[0]!.n);
    }
    await writing;
    await request('POST', `/api/v1/traces/${traceId}/pin`);
    expect(await archivedCount('archive_events', traceId)).toBe(EVENTS + 1);
    expect(pins).toBeGreaterThanOrEqual(3);

    // Pins of one new task at once: each succeeds, one of them creates the pin.
    await post(failedTask('pin-race'));
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => request('POST', '/api/v1/traces/pin-race/pin')),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    expect(answers.every((a) => a.body.events === 4)).toBe(true);
  });

  it('schema - the archive has every column of the tables it copies', async () => {
    const columns = async (table: string) =>
      (
        await env.db.pool.query<{ column_name: string }>(
          'SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY column_name',
          [table],
        )
      ).rows.map((r) => r.column_name);
    const pinColumns = ['pinned_at', 'refreshed_at', 'pinned_by', 'note'];
    expect(await columns('archive_traces')).toEqual(
      [...(await columns('swarm_traces')), ...pinColumns].sort(),
    );
    expect(await columns('archive_events')).toEqual(await columns('swarm_events'));
    expect(await columns('archive_dlq')).toEqual(await columns('swarm_dlq'));
    const exportQueue = ['export_attempts', 'next_attempt_at', 'lease_until', 'last_error'];
    expect(await columns('archive_spans')).toEqual(
      (await columns('otel_spans')).filter((c) => !exportQueue.includes(c)),
    );
  });

  // Last: the pass drops every day of this file's traffic (March 2026, past a 30-day retention).
  it('retention - a maintenance pass first copies what reached a pinned task since its pin, then drops the originals', async () => {
    const traceId = `pin-retention-${randomUUID()}`;
    const events = failedTask(traceId, 50);
    await post(events);
    await spansBuilt();
    expect((await request('POST', `/api/v1/traces/${traceId}/pin`)).status).toBe(201);
    // A late event after the pin, minutes before the pass: the refresher (every five minutes) has not
    // copied it yet.
    const late = ev(traceId, 'task.note', at(51), { note: 'after the pin' });
    await post([late]);

    const report = await runMaintenancePass(env.db.pool, testMaintenance({ eventsDays: 30, tracesDays: 30 }));
    expect(report.errors).toEqual([]);
    expect(report.pinsRefreshed).toBeGreaterThanOrEqual(1);
    const stored = await env.db.pool.query('SELECT 1 FROM swarm_events WHERE trace_id = $1', [traceId]);
    expect(stored.rowCount).toBe(0);

    const body = await detail(traceId);
    expect(body).toMatchObject({ pinned: true, archived: true });
    const ids = (body.events as { event_id: string }[]).map((e) => e.event_id).sort();
    expect(ids).toEqual([...events, late].map((e) => e.event_id).sort());
  });
});
