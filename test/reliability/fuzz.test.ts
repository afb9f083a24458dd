/**
 * Property-based fuzz (fast-check) of the normalizer, of POST /api/v1/events and of POST /v1/traces on a
 * running Chronicle: arbitrary and mutated JSON and protobuf, huge and deep values, every odd character.
 * Nothing crashes or hangs, each input is accepted or refused with a reason, and every event accepted
 * during the fuzz is in the store exactly once.
 */
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeRequest } from '../../src/events/otlp/decode.js';
import { isUuid, uuidV5 } from '../../src/events/uuid.js';
import { type ChronicleTestEnv, createChronicleTestEnv } from '../support/chronicle.js';
import { type ChronicleProcess, killAllChronicleProcesses, waitReady } from './chronicle-process.js';
import {
  deepValue,
  jsonValue,
  mutatedBytes,
  mutatedEvent,
  oddString,
  validEvent,
} from '../support/fuzz-arbitraries.js';
import { expectReason, expectStorable, normalizeLikeCallers, normalizeText } from '../support/fuzz-checks.js';
import { SpanKind, at, readableSpan, spanIdOf, traceIdOf } from '../support/otlp-spans.js';
import { describeWithPostgres } from '../support/services.js';
import { startOn } from './harness.js';
import { byProfile, mib, recordResult } from './profile.js';

const REQUEST_TIMEOUT_MILLIS = 20_000;

interface Answer {
  status: number;
  type: string;
  body: Buffer;
}

/** One request with a deadline: a hang fails the test with what was sent. */
async function send(url: string, body: Uint8Array | string, contentType: string): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: contentType === '' ? {} : { 'content-type': contentType },
    body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MILLIS),
  });
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    body: Buffer.from(await res.arrayBuffer()),
  };
}

/** A refusal (4xx, never 5xx) that says why: a JSON error with a message, or an OTLP google.rpc.Status. */
function expectRefusalWithReason(answer: Answer): void {
  expect(answer.status, answer.body.toString('utf8').slice(0, 300)).toBeGreaterThanOrEqual(400);
  expect(answer.status).toBeLessThan(500);
  expect(answer.body.length).toBeGreaterThan(0);
  if (answer.type.includes('json')) {
    const parsed = JSON.parse(answer.body.toString('utf8')) as { error?: unknown; message?: unknown };
    expect(typeof (parsed.message ?? parsed.error)).toBe('string');
  }
}

/** Valid OTLP trace requests of 1–5 spans with odd names and attributes, as the official serializers write them. */
const otlpSpans = fc
  .tuple(
    fc.integer({ min: 1, max: 1_000_000 }),
    fc.array(fc.tuple(oddString, jsonValue), { minLength: 1, maxLength: 5 }),
  )
  .map(([base, specs]) =>
    specs.map(([name, attr], i) =>
      readableSpan({
        traceId: traceIdOf(base),
        spanId: spanIdOf(base * 8 + i + 1),
        name: name.slice(0, 2_000),
        kind: SpanKind.INTERNAL,
        start: at(i),
        end: at(i + 1),
        attributes:
          typeof attr === 'string' || typeof attr === 'number' || typeof attr === 'boolean' ? { attr } : {},
      }),
    ),
  );

