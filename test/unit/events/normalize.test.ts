import { describe, expect, it } from 'vitest';
import {
  mayNeedCleaning,
  type InputContext,
  eventTypeFromSubject,
  makeReject,
  normalizeEvent,
  parseJson,
  stripNul,
} from '../../../src/events/normalize.js';
import type { CanonicalEvent } from '../../../src/events/schema.js';
import { CHRONICLE_NAMESPACE, isUuid, uuidV5 } from '../../../src/events/uuid.js';

const MESSAGE_TIME = Date.parse('2026-02-12T09:00:00.000Z');
const RECEIVE_TIME = Date.parse('2026-02-12T10:00:00.000Z');
const UUID = '1b4e28ba-2fa1-41d2-883f-0016d3cca427';
const UUID_V5 = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const nats = (overrides: Partial<InputContext> = {}): InputContext => ({
  origin: 'nats',
  subject: 'swarm.task.completed',
  stream: 'TASK_EVENTS',
  seq: 42,
  defaultTimeMillis: MESSAGE_TIME,
  ...overrides,
});
const http = (): InputContext => ({ origin: 'http', defaultTimeMillis: RECEIVE_TIME });

const event = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  event_id: UUID,
  trace_id: 'trace-1',
  source: 'orchestrator',
  event_type: 'task.completed',
  timestamp: '2026-02-12T14:30:00.000Z',
  metadata: { agent: 'agent-1' },
  ...overrides,
});
const without = (...fields: string[]): Record<string, unknown> => {
  const e = event();
  for (const f of fields) delete e[f];
  return e;
};

function accepted(payload: unknown, ctx: InputContext = nats()): CanonicalEvent {
  const result = normalizeEvent(payload, ctx);
  if (!result.ok)
    throw new Error(`expected the event to be accepted, got ${result.reason}: ${result.detail}`);
  return result.value;
}

function rejectReason(payload: unknown, ctx: InputContext = nats()): string {
  const result = normalizeEvent(payload, ctx);
  if (result.ok) throw new Error(`expected a reject, got ${JSON.stringify(result.value)}`);
  expect(result.detail).not.toBe('');
  return result.reason;
}

describe('normalizeEvent - event_id', () => {
  it('keeps a UUID event_id, lower-cased, without _source_event_id', () => {
    const e = accepted(event({ event_id: UUID.toUpperCase() }));
    expect(e.event_id).toBe(UUID);
    expect(e.metadata).not.toHaveProperty('_source_event_id');
  });

  it('maps a non-UUID event_id to a deterministic v5 UUID and keeps the original as _source_event_id', () => {
    const a = accepted(event({ event_id: 'evt-123' }));
    const b = accepted(event({ event_id: 'evt-123' }), http());
    expect(a.event_id).toMatch(UUID_V5);
    expect(a.event_id).toBe(uuidV5('evt-123'));
    expect(b.event_id).toBe(a.event_id);
    expect(a.metadata).toEqual({ agent: 'agent-1', _source_event_id: 'evt-123' });
    expect(accepted(event({ event_id: 'evt-124' })).event_id).not.toBe(a.event_id);
  });

  it('treats a UUID in braces or without dashes as a non-UUID string', () => {
    for (const id of [`{${UUID}}`, UUID.replaceAll('-', '')]) {
      const e = accepted(event({ event_id: id }));
      expect(e.event_id).toBe(uuidV5(id));
      expect(e.metadata._source_event_id).toBe(id);
    }
  });

  it('maps a long non-UUID event_id (2,000 characters) to a v5 UUID like any other string', () => {
    const id = 'x'.repeat(2_000);
    expect(accepted(event({ event_id: id })).event_id).toBe(uuidV5(id));
  });

  it('gives a JetStream message without event_id a deterministic UUID of (stream, sequence)', () => {
    const a = accepted(without('event_id'));
    const redelivered = accepted(without('event_id'));
    expect(a.event_id).toMatch(UUID_V5);
    expect(redelivered.event_id).toBe(a.event_id);
    expect(a.metadata).not.toHaveProperty('_source_event_id');
    expect(accepted(without('event_id'), nats({ seq: 43 })).event_id).not.toBe(a.event_id);
    expect(accepted(without('event_id'), nats({ stream: 'SYSTEM_EVENTS' })).event_id).not.toBe(a.event_id);
  });

  it('treats an empty or null event_id as missing', () => {
    const expected = accepted(without('event_id')).event_id;
    expect(accepted(event({ event_id: '' })).event_id).toBe(expected);
    expect(accepted(event({ event_id: null })).event_id).toBe(expected);
  });

  it('gives an HTTP event without event_id a random UUID', () => {
    const a = accepted(without('event_id'), http());
    const b = accepted(without('event_id'), http());
    expect(a.event_id).toMatch(UUID_V4);
    expect(b.event_id).toMatch(UUID_V4);
    expect(a.event_id).not.toBe(b.event_id);
  });

  it('rejects an event_id that is not a string with invalid_event_id', () => {
    expect(rejectReason(event({ event_id: 42 }))).toBe('invalid_event_id');
    expect(rejectReason(event({ event_id: { id: 1 } }))).toBe('invalid_event_id');
  });
});

