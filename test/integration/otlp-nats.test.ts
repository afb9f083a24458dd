import { withoutSettlements } from '../support/lost-settlements.js';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import express from 'express';
import { type JetStreamManager, type NatsConnection, type PubAck, connect, headers } from 'nats';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { type Batcher, DEFAULT_BATCHER_OPTIONS, createBatcher } from '../../src/batch/batcher.js';
import { uuidV5 } from '../../src/events/uuid.js';
import type { Consumer } from '../../src/pipeline/contracts.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import { durableName } from '../../src/sources/nats/pulled-stream.js';
import { type NatsLink, createNatsLink } from '../../src/sources/nats/nats-link.js';
import { createOtlpReceiver } from '../../src/sources/otlp-http/otlp-receiver.js';
import {
  type OtlpNatsSource,
  type OtlpNatsSourceOptions,
  createOtlpNatsSource,
  otlpAdvisoryStream,
} from '../../src/sources/otlp-nats/otlp-nats-source.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { type Metrics, createMetrics } from '../../src/telemetry/metrics.js';
import { countRows, counterValue, sleep, waitFor } from '../support/chronicle.js';
import { type TestDatabase, createTestDatabase, truncateStore } from '../support/db.js';
import { at, partlyBadSpans, readableSpan, spanIdOf, traceIdOf } from '../support/otlp-spans.js';
import { NATS_URL, describeWithServices } from '../support/services.js';

const PROTOBUF = 'application/x-protobuf';
const JSON_TYPE = 'application/json';
const STREAM = 'OTLP_TRACES';
const ADVISORIES = otlpAdvisoryStream(STREAM);
const RESOURCE = resourceFromAttributes({ 'service.name': 'dispatcher' });

/** A parent and a child span of trace n. */
function twoSpans(n: number): ReadableSpan[] {
  return [
    readableSpan({
      traceId: traceIdOf(n),
      spanId: spanIdOf(n * 10),
      name: `handle ${n}`,
      start: at(n),
      end: at(n + 2),
      attributes: { 'http.route': '/tasks' },
      resource: RESOURCE,
    }),
    readableSpan({
      traceId: traceIdOf(n),
      spanId: spanIdOf(n * 10 + 1),
      parentSpanId: spanIdOf(n * 10),
      name: `call ${n}`,
      start: at(n + 1),
      end: at(n + 1, 500_000_000),
      resource: RESOURCE,
    }),
  ];
}

const protobuf = (spans: ReadableSpan[]): Uint8Array => ProtobufTraceSerializer.serializeRequest(spans)!;
const json = (spans: ReadableSpan[]): Uint8Array => JsonTraceSerializer.serializeRequest(spans)!;

/** The event id span-to-event.ts gives a span: the same over HTTP and over NATS. */
const eventIdOf = (trace: number, span: number): string =>
  uuidV5(`otlp:${traceIdOf(trace)}:${spanIdOf(span)}`);

/** Good spans around three bad ones: two break an OTLP rule, one a canonical rule (its size). */
function partialSpans(): ReadableSpan[] {
  return [...twoSpans(1), ...partlyBadSpans()];
}

/** A consumer whose settlements never reach the message: as if the process died after each commit. */
function losingSettlements(batcher: Batcher): Consumer {
  return {
    offer: (deliveries, options) => batcher.offer(withoutSettlements(deliveries), options),
    hasRoom: (events, bytes) => batcher.hasRoom(events, bytes),
    waitForRoom: (events, bytes, signal) => batcher.waitForRoom(events, bytes, signal),
    accepting: () => batcher.accepting(),
    failing: () => batcher.failing(),
    maxBufferEvents: batcher.maxBufferEvents,
  };
}

interface RejectRow {
  origin: string;
  subject: string | null;
  reason: string;
  payload: string;
  reject_key: string;
}

