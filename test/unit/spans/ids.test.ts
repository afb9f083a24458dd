import type * as NodeCrypto from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { otelSpanId, otelTraceId, unixNanos } from '../../../src/spans/ids.js';

/**
 * node:crypto passes through unchanged, except that a test can make every SHA-256 digest all zeros, to
 * reach the guards against the all-zero ids OTLP forbids (otherwise a 2^-64 or 2^-128 chance).
 */
const forced = vi.hoisted(() => ({ zeroDigest: false }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof NodeCrypto>();
  const createHash: typeof actual.createHash = (algorithm, options) => {
    const hash = actual.createHash(algorithm, options);
    if (!forced.zeroDigest) return hash;
    const digest = hash.digest.bind(hash);
    const zeros = () => Buffer.alloc(digest().length);
    return Object.assign(hash, { digest: zeros as unknown as typeof hash.digest });
  };
  return { ...actual, default: { ...actual, createHash }, createHash };
});

// The expected values come from the real node:crypto, not from the module under test.
const realCrypto = await vi.importActual<typeof NodeCrypto>('node:crypto');
const sha256 = (text: string): Buffer => realCrypto.createHash('sha256').update(text, 'utf8').digest();

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

afterEach(() => {
  forced.zeroDigest = false;
});

describe('otelTraceId', () => {
  it('otelTraceId - 32 lower-case hex digits are used as they are', () => {
    expect(otelTraceId('4bf92f3577b34da6a3ce929d0e0e4736')).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('otelTraceId - 32 hex digits in upper or mixed case are lower-cased', () => {
    expect(otelTraceId('4BF92F3577B34DA6A3CE929D0E0E4736')).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(otelTraceId('4bF92f3577B34da6A3ce929D0e0E4736')).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('otelTraceId - a UUID gives its 32 hex digits, lower-cased', () => {
    expect(otelTraceId('1b4e28ba-2fa1-41d2-883f-0016d3cca427')).toBe('1b4e28ba2fa141d2883f0016d3cca427');
    expect(otelTraceId('1B4E28BA-2FA1-41D2-883F-0016D3CCA427')).toBe('1b4e28ba2fa141d2883f0016d3cca427');
    // A UUID and its hyphen-less form land in the same OTel trace.
    expect(otelTraceId('1b4e28ba-2fa1-41d2-883f-0016d3cca427')).toBe(
      otelTraceId('1b4e28ba2fa141d2883f0016d3cca427'),
    );
  });

  it.each([
    'task-42',
    'trace-1',
    '',
    ' ',
    'ünïcødé-trace',
    '4bf92f3577b34da6a3ce929d0e0e473', // 31 hex digits
    '4bf92f3577b34da6a3ce929d0e0e47360', // 33 hex digits
    '4bf92f3577b34da6a3ce929d0e0e473g', // 32 characters, one not hex
    ' 4bf92f3577b34da6a3ce929d0e0e4736', // padded
    '4bf92f3577b34da6a3ce929d0e0e4736\n', // trailing newline
    '0x4bf92f3577b34da6a3ce929d0e0e47',
    '{1b4e28ba-2fa1-41d2-883f-0016d3cca427}', // braced UUID
    '1b4e28ba-2fa141d2-883f-0016d3cca427', // hyphens misplaced
    '1b4e28ba-2fa1-41d2-883f-0016d3cca42', // UUID one digit short
  ])('otelTraceId - %j is anything else: the first 16 bytes of SHA-256(trace_id)', (traceId) => {
    expect(otelTraceId(traceId)).toBe(sha256(traceId).subarray(0, 16).toString('hex'));
  });

  it('otelTraceId - the invalid all-zero id, as hex or as a UUID, is hashed instead of used', () => {
    expect(otelTraceId(ZERO_TRACE)).toBe(sha256(ZERO_TRACE).subarray(0, 16).toString('hex'));
    const zeroUuid = '00000000-0000-0000-0000-000000000000';
    expect(otelTraceId(zeroUuid)).toBe(sha256(zeroUuid).subarray(0, 16).toString('hex'));
    expect(otelTraceId(ZERO_TRACE)).not.toBe(ZERO_TRACE);
    expect(otelTraceId(zeroUuid)).not.toBe(ZERO_TRACE);
  });

  it('otelTraceId - is always 32 lower-case hex digits, never all zeros, and deterministic', () => {
    const inputs = [
      'task-42',
      ZERO_TRACE,
      '00000000-0000-0000-0000-000000000000',
      'ABCDEF0123456789ABCDEF0123456789',
      '1b4e28ba-2fa1-41d2-883f-0016d3cca427',
      ...Array.from({ length: 200 }, (_, i) => `trace-${i}`),
    ];
    for (const traceId of inputs) {
      const id = otelTraceId(traceId);
      expect(id).toMatch(HEX32);
      expect(id).not.toBe(ZERO_TRACE);
      expect(otelTraceId(traceId)).toBe(id);
    }
  });

  it('otelTraceId - different hashed trace ids give different OTel trace ids', () => {
    const ids = Array.from({ length: 500 }, (_, i) => otelTraceId(`task-${i}`));
    expect(new Set(ids).size).toBe(ids.length);
  });

  // A 2^-128 chance, but the rule is absolute: an all-zero trace id is invalid in OTLP.
  it('otelTraceId - never all zeros, even when the first 16 bytes of the hash are zero', () => {
    forced.zeroDigest = true;
    const id = otelTraceId('task-42');
    expect(id).toMatch(HEX32);
    expect(id).not.toBe(ZERO_TRACE);
  });
});

describe('otelSpanId', () => {
  it('otelSpanId - is 16 lower-case hex digits: the first 8 bytes of SHA-256 over trace_id, role and position', () => {
    // Ids are stored and exported: changing this derivation would re-send every span under new ids.
    for (const [traceId, role, position] of [
      ['task-42', 'root', 0],
      ['task-42', 'execution', 2],
      ['1b4e28ba-2fa1-41d2-883f-0016d3cca427', 'event', '5f0c1e8a-1d7b-4a57-9d3f-2f2a1c9b7e10'],
    ] as const) {
      const id = otelSpanId(traceId, role, position);
      expect(id).toMatch(HEX16);
      expect(id).toBe(sha256(`${traceId}\u0000${role}\u0000${position}`).subarray(0, 8).toString('hex'));
    }
  });

  it('otelSpanId - the same input always gives the same id; the position defaults to 0', () => {
    expect(otelSpanId('task-42', 'pickup', 3)).toBe(otelSpanId('task-42', 'pickup', 3));
    expect(otelSpanId('task-42', 'root')).toBe(otelSpanId('task-42', 'root', 0));
  });

  it('otelSpanId - different roles, positions or traces give different ids', () => {
    expect(otelSpanId('task-42', 'queue_wait', 1)).not.toBe(otelSpanId('task-42', 'pickup', 1));
    expect(otelSpanId('task-42', 'execution', 1)).not.toBe(otelSpanId('task-42', 'execution', 2));
    expect(otelSpanId('task-42', 'execution', 1)).not.toBe(otelSpanId('task-43', 'execution', 1));
    expect(otelSpanId('task-42', 'update', 1)).not.toBe(otelSpanId('task-42', 'update', 2));

    const roles = ['root', 'queue_wait', 'pickup', 'execution', 'event', 'update'];
    const ids: string[] = [];
    for (const traceId of ['task-1', 'task-2', '4bf92f3577b34da6a3ce929d0e0e4736'])
      for (const role of roles)
        for (let position = 0; position <= 40; position++) ids.push(otelSpanId(traceId, role, position));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('otelSpanId - the parts cannot run into each other', () => {
    expect(otelSpanId('ab', 'c', 0)).not.toBe(otelSpanId('a', 'bc', 0));
    expect(otelSpanId('a', 'b', 12)).not.toBe(otelSpanId('a', 'b1', 2));
    expect(otelSpanId('a', 'b', '')).not.toBe(otelSpanId('a', 'b', 0));
  });

  it('otelSpanId - is never all zeros, even when the first 8 bytes of the hash are zero', () => {
    forced.zeroDigest = true;
    const id = otelSpanId('task-42', 'root', 0);
    expect(id).toMatch(HEX16);
    expect(id).not.toBe(ZERO_SPAN);
    // The forced digest really is all zeros: the guard set the last byte.
    expect(id).toBe('0000000000000001');
  });
});

describe('unixNanos', () => {
  it('unixNanos - milliseconds become a nanosecond decimal string (ms × 1e6)', () => {
    expect(unixNanos(0)).toBe('0');
    expect(unixNanos(1)).toBe('1000000');
    const millis = Date.parse('2026-03-01T10:00:00.123Z');
    // Beyond 2^53: exact only in BigInt arithmetic.
    expect(unixNanos(millis)).toBe(`${millis}000000`);
    expect(unixNanos(millis)).toBe((BigInt(millis) * 1_000_000n).toString());
  });

  it('unixNanos - an RFC 3339 string and a Date give the same as their milliseconds', () => {
    const iso = '2026-03-01T10:00:00.123Z';
    const millis = Date.parse(iso);
    expect(unixNanos(iso)).toBe(unixNanos(millis));
    expect(unixNanos(new Date(millis))).toBe(unixNanos(millis));
    expect(unixNanos('2026-03-01T12:00:00.123+02:00')).toBe(unixNanos(millis));
  });

  it('unixNanos - fractional milliseconds are rounded to whole milliseconds; times before 1970 are negative', () => {
    expect(unixNanos(1.4)).toBe('1000000');
    expect(unixNanos(1.6)).toBe('2000000');
    expect(unixNanos(-1)).toBe('-1000000');
  });
});
