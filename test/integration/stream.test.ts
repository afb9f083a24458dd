/**
 * GET /api/v1/stream on real Postgres: events as they commit (never before), resume without gaps on one
 * replica and across two, the filters equal to the events list's, position messages as resume points,
 * a slow client cut off while ingest goes on, the limit on streams, and shutdown.
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Chronicle, createChronicle } from '../../src/chronicle.js';
import type { EventStreamOptions } from '../../src/api/stream/event-stream.js';
import type { Config, StreamConfig } from '../../src/config.js';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  counterValue,
  createChronicleTestEnv,
  sleep,
  waitFor,
} from '../support/chronicle.js';
import { createTestDatabase } from '../support/db.js';
import { describeWithPostgres } from '../support/services.js';

type Json = Record<string, unknown>;

/** One server-sent message. */
interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/** A stream read with node:http, so that a test can stop reading (pause) like a slow client. */
interface OpenStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Messages so far (event, overflow), in order. */
  messages: SseMessage[];
  /** The position messages so far, in order. */
  positions: SseMessage[];
  /** Every message so far (event, overflow, position), in order. */
  all: SseMessage[];
  /** `retry:` values and comments (`: keep-alive`) seen. */
  retries: string[];
  comments: string[];
  /** The body of a non-200 answer, parsed. */
  body: Json | undefined;
  /** Resolves when the server ended the response or the socket closed. */
  ended: Promise<void>;
  pause(): void;
  resume(): void;
  close(): void;
}

function openStream(url: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let text = '';
      let settleEnded!: () => void;
      const ended = new Promise<void>((r) => (settleEnded = r));
      const stream: OpenStream = {
        status: res.statusCode!,
        headers: res.headers,
        messages: [],
        positions: [],
        all: [],
        retries: [],
        comments: [],
        body: undefined,
        ended,
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => req.destroy(),
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (stream.status !== 200) return;
        let end: number;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const message: SseMessage = { id: undefined, event: 'message', data: '' };
          let isMessage = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) stream.comments.push(line);
            const colon = line.indexOf(':');
            const field = line.slice(0, colon);
            const value = line.slice(colon + 1).replace(/^ /, '');
            if (field === 'retry') stream.retries.push(value);
            if (field === 'id') message.id = value;
            if (field === 'event') message.event = value;
            if (field === 'data') {
              message.data = value;
              isMessage = true;
            }
          }
          if (!isMessage) continue;
          stream.all.push(message);
          if (message.event === 'position') stream.positions.push(message);
          else stream.messages.push(message);
        }
      });
      res.on('end', () => {
        if (stream.status !== 200) stream.body = JSON.parse(text) as Json;
        settleEnded();
      });
      res.on('close', settleEnded);
      res.on('error', settleEnded);
      if (stream.status === 200) resolve(stream);
      else res.once('end', () => resolve(stream));
    });
    req.on('error', reject);
  });
}

/** The events (parsed) among a stream's messages. */
const eventsOf = (s: OpenStream): Json[] =>
  s.messages.filter((m) => m.event === 'event').map((m) => JSON.parse(m.data) as Json);

function event(traceId: string, eventType: string, metadata: Json = {}, overrides: Json = {}): Json {
  return {
    event_id: randomUUID(),
    trace_id: traceId,
    source: 'dispatcher',
    event_type: eventType,
    timestamp: new Date().toISOString(),
    metadata,
    ...overrides,
  };
}

