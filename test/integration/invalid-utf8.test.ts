/**
 * Input that is not UTF-8 is refused (reason invalid_utf8) with its exact bytes kept, on every path:
 * HTTP ingest (JSON and NDJSON), NATS events, OTLP/HTTP (JSON and protobuf strings), OTLP over NATS.
 * Decoding with replacement characters would make two different byte strings the same trace_id.
 */
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { headers as natsHeaders } from 'nats';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { replay } from '../../src/cli/replay-rejects.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  countRows,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { readableSpan, spanIdOf, traceIdOf } from '../support/otlp-spans.js';
import { describeWithServices } from '../support/services.js';

/** `{"trace_id":"bad-<b>", …}` with the single byte `b` (0x80–0xff: never UTF-8 alone) in the trace id. */
function eventBytes(bad: number): Buffer {
  return Buffer.concat([
    Buffer.from('{"trace_id":"bad-'),
    Buffer.from([bad]),
    Buffer.from('","source":"test","event_type":"task.created"}'),
  ]);
}

/** `bytes` with the first occurrence of `marker` (ASCII, same length) replaced by `replacement`. */
function replaced(bytes: Uint8Array, marker: string, replacement: number[]): Buffer {
  const out = Buffer.from(bytes);
  const at = out.indexOf(marker);
  if (at === -1 || replacement.length !== marker.length) throw new Error('marker not found');
  Buffer.from(replacement).copy(out, at);
  return out;
}

/** An OTLP request of one span named `aXXb` where XX becomes `bad` (two bytes, not UTF-8). */
function otlpRequest(format: 'json' | 'protobuf', bad: [number, number], n: number): Buffer {
  const span = readableSpan({ traceId: traceIdOf(n), spanId: spanIdOf(n), name: 'aXXb' });
  const serializer = format === 'json' ? JsonTraceSerializer : ProtobufTraceSerializer;
  return replaced(serializer.serializeRequest([span])!, 'XX', bad);
}

interface RejectRow {
  origin: string;
  reason: string;
  payload: string;
  payload_encoding: string;
}

