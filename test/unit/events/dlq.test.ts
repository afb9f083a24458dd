import { describe, expect, it } from 'vitest';
import { type NormalizedDlq, normalizeDlq } from '../../../src/events/dlq.js';
import type { InputContext } from '../../../src/events/normalize.js';
import { uuidV5 } from '../../../src/events/uuid.js';

const MESSAGE_TIME = Date.parse('2026-02-12T09:00:00.000Z');

const ctx = (overrides: Partial<InputContext> = {}): InputContext => ({
  origin: 'nats',
  subject: 'dlq.task.completed',
  stream: 'DLQ',
  seq: 7,
  defaultTimeMillis: MESSAGE_TIME,
  ...overrides,
});

/** A dead-letter entry in the swarm's shape. */
const entry = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  dlq_id: 'dlq-001',
  original_subject: 'swarm.task.completed',
  original_payload: { trace_id: 'trace-9', event_type: 'task.completed', metadata: { agent: 'agent-1' } },
  reason: 'max_retries_exceeded',
  reason_detail: 'handler threw 3 times',
  failed_at: '2026-02-12T08:15:00+01:00',
  retry_count: 3,
  max_retries: 3,
  retry_history: [{ attempt: 1, error: 'boom' }],
  source: 'task-router',
  recoverable: true,
  ...overrides,
});

function accepted(payload: unknown, context: InputContext = ctx()): NormalizedDlq {
  const result = normalizeDlq(payload, context);
  if (!result.ok)
    throw new Error(`expected the entry to be accepted, got ${result.reason}: ${result.detail}`);
  return result.value;
}

function rejectReason(payload: unknown, context: InputContext = ctx()): string {
  const result = normalizeDlq(payload, context);
  if (result.ok) throw new Error('expected a reject');
  return result.reason;
}

describe('normalizeDlq - entry', () => {
  it('keeps every field of the swarm dead-letter shape, with failed_at in UTC', () => {
    expect(accepted(entry()).entry).toEqual({
      dlq_id: 'dlq-001',
      original_subject: 'swarm.task.completed',
      original_payload: { trace_id: 'trace-9', event_type: 'task.completed', metadata: { agent: 'agent-1' } },
      reason: 'max_retries_exceeded',
      reason_detail: 'handler threw 3 times',
      failed_at: '2026-02-12T07:15:00.000Z',
      retry_count: 3,
      max_retries: 3,
      retry_history: [{ attempt: 1, error: 'boom' }],
      source: 'task-router',
      recoverable: true,
      recovered: false,
      trace_id: 'trace-9',
      subject: 'dlq.task.completed',
    });
  });

  it('keeps a partial entry, with nulls for what is missing', () => {
    expect(accepted({ dlq_id: 'dlq-2' }).entry).toMatchObject({
      dlq_id: 'dlq-2',
      original_subject: null,
      original_payload: null,
      reason: null,
      failed_at: null,
      retry_count: null,
      retry_history: null,
      recoverable: null,
      recovered: false,
      trace_id: null,
    });
  });

  it('gives an entry without dlq_id a deterministic id from (stream, sequence)', () => {
    const a = accepted(entry({ dlq_id: undefined })).entry.dlq_id;
    expect(a).toBe(uuidV5('jetstream:DLQ:7'));
    expect(accepted(entry({ dlq_id: undefined }), ctx({ seq: 8 })).entry.dlq_id).not.toBe(a);
  });

  it('gives an HTTP entry without dlq_id an id derived from its content', () => {
    const http = ctx({ origin: 'http', stream: undefined, seq: undefined, subject: undefined });
    const a = accepted(entry({ dlq_id: undefined }), http).entry.dlq_id;
    expect(accepted(entry({ dlq_id: undefined }), http).entry.dlq_id).toBe(a);
    expect(accepted(entry({ dlq_id: undefined, reason: 'other' }), http).entry.dlq_id).not.toBe(a);
  });

  it('reads a numeric dlq_id as text', () => {
    expect(accepted(entry({ dlq_id: 12 })).entry.dlq_id).toBe('12');
  });

  it('keeps recovered when the swarm marks the entry recovered', () => {
    expect(accepted(entry({ recovered: true })).entry.recovered).toBe(true);
  });

  it('strips NUL characters from every string', () => {
    const e = accepted(
      entry({ reason: 'bad\u0000', original_payload: { trace_id: 'tr\u0000ace-9', 'k\u0000': 'v' } }),
    );
    expect(e.entry.reason).toBe('bad');
    expect(e.entry.original_payload).toEqual({ trace_id: 'trace-9', k: 'v' });
    expect(e.entry.trace_id).toBe('trace-9');
  });
});