describe('normalizeEvent - trace_id', () => {
  it('rejects a missing trace_id with missing_trace_id', () => {
    expect(rejectReason(without('trace_id'))).toBe('missing_trace_id');
  });

  it('rejects an empty trace_id with invalid_trace_id', () => {
    expect(rejectReason(event({ trace_id: '' }))).toBe('invalid_trace_id');
  });

  it('rejects a trace_id that is not a string with invalid_trace_id', () => {
    for (const trace_id of [42, null, true, { id: 'x' }, ['x']]) {
      expect(rejectReason(event({ trace_id })), JSON.stringify(trace_id)).toBe('invalid_trace_id');
    }
  });

  it('accepts a trace_id of 256 characters and rejects one of 257 with invalid_trace_id', () => {
    expect(accepted(event({ trace_id: 't'.repeat(256) })).trace_id).toHaveLength(256);
    expect(rejectReason(event({ trace_id: 't'.repeat(257) }))).toBe('invalid_trace_id');
  });

  it('strips NUL characters from the trace_id', () => {
    expect(accepted(event({ trace_id: 'tr\u0000ace' })).trace_id).toBe('trace');
  });

  it('rejects a trace_id made only of NUL characters, which would be empty once stripped', () => {
    expect(rejectReason(event({ trace_id: '\u0000\u0000' }))).toBe('invalid_trace_id');
  });
});

describe('normalizeEvent - source', () => {
  it('keeps a given source', () => {
    expect(accepted(event({ source: 'agent-7' })).source).toBe('agent-7');
  });

  it('defaults a missing source to the NATS subject', () => {
    expect(accepted(without('source')).source).toBe('swarm.task.completed');
    expect(accepted(event({ source: '' })).source).toBe('swarm.task.completed');
    expect(accepted(event({ source: null })).source).toBe('swarm.task.completed');
  });

  it("defaults a missing source to 'http' for HTTP ingest", () => {
    expect(accepted(without('source'), http()).source).toBe('http');
  });

  it('rejects a source that is not a string, or longer than 256 characters, with invalid_source', () => {
    expect(rejectReason(event({ source: 7 }))).toBe('invalid_source');
    expect(accepted(event({ source: 's'.repeat(256) })).source).toHaveLength(256);
    expect(rejectReason(event({ source: 's'.repeat(257) }))).toBe('invalid_source');
  });
});

describe('normalizeEvent - event_type', () => {
  it('keeps a given event_type even when the subject names another', () => {
    expect(accepted(event({ event_type: 'task.started' })).event_type).toBe('task.started');
  });

  it('derives a missing event_type from the subject', () => {
    expect(accepted(without('event_type')).event_type).toBe('task.completed');
    expect(accepted(event({ event_type: '' }), nats({ subject: 'swarm.agent.heartbeat' })).event_type).toBe(
      'agent.heartbeat',
    );
    expect(
      accepted(without('event_type'), nats({ subject: 'swarm.system.chronicle.write_failure' })).event_type,
    ).toBe('system.chronicle.write_failure');
  });

  it('rejects with missing_event_type when the event_type cannot be derived', () => {
    expect(rejectReason(without('event_type'), http())).toBe('missing_event_type');
    expect(rejectReason(without('event_type'), nats({ subject: 'swarm.task' }))).toBe('missing_event_type');
    expect(rejectReason(without('event_type'), nats({ subject: undefined }))).toBe('missing_event_type');
  });

  it('rejects an event_type that is not a string with invalid_event_type', () => {
    expect(rejectReason(event({ event_type: ['task.completed'] }))).toBe('invalid_event_type');
  });
});