describeWithServices('invalid UTF-8', () => {
  let env: ChronicleTestEnv;
  let c: TestChronicle;

  beforeEach(async () => {
    env = await createChronicleTestEnv();
    c = await env.start({
      otlpNats: {
        stream: 'OTLP_TRACES',
        subjects: ['otlp.traces'],
        namespace: env.namespace,
        maxDeliver: 3,
        ackWaitMillis: 30_000,
        maxAckPending: 1000,
        fetchBatch: 100,
      },
    });
  });

  afterEach(async () => {
    await env?.cleanup();
    for (const stream of ['OTLP_TRACES', 'CHRONICLE_ADVISORIES_OTLP_TRACES']) {
      await env
        ?.jsm()
        .streams.delete(env.streamName(stream))
        .catch(() => undefined);
    }
  });

  const rejects = async (reason = 'invalid_utf8'): Promise<RejectRow[]> =>
    (
      await env.db.pool.query<RejectRow>(
        'SELECT origin, reason, payload, payload_encoding FROM chronicle_rejects WHERE reason = $1 ORDER BY id',
        [reason],
      )
    ).rows;

  const bytesOf = (rows: readonly RejectRow[]): Buffer[] =>
    rows.map((r) => {
      expect(r.payload_encoding).toBe('base64');
      return Buffer.from(r.payload, 'base64');
    });

  it('HTTP JSON body - 400 invalid_utf8; two different bad byte strings are two rejects, never one trace_id', async () => {
    const bodies = [eventBytes(0xff), eventBytes(0xfe)];
    for (const body of bodies) {
      const res = await fetch(`${c.url}/api/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'invalid_utf8', message: 'body is not valid UTF-8' });
    }
    const rows = await rejects();
    expect(rows.map((r) => r.origin)).toEqual(['http', 'http']);
    expect(bytesOf(rows)).toEqual(bodies);
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(0);
  });

  it('HTTP NDJSON - a line that is not UTF-8 is rejected alone; the other lines are stored', async () => {
    const good = Buffer.from('{"trace_id":"fine","source":"test","event_type":"task.created"}');
    const body = Buffer.concat([
      good,
      Buffer.from('\n'),
      eventBytes(0xc3),
      Buffer.from('\n'),
      eventBytes(0xff),
    ]);
    const res = await fetch(`${c.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body,
    });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { accepted: number; rejected: { index: number; reason: string }[] };
    expect(answer.accepted).toBe(1);
    expect(answer.rejected.map((r) => [r.index, r.reason])).toEqual([
      [1, 'invalid_utf8'],
      [2, 'invalid_utf8'],
    ]);
    // One write: the two rejects' rows are in no particular order.
    expect(bytesOf(await rejects()).sort((a, b) => Buffer.compare(a, b))).toEqual([
      eventBytes(0xc3),
      eventBytes(0xff),
    ]);
    const traces = await env.db.pool.query<{ trace_id: string }>('SELECT trace_id FROM swarm_events');
    expect(traces.rows).toEqual([{ trace_id: 'fine' }]);
  });

  it('NATS events - payloads that are not UTF-8 are invalid_utf8 rejects with their bytes; a replay finds them still invalid', async () => {
    const payloads = [eventBytes(0xff), eventBytes(0xfe)];
    for (const p of payloads) await env.publish('swarm.task.created', p);
    await waitFor(
      async () => (await rejects()).length === 2 && (await env.consumersSettled()),
      15_000,
      'rejects',
    );
    const rows = await rejects();
    expect(rows.map((r) => r.origin)).toEqual(['nats', 'nats']);
    expect(bytesOf(rows)).toEqual(payloads);
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(0);

    // Replayed, the same bytes go through the same conversion, and are refused again.
    const report = await replay(
      env.db.pool,
      { reasons: ['invalid_utf8'], dryRun: false, limit: 100 },
      { namespace: env.namespace, otlpStream: 'OTLP_TRACES' },
    );
    expect(report).toMatchObject({ matched: 2, stored: 0, duplicates: 0, invalid: 2, skipped: 0 });
    expect(report.invalid_reasons).toEqual({ invalid_utf8: 2 });
    expect(await countRows(env.db.pool, 'swarm_events')).toBe(0);
  });

  for (const format of ['json', 'protobuf'] as const) {
    const type = format === 'json' ? 'application/json' : 'application/x-protobuf';

    it(`OTLP/HTTP ${format} - a string that is not UTF-8 makes the body a 400 invalid_utf8 reject, its bytes kept`, async () => {
      const bodies = [otlpRequest(format, [0xff, 0x41], 1), otlpRequest(format, [0xfe, 0x41], 1)];
      for (const body of bodies) {
        const res = await fetch(`${c.url}/v1/traces`, {
          method: 'POST',
          headers: { 'content-type': type },
          body,
        });
        expect(res.status).toBe(400);
      }
      const rows = await rejects();
      expect(rows.map((r) => r.origin)).toEqual(['otlp', 'otlp']);
      expect(bytesOf(rows)).toEqual(bodies);
      expect(await countRows(env.db.pool, 'swarm_events')).toBe(0);
      // The same request with UTF-8 in place is stored.
      const fine = replaced(otlpRequest(format, [0x58, 0x58], 1), 'XX', [0x43, 0x44]);
      const ok = await fetch(`${c.url}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': type },
        body: fine,
      });
      expect(ok.status).toBe(200);
      expect(await countRows(env.db.pool, 'swarm_events')).toBe(1);
    });

    it(`OTLP over NATS ${format} - a message with a string that is not UTF-8 is an invalid_utf8 reject, its bytes kept`, async () => {
      const payloads = [otlpRequest(format, [0xff, 0x41], 2), otlpRequest(format, [0xfe, 0x41], 2)];
      const h = natsHeaders();
      h.set('Content-Type', type);
      for (const p of payloads) await env.js().publish(env.subject('otlp.traces'), p, { headers: h });
      await waitFor(async () => (await rejects()).length === 2, 15_000, 'rejects');
      const rows = await rejects();
      expect(rows.map((r) => r.origin)).toEqual(['nats', 'nats']);
      expect(bytesOf(rows)).toEqual(payloads);
      expect(await countRows(env.db.pool, 'swarm_events')).toBe(0);
    });
  }
});