describeWithPostgres('reliability - fuzz', () => {
  let env: ChronicleTestEnv;
  let proc: ChronicleProcess;

  beforeAll(async () => {
    env = await createChronicleTestEnv({ nats: false });
    // Fuzzed timestamps run from 2020 to 2030: retention would rightly drop the old ones while the
    // check that everything accepted is stored runs, so no maintenance pass is scheduled here.
    proc = await startOn(env, { NATS_URL: 'none', CHRONICLE_MAINTENANCE_INTERVAL_MS: '0' });
    await waitReady(proc);
  });

  afterAll(async () => {
    await killAllChronicleProcesses();
    await env?.cleanup();
  });

  it('normalizer, POST /api/v1/events and POST /v1/traces: accepted or refused with a reason, never a crash or a hang, nothing accepted lost', async () => {
    const started = Date.now();
    const normalizerRuns = byProfile({ ci: 3_000, full: 30_000 });
    const eventRequests = byProfile({ ci: 300, full: 3_000 });
    const otlpRequests = byProfile({ ci: 300, full: 3_000 });
    const counts = { normalized: 0, accepted: 0, refused: 0, status: new Map<number, number>() };
    const countStatus = (s: number) => counts.status.set(s, (counts.status.get(s) ?? 0) + 1);

    // The normalizer itself, many times.
    const ctx = {
      origin: 'nats' as const,
      subject: 'swarm.task.created',
      stream: 'TASK_EVENTS',
      defaultTimeMillis: 0,
    };
    fc.assert(
      fc.property(fc.oneof(jsonValue, mutatedEvent, deepValue, validEvent), fc.nat(), (value, seq) => {
        const result = normalizeLikeCallers(value, { ...ctx, seq });
        if (result.ok) expectStorable(result.value);
        else expectReason(result.reason, result.detail);
        counts.normalized++;
      }),
      { numRuns: normalizerRuns },
    );
    fc.assert(
      fc.property(
        validEvent.chain((e) => mutatedBytes(Buffer.from(JSON.stringify(e)))),
        fc.nat(),
        (bytes, seq) => {
          normalizeText(Buffer.from(bytes).toString('utf8'), { ...ctx, seq });
          counts.normalized++;
        },
      ),
      { numRuns: normalizerRuns },
    );

    // POST /api/v1/events.
    const eventsUrl = `${proc.url}/api/v1/events`;
    let acceptedByAnswers = 0;
    const expectedIds = new Set<string>();
    const eventBody = fc.oneof(
      fc.record({
        kind: fc.constant('items' as const),
        items: fc.array(fc.oneof(validEvent, mutatedEvent), { minLength: 1, maxLength: 20 }),
      }),
      fc.record({
        kind: fc.constant('one' as const),
        items: fc.oneof(validEvent, mutatedEvent).map((e) => [e]),
      }),
      fc.record({ kind: fc.constant('value' as const), value: fc.oneof(jsonValue, deepValue) }),
      fc.record({
        kind: fc.constant('bytes' as const),
        bytes: fc
          .array(validEvent, { minLength: 1, maxLength: 5 })
          .chain((a) => mutatedBytes(Buffer.from(JSON.stringify(a)))),
      }),
      fc.record({
        kind: fc.constant('ndjson' as const),
        lines: fc.array(
          fc.oneof(
            validEvent.map((e) => JSON.stringify(e)),
            oddString,
          ),
          { minLength: 1, maxLength: 10 },
        ),
      }),
    );
    const contentType = fc.constantFrom<string>(
      'application/json',
      'application/json',
      'text/plain',
      '',
      'application/octet-stream',
    );
    await fc.assert(
      fc.asyncProperty(eventBody, contentType, async (input, type) => {
        let body: Uint8Array | string;
        let items: Record<string, unknown>[] | undefined;
        if (input.kind === 'items' || input.kind === 'one') {
          items = input.items;
          try {
            body = JSON.stringify(input.kind === 'one' ? items[0] : items);
          } catch {
            return; // too deep for JSON.stringify: no client could send it
          }
        } else if (input.kind === 'value') {
          try {
            body = JSON.stringify(input.value) ?? 'null';
          } catch {
            return;
          }
        } else if (input.kind === 'bytes') body = input.bytes;
        else {
          body = input.lines.join('\n');
          type = 'application/x-ndjson';
        }
        const answer = await send(eventsUrl, body, type);
        countStatus(answer.status);
        if (answer.status !== 200) {
          expectRefusalWithReason(answer);
          counts.refused++;
          return;
        }
        const result = JSON.parse(answer.body.toString('utf8')) as {
          accepted: number;
          duplicates: number;
          rejected: { index: number; reason: string; detail: string }[];
        };
        for (const r of result.rejected) expectReason(r.reason, r.detail);
        acceptedByAnswers += result.accepted;
        counts.accepted += result.accepted;
        counts.refused += result.rejected.length;
        if (items) {
          const refused = new Set(result.rejected.map((r) => r.index));
          items.forEach((item, i) => {
            if (!refused.has(i) && typeof item.event_id === 'string' && isUuid(item.event_id))
              expectedIds.add(item.event_id.toLowerCase());
          });
        }
      }),
      { numRuns: eventRequests },
    );
    // Extremes, once each: over the body limit, a huge metadata value, deep nesting with and without NUL.
    const huge = await send(
      eventsUrl,
      `[${'{"trace_id":"x","event_type":"task.created"},'.repeat(120_000)}{}]`,
      'application/json',
    );
    countStatus(huge.status);
    expect(huge.status).toBe(413);
    expectRefusalWithReason(huge);
    for (const body of [
      JSON.stringify({ trace_id: 'big', event_type: 'task.created', metadata: { big: 'x'.repeat(300_000) } }),
      `{"trace_id":"deep","event_type":"task.created","metadata":{"d":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`,
      `{"trace_id":"deep","event_type":"task.created","metadata":{"n":"\\u0000","d":${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}}}`,
      `${'['.repeat(200_000)}${']'.repeat(200_000)}`,
    ]) {
      const answer = await send(eventsUrl, body, 'application/json');
      countStatus(answer.status);
      expect(answer.status).toBeLessThan(500);
      if (answer.status === 200) {
        const result = JSON.parse(answer.body.toString('utf8')) as {
          accepted: number;
          rejected: { reason: string; detail: string }[];
        };
        expect(result.accepted).toBe(0);
        for (const r of result.rejected) expectReason(r.reason, r.detail);
      } else expectRefusalWithReason(answer);
    }

    // Every event an answer counted as accepted is stored, once; every tracked one by its id.
    const stored = async () =>
      (await env.db.pool.query<{ id: string }>('SELECT event_id::text AS id FROM swarm_events')).rows.map(
        (r) => r.id,
      );
    const afterEvents = await stored();
    expect(afterEvents.length).toBe(acceptedByAnswers);
    expect(new Set(afterEvents).size).toBe(afterEvents.length);
    const storedSet = new Set(afterEvents);
    expect([...expectedIds].filter((id) => !storedSet.has(id))).toEqual([]);

    // POST /v1/traces: valid requests, their bytes mutated, arbitrary JSON, random bytes.
    const tracesUrl = `${proc.url}/v1/traces`;
    const fullyAccepted = new Set<string>();
    /** Per span event id, the requests that carried it (for a failure's message). */
    const sentWith = new Map<string, string[]>();
    const mayBeStored = new Set<string>();
    const otlpBody = fc.oneof(
      otlpSpans.map((s) => ({
        type: 'application/x-protobuf',
        body: ProtobufTraceSerializer.serializeRequest(s)!,
      })),
      otlpSpans
        .chain((s) => mutatedBytes(ProtobufTraceSerializer.serializeRequest(s)!))
        .map((body) => ({ type: 'application/x-protobuf', body })),
      otlpSpans
        .chain((s) => mutatedBytes(JsonTraceSerializer.serializeRequest(s)!))
        .map((body) => ({ type: 'application/json', body })),
      jsonValue.map((v) => ({
        type: 'application/json',
        body: new TextEncoder().encode(JSON.stringify(v) ?? 'null'),
      })),
      fc.uint8Array({ maxLength: 2_000 }).map((body) => ({ type: 'application/x-protobuf', body })),
    );
    await fc.assert(
      fc.asyncProperty(otlpBody, async ({ type, body }) => {
        const answer = await send(tracesUrl, body, type);
        countStatus(answer.status);
        // The spans it held, as Chronicle's decoder reads them (from a Buffer, as Express hands it the body).
        let spans: { traceId: string; spanId: string }[];
        try {
          spans = decodeRequest(Buffer.from(body), type.includes('protobuf') ? 'protobuf' : 'json').spans;
        } catch {
          spans = [];
        }
        const ids = spans.map((s) => uuidV5(`otlp:${s.traceId}:${s.spanId}`));
        for (const id of ids) {
          sentWith.set(id, [
            ...(sentWith.get(id) ?? []),
            `${type} ${answer.status} ${answer.body.toString('hex').slice(0, 80)} body ${Buffer.from(body).toString('hex').slice(0, 200)}`,
          ]);
        }
        if (answer.status !== 200) {
          expectRefusalWithReason(answer);
          counts.refused++;
          return;
        }
        // All stored unless the answer says some were not.
        const partial = type.includes('protobuf')
          ? answer.body.length > 0
          : Number(
              (JSON.parse(answer.body.toString('utf8')) as { partialSuccess?: { rejectedSpans?: unknown } })
                .partialSuccess?.rejectedSpans ?? 0,
            ) > 0;
        for (const id of ids) (partial ? mayBeStored : fullyAccepted).add(id);
        counts.accepted += partial ? 0 : ids.length;
      }),
      { numRuns: otlpRequests },
    );
    const afterOtlp = await stored();
    expect(new Set(afterOtlp).size).toBe(afterOtlp.length);
    const afterSet = new Set(afterOtlp);
    expect([...fullyAccepted].filter((id) => !afterSet.has(id))).toEqual([]);
    const before = new Set(afterEvents);
    const unexpected = afterOtlp.filter(
      (id) => !before.has(id) && !fullyAccepted.has(id) && !mayBeStored.has(id),
    );
    if (unexpected.length > 0) {
      const rows = await env.db.pool.query<Record<string, unknown>>(
        `SELECT event_id::text, trace_id, source, event_type, left(metadata::text, 300) AS metadata
         FROM swarm_events WHERE event_id = ANY($1::uuid[])`,
        [unexpected],
      );
      const detail = rows.rows.map((r) => ({
        ...r,
        sent: sentWith.get(r.event_id as string) ?? 'never seen',
      }));
      expect(detail, 'events stored that no accepted request carried').toEqual([]);
    }

    expect(proc.running()).toBe(true);
    expect((await fetch(`${proc.url}/ready`)).status).toBe(200);
    recordResult(
      {
        scenario: 'Property-based fuzz: normalizer, POST /api/v1/events, POST /v1/traces',
        asserted:
          'Arbitrary and mutated JSON events, NDJSON, byte-mutated bodies, deep (to 200,000 levels) and huge ' +
          'values with NUL, lone surrogates, RTL, emoji, __proto__ and constructor; valid OTLP protobuf and ' +
          'JSON requests and their byte mutations. Every normalizer outcome is a storable event or a reject ' +
          'with a reason; every HTTP answer is 200 with per-item reasons or a 4xx saying why, never 5xx, ' +
          `never slower than ${REQUEST_TIMEOUT_MILLIS / 1000} s; the process stays up and ready; the events ` +
          'stored equal the sum the answers accepted, none twice, every tracked event id and every span of a ' +
          'fully accepted OTLP request among them, and nothing else.',
        figures: {
          normalizer_inputs: counts.normalized,
          http_requests: [...counts.status.values()].reduce((a, b) => a + b, 0),
          events_accepted_by_answers: acceptedByAnswers,
          events_tracked_by_id: expectedIds.size,
          otlp_spans_fully_accepted: fullyAccepted.size,
          items_refused_with_reason: counts.refused,
          statuses: [...counts.status]
            .sort(([a], [b]) => a - b)
            .map(([s, n]) => `${s}: ${n}`)
            .join(', '),
          peak_rss_mib: mib(proc.peakRssBytes()),
        },
      },
      started,
    );
  });
});
