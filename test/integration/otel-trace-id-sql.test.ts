import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRandom } from '../../src/simulate/random.js';
import { otelTraceId } from '../../src/spans/ids.js';
import { type TestDatabase, createTestDatabase } from '../support/db.js';
import { describeWithPostgres } from '../support/services.js';

const HEX = '0123456789abcdef';

/** Random text over a mix of alphabets (ASCII, hex, punctuation, accents, CJK, emoji), 1 to 80 characters. */
function randomStrings(count: number, seed: number): string[] {
  const rnd = createRandom(seed);
  const alphabets = [
    'abcdefghijklmnopqrstuvwxyz0123456789-_.:/',
    '0123456789abcdefABCDEF-',
    ` !"#$%&'()*+,;<=>?@[\\]^\`{|}~\t\n`,
    'éàüñçßøÅΩЖ',
    '任务代理追踪日本語한국어',
    '😀🚀🧪👩‍💻🏳️‍🌈',
  ];
  return Array.from({ length: count }, () => {
    const length = rnd.int(1, 80);
    let s = '';
    while ([...s].length < length) s += rnd.pick([...rnd.pick(alphabets)]);
    return s;
  });
}

function hex(length: number, rnd: ReturnType<typeof createRandom>): string {
  return Array.from({ length }, () => rnd.pick([...HEX])).join('');
}

/** Every kind of id the function distinguishes, and the near misses around each kind. */
function idsOfEveryKind(): string[] {
  const rnd = createRandom(10);
  const hex32 = hex(32, rnd);
  const uuid = randomUUID();
  return [
    hex32,
    hex32.toUpperCase(),
    `${hex32.slice(0, 16).toUpperCase()}${hex32.slice(16)}`,
    '0'.repeat(32),
    '0'.repeat(31) + '1',
    'F'.repeat(32),
    uuid,
    uuid.toUpperCase(),
    '00000000-0000-0000-0000-000000000000',
    '00000000-0000-0000-0000-000000000001',
    'ABCDEF01-2345-6789-ABCD-EF0123456789',
    // Near misses: every one of these is hashed.
    hex32.slice(0, 31),
    `${hex32}0`,
    `${hex32}\n`,
    `\n${hex32}`,
    ` ${hex32}`,
    `${hex32.slice(0, 31)}g`,
    uuid.replace(/-/g, '').slice(0, 31),
    `{${uuid}}`,
    `${uuid} `,
    uuid.slice(0, 35),
    `${uuid}0`,
    uuid.replace(/-/g, '_'),
    `${uuid.slice(0, 8)}${uuid.slice(9)}`,
    // Other text.
    'task-1',
    'chronicle',
    'T',
    ' ',
    "it's a task",
    'say "hi"',
    'back\\slash',
    'tab\tand\nnewline',
    'per%cent_under',
    'ünïcödé',
    '任务-42',
    '日本語のタスク',
    '🚀 launch 🧪',
    '👩‍💻',
    'x'.repeat(256),
    '😀'.repeat(256),
    'é'.repeat(256),
  ];
}

describeWithPostgres('chronicle_otel_trace_id - the SQL twin of otelTraceId', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  async function sqlIds(ids: readonly string[]): Promise<string[]> {
    const { rows } = await db.pool.query<{ otel: string }>(
      `SELECT chronicle_otel_trace_id(id) AS otel FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n) ORDER BY n`,
      [ids],
    );
    return rows.map((r) => r.otel);
  }

  it('chronicle_otel_trace_id - equals otelTraceId on hex, UUID, all-zero, near-miss, unicode and long ids', async () => {
    const ids = idsOfEveryKind();
    const expected = ids.map(otelTraceId);
    expect(await sqlIds(ids)).toEqual(expected);
    // The cases are what they claim: hex and UUIDs kept, the zero ids and near misses hashed.
    expect(expected[0]).toBe(ids[0]);
    expect(expected[1]).toBe(ids[0]);
    expect(expected[3]).not.toBe('0'.repeat(32));
    expect(expected[6]).toBe(ids[6]!.replace(/-/g, ''));
    expect(expected[8]).not.toBe('0'.repeat(32));
    for (const id of expected) expect(id).toMatch(/^[0-9a-f]{32}$/);
  });

  it('chronicle_otel_trace_id - equals otelTraceId on 500 random strings', async () => {
    const ids = randomStrings(500, 2026);
    expect(new Set(ids).size).toBeGreaterThan(490);
    expect(await sqlIds(ids)).toEqual(ids.map(otelTraceId));
  });

  it('chronicle_otel_trace_id - is IMMUTABLE, so an index or a constant-folded filter can use it', async () => {
    const { rows } = await db.pool.query<{ provolatile: string; proparallel: string }>(
      `SELECT provolatile, proparallel FROM pg_proc WHERE proname = 'chronicle_otel_trace_id'`,
    );
    expect(rows).toEqual([{ provolatile: 'i', proparallel: 's' }]);
    // An IMMUTABLE function is accepted in an index expression.
    await db.pool.query('CREATE TABLE otel_ids (id text)');
    await db.pool.query('CREATE INDEX ON otel_ids (chronicle_otel_trace_id(id))');
  });
});