async function post(base: string, events: Json[]): Promise<void> {
  const res = await fetch(`${base}/api/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(events),
  });
  const body = (await res.json()) as { accepted: number };
  if (res.status !== 200 || body.accepted !== events.length) {
    throw new Error(`ingest answered ${res.status} ${JSON.stringify(body)}`);
  }
}

async function getJson(url: string): Promise<{ status: number; body: Json }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Json };
}

/** Every event the list gives for a query, following the cursor. */
async function listAll(base: string, query: string): Promise<Json[]> {
  const out: Json[] = [];
  let cursor: string | null = null;
  do {
    const url = `${base}/api/v1/events?${query}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`;
    const { status, body } = await getJson(url);
    expect(status, JSON.stringify(body)).toBe(200);
    out.push(...(body.items as Json[]));
    cursor = body.next_cursor as string | null;
  } while (cursor !== null);
  return out;
}

/** A stream id (`<txid>-<seq>`) as a number that sorts in stream order. */
const positionOf = (id: string): bigint => {
  const [txid, seq] = id.split('-');
  return (BigInt(txid!) << 64n) + BigInt(seq!);
};

/** Stream ids of the events of a trace prefix in stream order, as the store has them. */
async function storeOrder(env: ChronicleTestEnv, prefix: string): Promise<string[]> {
  const { rows } = await env.db.pool.query<{ id: string }>(
    `SELECT txid::text || '-' || seq::text AS id FROM swarm_events
     WHERE starts_with(trace_id, $1) ORDER BY txid, seq`,
    [prefix],
  );
  return rows.map((r) => r.id);
}

describeWithPostgres('stream - GET /api/v1/stream', () => {
  let env: ChronicleTestEnv;
  let a: TestChronicle;
  let b: TestChronicle;
  // Instances started with their own stream options (test/support starts them with the defaults).
  const tuned: Chronicle[] = [];

  /** A replica on the test database with these stream options (and the stream's own, not in the config). */
  async function startTuned(
    stream: StreamConfig & Pick<EventStreamOptions, 'stallMillis' | 'readTimeoutMillis'>,
  ): Promise<Chronicle> {
    const config: Config & { databaseUrl: string } = { ...a.config, databaseUrl: env.db.url, stream };
    const chronicle = createChronicle(config, {
      logger: silentLogger(),
      metrics: createMetrics({ defaultMetrics: false }),
    });
    tuned.push(chronicle);
    await chronicle.start();
    await waitFor(async () => (await chronicle.health()).ready, 20_000, 'the tuned replica to be ready');
    return chronicle;
  }

  beforeAll(async () => {
    env = await createChronicleTestEnv({ nats: false });
    a = await env.start();
    b = await env.start();
  });

  afterAll(async () => {
    await Promise.allSettled(tuned.map((c) => c.shutdown(AbortSignal.timeout(5_000))));
    await env?.cleanup();
  });

  it('stream - an event posted after connecting arrives as /api/v1/events lists it, with its position as id', async () => {
    const prefix = `s1-${randomUUID()}-`;
    const stream = await openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}`);
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(stream.headers['cache-control']).toBe('no-cache');
    expect(stream.headers['x-accel-buffering']).toBe('no');
    const head = await fetch(`${a.url}/api/v1/stream`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-type')]).toEqual([
      200,
      'text/event-stream; charset=utf-8',
    ]);
    const sent = event(`${prefix}t`, 'task.completed', { agent: 'agent-a', tokens: 12 });
    await post(a.url, [sent]);
    await waitFor(() => stream.messages.length === 1, 5_000, 'the event on the stream');
    expect(stream.retries).toEqual(['1000']);
    const [listed] = await listAll(a.url, `trace_id=${prefix}t`);
    expect(stream.messages[0]!.event).toBe('event');
    expect(JSON.parse(stream.messages[0]!.data)).toEqual(listed);
    expect(listed).toMatchObject({
      event_id: sent.event_id,
      metadata: { agent: 'agent-a', tokens: 12 },
      agent: 'agent-a',
      is_error: false,
    });
    expect(stream.messages[0]!.id).toBe(`${String(listed!.txid)}-${String(listed!.seq)}`);
    const requests = { route: '/api/v1/stream', method: 'GET', status: '200' };
    const counted = await counterValue(a.chronicle.metrics.httpRequests, requests);
    stream.close();
    await waitFor(async () => (await a.chronicle.metrics.streamClients.get()).values[0]?.value === 0);
    // A stream the client closed is a request answered, counted like any other.
    await waitFor(
      async () => (await counterValue(a.chronicle.metrics.httpRequests, requests)) === counted + 1,
    );
  });

  it('stream - an event is sent only once its transaction commits, and a later commit waits behind an open earlier one', async () => {
    const prefix = `s2-${randomUUID()}-`;
    // A trigger holds the writer's transaction open, after its insert, while the test holds a lock.
    await env.db.pool.query(`
      CREATE FUNCTION stream_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_advisory_xact_lock_shared(7007); RETURN NULL; END $$;
      CREATE TRIGGER stream_test_hold AFTER INSERT ON swarm_events FOR EACH ROW
        WHEN (NEW.event_type = 'test.hold') EXECUTE FUNCTION stream_test_hold();`);
    const locker = await env.db.pool.connect();
    try {
      await locker.query('SELECT pg_advisory_lock(7007)');
      const stream = await openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}`);
      const held = event(`${prefix}held`, 'test.hold');
      const posting = post(a.url, [held]);
      // The held transaction has inserted its row and waits on the lock.
      await waitFor(async () => {
        const { rows } = await env.db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 7007 AND NOT granted`,
        );
        return rows[0]!.n === 1;
      });
      // A later transaction commits meanwhile (its answer comes after its commit).
      const later = event(`${prefix}later`, 'task.created');
      await post(a.url, [later]);
      expect((await listAll(a.url, `trace_prefix=${prefix}`)).map((e) => e.event_id)).toEqual([
        later.event_id,
      ]);
      // Several polls: neither is sent, the open one because it did not commit, the later one because
      // an earlier transaction is still open (it would be a gap otherwise).
      await sleep(1_000);
      expect(stream.messages).toEqual([]);
      expect((await a.chronicle.metrics.streamHorizonAgeSeconds.get()).values[0]!.value).toBeGreaterThan(0.5);
      await locker.query('SELECT pg_advisory_unlock(7007)');
      await posting;
      await waitFor(() => stream.messages.length === 2, 5_000, 'both events on the stream');
      // Stream order is transaction order: the held one started first.
      expect(eventsOf(stream).map((e) => e.event_id)).toEqual([held.event_id, later.event_id]);
      expect(stream.messages.map((m) => m.id)).toEqual(await storeOrder(env, prefix));
      stream.close();
    } finally {
      await locker.query('SELECT pg_advisory_unlock_all()');
      locker.release();
      await env.db.pool.query(
        'DROP TRIGGER stream_test_hold ON swarm_events; DROP FUNCTION stream_test_hold()',
      );
    }
  });

  it('stream - resume with Last-Event-ID after many concurrent flushes: exactly the missed events, in order, once', async () => {
    const prefix = `s3-${randomUUID()}-`;
    const first = await openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}`);
    await post(
      a.url,
      Array.from({ length: 10 }, (_, i) => event(`${prefix}${i % 3}`, 'task.progress', { i })),
    );
    await waitFor(
      () => first.messages.length === 10,
      5_000,
      `the first events (${first.messages.length} ${JSON.stringify(first.messages.map((m) => m.id))})`,
    );
    const lastSeen = first.messages.at(-1)!.id!;
    first.close();

    // While disconnected: 24 requests of 50 events, 6 at a time (several flushes in flight).
    const batches = Array.from({ length: 24 }, (_, r) =>
      Array.from({ length: 50 }, (_, i) => event(`${prefix}${(r * 50 + i) % 17}`, 'task.progress', { r, i })),
    );
    for (let i = 0; i < batches.length; i += 6) {
      await Promise.all(batches.slice(i, i + 6).map((batch) => post(a.url, batch)));
    }
    const order = await storeOrder(env, prefix);
    expect(order).toHaveLength(1210);
    expect(order.slice(0, 10)).toEqual(first.messages.map((m) => m.id));

    const resumed = await openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}`, {
      'Last-Event-ID': lastSeen,
    });
    await waitFor(() => resumed.messages.length >= 1200, 10_000, 'the missed events');
    // Live events follow the caught-up ones.
    const live = event(`${prefix}live`, 'task.progress');
    await post(a.url, [live]);
    await waitFor(() => resumed.messages.length >= 1201, 5_000, 'the live event');
    await sleep(300);
    const ids = resumed.messages.map((m) => m.id);
    expect(ids).toEqual((await storeOrder(env, prefix)).slice(10));
    expect(new Set(eventsOf(resumed).map((e) => e.event_id)).size).toBe(1201);
    resumed.close();

    // ?last_event_id= does the same (EventSource cannot set the header on its first connection).
    const byQuery = await openStream(
      `${a.url}/api/v1/stream?trace_prefix=${prefix}&last_event_id=${order[1199]}`,
    );
    await waitFor(() => byQuery.messages.length === 11, 5_000, 'the last events');
    expect(byQuery.messages.map((m) => m.id)).toEqual((await storeOrder(env, prefix)).slice(1200));
    byQuery.close();
  });

  it('stream - two replicas: a stream on one sees the events committed by both, once each, and resumes on the other', async () => {
    const prefix = `s4-${randomUUID()}-`;
    const onA = await openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}`);
    const sent: Json[][] = [];
    for (let round = 0; round < 5; round++) {
      const toA = Array.from({ length: 40 }, (_, i) =>
        event(`${prefix}a${i % 7}`, 'task.progress', { round }),
      );
      const toB = Array.from({ length: 40 }, (_, i) =>
        event(`${prefix}b${i % 7}`, 'task.progress', { round }),
      );
      sent.push(toA, toB);
      await Promise.all([post(a.url, toA.slice(0, 20)), post(b.url, toB.slice(0, 20))]);
      await Promise.all([post(b.url, toB.slice(20)), post(a.url, toA.slice(20))]);
    }
    await waitFor(() => onA.messages.length >= 400, 10_000, 'every event on the stream of replica A');
    await sleep(500);
    const seen = eventsOf(onA).map((e) => e.event_id);
    expect(seen).toHaveLength(400);
    expect(new Set(seen)).toEqual(new Set(sent.flat().map((e) => e.event_id)));
    const order = await storeOrder(env, prefix);
    expect(onA.messages.map((m) => m.id)).toEqual(order);

    // Resume on replica B from the 150th event: the rest, exactly.
    onA.close();
    const onB = await openStream(`${b.url}/api/v1/stream?trace_prefix=${prefix}`, {
      'Last-Event-ID': order[149]!,
    });
    await waitFor(() => onB.messages.length >= 250, 10_000, 'the rest on replica B');
    await sleep(300);
    expect(onB.messages.map((m) => m.id)).toEqual(order.slice(150));
    onB.close();
  });

  it('stream - the filters agent, errors, event_type, trace_id, source, since and until give what /api/v1/events lists, live and resumed', async () => {
    const prefix = `s5-${randomUUID()}-`;
    const t = (n: number) => `${prefix}${n}`;
    const base = Date.now();
    const at = (s: number) => ({ timestamp: new Date(base + s * 1000).toISOString() });
    const events = [
      event(t(1), 'task.created', {}, at(0)),
      event(t(1), 'task.assigned', { agent: 'agent-a' }, at(1)),
      event(t(1), 'task.started', { agent: 'agent-a' }, { ...at(2), source: 'agent-a' }),
      event(t(1), 'task.failed', { agent: 'agent-a', error: 'boom' }, { ...at(3), source: 'agent-a' }),
      event(t(2), 'task.assigned', { agent_id: 'agent-b' }, at(4)),
      event(t(2), 'task.timeout', { agent: 'agent-b', reason: 'not finished' }, at(5)),
      event(t(2), 'task.completed', { agent: '', agent_id: 'agent-b', error: '' }, at(6)),
      event(t(3), 'dlq.entry', { dlq_id: 'd1', reason: 'no agent' }, at(7)),
      event(
        t(4),
        'system.error',
        { component: 'agent-a', error: 'disk full' },
        { ...at(8), source: 'agent-a' },
      ),
      event(t(4), 'system.notice', { error: null, note: 'fine' }, at(9)),
      event(t(4), 'system.notice', { error: false }, at(10)),
      event(t(5), 'otel.span', { agent: 'agent-a', status: { code: 2, message: 'bad' } }, at(11)),
      event(t(5), 'otel.span', { agent: 'agent-a', status: { code: 1 } }, at(12)),
      event(t(6), 'agent.heartbeat', {}, { ...at(13), source: 'agent-b' }),
      event(t(6), 'agent.heartbeat', { agent: 'agent-a' }, { ...at(14), source: 'collector' }),
      event(t(7), 'task.progress', { agent: 'agent-a', error: { code: 7 } }, at(15)),
    ];
    const queries = [
      'agent=agent-a',
      'agent=agent-b',
      'errors=true',
      'errors=false',
      'agent=agent-a&errors=true',
      'event_type=task.assigned',
      `trace_id=${t(2)}`,
      'source=agent-a',
      `since=${encodeURIComponent(new Date(base + 5000).toISOString())}&until=${encodeURIComponent(new Date(base + 12000).toISOString())}`,
      'agent=nobody',
    ];
    // A marker (of another trace prefix) committed before the events: the resumed streams start after
    // it, so they read the events from the store.
    const marker = await openStream(`${a.url}/api/v1/stream?trace_prefix=m-${prefix}`);
    await post(a.url, [event(`m-${prefix}`, 'test.marker')]);
    await waitFor(() => marker.messages.length === 1, 5_000, 'the marker');
    const before = marker.messages[0]!.id!;
    marker.close();

    const live = await Promise.all(
      queries.map((q) => openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}&${q}`)),
    );
    // Several requests, so the events come in several transactions.
    for (let i = 0; i < events.length; i += 4) await post(a.url, events.slice(i, i + 4));
    const expected = await Promise.all(queries.map((q) => listAll(a.url, `trace_prefix=${prefix}&${q}`)));
    // Spot checks of the meaning itself.
    const types = (list: Json[]) =>
      list.map((e) => `${String(e.trace_id).slice(prefix.length)}:${String(e.event_type)}`);
    expect(types(expected[2]!)).toEqual([
      '1:task.failed',
      '2:task.timeout',
      '3:dlq.entry',
      '4:system.error',
      '5:otel.span',
      '7:task.progress',
    ]);
    expect(types(expected[1]!)).toEqual([
      '2:task.assigned',
      '2:task.timeout',
      '2:task.completed',
      '6:agent.heartbeat',
    ]);
    expect(expected[9]).toEqual([]);

    const resumed = await Promise.all(
      queries.map((q) =>
        openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}&${q}`, { 'Last-Event-ID': before }),
      ),
    );
    // The list's order, (timestamp, event_id); every timestamp here is distinct.
    const byTime = (list: Json[]) =>
      [...list].sort((x, y) => (String(x.timestamp) < String(y.timestamp) ? -1 : 1));
    for (const i of queries.keys()) {
      for (const stream of [live[i]!, resumed[i]!]) {
        // On a timeout the comparison below shows the difference.
        await waitFor(() => stream.messages.length >= expected[i]!.length, 5_000).catch(() => undefined);
      }
    }
    await sleep(600);
    for (const [i, q] of queries.entries()) {
      expect(byTime(eventsOf(live[i]!)), `live ${q}`).toEqual(expected[i]);
      expect(byTime(eventsOf(resumed[i]!)), `resumed ${q}`).toEqual(expected[i]);
    }
    for (const s of [...live, ...resumed]) s.close();
  });

  it('stream - position: a stream whose filter passes little gets where it is on keep-alive; resuming from there gives only what was committed after, nothing missed', async () => {
    const replica = await startTuned({
      pollMillis: 50,
      clientQueueEvents: 100,
      maxClients: 10,
      keepAliveMillis: 200,
    });
    const base = replica.url();
    const prefix = `s7-${randomUUID()}-`;
    const failure = (n: string) => event(`${prefix}${n}`, 'system.error', { error: `boom ${n}` });
    const stream = await openStream(`${base}/api/v1/stream?trace_prefix=${prefix}&errors=true`);
    await waitFor(() => stream.positions.length === 1, 5_000, 'the position as the stream goes live');
    expect(stream.all[0]!.event).toBe('position');

    // One error event, then traffic the filter skips.
    const first = failure('first');
    await post(base, [first]);
    for (let i = 0; i < 4; i++) {
      await post(
        base,
        Array.from({ length: 10 }, (_, j) => event(`${prefix}plain`, 'task.progress', { i, j })),
      );
    }
    const order = await storeOrder(env, prefix);
    expect(order).toHaveLength(41);
    const lastSkipped = positionOf(order.at(-1)!);
    // A keep-alive after that traffic: a position at or past the last event skipped.
    const position = await waitFor(
      () => stream.positions.find((m) => positionOf(m.id!) >= lastSkipped),
      5_000,
      'a position past the skipped events',
    );
    expect(JSON.parse(position.data)).toEqual({ last_event_id: position.id });
    expect(eventsOf(stream).map((e) => e.event_id)).toEqual([first.event_id]);
    // In stream order: the go-live position, the error event, positions after it, never going back.
    const ids = stream.all.map((m) => positionOf(m.id!));
    expect(ids).toEqual([...ids].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
    expect(stream.messages.map((m) => m.id)).toEqual([order[0]]);
    const resumeAt = stream.all.at(-1)!.id!;
    stream.close();

    // While away: an error event among others.
    const missed = failure('while away');
    await post(base, [
      event(`${prefix}plain`, 'task.progress'),
      missed,
      event(`${prefix}plain`, 'task.progress'),
    ]);
    const resumed = await openStream(`${base}/api/v1/stream?trace_prefix=${prefix}&errors=true`, {
      'Last-Event-ID': resumeAt,
    });
    await waitFor(() => resumed.messages.length >= 1, 5_000, 'the error event committed while away');
    const live = failure('live');
    await post(base, [live]);
    await waitFor(() => resumed.messages.length >= 2, 5_000, 'the live error event');
    await sleep(300);
    expect(eventsOf(resumed).map((e) => e.event_id)).toEqual([missed.event_id, live.event_id]);
    const idOf = new Map(
      (await listAll(base, `trace_prefix=${prefix}&errors=true`)).map((e) => [
        e.event_id,
        `${String(e.txid)}-${String(e.seq)}`,
      ]),
    );
    expect(resumed.messages.map((m) => m.id)).toEqual([idOf.get(missed.event_id), idOf.get(live.event_id)]);
    resumed.close();
  });

  it('stream - position: a stream without a resume point gets one as it goes live, before any event; resuming from it misses nothing committed after it', async () => {
    const prefix = `s8-${randomUUID()}-`;
    // Traffic all along, errors among it: some commits before the stream starts, some during, some after.
    let posting = true;
    const postedAfter: string[] = [];
    let positionSeen = false;
    const traffic = (async () => {
      for (let i = 0; posting; i++) {
        const batch = [
          event(`${prefix}plain`, 'task.progress', { i }),
          event(`${prefix}err`, 'system.error', { error: `boom ${i}` }),
        ];
        // Sent once the client had its position: each must come on the resumed stream.
        const after = positionSeen;
        await post(a.url, batch);
        if (after) postedAfter.push(batch[1]!.event_id as string);
      }
    })();
    let resumeAt: string;
    let seenFirst: string[];
    try {
      await sleep(200);
      const stream = await openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}&errors=true`);
      await waitFor(() => stream.positions.length === 1, 5_000, 'the position as the stream goes live');
      positionSeen = true;
      // The first message: no event before it.
      expect(stream.all[0]!.event).toBe('position');
      resumeAt = stream.positions[0]!.id!;
      expect(JSON.parse(stream.positions[0]!.data)).toEqual({ last_event_id: resumeAt });
      await sleep(300);
      stream.close();
      seenFirst = stream.messages.map((m) => m.id!);
      await waitFor(() => postedAfter.length >= 5, 10_000, 'errors posted after the position');
    } finally {
      posting = false;
      await traffic;
    }
    // What the first stream got is after its position.
    expect(seenFirst.filter((id) => positionOf(id) <= positionOf(resumeAt))).toEqual([]);

    // From the position: every error event after it, in stream order, once; among them every one posted
    // after the client had the position.
    const expected = (await listAll(a.url, `trace_prefix=${prefix}&errors=true`))
      .map((e) => ({ id: `${String(e.txid)}-${String(e.seq)}`, eventId: e.event_id as string }))
      .filter((e) => positionOf(e.id) > positionOf(resumeAt))
      .sort((x, y) => (positionOf(x.id) < positionOf(y.id) ? -1 : 1));
    const resumed = await openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}&errors=true`, {
      'Last-Event-ID': resumeAt,
    });
    await waitFor(() => resumed.messages.length >= expected.length, 10_000, 'the events after the position');
    await sleep(300);
    expect(resumed.messages.map((m) => m.id)).toEqual(expected.map((e) => e.id));
    const resumedIds = new Set(eventsOf(resumed).map((e) => e.event_id));
    expect(postedAfter.filter((id) => !resumedIds.has(id))).toEqual([]);
    // The first stream's events are the start of the resumed one's.
    expect(resumed.messages.slice(0, seenFirst.length).map((m) => m.id)).toEqual(seenFirst);
    resumed.close();
  });

  it('stream - a client that stops reading is disconnected with an overflow event while ingest goes on at full speed', async () => {
    const queueEvents = 50;
    const replica = await startTuned({
      pollMillis: 50,
      clientQueueEvents: queueEvents,
      maxClients: 10,
      keepAliveMillis: 15_000,
    });
    const base = replica.url();
    // Large events, so that the sockets' buffers fill after a few hundred.
    const padding = 'x'.repeat(16 * 1024);
    const requests = (prefix: string) =>
      Array.from({ length: 8 }, (_, r) =>
        Array.from({ length: 100 }, (_, i) =>
          event(`${prefix}${i % 10}`, 'task.progress', { r, i, padding }),
        ),
      );
    const ingest = async (prefix: string): Promise<number> => {
      const started = performance.now();
      for (const batch of requests(prefix)) await post(base, batch);
      return performance.now() - started;
    };

    await ingest(`s6-warm-up-${randomUUID()}-`);
    const baselineMillis = await ingest(`s6-alone-${randomUUID()}-`);

    const prefix = `s6-slow-${randomUUID()}-`;
    const slow = await openStream(`${base}/api/v1/stream?trace_prefix=${prefix}`);
    slow.pause();
    let maxQueued = 0;
    const sampler = setInterval(() => {
      void replica.metrics.streamQueuedEvents.get().then((m) => {
        maxQueued = Math.max(maxQueued, m.values[0]?.value ?? 0);
      });
    }, 5);
    let withSlowMillis: number;
    try {
      withSlowMillis = await ingest(prefix);
      await waitFor(
        async () => (await counterValue(replica.metrics.streamSlowDisconnects)) === 1,
        10_000,
        'the slow client to be disconnected',
      );
    } finally {
      clearInterval(sampler);
    }
    // Ingest was not held back by the client (every event stored, in about the time it takes alone).
    const order = await storeOrder(env, prefix);
    expect(order).toHaveLength(800);
    expect(withSlowMillis).toBeLessThan(Math.max(3 * baselineMillis, baselineMillis + 3_000));
    expect(maxQueued).toBeLessThanOrEqual(queueEvents);
    expect((await replica.metrics.streamQueuedEvents.get()).values[0]!.value).toBe(0);

    // Reading again: what was written before the overflow, then the overflow event, then the end.
    slow.resume();
    await slow.ended;
    const last = slow.messages.at(-1)!;
    expect(last.event).toBe('overflow');
    const overflow = JSON.parse(last.data) as Json;
    const received = slow.messages.slice(0, -1);
    expect(received.length).toBeGreaterThan(0);
    expect(received.length).toBeLessThan(800);
    if (process.env.STREAM_TEST_REPORT) {
      console.log({ baselineMillis, withSlowMillis, maxQueued, received: received.length });
    }
    expect(overflow).toMatchObject({ reason: 'slow_client', last_event_id: received.at(-1)!.id });
    expect(typeof overflow.message).toBe('string');
    expect(last.id).toBe(received.at(-1)!.id);
    expect(received.map((m) => m.id)).toEqual(order.slice(0, received.length));

    // It resumes from there without a gap.
    const again = await openStream(`${base}/api/v1/stream?trace_prefix=${prefix}`, {
      'Last-Event-ID': String(overflow.last_event_id),
    });
    await waitFor(() => again.messages.length >= 800 - received.length, 10_000).catch(() => undefined);
    expect(again.messages.map((m) => m.id)).toEqual(order.slice(received.length));
    again.close();
  });

  it('stream - over the limit of streams a request gets 503 too_many_streams with Retry-After; a freed place is taken again', async () => {
    const replica = await startTuned({
      pollMillis: 100,
      clientQueueEvents: 100,
      maxClients: 2,
      keepAliveMillis: 200,
    });
    const url = `${replica.url()}/api/v1/stream`;
    const one = await openStream(url);
    const two = await openStream(url);
    const three = await openStream(url);
    expect(three.status).toBe(503);
    // HEAD answers as GET would.
    const head = await fetch(url, { method: 'HEAD' });
    expect([head.status, head.headers.get('retry-after')]).toEqual([503, '5']);
    expect(three.headers['retry-after']).toBe('5');
    expect(three.body).toEqual({
      error: 'too_many_streams',
      message: expect.stringContaining('at most 2 streams') as unknown,
    });
    expect(await counterValue(replica.metrics.streamRefused, { reason: 'too_many_streams' })).toBe(2);
    // Keep-alives while nothing happens: the comment, or a position message when the client's cursor
    // moved (any transaction on the cluster moves the horizon), after the one sent when it went live.
    await waitFor(
      () => one.comments.includes(': keep-alive') || one.positions.length > 1,
      3_000,
      'a keep-alive',
    );
    one.close();
    await waitFor(async () => (await replica.metrics.streamClients.get()).values[0]?.value === 1);
    const four = await openStream(url);
    expect(four.status).toBe(200);
    two.close();
    four.close();
  });

  it('stream - a malformed Last-Event-ID, last_event_id or filter is a 400 naming the parameter', async () => {
    const bad = async (query: string, headers: Record<string, string> = {}) => {
      const s = await openStream(`${a.url}/api/v1/stream${query}`, headers);
      return { status: s.status, body: s.body };
    };
    for (const id of [
      'abc',
      '12',
      '1-2-3',
      '-1-2',
      '01-2',
      '18446744073709551616-1',
      '1-9223372036854775808',
    ]) {
      expect(await bad('', { 'Last-Event-ID': id }), id).toEqual({
        status: 400,
        body: expect.objectContaining({ error: 'bad_request', parameter: 'last_event_id' }) as unknown,
      });
      expect(await bad(`?last_event_id=${encodeURIComponent(id)}`), id).toEqual({
        status: 400,
        body: expect.objectContaining({ error: 'bad_request', parameter: 'last_event_id' }) as unknown,
      });
    }
    expect(await bad('?errors=yes')).toEqual({
      status: 400,
      body: expect.objectContaining({ parameter: 'errors' }) as unknown,
    });
    expect(await bad('?limit=5')).toEqual({
      status: 400,
      body: expect.objectContaining({ parameter: 'limit' }) as unknown,
    });
    expect(await getJson(`${a.url}/api/v1/events?errors=1`)).toMatchObject({
      status: 400,
      body: { parameter: 'errors' },
    });
    // The largest valid position is accepted (nothing is after it yet).
    const far = await openStream(`${a.url}/api/v1/stream`, {
      'Last-Event-ID': '18446744073709551615-9223372036854775807',
    });
    expect(far.status).toBe(200);
    far.close();
  });

  it('stream - a client that never reads while catching up from 0-0 is disconnected after the stall deadline, and its place is freed', async () => {
    const replica = await startTuned({
      pollMillis: 50,
      clientQueueEvents: 50,
      maxClients: 10,
      keepAliveMillis: 15_000,
      stallMillis: 1_000,
    });
    const base = replica.url();
    const prefix = `s-stall-${randomUUID()}-`;
    // Enough history (16 KiB events) that the sockets' buffers fill long before it is all written.
    const padding = 'x'.repeat(16 * 1024);
    for (let r = 0; r < 8; r++) {
      await post(
        base,
        Array.from({ length: 100 }, (_, i) =>
          event(`${prefix}${i % 10}`, 'task.progress', { r, i, padding }),
        ),
      );
    }
    const stalled = await openStream(`${base}/api/v1/stream?trace_prefix=${prefix}&last_event_id=0-0`);
    stalled.pause();
    expect(stalled.status).toBe(200);
    await waitFor(async () => (await replica.metrics.streamClients.get()).values[0]?.value === 1);
    // No event comes meanwhile: only the stall deadline ends it.
    await waitFor(
      async () => (await counterValue(replica.metrics.streamSlowDisconnects)) === 1,
      10_000,
      'the stalled client to be disconnected',
    );
    // Its socket is closed once the linger passes (10 s): the place is free again.
    await waitFor(
      async () => (await replica.metrics.streamClients.get()).values[0]?.value === 0,
      15_000,
      'the stalled client to be released',
    );
    // (The client, not reading, does not see its socket close.)
    stalled.close();
  });

  it('stream - a resume point ahead of the store starts from now: a position message resets the id, and what is committed next is sent', async () => {
    const prefix = `s-ahead-${randomUUID()}-`;
    const far = await openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}`, {
      'Last-Event-ID': '18446744073709551615-9223372036854775807',
    });
    expect(far.status).toBe(200);
    await waitFor(() => far.positions.length === 1, 5_000, 'the position message');
    const reset = far.positions[0]!.id!;
    expect(positionOf(reset)).toBeLessThan(positionOf('18446744073709551615-0'));
    const typo = await openStream(`${a.url}/api/v1/stream?trace_prefix=${prefix}`, {
      // A txid the cluster has not reached yet (one more digit than the id it was copied from).
      'Last-Event-ID': `${reset.split('-')[0]!}0-1`,
    });
    await waitFor(() => typo.positions.length === 1, 5_000, 'the position message');
    await post(a.url, [event(`${prefix}t`, 'task.started')]);
    const [stored] = await storeOrder(env, prefix);
    for (const s of [far, typo]) {
      await waitFor(() => s.messages.length === 1, 5_000, 'the event on the stream');
      expect(s.messages[0]!.id).toBe(stored);
      s.close();
    }
  });

  it('stream - a database that hangs: the first stream of an idle replica gets 503 with Retry-After after the read timeout; shutdown ends the streams without waiting for the stuck read', async () => {
    const replica = await startTuned({
      pollMillis: 50,
      clientQueueEvents: 100,
      maxClients: 10,
      keepAliveMillis: 15_000,
      readTimeoutMillis: 1_000,
    });
    const url = `${replica.url()}/api/v1/stream`;
    const locker = await env.db.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE swarm_events IN ACCESS EXCLUSIVE MODE');
      const started = performance.now();
      const refused = await openStream(url);
      expect(performance.now() - started).toBeLessThan(5_000);
      expect([refused.status, refused.headers['retry-after'], refused.body?.error]).toEqual([
        503,
        '1',
        'unavailable',
      ]);
      await locker.query('ROLLBACK');

      // A stream open (a request that came while the timed-out read was failing got 503 too), then the
      // database hangs again: the feed's read is stuck when the shutdown comes.
      let open = await openStream(url);
      for (let i = 0; open.status !== 200 && i < 10; i++) {
        await sleep(200);
        open = await openStream(url);
      }
      expect(open.status).toBe(200);
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE swarm_events IN ACCESS EXCLUSIVE MODE');
      await sleep(200);
      const stopping = performance.now();
      const shutdown = replica.shutdown(AbortSignal.timeout(20_000));
      await open.ended;
      expect(performance.now() - stopping).toBeLessThan(1_000);
      await locker.query('ROLLBACK');
      await shutdown;
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
    }
  });

  it('stream - shutdown ends open streams at once and does not wait for them', async () => {
    const replica = await startTuned({
      pollMillis: 100,
      clientQueueEvents: 100,
      maxClients: 10,
      keepAliveMillis: 15_000,
    });
    const streams = await Promise.all([1, 2, 3].map(() => openStream(`${replica.url()}/api/v1/stream`)));
    const started = performance.now();
    await replica.shutdown(AbortSignal.timeout(10_000));
    expect(performance.now() - started).toBeLessThan(3_000);
    await Promise.all(streams.map((s) => s.ended));
  });
});