describe('normalizeDlq - trace event', () => {
  it('records a dlq.entry event on the trace of the original payload', () => {
    expect(accepted(entry()).event).toEqual({
      event_id: uuidV5('dlq:dlq-001'),
      trace_id: 'trace-9',
      source: 'task-router',
      event_type: 'dlq.entry',
      timestamp: '2026-02-12T07:15:00.000Z',
      metadata: {
        dlq_id: 'dlq-001',
        reason: 'max_retries_exceeded',
        reason_detail: 'handler threw 3 times',
        original_subject: 'swarm.task.completed',
        retry_count: 3,
        max_retries: 3,
        recoverable: true,
      },
    });
  });

  it('reads the trace_id from an original payload embedded as a JSON string', () => {
    const payload = JSON.stringify({ trace_id: 'trace-from-string' });
    expect(accepted(entry({ original_payload: payload })).event?.trace_id).toBe('trace-from-string');
  });

  it('strips NUL characters from a trace_id read from an original payload embedded as a JSON string', () => {
    const payload = JSON.stringify({ trace_id: 'tr\u0000ace-9' });
    const e = accepted(entry({ original_payload: payload }));
    expect(e.entry.trace_id).toBe('trace-9');
    expect(e.event?.trace_id).toBe('trace-9');
  });

  it('records no event when the original payload has no usable trace_id', () => {
    for (const original_payload of [
      undefined,
      'not json',
      { event_type: 'x' },
      { trace_id: '' },
      { trace_id: 42 },
      { trace_id: 't'.repeat(257) },
    ]) {
      const e = accepted(entry({ original_payload }));
      expect(e.event, JSON.stringify(original_payload)).toBeNull();
      expect(e.entry.trace_id).toBeNull();
    }
  });

  it('gives the event the same id for the same entry, so a redelivered or recovered entry dedups', () => {
    expect(accepted(entry({ recovered: true })).event?.event_id).toBe(accepted(entry()).event?.event_id);
  });

  it("uses the message's time and subject when failed_at and source are missing", () => {
    const e = accepted(entry({ failed_at: undefined, source: undefined })).event;
    expect(e?.timestamp).toBe('2026-02-12T09:00:00.000Z');
    expect(e?.source).toBe('dlq.task.completed');
  });
});

describe('normalizeDlq - rejects', () => {
  it('rejects a payload that is not an object with not_object', () => {
    for (const payload of [[entry()], 'entry', 1, null]) {
      expect(rejectReason(payload), JSON.stringify(payload)).toBe('not_object');
    }
  });

  it('rejects fields of the wrong type with invalid_dlq_entry', () => {
    for (const overrides of [
      { retry_count: -1 },
      { retry_count: 1.5 },
      { max_retries: '3' },
      { retry_history: 'none' },
      { recoverable: 'yes' },
      { reason: { code: 1 } },
    ]) {
      expect(rejectReason(entry(overrides)), JSON.stringify(overrides)).toBe('invalid_dlq_entry');
    }
  });

  it('rejects an unparseable failed_at with invalid_timestamp', () => {
    expect(rejectReason(entry({ failed_at: '2026-02-30T00:00:00Z' }))).toBe('invalid_timestamp');
    expect(rejectReason(entry({ failed_at: 'soon' }))).toBe('invalid_timestamp');
  });

  it('rejects an entry over 256 KiB serialized with metadata_too_large', () => {
    expect(rejectReason(entry({ original_payload: { blob: 'x'.repeat(256 * 1024) } }))).toBe(
      'metadata_too_large',
    );
  });
});
