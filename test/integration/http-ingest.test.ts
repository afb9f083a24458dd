import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  countRows,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { truncateStore } from '../support/db.js';
import { describeWithPostgres } from '../support/services.js';

interface IngestAnswer {
  accepted: number;
  duplicates: number;
  rejected: { index: number; reason: string; detail: string }[];
}

interface Answer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

const BUFFER_EVENTS = 100;
const MAX_BODY_BYTES = 1024 * 1024;
const FLUSH_INTERVAL_MILLIS = 5_000;

/** A valid event with a fixed id, so that tests can send it again. */
function event(n: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: `20000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    trace_id: `http-trace-${n % 3}`,
    source: 'orchestrator',
    event_type: 'task.progress',
    timestamp: new Date(Date.UTC(2026, 2, 1, 12, 0, n)).toISOString(),
    metadata: { n },
    ...overrides,
  };
}

/** `reason` in the answer starts with the reject's code (a detail may follow). */
const reasonCode = (code: string) => code;

describeWithPostgres('http ingest - POST /api/v1/events', () => {
  let env: ChronicleTestEnv;
  let chronicle: TestChronicle;

  async function post<T = IngestAnswer>(body: unknown, contentType = 'application/json'): Promise<Answer<T>> {
    const res = await fetch(`${chronicle.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as T };
  }

  async function rejects(): Promise<Record<string, unknown>[]> {
    const { rows } = await env.db.pool.query<Record<string, unknown>>(
      'SELECT origin, subject, reason, payload, payload_bytes, reject_key FROM chronicle_rejects ORDER BY id',
    );
    return rows;
  }

  beforeAll(async () => {
    env = await createChronicleTestEnv({ nats: false });
    chronicle = await env.start({
      batch: { maxBufferEvents: BUFFER_EVENTS, flushIntervalMillis: FLUSH_INTERVAL_MILLIS, lingerMillis: 20 },
      ingestMaxBodyBytes: MAX_BODY_BYTES,
    });
  });

  afterAll(async () => {
    await env?.cleanup();
  });

  beforeEach(async () => {
    await truncateStore(env.db.pool);
  });

  it('one event - 200 with its counts, and it is queryable as soon as the answer arrives', async () => {
    const answer = await post(event(1, { trace_id: 'single' }));

    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    // No waiting: the answer comes after the commit.
    const trace = await fetch(`${chronicle.url}/api/v1/traces/single`);
    expect(trace.status).toBe(200);
    expect(((await trace.json()) as { events: { event_id: string }[] }).events).toMatchObject([
      { event_id: event(1).event_id },
    ]);
  });

  it('a JSON array - a bad item in the middle is rejected with its index and the others are stored', async () => {
    const items = [event(1), event(2), { event_type: 'task.created' }, event(3), event(4)];

    const answer = await post(items);

    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      accepted: 4,
      duplicates: 0,
      rejected: [{ index: 2, reason: reasonCode('missing_trace_id'), detail: expect.any(String) as unknown }],
    });
    const { rows } = await env.db.pool.query<{ event_id: string }>(
      'SELECT event_id::text FROM swarm_events ORDER BY event_id',
    );
    expect(rows.map((r) => r.event_id)).toEqual([1, 2, 3, 4].map((n) => event(n).event_id));
  });

  it('NDJSON - a line that is not JSON is rejected with its index and the other lines are stored', async () => {
    const body = [JSON.stringify(event(1)), '{"trace_id": "half', JSON.stringify(event(2)), ''].join('\n');

    const answer = await post(body, 'application/x-ndjson');

    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      accepted: 2,
      duplicates: 0,
      rejected: [{ index: 1, reason: reasonCode('invalid_json'), detail: expect.any(String) as unknown }],
    });
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(2);
    expect(await rejects()).toEqual([
      {
        origin: 'http',
        subject: null,
        reason: 'invalid_json',
        payload: '{"trace_id": "half',
        payload_bytes: 18,
        reject_key: expect.stringMatching(/^http:/) as unknown,
      },
    ]);
  });

  it('duplicates within one request and across requests are counted and stored once', async () => {
    const first = await post([event(1), event(2), event(1), event(3), event(2)]);
    expect(first.body).toEqual({ accepted: 3, duplicates: 2, rejected: [] });

    const second = await post([event(3), event(4), event(1)]);
    expect(second.body).toEqual({ accepted: 1, duplicates: 2, rejected: [] });

    expect(await countRows(env.db.pool, 'swarm_events')).toBe(4);
    const trace = await env.db.pool.query<{ span_count: number }>(
      "SELECT span_count FROM swarm_traces WHERE trace_id = 'http-trace-1'",
    );
    expect(trace.rows).toEqual([{ span_count: 2 }]); // events 1 and 4
  });

  it('every reject reason is recorded in chronicle_rejects with origin http and the raw payload', async () => {
    await env.db.pool.query(
      "ALTER TABLE swarm_events ADD CONSTRAINT http_test_poison CHECK (trace_id <> 'poison')",
    );
    try {
      // NDJSON, so that each raw payload is exactly the line sent.
      const lines: { line: string; reason: string | null }[] = [
        { line: JSON.stringify(event(1)), reason: null },
        { line: '{"trace_id": "x', reason: 'invalid_json' },
        { line: '[1, 2]', reason: 'not_object' },
        { line: '"text"', reason: 'not_object' },
        { line: '{"event_type":"task.created"}', reason: 'missing_trace_id' },
        { line: '{"trace_id":""}', reason: 'invalid_trace_id' },
        {
          line: JSON.stringify({ trace_id: 'x'.repeat(257), event_type: 'a.b' }),
          reason: 'invalid_trace_id',
        },
        { line: '{"trace_id":"t","event_type":"a.b","event_id":12}', reason: 'invalid_event_id' },
        { line: '{"trace_id":"t","event_type":"a.b","source":false}', reason: 'invalid_source' },
        { line: '{"trace_id":"t","event_type":["a"]}', reason: 'invalid_event_type' },
        { line: '{"trace_id":"t"}', reason: 'missing_event_type' },
        {
          line: '{"trace_id":"t","event_type":"a.b","timestamp":"2026-13-01T00:00:00Z"}',
          reason: 'invalid_timestamp',
        },
        { line: '{"trace_id":"t","event_type":"a.b","metadata":[1]}', reason: 'invalid_metadata' },
        {
          line: JSON.stringify({ trace_id: 't', event_type: 'a.b', metadata: { blob: 'é'.repeat(140_000) } }),
          reason: 'metadata_too_large',
        },
        { line: '{"trace_id":"poison","event_type":"task.created"}', reason: 'write_failed' },
        { line: JSON.stringify(event(2)), reason: null },
      ];

      const answer = await post(lines.map((l) => l.line).join('\n'), 'application/x-ndjson');

      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        accepted: 2,
        duplicates: 0,
        rejected: lines.flatMap((l, index) =>
          l.reason ? [{ index, reason: reasonCode(l.reason), detail: expect.any(String) as unknown }] : [],
        ),
      });
      const rows = await rejects();
      const expected = lines.filter((l) => l.reason !== null);
      expect(rows.map((r) => r.reason).sort()).toEqual(expected.map((l) => l.reason).sort());
      for (const l of expected) {
        const row = rows.find(
          (r) => r.reason === l.reason && (l.reason === 'write_failed' || r.payload === l.line),
        );
        if (l.reason === 'metadata_too_large') {
          // Truncated to 64 KiB at a character boundary; the full size is kept.
          const truncated = rows.find((r) => r.reason === l.reason)!;
          expect(Buffer.byteLength(truncated.payload as string)).toBeLessThanOrEqual(64 * 1024);
          expect(Buffer.byteLength(truncated.payload as string)).toBeGreaterThan(64 * 1024 - 4);
          expect(l.line.startsWith(truncated.payload as string)).toBe(true);
          expect(truncated.payload_bytes).toBe(Buffer.byteLength(l.line));
          continue;
        }
        expect(row, `reject row for ${l.line.slice(0, 60)}`).toBeDefined();
        expect(row).toMatchObject({
          origin: 'http',
          subject: null,
          reject_key: expect.stringMatching(/^(http|write_failed):/) as unknown,
        });
        if (l.reason === 'write_failed') expect(row!.payload).toContain('"trace_id":"poison"');
        else expect(row!.payload_bytes).toBe(Buffer.byteLength(l.line));
      }
      expect(await countRows(env.db.pool, 'swarm_events')).toBe(2);
    } finally {
      await env.db.pool.query('ALTER TABLE swarm_events DROP CONSTRAINT http_test_poison');
    }
  });

  it('400 for a body that is not JSON, and the body is recorded in chronicle_rejects', async () => {
    const answer = await post<{ error: string }>('this is { not json', 'application/json');

    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_json');
    expect(await rejects()).toEqual([
      {
        origin: 'http',
        subject: null,
        reason: 'invalid_json',
        payload: 'this is { not json',
        payload_bytes: 18,
        reject_key: expect.stringMatching(/^http:/) as unknown,
      },
    ]);
  });

  it('413 for a body over the configured limit', async () => {
    const blob = 'x'.repeat(MAX_BODY_BYTES);
    const answer = await post<{ error: string }>(event(1, { metadata: { blob } }));

    expect(answer.status).toBe(413);
    expect(answer.body.error).toBe('payload_too_large');
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(0);
  });

  it('413 for more events than the buffer can hold', async () => {
    const items = Array.from({ length: BUFFER_EVENTS + 1 }, (_, i) => event(i));

    const answer = await post<{ error: string }>(items);

    expect(answer.status).toBe(413);
    expect(answer.body.error).toBe('too_many_events');
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(0);
  });

  it('429 with Retry-After while the buffer is full; the request holding it is answered once it commits', async () => {
    // A lock on swarm_events holds the first request's flush, so its events fill most of the buffer.
    const locker = await env.db.pool.connect();
    let first: Promise<Answer> | undefined;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE swarm_events IN ACCESS EXCLUSIVE MODE');
      first = post(Array.from({ length: 80 }, (_, i) => event(i)));
      await waitFor(() => chronicle.chronicle.batcher.state().heldEvents === 80, 5_000, '80 events held');

      const refused = await post<{ error: string }>(Array.from({ length: 30 }, (_, i) => event(100 + i)));

      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(refused.body.error).toBe('buffer_full');
    } finally {
      await locker.query('COMMIT');
      locker.release();
    }
    expect(await first).toMatchObject({ status: 200, body: { accepted: 80, duplicates: 0, rejected: [] } });
    const retried = await post(Array.from({ length: 30 }, (_, i) => event(100 + i)));
    expect(retried).toMatchObject({ status: 200, body: { accepted: 30, duplicates: 0, rejected: [] } });
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(110);
  });

  it('a single event is answered after the linger, well before the flush interval', async () => {
    const started = performance.now();
    const answer = await post(event(1));
    const elapsedMillis = performance.now() - started;

    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(elapsedMillis).toBeLessThan(1_000);
  });
});
