/**
 * What the fuzz tests require of Chronicle's answer to any input: accepted as something Postgres can
 * store, or refused with a reason, never an exception.
 */
import { expect } from 'vitest';
import {
  type InputContext,
  type Normalized,
  mayNeedCleaning,
  normalizeEvent,
  parseJson,
} from '../../src/events/normalize.js';
import type { CanonicalEvent } from '../../src/events/schema.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every string (keys included) of a JSON value; stops at nothing, so only for normalized values. */
function* strings(value: unknown): Generator<string> {
  if (typeof value === 'string') yield value;
  else if (Array.isArray(value)) for (const v of value) yield* strings(v);
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      yield k;
      yield* strings(v);
    }
  }
}

/** An accepted event is one Postgres stores as it is: a UUID, bounded text, no NUL, no lone surrogate. */
export function expectStorable(event: CanonicalEvent): void {
  expect(event.event_id).toMatch(UUID);
  expect(event.trace_id.length).toBeGreaterThan(0);
  expect(event.trace_id.length).toBeLessThanOrEqual(256);
  expect(Number.isNaN(Date.parse(event.timestamp))).toBe(false);
  expect(
    event.metadata !== null && typeof event.metadata === 'object' && !Array.isArray(event.metadata),
  ).toBe(true);
  for (const s of strings(event)) {
    expect(s.includes('\u0000')).toBe(false);
    expect(s.isWellFormed()).toBe(true);
  }
}

/** A refusal names a reject code and says why. */
export function expectReason(reason: unknown, detail: unknown): void {
  expect(reason).toMatch(/^[a-z][a-z0-9_]*$/);
  expect(typeof detail).toBe('string');
}

/**
 * normalizeEvent as its callers (HTTP ingest, the JetStream consumer) run it: a payload nested so deeply
 * that walking it overflows the stack becomes an `invalid_event` reject there; any other exception is a bug.
 */
export function normalizeLikeCallers(value: unknown, ctx: InputContext): Normalized<CanonicalEvent> {
  try {
    return normalizeEvent(value, ctx);
  } catch (err) {
    if (err instanceof RangeError && /call stack/.test(err.message)) {
      return { ok: false, reason: 'invalid_event', detail: `payload cannot be normalized: ${err.message}` };
    }
    throw err;
  }
}

/** Runs raw JSON text through parse and normalize as a NATS message would be; returns the outcome. */
export function normalizeText(raw: string, ctx: InputContext): { ok: boolean } {
  const parsed = parseJson(raw);
  if (!parsed.ok) {
    expectReason(parsed.reason, parsed.detail);
    return parsed;
  }
  const result = normalizeLikeCallers(parsed.value, {
    ...ctx,
    cleanText: !mayNeedCleaning(raw),
    payloadChars: raw.length,
  });
  if (result.ok) expectStorable(result.value);
  else expectReason(result.reason, result.detail);
  return result;
}
