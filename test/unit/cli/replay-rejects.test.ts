import { describe, expect, it } from 'vitest';
import { type Rebuilt, rebuildReject } from '../../../src/cli/replay-rejects.js';
import { replayRejectsArgs } from '../../../src/cli/replay-rejects-args.js';
import { uuidV5 } from '../../../src/events/uuid.js';
import type { WriteRecord } from '../../../src/pipeline/records.js';

const TOPOLOGY = { namespace: 'T1_', otlpStream: 'OTLP_TRACES' };
const TIME = Date.UTC(2026, 2, 1, 12, 0, 0, 123);

type Row = Parameters<typeof rebuildReject>[0];

function row(overrides: Partial<Row>): Row {
  return {
    id: 7,
    origin: 'nats',
    subject: 'swarm.task.created',
    reason: 'max_deliver',
    payload: '{"trace_id":"t1"}',
    payload_bytes: 17,
    payload_encoding: 'utf8',
    reject_key: 'max_deliver:T1_TASK_EVENTS:42',
    time_millis: TIME,
    ...overrides,
  };
}

function records(rebuilt: Rebuilt): WriteRecord[] {
  if ('skipped' in rebuilt) throw new Error(`skipped: ${rebuilt.skipped}`);
  return rebuilt.records;
}

function onlyEvent(rebuilt: Rebuilt) {
  const [record] = records(rebuilt);
  if (record?.kind !== 'event') throw new Error(`not an event: ${JSON.stringify(record)}`);
  return record.event;
}

describe('replay-rejects - rebuilding a reject', () => {
  it('a given-up JetStream event without id or time gets what its first delivery had: uuid v5 of stream and sequence, the message time', () => {
    const event = onlyEvent(rebuildReject(row({}), TOPOLOGY));
    expect(event).toMatchObject({
      event_id: uuidV5('jetstream:T1_TASK_EVENTS:42'),
      trace_id: 't1',
      source: 'swarm.task.created',
      event_type: 'task.created',
      timestamp: new Date(TIME).toISOString(),
    });
    // The same again: a second replay writes the same event (deduplicated by the store).
    expect(onlyEvent(rebuildReject(row({}), TOPOLOGY))).toEqual(event);
  });

  it('a dead-letter subject is read as a dead-letter entry', () => {
    const entry = {
      dlq_id: 'd-1',
      original_subject: 'swarm.task.created',
      original_payload: { trace_id: 't1' },
      reason: 'x',
      failed_at: '2026-03-01T12:00:00Z',
      retry_count: 3,
      max_retries: 3,
      source: 'agent',
    };
    const rebuilt = records(
      rebuildReject(
        row({ subject: 'dlq.task', payload: JSON.stringify(entry), reject_key: 'max_deliver:T1_DLQ:3' }),
        TOPOLOGY,
      ),
    );
    expect(rebuilt).toHaveLength(1);
    expect(rebuilt[0]).toMatchObject({ kind: 'dlq', entry: { dlq_id: 'd-1' }, event: { trace_id: 't1' } });
  });

  it('an HTTP item without event_id gets one from the reject, the same on every replay', () => {
    const http = row({
      origin: 'http',
      subject: null,
      reason: 'max_deliver',
      reject_key: 'http:x',
      payload: '{"trace_id":"h","event_type":"task.created"}',
    });
    const a = onlyEvent(rebuildReject(http, TOPOLOGY));
    expect(a.event_id).toBe(uuidV5('reject:7'));
    expect(onlyEvent(rebuildReject(http, TOPOLOGY)).event_id).toBe(a.event_id);
    expect(a.timestamp).toBe(new Date(TIME).toISOString());
  });

  it('write_failed replays the record the store refused, as it was', () => {
    const event = {
      event_id: '0b7e1a7c-2f7e-4d8e-9a52-6c7b1e0b8a11',
      trace_id: 'w',
      source: 's',
      event_type: 'task.created',
      timestamp: '2026-03-01T12:00:00.000Z',
      metadata: { a: 1 },
    };
    const rebuilt = rebuildReject(
      row({ reason: 'write_failed', payload: JSON.stringify(event), reject_key: 'nats:T1_TASK_EVENTS:9' }),
      TOPOLOGY,
    );
    expect(onlyEvent(rebuilt)).toEqual(event);
  });

  it('payloads that cannot be rebuilt are skipped, saying why', () => {
    const skipped = (r: Partial<Row>): string | undefined => {
      const rebuilt = rebuildReject(row(r), TOPOLOGY);
      return 'skipped' in rebuilt ? rebuilt.skipped : undefined;
    };
    expect(skipped({ payload_bytes: 64 * 1024 + 1 })).toBe('truncated');
    expect(skipped({ reason: 'unstorable' })).toBe('unstorable');
    expect(skipped({ subject: '$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.T1_TASK_EVENTS.x' })).toBe(
      'message_gone',
    );
    expect(skipped({ reject_key: 'nats:T1_OTLP_TRACES:5:2' })).toBe('span');
    expect(skipped({ origin: 'otlp', reason: 'invalid_span_id', reject_key: 'otlp:x' })).toBe('span');
    expect(skipped({ reject_key: null })).toBe('no_stream_position');
  });

  it('bytes kept base64 are replayed as bytes: not UTF-8, they are refused again', () => {
    const payload = Buffer.from([0x7b, 0xff, 0x7d]).toString('base64');
    const [record] = records(rebuildReject(row({ payload, payload_encoding: 'base64' }), TOPOLOGY));
    expect(record).toMatchObject({
      kind: 'reject',
      reject: { reason: 'invalid_utf8', encoding: 'base64', payload },
    });
  });
});

describe('replay-rejects - flags', () => {
  const usage = (m: string) => new Error(m);
  it('defaults: max_deliver and write_failed, 100000 at most, writes', () => {
    expect(replayRejectsArgs([], usage)).toEqual({
      reasons: ['max_deliver', 'write_failed'],
      origin: undefined,
      since: undefined,
      until: undefined,
      limit: 100_000,
      dryRun: false,
      json: false,
    });
  });
  it('reasons repeat or come comma-separated; times are RFC 3339 or epoch milliseconds', () => {
    const o = replayRejectsArgs(
      [
        '--reason',
        'a,b',
        '--reason',
        'c',
        '--since',
        '1772366400000',
        '--until',
        '2026-03-02T00:00:00Z',
        '--dry-run',
        '--json',
      ],
      usage,
    );
    expect(o).toMatchObject({ reasons: ['a', 'b', 'c'], dryRun: true, json: true });
    expect(o.since?.toISOString()).toBe('2026-03-01T12:00:00.000Z');
  });
  it('bad values name the flag', () => {
    expect(() => replayRejectsArgs(['--origin', 'x'], usage)).toThrow(/--origin/);
    expect(() => replayRejectsArgs(['--since', 'yesterday'], usage)).toThrow(/--since/);
    expect(() => replayRejectsArgs(['--limit', '0'], usage)).toThrow(/--limit/);
    expect(() =>
      replayRejectsArgs(['--since', '2026-03-02T00:00:00Z', '--until', '2026-03-01T00:00:00Z'], usage),
    ).toThrow(/--until/);
  });
});