describe('eventTypeFromSubject', () => {
  it('drops the swarm prefix and keeps the rest of the subject', () => {
    expect(eventTypeFromSubject('swarm.task.completed')).toBe('task.completed');
    expect(eventTypeFromSubject('swarm.lifecycle.agent.spawned')).toBe('lifecycle.agent.spawned');
  });

  it('gives nothing for a subject too short, with empty tokens, or with wildcards', () => {
    for (const subject of [
      undefined,
      '',
      'swarm',
      'swarm.task',
      'swarm..completed',
      'swarm.task.*',
      'swarm.>',
    ]) {
      expect(eventTypeFromSubject(subject), String(subject)).toBeUndefined();
    }
  });
});

describe('normalizeEvent - timestamp', () => {
  it('stores an RFC 3339 timestamp with an offset as UTC with milliseconds', () => {
    expect(accepted(event({ timestamp: '2026-02-12T16:30:00+02:00' })).timestamp).toBe(
      '2026-02-12T14:30:00.000Z',
    );
    expect(accepted(event({ timestamp: '2026-02-12T09:00:00.25-05:30' })).timestamp).toBe(
      '2026-02-12T14:30:00.250Z',
    );
  });

  it('accepts lower-case t and z, and truncates digits beyond milliseconds', () => {
    expect(accepted(event({ timestamp: '2026-02-12t14:30:00.123456789z' })).timestamp).toBe(
      '2026-02-12T14:30:00.123Z',
    );
  });

  it('accepts epoch milliseconds', () => {
    expect(accepted(event({ timestamp: Date.parse('2026-02-12T14:30:00.007Z') })).timestamp).toBe(
      '2026-02-12T14:30:00.007Z',
    );
  });

  it("uses the JetStream message's time when the timestamp is missing or null", () => {
    expect(accepted(without('timestamp')).timestamp).toBe('2026-02-12T09:00:00.000Z');
    expect(accepted(event({ timestamp: null })).timestamp).toBe('2026-02-12T09:00:00.000Z');
  });

  it('uses the receive time for an HTTP event without timestamp', () => {
    expect(accepted(without('timestamp'), http()).timestamp).toBe('2026-02-12T10:00:00.000Z');
  });

  it('rejects impossible dates, hour 24, garbage and other types with invalid_timestamp', () => {
    for (const timestamp of [
      '2026-02-30T10:00:00Z',
      '2026-02-12T24:00:00Z',
      'yesterday',
      '',
      '2026-02-12',
      '2026-02-12T14:30:00',
      true,
      { at: 1 },
    ]) {
      expect(rejectReason(event({ timestamp })), JSON.stringify(timestamp)).toBe('invalid_timestamp');
    }
  });
});

