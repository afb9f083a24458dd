import { describe, expect, it } from 'vitest';
import { SimulationOptionsError } from '../../../src/simulate/options.js';
import { type SimMessage, generateTraffic, messageIdOf } from '../../../src/simulate/traffic.js';

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