describeWithServices('otlp over nats', () => {
  let db: TestDatabase;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let link: NatsLink;
  const logger = silentLogger();
  // Per test: a namespace of its own (fresh streams and durables), a batcher, metrics and sources.
  let ns: string;
  let metrics: Metrics;
  let batcher: Batcher;
  let sources: OtlpNatsSource[];

  beforeAll(async () => {
    db = await createTestDatabase();
    nc = await connect({ servers: NATS_URL, name: 'chronicle-test-otlp-nats' });
    jsm = await nc.jetstreamManager();
    link = createNatsLink(
      { url: NATS_URL, name: 'chronicle-otlp-nats-test', reconnectWaitMillis: 500 },
      { logger },
    );
    await link.start();
  });

  afterAll(async () => {
    await link?.shutdown(AbortSignal.timeout(5_000));
    await nc?.close();
    await db?.drop();
  });

  function newBatcher(maxBufferEvents = 1000): void {
    metrics = createMetrics({ defaultMetrics: false });
    batcher = createBatcher(
      {
        ...DEFAULT_BATCHER_OPTIONS,
        maxBufferEvents,
        flushIntervalMillis: 20,
        retryInitialMillis: 20,
        retryMaxMillis: 200,
      },
      { writer: createEventWriter({ pool: db.pool, logger }), logger, metrics },
    );
  }

  function setup(maxBufferEvents = 1000): void {
    ns = `T${randomBytes(4).toString('hex').toUpperCase()}_`;
    sources = [];
    newBatcher(maxBufferEvents);
  }

  afterEach(async () => {
    for (const s of sources) await s.shutdown(AbortSignal.timeout(5_000));
    await batcher.drain(AbortSignal.timeout(5_000));
    for (const stream of [STREAM, ADVISORIES, 'SWARM_TRACES', otlpAdvisoryStream('SWARM_TRACES')]) {
      await jsm.streams.delete(streamName(stream)).catch(() => undefined);
    }
    await truncateStore(db.pool);
  });

  const streamName = (stream = STREAM): string => `${ns}${stream}`;
  const subject = (local = 'otlp.traces'): string => `${ns.toLowerCase()}${local}`;

  /** Starts a source on the test's namespace and waits until it consumes. */
  async function startSource(
    overrides: Partial<OtlpNatsSourceOptions> = {},
    consumer: Consumer = batcher,
  ): Promise<OtlpNatsSource> {
    const source = createOtlpNatsSource(
      {
        stream: STREAM,
        subjects: ['otlp.traces'],
        namespace: ns,
        maxDeliver: 5,
        ackWaitMillis: 30_000,
        maxAckPending: 1000,
        fetchBatch: 100,
        ...overrides,
      },
      { link, consumer, logger, metrics },
    );
    sources.push(source);
    await source.start();
    await waitFor(() => source.consuming(), 10_000, 'the source to consume');
    return source;
  }

  async function publish(
    payload: Uint8Array | string,
    contentType?: string,
    to = subject(),
  ): Promise<PubAck> {
    const h = headers();
    if (contentType !== undefined) h.set('Content-Type', contentType);
    return nc.jetstream().publish(to, payload, contentType === undefined ? undefined : { headers: h });
  }

  /** True when the durables of the namespace's streams have nothing pending and nothing awaiting an ack. */
  async function settled(streams = [STREAM, ADVISORIES]): Promise<boolean> {
    for (const stream of streams) {
      const info = await jsm.consumers.info(streamName(stream), durableName(streamName(stream)));
      if (info.num_pending !== 0 || info.num_ack_pending !== 0) return false;
    }
    return true;
  }

  async function rejects(): Promise<RejectRow[]> {
    const { rows } = await db.pool.query<RejectRow>(
      'SELECT origin, subject, reason, payload, reject_key FROM chronicle_rejects ORDER BY reason, reject_key',
    );
    return rows;
  }

  async function eventIds(): Promise<string[]> {
    const { rows } = await db.pool.query<{ event_id: string }>('SELECT event_id::text FROM swarm_events');
    return rows.map((r) => r.event_id).sort();
  }

  /** Every count a redelivery must leave as it was. */
  async function counts(): Promise<Record<string, number>> {
    const tables = ['swarm_events', 'swarm_event_ids', 'otel_spans', 'chronicle_rejects', 'swarm_traces'];
    const out: Record<string, number> = {};
    for (const t of tables) out[t] = await countRows(db.pool, t);
    const { rows } = await db.pool.query<{ spans: number }>(
      'SELECT coalesce(sum(span_count), 0)::int AS spans FROM swarm_traces',
    );
    out.span_count = rows[0]!.spans;
    return out;
  }

  it('otlp over nats - the stream, its durable and its advisory stream are created when missing, as configured', async () => {
    setup();
    await startSource({ stream: 'SWARM_TRACES', subjects: ['traces.eu', 'traces.us.>'], maxDeliver: 4 });

    const stream = await jsm.streams.info(streamName('SWARM_TRACES'));
    expect(stream.config.subjects).toEqual([subject('traces.eu'), subject('traces.us.>')]);
    const durable = await jsm.consumers.info(
      streamName('SWARM_TRACES'),
      durableName(streamName('SWARM_TRACES')),
    );
    expect(durable.config).toMatchObject({ ack_policy: 'explicit', deliver_policy: 'all', max_deliver: 4 });
    const advisories = await jsm.streams.info(streamName(otlpAdvisoryStream('SWARM_TRACES')));
    expect(advisories.config.subjects).toEqual([
      `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${streamName('SWARM_TRACES')}.${durableName(streamName('SWARM_TRACES'))}`,
    ]);

    await publish(protobuf(twoSpans(1)), undefined, subject('traces.us.west'));
    await waitFor(async () => (await countRows(db.pool, 'swarm_events')) === 2, 10_000, '2 events');
  });

  it('otlp over nats - an existing stream is consumed as it is, never altered', async () => {
    setup();
    await jsm.streams.add({ name: streamName(), subjects: [subject('otlp.mine')], max_msgs: 1000 });
    await startSource();

    const stream = await jsm.streams.info(streamName());
    expect(stream.config).toMatchObject({ subjects: [subject('otlp.mine')], max_msgs: 1000 });
    await publish(protobuf(twoSpans(1)), undefined, subject('otlp.mine'));
    await waitFor(async () => (await countRows(db.pool, 'swarm_events')) === 2, 10_000, '2 events');
  });

  it('otlp over nats - protobuf and JSON payloads become the same events as over OTLP/HTTP, with their spans to forward', async () => {
    setup();
    await startSource();

    await publish(protobuf(twoSpans(1))); // no Content-Type: protobuf
    await publish(protobuf(twoSpans(2)), PROTOBUF);
    await publish(json(twoSpans(3)), `${JSON_TYPE}; charset=utf-8`);
    await publish(json(twoSpans(4)), 'Application/JSON');
    await waitFor(
      async () => (await countRows(db.pool, 'swarm_events')) === 8 && (await settled()),
      10_000,
      '8 events',
    );

    expect(await eventIds()).toEqual(
      [1, 2, 3, 4].flatMap((n) => [eventIdOf(n, n * 10), eventIdOf(n, n * 10 + 1)]).sort(),
    );
    const { rows } = await db.pool.query<{
      source: string;
      event_type: string;
      metadata: Record<string, unknown>;
    }>('SELECT source, event_type, metadata FROM swarm_events WHERE event_id = $1', [eventIdOf(3, 30)]);
    expect(rows).toEqual([
      {
        source: 'dispatcher',
        event_type: 'otel.span',
        metadata: expect.objectContaining({
          name: 'handle 3',
          trace_id: traceIdOf(3),
          span_id: spanIdOf(30),
          attributes: { 'http.route': '/tasks' },
        }) as unknown,
      },
    ]);
    const forwarded = await db.pool.query<{ role: string; span: Record<string, unknown> }>(
      'SELECT role, span FROM otel_spans WHERE span_id = $1',
      [spanIdOf(31)],
    );
    expect(forwarded.rows).toEqual([
      {
        role: 'received',
        span: expect.objectContaining({
          traceId: traceIdOf(3),
          spanId: spanIdOf(31),
          parentSpanId: spanIdOf(30),
        }) as unknown,
      },
    ]);
    expect(await countRows(db.pool, 'otel_spans', "role = 'received'")).toBe(8);
    expect(await countRows(db.pool, 'chronicle_rejects')).toBe(0);
    // Inputs are the spans, as over OTLP/HTTP; labelled by the stream without its namespace.
    expect(await counterValue(metrics.received, { origin: 'nats', stream: STREAM })).toBe(8);
    expect(await counterValue(metrics.stored, { origin: 'nats' })).toBe(8);
  });

  it('otlp over nats - a message is acked only after its spans are committed', async () => {
    setup();
    await startSource();
    const locker = await db.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE swarm_events IN ACCESS EXCLUSIVE MODE');
      await publish(protobuf(twoSpans(1)));
      await waitFor(() => batcher.state().inFlightFlushes === 1, 5_000, 'the write to start');
      await sleep(200);

      const held = await jsm.consumers.info(streamName(), durableName(streamName()));
      expect(held.num_ack_pending).toBe(1);
    } finally {
      await locker.query('COMMIT');
      locker.release();
    }
    await waitFor(() => settled(), 10_000, 'the ack');
    expect(await countRows(db.pool, 'swarm_events')).toBe(2);
  });

  it('otlp over nats - shutdown stops pulling without waiting for held messages, whose ack deadlines stay alive until the consumer settles them', async () => {
    setup();
    const ackWaitMillis = 1_000;
    const source = await startSource({ ackWaitMillis });
    const locker = await db.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE swarm_events IN ACCESS EXCLUSIVE MODE');
      await publish(protobuf(twoSpans(1)));
      await waitFor(() => batcher.state().inFlightFlushes === 1, 5_000, 'the write to start');

      const started = Date.now();
      await source.shutdown(AbortSignal.timeout(10_000));
      // The pull loops end at once (the open pull request is stopped); the held message is not waited for.
      expect(Date.now() - started).toBeLessThan(1_500);
      // Someone else pulls from the durable well past ack_wait: the message is still held, not redelivered.
      const durable = await nc.jetstream().consumers.get(streamName(), durableName(streamName()));
      expect((await durable.next({ expires: 2.5 * ackWaitMillis }))?.seq).toBeUndefined();
      const held = await jsm.consumers.info(streamName(), durableName(streamName()));
      expect(held).toMatchObject({ num_ack_pending: 1, num_redelivered: 0 });
    } finally {
      await locker.query('COMMIT');
      locker.release();
    }
    await batcher.drain(AbortSignal.timeout(5_000));
    await waitFor(() => settled(), 5_000, 'the ack after the drain');
    expect(await countRows(db.pool, 'swarm_events')).toBe(2);
  });

  it('otlp over nats - a garbage payload is recorded (invalid_otlp) and terminated, never redelivered', async () => {
    setup();
    await startSource({ ackWaitMillis: 1_000 });
    const garbage = Buffer.from([0x0a, 0x05, 0x01]);
    const badJson = '{"resourceSpans": [';

    const first = await publish(garbage);
    const second = await publish(badJson, JSON_TYPE);
    await waitFor(
      async () => (await countRows(db.pool, 'chronicle_rejects')) === 2 && (await settled()),
      10_000,
      'the rejects',
    );
    // Past ack_wait: a message only nak'd or left unsettled would have come back by now.
    await sleep(1_500);

    expect(await rejects()).toEqual([
      {
        origin: 'nats',
        subject: 'otlp.traces',
        reason: 'invalid_otlp',
        payload: garbage.toString('base64'),
        reject_key: `nats:${streamName()}:${first.seq}`,
      },
      {
        origin: 'nats',
        subject: 'otlp.traces',
        reason: 'invalid_otlp',
        payload: badJson,
        reject_key: `nats:${streamName()}:${second.seq}`,
      },
    ]);
    const info = await jsm.consumers.info(streamName(), durableName(streamName()));
    expect(info).toMatchObject({ num_pending: 0, num_ack_pending: 0, num_redelivered: 0 });
    expect(await counterValue(metrics.redeliveries, { stream: STREAM })).toBe(0);
    expect(await countRows(db.pool, 'swarm_events')).toBe(0);
  });

  it('otlp over nats - a partially bad payload: the good spans are stored, each bad one is recorded', async () => {
    setup();
    await startSource();

    const published = await publish(json(partialSpans()), JSON_TYPE);
    await waitFor(
      async () => (await countRows(db.pool, 'chronicle_rejects')) === 3 && (await settled()),
      10_000,
      'the rejects',
    );

    expect(await eventIds()).toEqual([eventIdOf(1, 10), eventIdOf(1, 11), eventIdOf(3, 33)].sort());
    const rows = await rejects();
    expect(rows.map((r) => [r.origin, r.subject, r.reason])).toEqual([
      ['nats', 'otlp.traces', 'invalid_span_id'],
      ['nats', 'otlp.traces', 'invalid_span_time'],
      ['nats', 'otlp.traces', 'metadata_too_large'],
    ]);
    // Keyed per span of the message, so that a redelivery records each once.
    for (const r of rows)
      expect(r.reject_key).toMatch(new RegExp(`^nats:${streamName()}:${published.seq}:\\d+$`));
    expect(new Set(rows.map((r) => r.reject_key)).size).toBe(3);
    expect(JSON.parse(rows[0]!.payload)).toMatchObject({ spanId: '0'.repeat(16), name: 'zero id' });
    expect(await counterValue(metrics.received, { origin: 'nats', stream: STREAM })).toBe(6);
  });

  it('otlp over nats - Content-Type: another media type is recorded (unsupported_content_type) and terminated; a mismatched one is invalid_otlp; the header name is case-insensitive', async () => {
    setup();
    await startSource();

    const text = await publish(json(twoSpans(1)), 'text/plain');
    const mismatched = await publish(protobuf(twoSpans(2)), JSON_TYPE);
    const h = headers();
    h.set('content-type', JSON_TYPE);
    await nc.jetstream().publish(subject(), json(twoSpans(3)), { headers: h });
    await waitFor(
      async () =>
        (await countRows(db.pool, 'chronicle_rejects')) === 2 &&
        (await countRows(db.pool, 'swarm_events')) === 2 &&
        (await settled()),
      10_000,
      'two rejects and two events',
    );

    const rows = await rejects();
    expect(rows.map((r) => [r.reason, r.reject_key])).toEqual([
      ['invalid_otlp', `nats:${streamName()}:${mismatched.seq}`],
      ['unsupported_content_type', `nats:${streamName()}:${text.seq}`],
    ]);
    expect(rows[1]!.payload).toBe(Buffer.from(json(twoSpans(1))).toString('base64'));
    expect(await eventIds()).toEqual([eventIdOf(3, 30), eventIdOf(3, 31)].sort());
  });

  it('otlp over nats - a message with more spans than the buffer holds is recorded (too_many_spans) and terminated', async () => {
    setup(5);
    await startSource();
    const spans = Array.from({ length: 6 }, (_, i) =>
      readableSpan({ traceId: traceIdOf(9), spanId: spanIdOf(90 + i) }),
    );

    await publish(protobuf(spans));
    await publish(protobuf(twoSpans(1)));
    await waitFor(
      async () => (await countRows(db.pool, 'swarm_events')) === 2 && (await settled()),
      10_000,
      'the next message',
    );

    expect((await rejects()).map((r) => [r.reason, r.payload])).toEqual([
      ['too_many_spans', Buffer.from(protobuf(spans)).toString('base64')],
    ]);
  });

  it('otlp over nats - redelivery after a crash between commit and ack changes no count and no row', async () => {
    setup();
    const ackWaitMillis = 1_000;
    const crashing = await startSource({ ackWaitMillis }, losingSettlements(batcher));
    await publish(protobuf(twoSpans(1)));
    await publish(json(partialSpans()), JSON_TYPE);
    await publish('not otlp', JSON_TYPE);
    await waitFor(
      async () =>
        (await countRows(db.pool, 'swarm_events')) === 3 &&
        (await countRows(db.pool, 'chronicle_rejects')) === 4,
      10_000,
      'everything committed',
    );
    // The crash: no ack reached the server, and nothing keeps the messages' ack deadlines alive.
    await crashing.shutdown(AbortSignal.abort());
    const before = await counts();
    const ids = await eventIds();
    const storedBefore = await counterValue(metrics.stored, { origin: 'nats' });
    const duplicatesBefore = await counterValue(metrics.duplicates, { origin: 'nats' });
    const info = await jsm.consumers.info(streamName(), durableName(streamName()));
    expect(info.num_ack_pending).toBe(3);

    await startSource({ ackWaitMillis });
    await waitFor(
      async () => (await counterValue(metrics.redeliveries, { stream: STREAM })) === 3 && (await settled()),
      10_000,
      'the redeliveries to settle',
    );

    expect(await counts()).toEqual(before);
    expect(await eventIds()).toEqual(ids);
    expect(await counterValue(metrics.stored, { origin: 'nats' })).toBe(storedBefore);
    // The first two messages again: trace 1's two spans twice, and the third good span.
    expect((await counterValue(metrics.duplicates, { origin: 'nats' })) - duplicatesBefore).toBe(5);
  });

  it('otlp over nats - the same spans over OTLP/HTTP and over NATS are stored once', async () => {
    setup();
    await startSource();
    const receiver = createOtlpReceiver(
      { maxBodyBytes: 1024 * 1024, retryAfterSeconds: 1 },
      { consumer: batcher, logger, metrics },
    );
    const server = http.createServer(express().use(receiver.router));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
    try {
      const post = async (body: Uint8Array, type: string) =>
        (await fetch(url, { method: 'POST', headers: { 'content-type': type }, body })).status;

      // HTTP first, then NATS; and the other way round.
      expect(await post(protobuf(twoSpans(1)), PROTOBUF)).toBe(200);
      await publish(json(twoSpans(1)), JSON_TYPE);
      await publish(protobuf(twoSpans(2)));
      await waitFor(
        async () => (await countRows(db.pool, 'swarm_events')) === 4 && (await settled()),
        10_000,
        'the NATS messages',
      );
      expect(await post(json(twoSpans(2)), JSON_TYPE)).toBe(200);
    } finally {
      await receiver.shutdown(AbortSignal.timeout(1_000));
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }

    expect(await eventIds()).toEqual(
      [eventIdOf(1, 10), eventIdOf(1, 11), eventIdOf(2, 20), eventIdOf(2, 21)].sort(),
    );
    expect(await countRows(db.pool, 'otel_spans', "role = 'received'")).toBe(4);
    expect(await counterValue(metrics.duplicates, { origin: 'nats' })).toBe(2);
    expect(await counterValue(metrics.duplicates, { origin: 'otlp' })).toBe(2);
  });

  it('otlp over nats - while the buffer is full, what waits decoded for room is bounded in bytes, not by the batch of messages', async () => {
    setup();
    // Holds what it takes, settles nothing: the buffer fills and stays full.
    const held: unknown[] = [];
    const stalled: Consumer = {
      offer: (deliveries) => {
        if (held.length + deliveries.length > 1000) return false;
        held.push(...deliveries);
        return true;
      },
      hasRoom: (events) => held.length + events <= 1000,
      waitForRoom: (_events, _bytes, signal) =>
        new Promise<void>((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true })),
      accepting: () => true,
      failing: () => false,
      maxBufferEvents: 1000,
    };
    // 40 messages of 80 spans, about 0.7 MB each: one pull of 100 messages would take all 40.
    const blob = 'x'.repeat(9_000);
    const spans = (m: number): ReadableSpan[] =>
      Array.from({ length: 80 }, (_, i) =>
        readableSpan({ traceId: traceIdOf(m + 1), spanId: spanIdOf(m * 100 + i + 1), attributes: { blob } }),
      );
    // The stream is created by a first source, published to once that one has stopped (and its last
    // pull request has expired), then read by a second.
    await (await startSource()).shutdown(AbortSignal.timeout(5_000));
    await sleep(1_500);
    const sizes: number[] = [];
    for (let m = 0; m < 40; m++) {
      const payload = protobuf(spans(m));
      sizes.push(payload.length);
      await publish(payload, PROTOBUF);
    }
    await startSource({ fetchBatch: 100 }, stalled);
    await waitFor(() => held.length === 960, 10_000, '12 messages (960 spans) to fill the buffer');
    await sleep(1_500);

    // Offered: 12 messages. Delivered and waiting (decoded) for room: what one pull of 4 MiB brings.
    const perPull = Math.ceil((4 * 1024 * 1024) / Math.min(...sizes)) + 1;
    const info = await jsm.consumers.info(streamName(), durableName(streamName()));
    expect(info.num_ack_pending).toBeLessThanOrEqual(12 + perPull);
    expect(info.num_pending).toBeGreaterThan(0);
    expect(held).toHaveLength(960);
  });

  it('otlp over nats - a message that exhausts max_deliver is recorded as a max_deliver reject with its payload', async () => {
    // As for the event streams: only a process dying with the message exhausts max_deliver (Chronicle
    // keeps the ack deadline of what it holds alive). Done by hand on the durable while no source runs.
    setup();
    const options = { maxDeliver: 2, ackWaitMillis: 1_000 };
    const first = await startSource(options);
    await first.shutdown(AbortSignal.timeout(5_000));
    // The stopped source's last pull request stays on the server until it expires (1 s) and would
    // take a delivery nobody reads: published only once it is gone.
    await waitFor(
      async () => (await jsm.consumers.info(streamName(), durableName(streamName()))).num_waiting === 0,
      5_000,
      'the stopped source pull request to expire',
    );
    const payload = new TextDecoder().decode(json(twoSpans(1)));
    const published = await publish(payload, JSON_TYPE);
    const durable = await nc.jetstream().consumers.get(streamName(), durableName(streamName()));
    // Taken twice and never settled; a redelivery comes after ack_wait (1 s), well before a pull expires.
    for (const delivery of [1, 2]) {
      const msg = await durable.next({ expires: 5_000 });
      expect(msg?.seq).toBe(published.seq);
      expect(msg?.info.deliveryCount).toBe(delivery);
    }
    await waitFor(
      async () => {
        await durable.next({ expires: 1_500 });
        return (await jsm.streams.info(streamName(ADVISORIES))).state.messages === 1;
      },
      15_000,
      'the MAX_DELIVERIES advisory',
    );

    await startSource(options);
    await waitFor(
      async () => (await countRows(db.pool, 'chronicle_rejects')) === 1 && (await settled()),
      10_000,
      'the reject',
    );

    expect(await rejects()).toEqual([
      {
        origin: 'nats',
        subject: 'otlp.traces',
        reason: 'max_deliver',
        payload,
        reject_key: `max_deliver:${streamName()}:${published.seq}`,
      },
    ]);
    expect(await countRows(db.pool, 'swarm_events')).toBe(0);
  });
});
