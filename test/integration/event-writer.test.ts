import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { normalizeDlq } from '../../src/events/dlq.js';
import { makeReject, normalizeEvent, parseJson } from '../../src/events/normalize.js';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { createEventWriter, type EventWriter } from '../../src/sinks/postgres/event-writer.js';
import { createPool } from '../../src/db/pool.js';
import type { RecordInput, WriteRecord } from '../../src/pipeline/records.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { describeWithPostgres } from '../support/services.js';

const input: RecordInput = { origin: 'nats', subject: 'swarm.task.created', key: null };

function event(traceId: string, type = 'task.created', metadata: Record<string, unknown> = {}): WriteRecord {
  const e: CanonicalEvent = {
    event_id: randomUUID(),
    trace_id: traceId,
    source: 'test',
    event_type: type,
    timestamp: new Date().toISOString(),
    metadata,
  };
  return { kind: 'event', input, event: e };
}

describeWithPostgres('event writer - edge cases the database could refuse', () => {
  let db: TestDatabase;
  let writer: EventWriter;

  beforeAll(async () => {
    db = await createTestDatabase();
    writer = createEventWriter({ pool: db.pool, logger: silentLogger() });
  });
  afterAll(async () => db.drop());
  beforeEach(async () => {
    await db.pool.query(
      'TRUNCATE swarm_events, swarm_event_ids, swarm_traces, agent_metrics, swarm_dlq, chronicle_rejects',
    );
  });

  it('two copies of one dead-letter entry in a batch store one row, and a recovered copy marks it recovered', async () => {
    const ctx = { origin: 'nats' as const, subject: 'dlq.tasks', defaultTimeMillis: Date.now() };
    const entry = { dlq_id: 'd-1', original_payload: { trace_id: 't-dlq' }, reason: 'no_agent' };
    const first = normalizeDlq(entry, ctx);
    const recovered = normalizeDlq({ ...entry, recovered: true }, ctx);
    if (!first.ok || !recovered.ok) throw new Error('fixture did not normalize');
    const records: WriteRecord[] = [first, first, recovered].map((d) => ({
      kind: 'dlq',
      input: { ...input, subject: 'dlq.tasks' },
      entry: d.value.entry,
      event: d.value.event,
    }));
    const { results } = await writer.write(records);
    expect(results.map((r) => r.status)).toEqual(['stored', 'duplicate', 'duplicate']);
    const { rows } = await db.pool.query('SELECT dlq_id, recovered FROM swarm_dlq');
    expect(rows).toEqual([{ dlq_id: 'd-1', recovered: true }]);
    const { rows: traces } = await db.pool.query('SELECT trace_id, span_count FROM swarm_traces');
    expect(traces).toEqual([{ trace_id: 't-dlq', span_count: 1 }]);
  });

  it('a reject whose detail quotes a NUL or a lone surrogate is stored, and the rest of its batch commits', async () => {
    const bad = parseJson('\u0000\u0001binary \ud83d');
    if (bad.ok) throw new Error('fixture parsed');
    const reject = makeReject(
      '\u0000\u0001binary \ud83d',
      input,
      bad.reason,
      `${bad.detail} \u0000 \ud83d`,
      'nats:S:1',
    );
    const { results } = await writer.write([
      event('t-ok'),
      { kind: 'reject', input, reject },
      event('t-ok2'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['stored', 'rejected', 'stored']);
    const { rows } = await db.pool.query<{ reason: string; detail: string; payload: string }>(
      'SELECT reason, detail, payload FROM chronicle_rejects',
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.reason).toBe('invalid_json');
    expect(rows[0]!.payload).not.toContain('\u0000');
  });

  it('metadata with a lone surrogate is normalized to U+FFFD and stored, not refused', async () => {
    const normalized = normalizeEvent(
      { trace_id: 't-sur', event_type: 'task.created', metadata: { title: 'half \ud83d emoji' } },
      { origin: 'http', defaultTimeMillis: Date.now() },
    );
    if (!normalized.ok) throw new Error(normalized.detail);
    const { results } = await writer.write([{ kind: 'event', input, event: normalized.value }]);
    expect(results).toEqual([{ status: 'stored' }]);
    const { rows } = await db.pool.query<{ task_title: string }>('SELECT task_title FROM swarm_traces');
    expect(rows[0]!.task_title).toBe('half \ufffd emoji');
  });

  it('two concurrent batches of 6,000 distinct traces each commit (locks are bucketed, not one per key)', async () => {
    const second = createPool({ connectionString: db.url, maxConnections: 2 });
    try {
      const other = createEventWriter({ pool: second, logger: silentLogger() });
      const batch = () => Array.from({ length: 6000 }, (_, i) => event(`bulk-${randomUUID()}-${i}`));
      const [a, b] = await Promise.all([writer.write(batch()), other.write(batch())]);
      expect([...a.results, ...b.results].every((r) => r.status === 'stored')).toBe(true);
      const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM swarm_traces');
      expect(rows[0]!.n).toBe(12_000);
    } finally {
      await second.end();
    }
  });
});
