import { withoutSettlements } from '../support/lost-settlements.js';
import pg from 'pg';
import type { PubAck } from 'nats';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { durableName } from '../../src/sources/jetstream/jetstream-source.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  countRows,
  counterValue,
  createChronicleTestEnv,
  sleep,
  subjectOf,
  waitFor,
} from '../support/chronicle.js';
import { type Random, createRandom, generateTraffic } from '../support/generate.js';
import { distinctEvents, referenceRows } from '../support/reference.js';
import { DATABASE_URL, describeWithServices } from '../support/services.js';
import { storedRows } from '../support/stored-rows.js';

/** Every event once plus a second publish of about `fraction` of them (same event_id), shuffled. */
function withDuplicates(rnd: Random, events: readonly CanonicalEvent[], fraction: number): CanonicalEvent[] {
  const copies = events.filter(() => rnd.chance(fraction)).map((e) => structuredClone(e));
  return rnd.shuffle([...events, ...copies]);
}

const asMessages = (events: readonly CanonicalEvent[]) =>
  events.map((e) => ({ subject: subjectOf(e), payload: e }));

/**
 * A crash between commit and settle, made deterministic: the instance writes everything it receives,
 * but none of its acks, terms or naks reaches the server, as if the process died right after each
 * commit. Installed before anything is published, so every message it receives is affected.
 */
function loseSettlements(instance: TestChronicle): void {
  const batcher = instance.chronicle.batcher;
  const offer = batcher.offer.bind(batcher);
  batcher.offer = (deliveries, options) => offer(withoutSettlements(deliveries), options);
}

/** Messages an instance received: counted when each pull ends, so it is awaited before it is compared. */
async function receivedSettles(instances: readonly TestChronicle[], expected: number): Promise<number[]> {
  const read = () =>
    Promise.all(instances.map((i) => counterValue(i.chronicle.metrics.received, { origin: 'nats' })));
  await waitFor(
    async () => (await read()).reduce((a, b) => a + b, 0) >= expected,
    5_000,
    `${expected} received`,
  );
  await sleep(100);
  return read();
}

