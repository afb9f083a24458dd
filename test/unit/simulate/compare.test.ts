import { describe, expect, it } from 'vitest';
import { type ObservedTrace, compareState } from '../../../src/simulate/compare.js';
import { computeExpected } from '../../../src/simulate/expected.js';
import { generateTraffic, runPrefix } from '../../../src/simulate/traffic.js';

const traffic = generateTraffic({ seed: 4, count: 400, unassignableRate: 0.05 });
const prefix = runPrefix(traffic.runId);
const expected = computeExpected(traffic.messages, { prefix, target: 'nats' });

/** What a Chronicle that recorded everything would show. */
function perfect() {
  const traces = new Map<string, ObservedTrace>(
    [...expected.traces].map(([id, t]) => [
      id,
      {
        trace_id: id,
        is_task: t.is_task,
        status: t.status,
        assigned_agent: t.assigned_agent,
        attempts: t.attempts,
        span_count: t.span_count,
        error: t.error,
      },
    ]),
  );
  const agentDays = new Map([...expected.agentDays].map(([day, rows]) => [day, new Map(rows)]));
  return { traces, agentDays, dlqIds: new Set(expected.dlqIds) };
}

describe('compare', () => {
  it('compare - a Chronicle that recorded everything shows no difference', () => {
    expect(compareState(expected, perfect())).toEqual([]);
  });

  it('compare - names a missing trace, a wrong status, a wrong count and a lost dead-letter entry', () => {
    const observed = perfect();
    const [first, second] = [...observed.traces.keys()];
    const firstSpans = observed.traces.get(first!)!.span_count;
    observed.traces.delete(first!);
    observed.traces.set(second!, { ...observed.traces.get(second!)!, status: 'assigned' });
    observed.traces.set(`${prefix}stray`, { ...observed.traces.get(second!)!, trace_id: `${prefix}stray` });
    const [day, agents] = [...observed.agentDays][0]!;
    const [agent, row] = [...agents][0]!;
    agents.set(agent, { ...row, tasks_completed: row.tasks_completed + 1 });
    observed.dlqIds.clear();

    const differences = compareState(expected, observed);
    const stray = observed.traces.get(`${prefix}stray`)!.span_count;
    expect(differences).toEqual([
      `events: expected ${expected.events} distinct events, Chronicle recorded ${expected.events - firstSpans + stray}`,
      expect.stringMatching(new RegExp(`^trace ${first}: missing`)),
      `trace ${second}: status expected ${JSON.stringify(expected.traces.get(second!)!.status)}, got "assigned"`,
      `trace ${prefix}stray: recorded but never sent in this run`,
      `agent ${agent} on ${day}: tasks_completed expected ${row.tasks_completed}, got ${row.tasks_completed + 1}`,
      expect.stringMatching(/^dlq: expected \d+ entries, found 0; missing /),
    ]);
  });

  it('compare - an agent row left at zero is not a difference; one with counts is', () => {
    const observed = perfect();
    const [day, agents] = [...observed.agentDays][0]!;
    const zero = { tasks_completed: 0, tasks_failed: 0, tasks_timed_out: 0, uptime_ms: null, busy_ms: null };
    agents.set(`${prefix}ghost`, zero);
    expect(compareState(expected, observed)).toEqual([]);
    agents.set(`${prefix}ghost`, { ...zero, tasks_failed: 1 });
    expect(compareState(expected, observed)).toEqual([
      expect.stringMatching(new RegExp(`^agent ${prefix}ghost on ${day}: row recorded but not expected`)),
    ]);
  });
});