describeWithPostgres('stream - migration 0007', () => {
  it("0007 adds the positions without rewriting swarm_events: old rows at 0-0, the writer's rows at their transaction", async () => {
    const db = await createTestDatabase({ migrate: false });
    const before = await mkdtemp(join(tmpdir(), 'chronicle-0006-'));
    try {
      for (const file of (await readdir(MIGRATIONS_DIR)).filter((f) => /^000[1-6]_.*\.sql$/.test(f))) {
        await copyFile(join(MIGRATIONS_DIR, file), join(before, file));
      }
      await migrate(db.pool, silentLogger(), `${before}/`);
      const writer = createEventWriter({ pool: db.pool, logger: silentLogger() });
      const write = (traceId: string) =>
        writer.write([
          {
            kind: 'event',
            input: { origin: 'http', subject: null, key: null },
            event: {
              event_id: randomUUID(),
              trace_id: traceId,
              source: 'test',
              event_type: 'task.created',
              timestamp: new Date().toISOString(),
              metadata: {},
            },
          },
        ]);
      // A row stored before 0007, as the writer of that schema stored it (today's writer needs today's
      // schema: its trace recompute sets columns added since).
      await db.pool.query(
        `INSERT INTO swarm_events (event_id, trace_id, source, event_type, "timestamp", metadata)
         VALUES ($1, 'old', 'test', 'task.created', now(), '{}')`,
        [randomUUID()],
      );
      const fileNode = async () =>
        (await db.pool.query<{ n: string }>(`SELECT pg_relation_filenode('swarm_events')::text AS n`))
          .rows[0]!.n;
      const node = await fileNode();

      // 0007 exactly (0008 makes swarm_events partitioned; this file stays, as its default partition).
      await copyFile(join(MIGRATIONS_DIR, '0007_event_stream.sql'), join(before, '0007_event_stream.sql'));
      expect(await migrate(db.pool, silentLogger(), `${before}/`)).toEqual([7]);
      expect(await fileNode()).toBe(node);
      // Then the migrations since, and today's writer.
      await migrate(db.pool, silentLogger());
      await write('new-1');
      await write('new-2');
      const { rows } = await db.pool.query<{ trace_id: string; txid: string; seq: string }>(
        `SELECT e.trace_id, e.txid::text, e.seq::text FROM swarm_events e ORDER BY e.txid, e.seq`,
      );
      expect(rows.map((r) => r.trace_id)).toEqual(['old', 'new-1', 'new-2']);
      expect(rows[0]).toMatchObject({ txid: '0', seq: '0' });
      expect(BigInt(rows[1]!.txid)).toBeGreaterThan(0n);
      expect(BigInt(rows[2]!.txid)).toBeGreaterThan(BigInt(rows[1]!.txid));
      expect(BigInt(rows[1]!.seq)).toBeGreaterThan(0n);
      // The filters' rules are IMMUTABLE (an index may use them) and never NULL.
      const { rows: functions } = await db.pool.query<{ proname: string; provolatile: string }>(
        `SELECT proname, provolatile FROM pg_proc
         WHERE proname IN ('chronicle_event_agent', 'chronicle_is_error_event') ORDER BY proname`,
      );
      expect(functions).toEqual([
        { proname: 'chronicle_event_agent', provolatile: 'i' },
        { proname: 'chronicle_is_error_event', provolatile: 'i' },
      ]);
      const { rows: flags } = await db.pool.query<{ error: boolean | null }>(
        `SELECT chronicle_is_error_event(t, m) AS error
         FROM (VALUES ('x', '{}'::jsonb), ('x', '{"error": null}'), ('x', '{"status": "bad"}'), ('x', '[]'),
           ('task.failed', '{}'), ('x', '{"error": 0}'), ('x', '{"status": {"code": 2.0}}')) v(t, m)`,
      );
      expect(flags.map((f) => f.error)).toEqual([false, false, false, false, true, true, true]);
    } finally {
      await rm(before, { recursive: true, force: true });
      await db.drop();
    }
  });
});
