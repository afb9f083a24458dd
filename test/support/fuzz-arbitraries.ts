/**
 * fast-check arbitraries for the fuzz tests: JSON values with every odd character (NUL, lone
 * surrogates, RTL overrides, emoji sequences, BOM, `__proto__` and `constructor` keys), huge and deep
 * values, valid events and their mutations, and byte-level mutations of any body.
 */
import fc from 'fast-check';

/** Strings that have broken parsers, databases or renderers before. */
const ODD_STRINGS = [
  '',
  '\u0000',
  'a\u0000b',
  '\\u0000',
  '\uD800',
  '\uDFFF',
  'x\uDBFFy',
  '\u202Eevil\u202C',
  '\u200F\u05D0\u05D1',
  '👩‍👩‍👧‍👦',
  '🏳️‍🌈',
  '\uFEFF',
  '\uFFFE\uFFFF',
  '\r\n\t\b\f\v',
  '"\\\'`',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '%s%n%x',
  "'; DROP TABLE swarm_events; --",
  '$1',
  '\u2028\u2029',
  'Ω≈ç√∫',
  '0',
  '-0',
  '1e309',
  'NaN',
  'null',
  'true',
];

/** A short string of any code units (lone surrogates included) or odd pieces. */
export const shortOddString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 3, arbitrary: fc.constantFrom(...ODD_STRINGS) },
  {
    weight: 2,
    arbitrary: fc.array(fc.constantFrom(...ODD_STRINGS), { maxLength: 6 }).map((a) => a.join('')),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
);

/** A short odd string, or a long run (up to 300,000 units: over the 256 KiB metadata limit). */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  { weight: 9, arbitrary: shortOddString },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('x', '\u0000', '€', '😀', '\uD800'), fc.integer({ min: 1_000, max: 300_000 }))
      .map(([c, n]) => c.repeat(n)),
  },
);

/** Numbers JSON can carry, and the edge ones. */
const oddNumber = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 2 ** 53, 2 ** 53 + 1, -(2 ** 63), 1e308, 5e-324, Number.MAX_SAFE_INTEGER),
);

/** Objects built with own properties (so `__proto__` is a key, not a prototype). */
function objectOf(entries: [string, unknown][]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries)
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

const key = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...ODD_STRINGS, 'trace_id', 'event_id', 'metadata') },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);

/** Any JSON value, with odd keys and strings. */
export const jsonValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    oddNumber,
    oddString,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.array(fc.tuple(key, tie('value')), { maxLength: 5 }).map(objectOf),
  ),
})).value;

/** A JSON value without long strings (a valid event's metadata stays far under its limit). */
export const smallJsonValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    oddNumber,
    shortOddString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.array(fc.tuple(key, tie('value')), { maxLength: 4 }).map(objectOf),
  ),
})).value;

/** A value nested `depth` times in arrays or objects. */
export const deepValue: fc.Arbitrary<unknown> = fc
  .tuple(fc.integer({ min: 100, max: 20_000 }), fc.boolean())
  .map(([depth, arrays]) => {
    let v: unknown = 'bottom';
    for (let i = 0; i < depth; i++) v = arrays ? [v] : { a: v };
    return v;
  });

const EVENT_TYPES = [
  'task.created',
  'task.assigned',
  'task.started',
  'task.completed',
  'task.failed',
  'task.timeout',
  'agent.heartbeat',
  'system.error',
  'dlq.entry',
];

/** A valid event; its event_id is a fresh UUID, so where it ends up can be tracked. */
export const validEvent = fc.record({
  event_id: fc.uuid({ version: 4 }),
  trace_id: fc.oneof(
    fc.uuid(),
    fc.string({ minLength: 1, maxLength: 30 }).map((s) => `fz-${s}`),
  ),
  source: fc.constantFrom('dispatch', 'agent-7', 'http'),
  event_type: fc.constantFrom(...EVENT_TYPES),
  timestamp: fc
    .date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
    .map((d) => d.toISOString()),
  metadata: fc.record(
    {
      agent_id: fc.constantFrom('a1', 'a2'),
      title: shortOddString,
      busy_ms: oddNumber,
      extra: smallJsonValue,
    },
    { requiredKeys: [] },
  ),
});

export type FuzzEvent = Record<string, unknown>;

/** A valid event with one field replaced, removed or given a neighbour: what a buggy producer sends. */
export const mutatedEvent: fc.Arbitrary<FuzzEvent> = fc
  .tuple(
    validEvent,
    fc.constantFrom(
      'event_id',
      'trace_id',
      'source',
      'event_type',
      'timestamp',
      'metadata',
      '__proto__',
      'constructor',
    ),
    fc.oneof(
      { weight: 3, arbitrary: jsonValue },
      { weight: 1, arbitrary: deepValue },
      { weight: 1, arbitrary: fc.constant(undefined) },
    ),
  )
  .map(([event, field, value]) => {
    const copy: FuzzEvent = objectOf(Object.entries(event));
    if (value === undefined) delete copy[field];
    else Object.defineProperty(copy, field, { value, enumerable: true, writable: true, configurable: true });
    return copy;
  });

/** Byte-level mutations of a body: flips, insertions, deletions, truncation, duplication of a slice. */
export function mutatedBytes(body: Uint8Array): fc.Arbitrary<Uint8Array> {
  const edit = fc.tuple(
    fc.constantFrom('flip', 'insert', 'delete', 'truncate', 'duplicate'),
    fc.nat(),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 1, max: 64 }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 8 }).map((edits) => {
    let bytes = Buffer.from(body);
    for (const [kind, at, byte, len] of edits) {
      const i = bytes.length === 0 ? 0 : at % bytes.length;
      if (kind === 'flip' && bytes.length > 0) bytes[i] = byte;
      else if (kind === 'insert')
        bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([byte]), bytes.subarray(i)]);
      else if (kind === 'delete') bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + len)]);
      else if (kind === 'truncate') bytes = bytes.subarray(0, i);
      else if (kind === 'duplicate') bytes = Buffer.concat([bytes.subarray(0, i + len), bytes.subarray(i)]);
    }
    return new Uint8Array(bytes);
  });
}
