/**
 * Seeded generator of realistic swarm traffic as canonical events, for the property-style tests of
 * task state and agent metrics. The same seed always gives the same events (ids included).
 *
 * Every trace follows one scenario: a normal run, a failure, a timeout from each state, a retry with
 * reassignment, missing steps, clock skew, ties in timestamps, a run across UTC midnight, or a task
 * still open. Agents send heartbeats with running busy/uptime totals, and some traces are not tasks
 * at all (system errors, dead-letter entries).
 */
import type { CanonicalEvent } from '../../src/events/schema.js';

/** A small deterministic PRNG (mulberry32) with the helpers the tests need. */
export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [min, max]. */
  int(min: number, max: number): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** A new array in random order (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[];
  /** A random-looking version 4 UUID, lower-case. */
  uuid(): string;
}

export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => items[int(0, items.length - 1)]!,
    shuffle(items) {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(0, i);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    },
    uuid() {
      const hex = Array.from({ length: 32 }, () => int(0, 15).toString(16));
      hex[12] = '4';
      hex[16] = ((int(0, 15) & 0x3) | 0x8).toString(16);
      const s = hex.join('');
      return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
    },
  };
}

export interface TrafficOptions {
  /** Task traces to generate (default 80). */
  tasks?: number;
  /** Distinct agents (default 5). */
  agents?: number;
  /** UTC days the traffic spans (default 2). */
  days?: number;
  /** First UTC day, YYYY-MM-DD (default 2026-03-01). */
  firstDay?: string;
  /** Heartbeats per agent per day, at least (default 3). */
  heartbeatsPerDay?: number;
  /** Non-task traces (default 6). */
  otherTraces?: number;
}

export const SCENARIOS = [
  'normal',
  'failed',
  'timeout_from_pending',
  'timeout_from_assigned',
  'timeout_from_in_progress',
  'retried_with_reassignment',
  'failed_then_retried',
  'no_created',
  'no_started',
  'only_terminal',
  'agent_only_on_completion',
  'clock_skew',
  'tied_timestamps',
  'tied_reassignment',
  'across_midnight',
  'open_pending',
  'open_assigned',
  'open_in_progress',
] as const;

export type Scenario = (typeof SCENARIOS)[number];

const DAY_MS = 86_400_000;
const OWNERS = ['alice', 'bob', 'carol', 'dave'];
const TITLES = [
  'Index the corpus',
  'Summarize logs',
  'Refactor parser',
  'Write tests',
  'Triage alerts',
  'Rank results',
];

