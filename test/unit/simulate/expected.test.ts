import { describe, expect, it } from 'vitest';
import { uuidV5 } from '../../../src/events/uuid.js';
import { computeExpected } from '../../../src/simulate/expected.js';
import type { SimMessage } from '../../../src/simulate/traffic.js';

let n = 0;
/** A canonical event message with a fresh id; times are minutes after 2026-03-01T23:50Z. */
function ev(
  traceId: string,
  type: string,
  minute: number,
  metadata: Record<string, unknown> = {},
  eventId = `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
): SimMessage {
  return {
    subject: `swarm.${type}`,
    duplicate: false,
    payload: {
      event_id: eventId,
      trace_id: traceId,
      source: 'test',
      event_type: type,
      timestamp: new Date(Date.UTC(2026, 2, 1, 23, 50 + minute)).toISOString(),
      metadata,
    },
  };
}

const dup = (m: SimMessage): SimMessage => ({ ...m, duplicate: true });

describe('expected state', () => {
  it('expected - status follows the latest lifecycle event, whatever the order and duplicates', () => {
    const done = ev('t1', 'task.completed', 4, { agent: 'a' });
    const messages = [
      done,
      ev('t1', 'task.started', 2, { agent: 'a' }),
      ev('t1', 'task.created', 0, { title: 'x' }),
      dup(done),
      ev('t1', 'task.assigned', 1, { agent: 'a' }),
      ev('t1', 'task.progress', 3, { agent: 'a', pct: 50 }),
    ];
    const expected = computeExpected(messages, { prefix: 'sim-', target: 'nats' });
    expect(expected.events).toBe(5);
    expect(expected.traces.get('t1')).toMatchObject({
      is_task: true,
      status: 'completed',
      assigned_agent: 'a',
      attempts: 1,
      span_count: 5,
      error: null,
    });
    expect(expected.agentDays.get('2026-03-01')?.get('a')).toMatchObject({ tasks_completed: 1 });
  });

  it('expected - a retried task counts for the agent of the latest assignment, on the day it ended', () => {
    const messages = [
      ev('t2', 'task.created', 0),
      ev('t2', 'task.assigned', 1, { agent: 'a', attempt: 1 }),
      ev('t2', 'task.started', 2, { agent: 'a' }),
      ev('t2', 'task.failed', 3, { agent: 'a', error: 'boom' }),
      ev('t2', 'task.assigned', 4, { agent: 'b', attempt: 2 }),
      ev('t2', 'task.timeout', 15, { agent: 'b', reason: 'not started within 3000 ms' }),
    ];
    const expected = computeExpected(messages, { prefix: 'sim-', target: 'nats' });
    expect(expected.traces.get('t2')).toMatchObject({
      status: 'timed_out',
      assigned_agent: 'b',
      attempts: 2,
      error: 'not started within 3000 ms',
    });
    // 23:50 + 15 min is the next UTC day.
    expect(expected.agentDays.get('2026-03-02')?.get('b')).toMatchObject({ tasks_timed_out: 1 });
    expect(expected.agentDays.get('2026-03-01')?.get('a')).toBeUndefined();
  });

  it('expected - ties at one millisecond: rank first, then the greater event_id', () => {
    const messages = [
      ev('t3', 'task.created', 0),
      ev('t3', 'task.completed', 1, { agent: 'a' }, '00000000-0000-4000-8000-00000000000a'),
      ev('t3', 'task.failed', 1, { agent: 'a', error: 'late' }, '00000000-0000-4000-8000-00000000000b'),
      ev('t4', 'task.timeout', 0, {}),
    ];
    const expected = computeExpected(messages, { prefix: 'sim-', target: 'nats' });
    expect(expected.traces.get('t3')).toMatchObject({ status: 'failed', error: 'late', assigned_agent: 'a' });
    // A timeout naming no agent counts in no agent's row; its error defaults to "timeout".
    expect(expected.traces.get('t4')).toMatchObject({
      status: 'timed_out',
      assigned_agent: null,
      error: 'timeout',
    });
    expect(expected.agentDays.get('2026-03-01')?.get('a')).toMatchObject({
      tasks_failed: 1,
      tasks_completed: 0,
    });
  });

  it('expected - heartbeats: the latest of each agent and day gives uptime and busy', () => {
    const messages = [
      ev('hb', 'agent.heartbeat', 0, { agent: 'a', uptime_ms: 100, busy_ms: 10 }),
      ev('hb', 'agent.heartbeat', 8, { agent: 'a', uptime_ms: 900, busy_ms: 300 }),
      ev('hb', 'agent.heartbeat', 5, { agent: 'a', uptime_ms: 600, busy_ms: 200 }),
      ev('hb', 'agent.heartbeat', 12, { agent: 'a', uptime_ms: 1300, busy_ms: 400 }),
      ev('sys', 'system.error', 1, { error: 'disk full' }),
    ];
    const expected = computeExpected(messages, { prefix: 'sim-', target: 'nats' });
    expect(expected.agentDays.get('2026-03-01')?.get('a')).toEqual({
      tasks_completed: 0,
      tasks_failed: 0,
      tasks_timed_out: 0,
      uptime_ms: 900,
      busy_ms: 300,
    });
    expect(expected.agentDays.get('2026-03-02')?.get('a')).toMatchObject({ uptime_ms: 1300 });
    expect(expected.traces.get('sys')).toMatchObject({ is_task: false, status: null });
  });

  it('expected - a dead-letter entry adds its dlq.entry event; a swarm_dlq row only over NATS', () => {
    const created = ev('t5', 'task.created', 0);
    const entry: SimMessage = {
      subject: 'dlq.task',
      duplicate: false,
      payload: {
        dlq_id: 'dlq-1',
        original_subject: 'swarm.task.created',
        original_payload: created.payload,
        reason: 'no_capable_agent',
        failed_at: '2026-03-01T23:53:00.000Z',
        source: 'dispatcher',
      },
    };
    const messages = [created, entry, dup(entry)];
    const nats = computeExpected(messages, { prefix: 'sim-', target: 'nats' });
    const http = computeExpected(messages, { prefix: 'sim-', target: 'http' });
    for (const expected of [nats, http]) {
      expect(expected.events).toBe(2);
      expect(expected.eventIds.get('t5')).toContain(uuidV5('dlq:dlq-1'));
      expect(expected.traces.get('t5')).toMatchObject({ status: 'pending', span_count: 2 });
    }
    expect([...nats.dlqIds]).toEqual(['dlq-1']);
    expect(http.dlqIds.size).toBe(0);
  });
});