describe('normalizeEvent - metadata', () => {
  it('treats missing or null metadata as {}', () => {
    expect(accepted(without('metadata')).metadata).toEqual({});
    expect(accepted(event({ metadata: null })).metadata).toEqual({});
  });

  it('rejects metadata that is not an object with invalid_metadata', () => {
    for (const metadata of [['a'], 'text', 42, true]) {
      expect(rejectReason(event({ metadata })), JSON.stringify(metadata)).toBe('invalid_metadata');
    }
  });

  it('strips NUL characters from keys and values at every depth', () => {
    const e = accepted(
      event({
        metadata: {
          'ke\u0000y': 'va\u0000lue',
          nested: { list: ['a\u0000', 1, null], 'x\u0000': { y: '\u0000' } },
        },
      }),
    );
    expect(e.metadata).toEqual({ key: 'value', nested: { list: ['a', 1, null], x: { y: '' } } });
    expect(JSON.stringify(e)).not.toContain('\\u0000');
  });

  it('accepts metadata of exactly 256 KiB serialized and rejects one byte more with metadata_too_large', () => {
    const limit = 256 * 1024;
    const ofSize = (bytes: number) => ({ k: 'x'.repeat(bytes - '{"k":""}'.length) });
    expect(Buffer.byteLength(JSON.stringify(ofSize(limit)))).toBe(limit);
    expect(accepted(event({ metadata: ofSize(limit) })).metadata).toEqual(ofSize(limit));
    expect(rejectReason(event({ metadata: ofSize(limit + 1) }))).toBe('metadata_too_large');
  });

  it('measures the metadata size in UTF-8 bytes, not characters', () => {
    const chars = 140 * 1024; // 140 Ki characters, 280 KiB in UTF-8
    expect(rejectReason(event({ metadata: { k: 'é'.repeat(chars) } }))).toBe('metadata_too_large');
  });

  it('still measures metadata whose source text is short but serializes longer (numbers like 1e20)', () => {
    // 13,000 × "1e20," is 65,000 characters of JSON; serialized, each number is 21 digits: > 256 KiB.
    const raw = `{"trace_id":"t","event_type":"task.created","metadata":{"n":[${Array(13_000).fill('1e20').join(',')}]}}`;
    expect(raw.length).toBeLessThan(70_000);
    expect(rejectReason(JSON.parse(raw), nats({ payloadChars: raw.length }))).toBe('metadata_too_large');
    // A source text small enough to skip the measurement cannot hold metadata over the limit.
    const small = `{"trace_id":"t","event_type":"task.created","metadata":{"n":[${Array(8_000).fill('1e20').join(',')}]}}`;
    expect(small.length * 6 + 64).toBeLessThanOrEqual(256 * 1024);
    expect(
      Buffer.byteLength(JSON.stringify((JSON.parse(small) as { metadata: unknown }).metadata)),
    ).toBeLessThan(256 * 1024);
    expect(accepted(JSON.parse(small), nats({ payloadChars: small.length })).metadata.n).toHaveLength(8_000);
  });

  it('keeps a timestamp already in canonical form as it is, and canonicalizes any other', () => {
    expect(accepted(event({ timestamp: '2026-02-12T14:30:00.123Z' })).timestamp).toBe(
      '2026-02-12T14:30:00.123Z',
    );
    expect(accepted(event({ timestamp: '2026-02-12T15:30:00.1+01:00' })).timestamp).toBe(
      '2026-02-12T14:30:00.100Z',
    );
    expect(rejectReason(event({ timestamp: '2026-02-30T14:30:00.000Z' }))).toBe('invalid_timestamp');
  });

  it('keeps a top-level "__proto__" field under metadata._extra as data', () => {
    const payload = JSON.parse('{"trace_id":"t","event_type":"task.created","__proto__":{"x":1}}') as unknown;
    const metadata = accepted(payload).metadata;
    expect(Object.keys(metadata._extra as object)).toEqual(['__proto__']);
    expect(JSON.stringify(metadata)).toBe('{"_extra":{"__proto__":{"x":1}}}');
  });

  it('keeps unknown top-level fields under metadata._extra', () => {
    expect(accepted(event({ priority: 3, tags: ['a'] })).metadata).toEqual({
      agent: 'agent-1',
      _extra: { priority: 3, tags: ['a'] },
    });
  });
});

describe('normalizeEvent - payloads', () => {
  it('rejects a payload that is not an object with not_object', () => {
    for (const payload of [[event()], 'event', 42, null, true]) {
      expect(rejectReason(payload), JSON.stringify(payload)).toBe('not_object');
    }
  });

  it('gives the same canonical event for the same NATS message every time', () => {
    const payload = without('event_id', 'timestamp', 'source', 'event_type');
    expect(accepted(payload)).toEqual(accepted(structuredClone(payload)));
  });
});