/** Generates a realistic mix of task traces, heartbeats and non-task traces, in timestamp order. */
export function generateTraffic(seed: number, options: TrafficOptions = {}): CanonicalEvent[] {
  const rnd = createRandom(seed);
  const taskCount = options.tasks ?? 80;
  const agents = Array.from({ length: options.agents ?? 5 }, (_, i) => `agent-${i + 1}`);
  const days = options.days ?? 2;
  const firstDayMs = Date.parse(`${options.firstDay ?? '2026-03-01'}T00:00:00.000Z`);
  const events: CanonicalEvent[] = [];

  const emit = (
    traceId: string,
    type: string,
    ms: number,
    metadata: Record<string, unknown>,
    source?: string,
  ) => {
    events.push({
      event_id: rnd.uuid(),
      trace_id: traceId,
      source: source ?? (type.startsWith('task.') ? 'orchestrator' : 'swarm'),
      event_type: type,
      timestamp: new Date(ms).toISOString(),
      metadata,
    });
  };
  // An agent is named by `agent` or by `agent_id`, as different swarm components do.
  const agentMeta = (agent: string): Record<string, unknown> =>
    rnd.chance(0.5) ? { agent } : { agent_id: agent };
  const step = () => rnd.int(1, 90_000);

  for (let n = 0; n < taskCount; n++) {
    // The first traces cover every scenario once; the rest are drawn at random.
    const scenario: Scenario = n < SCENARIOS.length ? SCENARIOS[n]! : rnd.pick(SCENARIOS);
    const traceId = `task-${seed}-${String(n).padStart(4, '0')}`;
    const dayIndex = rnd.int(0, days - 1);
    let t =
      scenario === 'across_midnight' && dayIndex < days - 1
        ? firstDayMs + (dayIndex + 1) * DAY_MS - rnd.int(1_000, 120_000)
        : firstDayMs + dayIndex * DAY_MS + rnd.int(0, DAY_MS - 3_600_000);
    const agent = rnd.pick(agents);
    const other = rnd.pick(agents.filter((a) => a !== agent));

    const created = (ms: number) => {
      const metadata: Record<string, unknown> = {};
      if (rnd.chance(0.85)) metadata.title = rnd.pick(TITLES);
      if (rnd.chance(0.8)) metadata.owner = rnd.pick(OWNERS);
      if (rnd.chance(0.6)) {
        metadata.scoring_breakdown = {
          priority: rnd.int(1, 5),
          effort: rnd.int(1, 8),
          weights: [0.5, 0.25, 0.25],
        };
      }
      emit(traceId, 'task.created', ms, metadata);
      // Sometimes the orchestrator re-announces the task, with or without the fields.
      if (rnd.chance(0.15)) {
        emit(traceId, 'task.created', ms + rnd.int(0, 2_000), {
          title: `${rnd.pick(TITLES)} (again)`,
          ...(rnd.chance(0.5) ? { owner: rnd.pick(OWNERS) } : {}),
        });
      }
    };
    const assigned = (ms: number, to: string, attempt: number) =>
      emit(traceId, 'task.assigned', ms, { ...agentMeta(to), attempt });
    const started = (ms: number, by: string) => emit(traceId, 'task.started', ms, agentMeta(by), by);
    const completed = (ms: number, by: string) =>
      emit(
        traceId,
        'task.completed',
        ms,
        { ...agentMeta(by), result: 'ok', tokens: rnd.int(100, 9_000) },
        by,
      );
    const failed = (ms: number, by: string) => {
      const kind = rnd.int(0, 2);
      const metadata: Record<string, unknown> = agentMeta(by);
      if (kind === 0) metadata.error = rnd.pick(['OOM', 'tool crashed', 'bad input']);
      if (kind === 1) metadata.reason = rnd.pick(['cancelled', 'dependency failed']);
      emit(traceId, 'task.failed', ms, metadata, by);
    };
    const timeout = (ms: number) =>
      emit(
        traceId,
        'task.timeout',
        ms,
        rnd.chance(0.5) ? { reason: 'deadline exceeded', deadline_ms: 600_000 } : {},
      );
    const progress = (ms: number, by: string) =>
      emit(traceId, 'task.progress', ms, { ...agentMeta(by), pct: rnd.int(1, 99) }, by);

    switch (scenario) {
      case 'normal':
      case 'across_midnight':
        created(t);
        assigned((t += step()), agent, 1);
        started((t += step()), agent);
        if (rnd.chance(0.5)) progress((t += step()), agent);
        completed((t += step()), agent);
        break;
      case 'failed':
        created(t);
        assigned((t += step()), agent, 1);
        started((t += step()), agent);
        failed((t += step()), agent);
        break;
      case 'timeout_from_pending':
        created(t);
        timeout((t += step()));
        break;
      case 'timeout_from_assigned':
        created(t);
        assigned((t += step()), agent, 1);
        timeout((t += step()));
        break;
      case 'timeout_from_in_progress':
        created(t);
        assigned((t += step()), agent, 1);
        started((t += step()), agent);
        timeout((t += step()));
        break;
      case 'retried_with_reassignment':
        created(t);
        assigned((t += step()), agent, 1);
        started((t += step()), agent);
        assigned((t += step()), other, 2);
        if (rnd.chance(0.5)) assigned((t += step()), agent, 3);
        started((t += step()), agent);
        completed((t += step()), agent);
        break;
      case 'failed_then_retried':
        // The agent reports a failure, the orchestrator reassigns, and the retry completes.
        created(t);
        assigned((t += step()), agent, 1);
        started((t += step()), agent);
        failed((t += step()), agent);
        assigned((t += step()), other, 2);
        started((t += step()), other);
        if (rnd.chance(0.7)) completed((t += step()), other);
        break;
      case 'no_created':
        assigned(t, agent, 1);
        started((t += step()), agent);
        completed((t += step()), agent);
        break;
      case 'no_started':
        created(t);
        assigned((t += step()), agent, 1);
        if (rnd.chance(0.5)) completed((t += step()), agent);
        else failed((t += step()), agent);
        break;
      case 'only_terminal':
        // Only the outcome reached us; the agent is named by the terminal event itself.
        completed(t, agent);
        break;
      case 'agent_only_on_completion':
        // The assignment names no agent: the agent comes from the latest lifecycle event naming one.
        created(t);
        emit(traceId, 'task.assigned', (t += step()), { attempt: 1 });
        started((t += step()), agent);
        completed((t += step()), other);
        break;
      case 'clock_skew': {
        // The agent's clock is behind: started before assigned, completed before started.
        created(t);
        const assignedAt = (t += step());
        assigned(assignedAt, agent, 1);
        const startedAt = assignedAt - rnd.int(1, 500);
        started(startedAt, agent);
        if (rnd.chance(0.5)) completed(startedAt - rnd.int(1, 500), agent);
        else completed(startedAt + step(), agent);
        break;
      }
      case 'tied_timestamps':
        // Events of one millisecond: the rank decides, then the event_id.
        created(t);
        assigned(t, agent, 1);
        started((t += step()), agent);
        t += step();
        completed(t, agent);
        if (rnd.chance(0.5)) failed(t, agent);
        if (rnd.chance(0.5)) emit(traceId, 'task.timeout', t, {});
        break;
      case 'tied_reassignment':
        // Two assignments in the same millisecond: the greater event_id is the latest.
        created(t);
        t += step();
        assigned(t, agent, 1);
        assigned(t, other, 1);
        started((t += step()), rnd.pick([agent, other]));
        completed((t += step()), rnd.pick([agent, other]));
        break;
      case 'open_pending':
        created(t);
        break;
      case 'open_assigned':
        created(t);
        assigned((t += step()), agent, 1);
        break;
      case 'open_in_progress':
        created(t);
        assigned((t += step()), agent, 1);
        started((t += step()), agent);
        if (rnd.chance(0.5)) progress((t += step()), agent);
        break;
    }
    // Some task traces also carry non-lifecycle events: a system error, a dead-letter entry.
    if (rnd.chance(0.1)) emit(traceId, 'system.error', t + rnd.int(1, 5_000), { error: 'worker restarted' });
    if (rnd.chance(0.05)) emit(traceId, 'dlq.entry', t + rnd.int(1, 5_000), { reason: 'max_retries' }, 'dlq');
  }

  // Heartbeats: running totals since the agent started; an agent restart resets both to 0.
  const heartbeatAgents = [...agents, 'agent-idle'];
  const perDay = options.heartbeatsPerDay ?? 3;
  heartbeatAgents.forEach((agent, i) => {
    let uptime = 0;
    let busy = 0;
    let previous = firstDayMs + rnd.int(0, 3_600_000);
    const style = i % 3; // metadata agent, metadata agent_id, or only the source
    // busyMs null: the heartbeat omits busy_ms.
    const beat = (ms: number, busyMs: number | null = busy) => {
      const metadata: Record<string, unknown> = { uptime_ms: uptime };
      if (busyMs !== null) metadata.busy_ms = busyMs;
      if (style === 0) metadata.agent = agent;
      if (style === 1) metadata.agent_id = agent;
      emit(`heartbeat-${agent}`, 'agent.heartbeat', ms, metadata, agent);
    };
    beat(previous); // just started: uptime 0
    for (let d = 0; d < days; d++) {
      const count = perDay + rnd.int(0, 3);
      const times = Array.from(
        { length: count },
        () => firstDayMs + d * DAY_MS + rnd.int(0, DAY_MS - 1),
      ).sort((a, b) => a - b);
      for (const ms of times) {
        if (ms <= previous) continue;
        if (rnd.chance(0.08)) {
          uptime = 0; // restarted
          busy = 0;
        } else {
          const elapsed = ms - previous;
          uptime += elapsed;
          busy += rnd.int(0, elapsed);
        }
        previous = ms;
        beat(ms);
        // A second heartbeat in the same millisecond (two emitters): the greater event_id wins.
        if (rnd.chance(0.1)) {
          busy = Math.min(uptime, busy + rnd.int(0, 10));
          beat(ms);
        }
      }
    }
    // End of the last day: one agent restarts (uptime 0), one reports a fractional busy total,
    // one omits busy_ms.
    const lastMs = firstDayMs + days * DAY_MS - rnd.int(1, 60_000);
    if (lastMs > previous) {
      if (i === 0) {
        uptime = 0;
        busy = 0;
        beat(lastMs);
      } else if (i === 1) {
        uptime += lastMs - previous;
        beat(lastMs, busy + 0.5);
      } else if (i === 2) {
        uptime += lastMs - previous;
        beat(lastMs, null);
      }
    }
  });

  // Traces that are not tasks.
  const otherCount = options.otherTraces ?? 6;
  for (let n = 0; n < otherCount; n++) {
    const traceId = `system-${seed}-${n}`;
    let t = firstDayMs + rnd.int(0, days * DAY_MS - 600_000);
    const count = rnd.int(1, 3);
    for (let k = 0; k < count; k++) {
      const type = rnd.pick(['system.error', 'system.error', 'dlq.entry', 'agent.registered']);
      emit(traceId, type, (t += rnd.int(0, 60_000)), { error: 'disk full', component: rnd.pick(agents) });
    }
  }

  return events
    .map((e, i) => ({ e, i }))
    .sort((a, b) => Date.parse(a.e.timestamp) - Date.parse(b.e.timestamp) || a.i - b.i)
    .map(({ e }) => e);
}
