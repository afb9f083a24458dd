import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../../src/events/schema.js';
import { computeExpected } from '../../../src/simulate/expected.js';
import {
  SimulationOptionsError,
  pickTrafficOptions,
  resolveTrafficOptions,
} from '../../../src/simulate/options.js';
import { storedEventOf } from '../../../src/simulate/stored-event.js';
import { TERMINAL_STATUSES, traceOutcome } from '../../../src/simulate/task-rules.js';
import { type SimMessage, generateTraffic, messageIdOf, runPrefix } from '../../../src/simulate/traffic.js';

const events = (messages: readonly SimMessage[]) =>
  messages.filter((m) => !m.duplicate && !m.subject.startsWith('dlq.')).map((m) => m.payload);
const meta = (p: Record<string, unknown>) => p.metadata as Record<string, unknown>;

describe('simulated traffic', () => {
  it('traffic - the same seed and options give the same messages, ids included', () => {
    const a = generateTraffic({ seed: 42, count: 2_000, agents: 4 });
    const b = generateTraffic({ seed: 42, count: 2_000, agents: 4 });
    expect(b.runId).toBe(a.runId);
    expect(b.messages).toEqual(a.messages);
  });

  it('traffic - another seed or other options give another run with other ids', () => {
    const a = generateTraffic({ seed: 42, count: 500 });
    const b = generateTraffic({ seed: 43, count: 500 });
    const c = generateTraffic({ seed: 42, count: 500, errorRate: 0.2 });
    expect(b.runId).not.toBe(a.runId);
    expect(c.runId).not.toBe(a.runId);
    const ids = new Set(a.messages.map(messageIdOf));
    expect(b.messages.some((m) => ids.has(messageIdOf(m)))).toBe(false);
    expect(c.messages.some((m) => ids.has(messageIdOf(m)))).toBe(false);
  });

  it('traffic - sends exactly count messages, or durationSeconds × ratePerSecond', () => {
    expect(generateTraffic({ count: 777 }).messages).toHaveLength(777);
    expect(generateTraffic({ durationSeconds: 3, ratePerSecond: 150 }).messages).toHaveLength(450);
    expect(generateTraffic({ count: 1 }).messages).toHaveLength(1);
  });

  it('traffic - bad options are refused with every problem listed', () => {
    let error: unknown;
    try {
      generateTraffic({ errorRate: 2, agents: 0, durationSeconds: 5 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SimulationOptionsError);
    expect((error as SimulationOptionsError).problems).toEqual([
      'errorRate must be between 0 and 1',
      'agents must be an integer from 1 to 10000',
      'durationSeconds needs ratePerSecond',
    ]);
  });

  it('traffic - every scenario appears in a large run', () => {
    const run = generateTraffic({ seed: 3, count: 30_000, agents: 6, timeoutRate: 0.05, errorRate: 0.1 });
    const evs = events(run.messages);
    const byType = run.stats.byType;
    for (const type of [
      'task.created',
      'task.assigned',
      'task.started',
      'task.progress',
      'task.completed',
      'task.failed',
      'task.timeout',
      'agent.heartbeat',
      'system.error',
      'dlq.task',
    ]) {
      expect(byType[type], type).toBeGreaterThan(0);
    }
    const timeouts = evs.filter((e) => e.event_type === 'task.timeout').map((e) => String(meta(e).reason));
    for (const state of ['not assigned', 'not started', 'not finished']) {
      expect(
        timeouts.some((r) => r.startsWith(state)),
        state,
      ).toBe(true);
    }
    // Retries go to another agent.
    const retries = evs.filter((e) => e.event_type === 'task.assigned' && meta(e).reassigned_from);
    expect(retries.length).toBeGreaterThan(0);
    for (const r of retries) expect(meta(r).agent).not.toBe(meta(r).reassigned_from);
    // Failures carry an error.
    for (const f of evs.filter((e) => e.event_type === 'task.failed')) expect(meta(f).error).toBeTruthy();
    // Dead-letter entries carry the task they could not place.
    for (const d of run.messages.filter((m) => m.subject === 'dlq.task')) {
      expect(d.payload).toMatchObject({ reason: 'no_capable_agent', source: 'dispatcher' });
      expect((d.payload.original_payload as Record<string, unknown>).event_type).toBe('task.created');
    }
    expect(run.stats.duplicates).toBeGreaterThan(0);
    expect(run.stats.reordered).toBeGreaterThan(0);
    expect(new Set(evs.map((e) => meta(e).agent).filter(Boolean)).size).toBe(6);
  });

  it('traffic - heartbeats carry running totals: never decreasing, busy within uptime', () => {
    const run = generateTraffic({ seed: 9, count: 10_000, agents: 3 });
    const beats = events(run.messages)
      .filter((e) => e.event_type === 'agent.heartbeat')
      .sort((a, b) => String(a.timestamp).localeCompare(String(b.timestamp)));
    const last = new Map<string, { busy: number; uptime: number }>();
    for (const b of beats) {
      const m = meta(b) as { agent: string; busy_ms: number; uptime_ms: number };
      const prev = last.get(m.agent) ?? { busy: 0, uptime: 0 };
      expect(m.uptime_ms).toBeGreaterThanOrEqual(prev.uptime);
      expect(m.busy_ms).toBeGreaterThanOrEqual(prev.busy);
      expect(m.busy_ms).toBeLessThanOrEqual(m.uptime_ms);
      last.set(m.agent, { busy: m.busy_ms, uptime: m.uptime_ms });
    }
    expect(last.size).toBe(3);
    expect([...last.values()].some((v) => v.busy > 0)).toBe(true);
  });

  it('traffic - rates are roughly honoured', () => {
    const count = 40_000;
    const run = generateTraffic({
      seed: 11,
      count,
      errorRate: 0.2,
      timeoutRate: 0,
      retryRate: 0,
      duplicateRate: 0.1,
      outOfOrderRate: 0.05,
      unassignableRate: 0,
    });
    expect(run.stats.duplicates / count).toBeGreaterThan(0.08);
    expect(run.stats.duplicates / count).toBeLessThan(0.12);
    expect(run.stats.reordered / count).toBeGreaterThan(0.04);
    expect(run.stats.reordered / count).toBeLessThan(0.06);
    const t = run.stats.byType;
    const failed = t['task.failed']!;
    const ended = failed + t['task.completed']!;
    expect(failed / ended).toBeGreaterThan(0.15);
    expect(failed / ended).toBeLessThan(0.25);
    expect(t['task.timeout']).toBeUndefined();
    expect(t['dlq.task']).toBeUndefined();
    // Without retries every task is assigned at most once.
    expect(t['task.assigned']).toBeLessThanOrEqual(t['task.created']!);
  });

  it('traffic - duplicates repeat an earlier message; reordering moves messages out of time order', () => {
    const run = generateTraffic({ seed: 5, count: 5_000, duplicateRate: 0.1, outOfOrderRate: 0.1 });
    const seen = new Map<string, SimMessage>();
    let outOfOrder = 0;
    let previous = '';
    for (const m of run.messages) {
      const id = messageIdOf(m);
      expect(m.duplicate).toBe(seen.has(id));
      if (m.duplicate) expect(m.payload).toEqual(seen.get(id)!.payload);
      seen.set(id, m);
      const ts = String(m.payload.timestamp ?? m.payload.failed_at);
      if (ts < previous) outOfOrder++;
      previous = ts;
    }
    expect(outOfOrder).toBeGreaterThan(100);
  });
});

describe('simulated traffic - run id', () => {
  it('traffic - options other than the traffic options (target, verify, callbacks) change neither the run id nor the messages', () => {
    const base = generateTraffic({ seed: 7, count: 300 });
    const withExtras = generateTraffic({
      seed: 7,
      count: 300,
      target: { kind: 'http', url: 'http://elsewhere:1' },
      verify: { apiUrl: 'http://api:2', timeoutMillis: 5 },
      onProgress: () => undefined,
    } as Parameters<typeof generateTraffic>[0]);
    expect(withExtras.runId).toBe(base.runId);
    expect(withExtras.messages).toEqual(base.messages);
  });

  it('traffic - run ids are stable across versions (a re-run deduplicates against an earlier one)', () => {
    expect(generateTraffic({ seed: 1, count: 1000 }).runId).toBe('c2442cf3');
    expect(generateTraffic({ count: 10_000, ratePerSecond: 2000, startTimeMillis: 5 }).runId).toBe(
      'fd813e54',
    );
  });

  it('traffic - the run id does not depend on the order the options are given in', () => {
    const a = generateTraffic({ seed: 7, count: 300, agents: 2, errorRate: 0.1 });
    const b = generateTraffic({ errorRate: 0.1, agents: 2, count: 300, seed: 7 });
    expect(b.runId).toBe(a.runId);
  });
});

/** sha256 of the messages exactly as generated (order, payloads, duplicate flags). */
const fingerprint = (messages: readonly SimMessage[]) =>
  createHash('sha256').update(JSON.stringify(messages)).digest('hex');

/** Option sets and what generateTraffic gave for them before `wholeTasks` existed. */
const BEFORE_WHOLE_TASKS = [
  {
    options: { seed: 1, count: 1000 },
    runId: 'c2442cf3',
    sha256: '779991a41758a2f3e8bd8182ed95e70e280d99f901fa4274b5edd3bec5549276',
  },
  {
    options: {
      seed: 5,
      count: 5_000,
      agents: 7,
      errorRate: 0.2,
      timeoutRate: 0.1,
      duplicateRate: 0.1,
      outOfOrderRate: 0.1,
      unassignableRate: 0.05,
    },
    runId: '96cbee61',
    sha256: '1330ce1b840e0367459c11310ccbb6c220494f49364ab39832473b1ab40ce353',
  },
  {
    options: { seed: 9, durationSeconds: 30, ratePerSecond: 10, startTimeMillis: Date.UTC(2026, 4, 1, 12) },
    runId: '42bcc50c',
    sha256: '8e73c4710e9dc99a9e3d210630b340923144a029ec4c4b7e33d2436902e7523d',
  },
];

/** Each trace's distinct stored events (dead-letter entries as their dlq.entry events). */
function storedByTrace(messages: readonly SimMessage[]): Map<string, CanonicalEvent[]> {
  const byTrace = new Map<string, CanonicalEvent[]>();
  const seen = new Set<string>();
  for (const m of messages) {
    const e = storedEventOf(m);
    if (e === null || seen.has(e.event_id)) continue;
    seen.add(e.event_id);
    byTrace.set(e.trace_id, [...(byTrace.get(e.trace_id) ?? []), e]);
  }
  return byTrace;
}

describe('simulated traffic - whole tasks', () => {
  it('traffic - without wholeTasks (absent or false) the messages and run ids are exactly those of before', () => {
    for (const { options, runId, sha256 } of BEFORE_WHOLE_TASKS) {
      for (const input of [
        options,
        { ...options, wholeTasks: false },
        { ...options, wholeTasks: undefined },
      ]) {
        const run = generateTraffic(input);
        expect(run.runId, JSON.stringify(input)).toBe(runId);
        expect(fingerprint(run.messages), JSON.stringify(input)).toBe(sha256);
        expect(run.options.wholeTasks).toBeUndefined();
      }
    }
  });

  it('traffic - wholeTasks names another run, and the same one every time', () => {
    for (const { options, runId } of BEFORE_WHOLE_TASKS) {
      const a = generateTraffic({ ...options, wholeTasks: true });
      const b = generateTraffic({ ...options, wholeTasks: true });
      expect(a.runId).not.toBe(runId);
      expect(b.runId).toBe(a.runId);
      expect(b.messages).toEqual(a.messages);
      expect(a.options.wholeTasks).toBe(true);
    }
  });

  it('traffic - with wholeTasks every task ends (completed, failed or timed out), and at least count messages are sent', () => {
    const runs = [
      { seed: 1, count: 500 },
      { seed: 2, count: 3_000, ratePerSecond: 10 },
      { seed: 3, durationSeconds: 60, ratePerSecond: 10 },
      // Many retries, timeouts from every state and dead letters.
      { seed: 4, count: 4_000, errorRate: 0.3, timeoutRate: 0.2, retryRate: 0.9, unassignableRate: 0.05 },
      { seed: 5, count: 1, agents: 1 },
    ];
    for (const input of runs) {
      const run = generateTraffic({ ...input, wholeTasks: true });
      const label = JSON.stringify(input);
      expect(run.messages.length, label).toBeGreaterThanOrEqual(run.options.count);
      expect(run.stats.messages, label).toBe(run.messages.length);
      const outcomes = [...storedByTrace(run.messages)].map(([id, evs]) => traceOutcome(id, evs));
      const tasks = outcomes.filter((t) => t.is_task);
      expect(tasks.length, label).toBe(run.stats.tasks);
      expect(tasks.length, label).toBeGreaterThan(0);
      for (const t of tasks)
        expect(TERMINAL_STATUSES.has(t.status!), `${label} ${t.trace_id}: ${t.status}`).toBe(true);
      // The same through the model --verify compares Chronicle with.
      const expected = computeExpected(run.messages, { prefix: runPrefix(run.runId), target: 'nats' });
      const open = [...expected.traces.values()].filter(
        (t) => t.is_task && !TERMINAL_STATUSES.has(t.status!),
      );
      expect(open, label).toEqual([]);
    }
    // Without it, the same options leave tasks open (what wholeTasks is for).
    const cut = generateTraffic({ seed: 1, count: 500 });
    const cutOutcomes = [...storedByTrace(cut.messages)].map(([id, evs]) => traceOutcome(id, evs));
    expect(cutOutcomes.filter((t) => t.is_task && !TERMINAL_STATUSES.has(t.status!)).length).toBeGreaterThan(
      10,
    );
  });

  it('traffic - with wholeTasks retries and dead letters are kept whole, and every scenario still appears', () => {
    const run = generateTraffic({
      seed: 6,
      count: 20_000,
      errorRate: 0.15,
      timeoutRate: 0.08,
      retryRate: 0.8,
      unassignableRate: 0.03,
      wholeTasks: true,
    });
    for (const type of [
      'task.progress',
      'task.failed',
      'task.timeout',
      'agent.heartbeat',
      'system.error',
      'dlq.task',
    ]) {
      expect(run.stats.byType[type], type).toBeGreaterThan(0);
    }
    const byTrace = storedByTrace(run.messages);
    let retried = 0;
    for (const [traceId, evs] of byTrace) {
      const outcome = traceOutcome(traceId, evs);
      if (!outcome.is_task) continue;
      // Attempts are numbered 1, 2, … with none missing (the first may have timed out unassigned).
      const attempts = [
        ...new Set(evs.flatMap((e) => (typeof e.metadata.attempt === 'number' ? [e.metadata.attempt] : []))),
      ];
      expect(attempts.sort()).toEqual(attempts.map((_, i) => i + 1));
      if (attempts.length > 1) retried++;
      expect(evs.filter((e) => e.event_type === 'task.created')).toHaveLength(1);
      // A dead-lettered task has its entry and its failure.
      if (evs.some((e) => e.event_type === 'dlq.entry')) expect(outcome.status).toBe('failed');
    }
    expect(retried).toBeGreaterThan(0);
  });

  it('traffic - with wholeTasks only the tasks started by the count are run on: a few more messages at a live rate', () => {
    const run = generateTraffic({ seed: 7, durationSeconds: 280, ratePerSecond: 10, wholeTasks: true });
    expect(run.options.count).toBe(2_800);
    expect(run.messages.length).toBeGreaterThan(2_800);
    expect(run.messages.length).toBeLessThan(2_800 * 1.05);
    // Task numbers run 1..n with no gap: no task after the last one started is sent.
    const numbers = [...storedByTrace(run.messages).keys()]
      .flatMap((id) => /-task-(\d+)$/.exec(id)?.[1] ?? [])
      .map(Number)
      .sort((a, b) => a - b);
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
  });

  it('traffic - with wholeTasks heartbeats run until the last task event, and busy_ms counts the work of the tasks sent only', () => {
    const run = generateTraffic({ seed: 8, count: 3_000, agents: 3, ratePerSecond: 50, wholeTasks: true });
    const evs = [...storedByTrace(run.messages).values()].flat();
    const ms = (e: CanonicalEvent) => Date.parse(e.timestamp);
    const lastTaskEvent = Math.max(...evs.filter((e) => e.event_type !== 'agent.heartbeat').map(ms));
    const beats = evs.filter((e) => e.event_type === 'agent.heartbeat').sort((a, b) => ms(a) - ms(b));
    expect(Math.max(...beats.map(ms))).toBeLessThanOrEqual(lastTaskEvent);
    expect(Math.max(...beats.map(ms))).toBeGreaterThan(lastTaskEvent - 5_000);
    // Each agent's work, from the messages: an attempt it started, until the attempt's end.
    const work = new Map<string, { startMs: number; endMs: number }[]>();
    for (const trace of storedByTrace(run.messages).values()) {
      const lifecycle = trace
        .filter((e) =>
          ['task.started', 'task.completed', 'task.failed', 'task.timeout'].includes(e.event_type),
        )
        .sort((a, b) => ms(a) - ms(b));
      lifecycle.forEach((e, i) => {
        if (e.event_type !== 'task.started') return;
        const agent = String(e.metadata.agent);
        work.set(agent, [...(work.get(agent) ?? []), { startMs: ms(e), endMs: ms(lifecycle[i + 1]!) }]);
      });
    }
    for (const beat of beats) {
      const m = beat.metadata as { agent: string; busy_ms: number; uptime_ms: number };
      const busy = (work.get(m.agent) ?? [])
        .filter((w) => w.endMs <= ms(beat))
        .reduce((sum, w) => sum + w.endMs - w.startMs, 0);
      expect(m.busy_ms, `${m.agent} at ${beat.timestamp}`).toBe(Math.min(busy, m.uptime_ms));
    }
  });

  it('traffic - wholeTasks must be a boolean; it is picked with the other traffic options, and kept only when true', () => {
    expect(
      pickTrafficOptions({ wholeTasks: true, target: 'x' } as Parameters<typeof pickTrafficOptions>[0]),
    ).toEqual({
      wholeTasks: true,
    });
    expect(resolveTrafficOptions({ count: 5, wholeTasks: true }).wholeTasks).toBe(true);
    expect('wholeTasks' in resolveTrafficOptions({ count: 5, wholeTasks: false })).toBe(false);
    expect(() => resolveTrafficOptions({ count: 5, wholeTasks: 1 as unknown as boolean })).toThrow(
      new SimulationOptionsError(['wholeTasks must be true or false']),
    );
    expect(() =>
      resolveTrafficOptions(
        { count: 5, wholeTasks: 'yes' as unknown as boolean },
        { wholeTasks: '--whole-tasks' },
      ),
    ).toThrow('--whole-tasks must be true or false');
  });
});