describe('parseJson', () => {
  it('parses JSON of any type', () => {
    expect(parseJson('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseJson('[1]')).toEqual({ ok: true, value: [1] });
  });

  it('rejects input that is not JSON with invalid_json', () => {
    for (const raw of ['{', '', 'not json', "{'a':1}"]) {
      expect(parseJson(raw), raw).toMatchObject({ ok: false, reason: 'invalid_json' });
    }
  });
});

describe('stripNul', () => {
  it('leaves values without NUL characters unchanged', () => {
    const value = { a: 'text', b: [1, true, null], c: { d: 'e' } };
    expect(stripNul(value)).toEqual(value);
  });
});

describe('makeReject', () => {
  const LIMIT = 64 * 1024;
  const ctx = { origin: 'nats' as const, subject: 'swarm.task.completed' };

  it('keeps a payload up to 64 KiB whole and records where it came from and why', () => {
    const raw = 'a'.repeat(LIMIT);
    expect(makeReject(raw, ctx, 'invalid_timestamp', 'bad time', 'nats:TASK_EVENTS:7')).toEqual({
      origin: 'nats',
      subject: 'swarm.task.completed',
      reason: 'invalid_timestamp',
      detail: 'bad time',
      payload: raw,
      payloadBytes: LIMIT,
      rejectKey: 'nats:TASK_EVENTS:7',
    });
  });

  it('defaults a missing subject to null', () => {
    expect(makeReject('{}', { origin: 'http' }, 'not_object', 'x', null)).toMatchObject({
      origin: 'http',
      subject: null,
      rejectKey: null,
    });
  });

  it('truncates a larger payload to 64 KiB and records its full size', () => {
    const raw = 'a'.repeat(LIMIT + 100);
    const reject = makeReject(raw, ctx, 'r', 'd', null);
    expect(reject.payload).toBe('a'.repeat(LIMIT));
    expect(reject.payloadBytes).toBe(LIMIT + 100);
  });

  it('cuts on a character boundary, never leaving part of a multi-byte character', () => {
    for (const char of ['é', '€', '😀']) {
      const width = Buffer.byteLength(char);
      for (let before = 1; before < width; before++) {
        // The character starts `before` bytes ahead of the limit, so the cut falls inside it.
        const prefix = 'a'.repeat(LIMIT - before);
        const reject = makeReject(`${prefix}${char}tail`, ctx, 'r', 'd', null);
        expect(reject.payload, `${char} cut after ${before} bytes`).toBe(prefix);
      }
      const whole = 'a'.repeat(LIMIT - width);
      expect(makeReject(`${whole}${char}tail`, ctx, 'r', 'd', null).payload).toBe(`${whole}${char}`);
    }
  });

  it('keeps a complete U+FFFD that ends right at the limit', () => {
    const prefix = `${'a'.repeat(LIMIT - 3)}\uFFFD`;
    expect(makeReject(`${prefix}tail`, ctx, 'r', 'd', null).payload).toBe(prefix);
  });

  it('removes NUL characters from the stored payload', () => {
    expect(makeReject('{"a":"\u0000"}', ctx, 'r', 'd', null).payload).toBe('{"a":""}');
  });
});

describe('uuidV5', () => {
  it('matches the RFC test vector for www.example.com in the DNS namespace', () => {
    expect(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe(
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    );
  });

  it("uses Chronicle's fixed namespace by default and sets the version and variant bits", () => {
    expect(uuidV5('evt-1')).toBe(uuidV5('evt-1', CHRONICLE_NAMESPACE));
    expect(uuidV5('evt-1')).toMatch(UUID_V5);
    expect(uuidV5('evt-1')).not.toBe(uuidV5('evt-2'));
  });

  it('recognises UUIDs in either case and nothing else', () => {
    expect(isUuid(UUID)).toBe(true);
    expect(isUuid(UUID.toUpperCase())).toBe(true);
    expect(isUuid(`${UUID}0`)).toBe(false);
    expect(isUuid(`{${UUID}}`)).toBe(false);
    expect(isUuid('')).toBe(false);
  });
});

describe('mayNeedCleaning - the scan that lets clean payloads skip the cleaning pass', () => {
  it('flags a raw NUL, an escaped NUL and an escaped surrogate, and passes ordinary text', () => {
    expect(mayNeedCleaning('{"a":"x\u0000"}')).toBe(true);
    expect(mayNeedCleaning(JSON.stringify({ a: 'x\u0000' }))).toBe(true);
    expect(mayNeedCleaning('{"a":"\\ud83d"}')).toBe(true);
    expect(mayNeedCleaning('{"a":"\\uD83D\\uDE00"}')).toBe(true);
    expect(mayNeedCleaning(JSON.stringify({ a: 'plain', b: 'é 😀' }))).toBe(false);
  });

  it('a payload marked clean normalizes exactly like the cleaning pass would', () => {
    const payload = {
      event_id: 'e-1',
      trace_id: 't',
      event_type: 'task.created',
      metadata: { title: 'é 😀' },
    };
    const ctx = { origin: 'http' as const, defaultTimeMillis: 0 };
    expect(normalizeEvent(payload, { ...ctx, cleanText: true })).toEqual(normalizeEvent(payload, ctx));
  });
});
