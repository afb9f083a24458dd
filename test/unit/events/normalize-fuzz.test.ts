import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { InputContext } from '../../../src/events/normalize.js';
import {
  deepValue,
  jsonValue,
  mutatedBytes,
  mutatedEvent,
  validEvent,
} from '../../support/fuzz-arbitraries.js';
import {
  expectReason,
  expectStorable,
  normalizeLikeCallers,
  normalizeText,
} from '../../support/fuzz-checks.js';

const nats = (seq: number): InputContext => ({
  origin: 'nats',
  subject: 'swarm.task.created',
  stream: 'TASK_EVENTS',
  seq,
  defaultTimeMillis: Date.parse('2026-02-12T09:00:00.000Z'),
});

// The reliability suite (test/reliability/fuzz.test.ts) runs these with many more inputs, and over HTTP.
describe('normalizer - property-based fuzz', () => {
  it('any JSON value: a storable event or a reject with a reason, never an exception', () => {
    fc.assert(
      fc.property(fc.oneof(jsonValue, mutatedEvent, deepValue), fc.nat(), (value, seq) => {
        const result = normalizeLikeCallers(value, nats(seq));
        if (result.ok) expectStorable(result.value);
        else expectReason(result.reason, result.detail);
      }),
      { numRuns: 300 },
    );
  });

  it('the same message twice gives the same outcome (NATS input is deterministic)', () => {
    fc.assert(
      fc.property(fc.oneof(mutatedEvent, validEvent), fc.nat(), (value, seq) => {
        let text: string;
        try {
          text = JSON.stringify(value);
        } catch {
          return fc.pre(false); // too deep for JSON.stringify itself: no message could carry it
        }
        expect(normalizeLikeCallers(JSON.parse(text), nats(seq))).toEqual(
          normalizeLikeCallers(JSON.parse(text), nats(seq)),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('valid events are accepted; their UTF-8 bytes, mutated, are accepted or refused with a reason', () => {
    const withBytes = validEvent.chain((event) =>
      mutatedBytes(Buffer.from(JSON.stringify(event))).map((bytes) => ({ event, bytes })),
    );
    fc.assert(
      fc.property(withBytes, fc.nat(), ({ event, bytes }, seq) => {
        expect(normalizeText(JSON.stringify(event), nats(seq)).ok).toBe(true);
        // As NATS and HTTP input arrives: bytes decoded as UTF-8 (invalid sequences become U+FFFD).
        normalizeText(Buffer.from(bytes).toString('utf8'), nats(seq));
      }),
      { numRuns: 300 },
    );
  });
});