describeWithServices('jetstream source', () => {
  let env: ChronicleTestEnv;

  beforeEach(async () => {
    env = await createChronicleTestEnv();
  });

  afterEach(async () => {
    await env?.cleanup();
  });

  /**
   * Waits until the distinct events are stored and every message is settled, then checks that each
   * landed once and that traces and metrics equal the reference. `ignoreTrace` holds events Chronicle
   * published itself (the write_failure alert) that are not part of the traffic.
   */
  async function expectAllLandedOnce(
    events: readonly CanonicalEvent[],
    timeoutMillis = 30_000,
    ignoreTrace: string | null = null,
  ): Promise<void> {
    const distinct = distinctEvents(events).length;
    const traffic = async () =>
      (
        await env.db.pool.query<{ n: number; ids: number }>(
          'SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS ids FROM swarm_events WHERE $1::text IS NULL OR trace_id <> $1',
          [ignoreTrace],
        )
      ).rows[0]!;
    await waitFor(
      async () => (await traffic()).n >= distinct && (await env.consumersSettled()),
      timeoutMillis,
      `${distinct} events stored and every message settled`,
    );
    expect(await traffic()).toEqual({ n: distinct, ids: distinct });
    const stored = await storedRows(env.db.pool);
    stored.traces = stored.traces.filter((t) => t.trace_id !== ignoreTrace);
    expect(stored).toEqual(referenceRows(events));
  }

  it('done when - 10,000 events published shuffled with ~5% duplicates land exactly once with reference traces and metrics', async () => {
    const events = generateTraffic(2026, { tasks: 2500, agents: 8, days: 3 }).slice(0, 10_000);
    const published = withDuplicates(createRandom(2026), events, 0.05);
    expect(published.length - events.length).toBeGreaterThan(400);
    const c = await env.start();

    await env.publishBulk(asMessages(published));

    await expectAllLandedOnce(events, 45_000);
    expect(await countRows(env.db.pool, 'chronicle_rejects')).toBe(0);
    const metrics = c.chronicle.metrics;
    expect(await counterValue(metrics.stored, { origin: 'nats' })).toBe(events.length);
    expect(await counterValue(metrics.duplicates, { origin: 'nats' })).toBe(published.length - events.length);
  });

  it('redelivery after a crash between commit and ack changes no count and no row', async () => {
    const events = generateTraffic(7, { tasks: 120 });
    const published = withDuplicates(createRandom(7), events, 0.1);
    const a = await env.start({ jetstream: { ackWaitMillis: 1000 } });
    loseSettlements(a);
    await env.publishBulk(asMessages(published));
    await waitFor(
      async () =>
        (await countRows(env.db.pool, 'swarm_events')) === events.length &&
        a.chronicle.batcher.state().heldEvents === 0,
      20_000,
      'the first instance to commit everything',
    );
    const before = await storedRows(env.db.pool);
    expect((await env.consumerInfo('TASK_EVENTS')).num_ack_pending).toBeGreaterThan(0);
    await a.crash();

    const b = await env.start({ jetstream: { ackWaitMillis: 1000 } });
    // The server redelivers every unacked message to the new instance once ack_wait has passed.
    await waitFor(
      async () =>
        (await counterValue(b.chronicle.metrics.received, { origin: 'nats' })) >= published.length &&
        (await env.consumersSettled()),
      20_000,
      'every message to be redelivered and acked',
    );

    expect(await counterValue(b.chronicle.metrics.stored)).toBe(0);
    expect(await counterValue(b.chronicle.metrics.duplicates, { origin: 'nats' })).toBe(published.length);
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(events.length);
    expect(await storedRows(env.db.pool)).toEqual(before);
    expect(before).toEqual(referenceRows(events));
  });

  it('two replicas sharing the durables give exactly the rows of one', async () => {
    const events = generateTraffic(42, { tasks: 400, agents: 3, days: 1 });
    const published = withDuplicates(createRandom(42), events, 0.1);
    // Small pulls so that both replicas get a share of every stream.
    const replicas = [
      await env.start({ jetstream: { fetchBatch: 50 } }),
      await env.start({ jetstream: { fetchBatch: 50 } }),
    ];

    await env.publishBulk(asMessages(published));

    await expectAllLandedOnce(events);
    const received = await receivedSettles(replicas, published.length);
    const stored = await Promise.all(replicas.map((r) => counterValue(r.chronicle.metrics.stored)));
    expect(received.every((n) => n > 0)).toBe(true);
    expect(received[0]! + received[1]!).toBe(published.length);
    expect(stored[0]! + stored[1]!).toBe(events.length);
    expect(await countRows(env.db.pool, 'chronicle_rejects')).toBe(0);
  });

  it('every reject reason arriving via NATS is recorded with origin nats, subject and reason, and the good messages around it land', async () => {
    // A row Postgres refuses (write_failed) is one of the reasons.
    await env.db.pool.query(
      "ALTER TABLE swarm_events ADD CONSTRAINT jetstream_test_poison CHECK (trace_id <> 'poison')",
    );
    const c = await env.start();
    const good = (n: number) => ({
      event_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
      trace_id: 'good-trace',
      event_type: 'task.progress',
      timestamp: `2026-03-01T10:00:0${n}.000Z`,
      metadata: { n },
    });
    const bad: { subject: string; payload: string; reason: string }[] = [
      { subject: 'swarm.task.created', payload: '{"trace_id": "t1", ', reason: 'invalid_json' },
      { subject: 'swarm.task.created', payload: '[1, 2, 3]', reason: 'not_object' },
      { subject: 'swarm.task.created', payload: '{"event_type":"task.created"}', reason: 'missing_trace_id' },
      { subject: 'swarm.task.created', payload: '{"trace_id": 42}', reason: 'invalid_trace_id' },
      {
        subject: 'swarm.task.created',
        payload: JSON.stringify({ trace_id: 'x'.repeat(257) }),
        reason: 'invalid_trace_id',
      },
      {
        subject: 'swarm.task.created',
        payload: '{"trace_id":"t1","event_id":7}',
        reason: 'invalid_event_id',
      },
      {
        subject: 'swarm.task.created',
        payload: '{"trace_id":"t1","source":["a"]}',
        reason: 'invalid_source',
      },
      {
        subject: 'swarm.task.created',
        payload: '{"trace_id":"t1","event_type":{"a":1}}',
        reason: 'invalid_event_type',
      },
      {
        subject: 'swarm.agent.heartbeat',
        payload: '{"trace_id":"t1","timestamp":"yesterday"}',
        reason: 'invalid_timestamp',
      },
      {
        subject: 'swarm.system.error',
        payload: '{"trace_id":"t1","metadata":"text"}',
        reason: 'invalid_metadata',
      },
      {
        subject: 'swarm.system.error',
        payload: JSON.stringify({ trace_id: 't1', metadata: { blob: 'x'.repeat(300_000) } }),
        reason: 'metadata_too_large',
      },
      {
        subject: 'swarm.task.created',
        payload: '{"trace_id":"poison","event_type":"task.created"}',
        reason: 'write_failed',
      },
      { subject: 'dlq.swarm.task.created', payload: '"just text"', reason: 'not_object' },
      {
        subject: 'dlq.swarm.task.created',
        payload: '{"dlq_id":"d1","retry_count":-1}',
        reason: 'invalid_dlq_entry',
      },
      {
        subject: 'dlq.swarm.task.created',
        payload: '{"dlq_id":"d2","failed_at":"never"}',
        reason: 'invalid_timestamp',
      },
    ];

    // Good messages before, between and after the bad ones, on the same streams.
    await env.publish('swarm.task.progress', good(1));
    const acks: PubAck[] = [];
    for (const [i, b] of bad.entries()) {
      acks.push(await env.publish(b.subject, b.payload));
      if (i === 6) await env.publish('swarm.task.progress', good(2));
    }
    await env.publish('swarm.task.progress', good(3));

    await waitFor(
      async () =>
        (await countRows(env.db.pool, 'chronicle_rejects')) === bad.length &&
        (await countRows(env.db.pool, 'swarm_events')) === 3,
      15_000,
      'every bad message to be rejected and the good ones stored',
    );
    const { rows } = await env.db.pool.query<Record<string, unknown>>(
      'SELECT origin, subject, reason, payload, payload_bytes, reject_key FROM chronicle_rejects',
    );
    const byKey = new Map(rows.map((r) => [r.reject_key, r]));
    bad.forEach((b, i) => {
      const ack = acks[i]!;
      const row = byKey.get(`nats:${ack.stream}:${ack.seq}`);
      expect(row, `reject row of ${b.reason} (#${i})`).toBeDefined();
      expect(row!.origin).toBe('nats');
      expect(row!.subject).toBe(b.subject);
      expect(row!.reason).toBe(b.reason);
      if (b.reason === 'write_failed') {
        // Refused by Postgres after normalization: the record is the canonical event it became.
        expect(row!.payload).toContain('"trace_id":"poison"');
      } else if (b.reason === 'metadata_too_large') {
        expect(row!.payload_bytes).toBe(Buffer.byteLength(b.payload));
        expect((row!.payload as string).length).toBe(64 * 1024);
        expect(b.payload.startsWith(row!.payload as string)).toBe(true);
      } else {
        expect(row!.payload).toBe(b.payload);
        expect(row!.payload_bytes).toBe(Buffer.byteLength(b.payload));
      }
    });
    const stored = await env.db.pool.query<{ n: number }>(
      "SELECT (metadata->>'n')::int AS n FROM swarm_events WHERE trace_id = 'good-trace' ORDER BY 1",
    );
    expect(stored.rows.map((r) => r.n)).toEqual([1, 2, 3]);
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(3);
    expect(await counterValue(c.chronicle.metrics.rejected, { origin: 'nats' })).toBe(bad.length);
  });

  it('a redelivered reject is recorded once', async () => {
    const a = await env.start({ jetstream: { ackWaitMillis: 1000 } });
    loseSettlements(a);
    await env.publish('swarm.task.created', 'not json');
    await env.publish('swarm.task.created', '{"no":"trace"}');
    await waitFor(
      async () => (await countRows(env.db.pool, 'chronicle_rejects')) === 2,
      10_000,
      'two rejects',
    );
    await a.crash();

    const b = await env.start({ jetstream: { ackWaitMillis: 1000 } });
    await waitFor(
      async () => (await counterValue(b.chronicle.metrics.rejected)) >= 2,
      15_000,
      'both rejects to be redelivered to the second instance',
    );
    const { rows } = await env.db.pool.query<{ reason: string }>(
      'SELECT reason FROM chronicle_rejects ORDER BY id',
    );
    expect(rows.map((r) => r.reason)).toEqual(['invalid_json', 'missing_trace_id']);
  });

  // Fails on this machine's nats-server 2.9: src/sources/jetstream.ts settles a reject with
  // msg.term(reason), which sends `+TERM <reason>`; servers before 2.10 only recognise a bare `+TERM`
  // and ignore the rest, so the message is redelivered after every ack_wait until max_deliver, and then
  // recorded a second time as a max_deliver reject.
  it('a rejected message is terminated: never redelivered, recorded once', async () => {
    const ackWaitMillis = 1000;
    const c = await env.start({ jetstream: { maxDeliver: 2, ackWaitMillis } });
    await env.publish('swarm.task.created', 'not json');
    await waitFor(async () => (await countRows(env.db.pool, 'chronicle_rejects')) >= 1, 10_000, 'the reject');
    // Long enough for a redelivery and for max_deliver to be exhausted, were the message not terminated.
    await sleep(3 * ackWaitMillis + 500);

    expect(await env.consumersSettled()).toBe(true);
    expect(await counterValue(c.chronicle.metrics.received, { origin: 'nats' })).toBe(1);
    const { rows } = await env.db.pool.query<{ reason: string }>('SELECT reason FROM chronicle_rejects');
    expect(rows.map((r) => r.reason)).toEqual(['invalid_json']);
  });

  it('events without event_id get an id per stream sequence: a republish is a new event, a redelivery is not', async () => {
    const a = await env.start({ jetstream: { ackWaitMillis: 1000 } });
    loseSettlements(a);
    const payload = { trace_id: 'no-id', event_type: 'task.progress', metadata: { pct: 50 } };
    const publishedAt = Date.now();
    const first = await env.publish('swarm.task.progress', payload);
    const second = await env.publish('swarm.task.progress', payload);
    expect(second.seq).not.toBe(first.seq);
    const read = async () =>
      (
        await env.db.pool.query<{ event_id: string; timestamp: Date }>(
          "SELECT event_id::text, timestamp FROM swarm_events WHERE trace_id = 'no-id' ORDER BY event_id",
        )
      ).rows;
    await waitFor(async () => (await read()).length === 2, 10_000, 'both events');
    const before = await read();
    expect(before[0]!.event_id).not.toBe(before[1]!.event_id);
    // No timestamp in the payload: the message's own time, which a redelivery keeps.
    for (const row of before) {
      expect(row.timestamp.getTime()).toBeGreaterThanOrEqual(publishedAt - 1_000);
      expect(row.timestamp.getTime()).toBeLessThanOrEqual(Date.now());
    }
    await a.crash();

    const b = await env.start({ jetstream: { ackWaitMillis: 1000 } });
    await waitFor(
      async () =>
        (await counterValue(b.chronicle.metrics.duplicates)) === 2 && (await env.consumersSettled()),
      15_000,
      'both messages to be redelivered and settled',
    );
    expect(await read()).toEqual(before);
    expect((await storedRows(env.db.pool)).traces).toMatchObject([{ trace_id: 'no-id', span_count: 2 }]);
  });

  it('dead-letter entries land in swarm_dlq, add a dlq.entry event to the original trace, and are listed by GET /api/v1/dlq', async () => {
    const c = await env.start();
    await env.publish('swarm.task.created', {
      event_id: '10000000-0000-4000-8000-000000000001',
      trace_id: 'dlq-task',
      event_type: 'task.created',
      timestamp: '2026-03-01T10:00:00.000Z',
      metadata: { title: 'Index the corpus' },
    });
    await env.publish('swarm.task.assigned', {
      event_id: '10000000-0000-4000-8000-000000000002',
      trace_id: 'dlq-task',
      event_type: 'task.assigned',
      timestamp: '2026-03-01T10:01:00.000Z',
      metadata: { agent: 'agent-1' },
    });
    const entries = [
      {
        dlq_id: 'dlq-1',
        original_subject: 'swarm.task.assigned',
        original_payload: {
          trace_id: 'dlq-task',
          event_type: 'task.assigned',
          metadata: { agent: 'agent-1' },
        },
        reason: 'max_retries',
        reason_detail: 'agent-1 unreachable',
        failed_at: '2026-03-01T10:05:00.000Z',
        retry_count: 3,
        max_retries: 3,
        retry_history: [{ at: '2026-03-01T10:02:00Z', error: 'timeout' }],
        source: 'orchestrator',
        recoverable: true,
      },
      {
        dlq_id: 'dlq-2',
        original_subject: 'swarm.task.created',
        // Embedded as a JSON string, as some swarm components do.
        original_payload: JSON.stringify({ trace_id: 'dlq-other', event_type: 'task.created' }),
        reason: 'validation',
        failed_at: '2026-03-01T11:00:00.000Z',
        source: 'gateway',
        recoverable: false,
      },
      {
        dlq_id: 'dlq-3',
        original_subject: 'swarm.task.created',
        original_payload: 'garbage',
        reason: 'parse_error',
        source: 'gateway',
      },
    ];
    for (const e of entries) await env.publish(`dlq.${e.original_subject}`, e);

    await waitFor(async () => (await countRows(env.db.pool, 'swarm_dlq')) === 3, 10_000, 'three dlq entries');
    await waitFor(() => env.consumersSettled(), 10_000, 'every message settled');
    const stored = await env.db.pool.query<Record<string, unknown>>(
      'SELECT dlq_id, trace_id, subject, reason, retry_count, recoverable FROM swarm_dlq ORDER BY dlq_id',
    );
    expect(stored.rows).toEqual([
      {
        dlq_id: 'dlq-1',
        trace_id: 'dlq-task',
        subject: 'dlq.swarm.task.assigned',
        reason: 'max_retries',
        retry_count: 3,
        recoverable: true,
      },
      {
        dlq_id: 'dlq-2',
        trace_id: 'dlq-other',
        subject: 'dlq.swarm.task.created',
        reason: 'validation',
        retry_count: null,
        recoverable: false,
      },
      {
        dlq_id: 'dlq-3',
        trace_id: null,
        subject: 'dlq.swarm.task.created',
        reason: 'parse_error',
        retry_count: null,
        recoverable: null,
      },
    ]);

    const trace = (await (await fetch(`${c.url}/api/v1/traces/dlq-task`)).json()) as {
      trace: { status: string; span_count: number };
      events: { event_type: string; timestamp: string; metadata: Record<string, unknown> }[];
    };
    expect(trace.trace).toMatchObject({ status: 'assigned', span_count: 3 });
    expect(trace.events.map((e) => e.event_type)).toEqual(['task.created', 'task.assigned', 'dlq.entry']);
    expect(trace.events[2]).toMatchObject({
      timestamp: '2026-03-01T10:05:00.000Z',
      metadata: { dlq_id: 'dlq-1', reason: 'max_retries', reason_detail: 'agent-1 unreachable' },
    });
    const other = await fetch(`${c.url}/api/v1/events?trace_id=dlq-other`);
    expect(((await other.json()) as { items: { event_type: string }[] }).items).toMatchObject([
      { event_type: 'dlq.entry' },
    ]);

    type DlqPage = { items: { dlq_id: string }[]; next_cursor: string | null };
    const all = (await (await fetch(`${c.url}/api/v1/dlq`)).json()) as DlqPage;
    expect(all.items.map((d) => d.dlq_id).sort()).toEqual(['dlq-1', 'dlq-2', 'dlq-3']);
    const byReason = (await (await fetch(`${c.url}/api/v1/dlq?reason=max_retries`)).json()) as DlqPage;
    expect(byReason.items.map((d) => d.dlq_id)).toEqual(['dlq-1']);
    const bySource = (await (await fetch(`${c.url}/api/v1/dlq?source=gateway`)).json()) as DlqPage;
    expect(bySource.items.map((d) => d.dlq_id).sort()).toEqual(['dlq-2', 'dlq-3']);
    const page1 = (await (await fetch(`${c.url}/api/v1/dlq?limit=2`)).json()) as DlqPage;
    expect(page1.items).toHaveLength(2);
    const page2 = (await (
      await fetch(`${c.url}/api/v1/dlq?limit=2&cursor=${page1.next_cursor}`)
    ).json()) as DlqPage;
    expect([...page1.items, ...page2.items].map((d) => d.dlq_id).sort()).toEqual(['dlq-1', 'dlq-2', 'dlq-3']);
    expect(page2.next_cursor).toBeNull();
  });

  it('a message that exhausts max_deliver is read back from the stream and recorded as a max_deliver reject', async () => {
    // Chronicle itself never spends deliveries while it holds a message (it extends the ack deadline
    // with working()), so only crashes exhaust max_deliver. The honest way to get there: a consumer that
    // takes the message from Chronicle's durable twice and dies each time without settling it (done by
    // hand here, while no Chronicle runs). The server then publishes the MAX_DELIVERIES advisory into
    // CHRONICLE_ADVISORIES, and the next Chronicle to run must turn it into a reject.
    const options = { jetstream: { maxDeliver: 2, ackWaitMillis: 1000 } };
    const setup = await env.start(options); // creates the streams, the durables and the advisory stream
    await setup.stop();
    const payload = JSON.stringify({ trace_id: 'cursed', event_type: 'task.created', metadata: { n: 1 } });
    const published = await env.publish('swarm.task.created', payload);
    const stream = env.streamName('TASK_EVENTS');
    const consumer = await env.js().consumers.get(stream, durableName(stream));
    for (const delivery of [1, 2]) {
      const msg = await consumer.next({ expires: 5_000 });
      expect(msg?.seq).toBe(published.seq);
      expect(msg?.info.deliveryCount).toBe(delivery);
    }
    // A further pull after ack_wait makes the server notice the exhausted message and advise.
    await waitFor(
      async () => {
        await consumer.next({ expires: 1_500 });
        return (await env.streamMessages('CHRONICLE_ADVISORIES')) === 1;
      },
      15_000,
      'the MAX_DELIVERIES advisory',
    );

    await env.start(options);
    await waitFor(
      async () => (await countRows(env.db.pool, 'chronicle_rejects')) === 1 && (await env.consumersSettled()),
      15_000,
      'the max_deliver reject',
    );
    const { rows } = await env.db.pool.query<Record<string, unknown>>(
      'SELECT origin, subject, reason, payload, reject_key FROM chronicle_rejects',
    );
    expect(rows).toEqual([
      {
        origin: 'nats',
        subject: 'swarm.task.created',
        reason: 'max_deliver',
        payload,
        reject_key: `max_deliver:${stream}:${published.seq}`,
      },
    ]);
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(0);
  });

  it('Postgres down mid-run: /ready is 503, no delivery is spent, and every message lands once after recovery', async () => {
    const ackWaitMillis = 1000;
    const c = await env.start({ jetstream: { maxDeliver: 2, ackWaitMillis } });
    const events = generateTraffic(90210, { tasks: 150, agents: 3, days: 1 });
    const published = withDuplicates(createRandom(90210), events, 0.05);
    const half = Math.floor(published.length / 2);
    await env.publishBulk(asMessages(published.slice(0, half)));
    await waitFor(() => env.consumersSettled(), 15_000, 'the first half to be settled');

    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE ${env.db.name} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [
        env.db.name,
      ]);
      const outageStarted = Date.now();

      await env.publishBulk(asMessages(published.slice(half)));
      await waitFor(
        async () => (await fetch(`${c.url}/ready`)).status === 503,
        5_000,
        '/ready to answer 503 during the outage',
      );
      // Chronicle holds the second half while it retries; nothing is written meanwhile.
      await waitFor(
        () => c.chronicle.batcher.state().heldEvents === published.length - half,
        5_000,
        'the second half to be held in the buffer',
      );
      const ready = await fetch(`${c.url}/ready`);
      expect(ready.status).toBe(503);
      expect(JSON.stringify(await ready.json())).toMatch(/postgres/i);
      // Well past max_deliver × ack_wait: a message that was not kept alive would be exhausted by now.
      await sleep(Math.max(0, outageStarted + 3 * ackWaitMillis - Date.now()));
      expect((await c.chronicle.health()).ready).toBe(false);
    } finally {
      await admin.query(`ALTER DATABASE ${env.db.name} ALLOW_CONNECTIONS true`);
      await admin.end();
    }

    // Chronicle's own write_failure alert (published on a subject it consumes) is not part of the traffic.
    await expectAllLandedOnce(events, 30_000, 'chronicle');
    await waitFor(async () => (await fetch(`${c.url}/ready`)).status === 200, 10_000, '/ready to recover');
    expect(await countRows(env.db.pool, 'chronicle_rejects')).toBe(0);
    const alerts = await env.db.pool.query<{ event_type: string; failures: number }>(
      "SELECT event_type, (metadata->>'consecutiveFailures')::int AS failures FROM swarm_events WHERE trace_id = 'chronicle'",
    );
    expect(alerts.rows.length).toBeGreaterThanOrEqual(1);
    expect(alerts.rows[0]).toEqual({
      event_type: 'system.chronicle.write_failure',
      failures: expect.any(Number) as unknown,
    });
    expect(alerts.rows[0]!.failures).toBeGreaterThanOrEqual(3);
    // Each message was delivered exactly once: none was redelivered, nak'd or exhausted.
    const expected = published.length + alerts.rows.length;
    expect(await receivedSettles([c], expected)).toEqual([expected]);
  });

  it('backpressure - with a 50-event buffer every message still lands exactly once', async () => {
    const c = await env.start({ batch: { maxBufferEvents: 50, flushThresholdEvents: 20 } });
    const events = generateTraffic(5, { tasks: 300, agents: 4, days: 2 });
    const published = withDuplicates(createRandom(5), events, 0.05);

    await env.publishBulk(asMessages(published));

    await expectAllLandedOnce(events, 40_000);
    expect(await counterValue(c.chronicle.metrics.backpressure, { source: 'jetstream' })).toBeGreaterThan(0);
    expect(await receivedSettles([c], published.length)).toEqual([published.length]);
  });

  it('shutdown flushes and acks everything it had accepted', async () => {
    // Flushes only on shutdown: neither the threshold nor the interval is reached while the test runs.
    const c = await env.start({ batch: { flushIntervalMillis: 60_000, flushThresholdEvents: 10_000 } });
    const events = generateTraffic(11, { tasks: 100, agents: 3, days: 1 });
    await env.publishBulk(asMessages(events));
    await waitFor(
      () => c.chronicle.batcher.state().heldEvents === events.length,
      10_000,
      'every event accepted',
    );
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(0);

    await c.stop(10_000);

    expect(await countRows(env.db.pool, 'swarm_events')).toBe(events.length);
    expect(await storedRows(env.db.pool)).toEqual(referenceRows(events));
    // The acks were flushed by the connection's drain; JetStream applies them asynchronously.
    await waitFor(() => env.consumersSettled(), 2_000, 'no message pending or waiting for an ack');
    const info = await env.consumerInfo('TASK_EVENTS');
    expect(info.num_ack_pending).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(info.delivered.stream_seq);
  });
});
