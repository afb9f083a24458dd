/** Deterministic PRNG (mulberry32) so a benchmark run can be repeated exactly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A version-4-shaped UUID drawn from the seeded generator. */
function uuidFrom(random: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16));
  hex[12] = '4';
  hex[16] = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  const h = hex.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface BenchEvent {
  subject: string;
  payload: string;
}

/** Ranges [min, max) in milliseconds of a task's queue wait, pickup and work. */
interface Timing {
  queue: [number, number];
  pickup: [number, number];
  work: [number, number];
}

const GROUPED_TIMING: Timing = { queue: [50, 550], pickup: [20, 320], work: [200, 5_200] };
const INTERLEAVED_TIMING: Timing = { queue: [500, 30_000], pickup: [200, 5_000], work: [5_000, 300_000] };

/**
 * One task's lifecycle, the mix both profiles share: created; a tenth retried on another agent; each
 * attempt assigned, started and ended (5 % refused, 3 % timed out, else completed). `emit` gets each
 * event's type and metadata, how long after the previous one it happens, and an end event's work.
 */
function taskLifecycle(
  random: () => number,
  agents: readonly string[],
  title: string,
  timing: Timing,
  emit: (
    type: string,
    metadata: Record<string, unknown>,
    afterMillis: number,
    work?: { agent: string; millis: number },
  ) => void,
): void {
  const between = ([min, max]: [number, number]) => min + Math.floor(random() * (max - min));
  emit(
    'task.created',
    {
      title,
      owner: `team-${Math.floor(random() * 8)}`,
      priority: Math.floor(random() * 5),
      scoring_breakdown: { capability: random(), availability: random() },
    },
    0,
  );
  const attempts = random() < 0.1 ? 2 : 1;
  for (let a = 1; a <= attempts; a++) {
    const agent = agents[Math.floor(random() * agents.length)]!;
    emit('task.assigned', { agent, attempt: a }, between(timing.queue));
    emit('task.started', { agent, attempt: a }, between(timing.pickup));
    const millis = between(timing.work);
    const work = { agent, millis };
    const roll = random();
    if (a < attempts)
      emit('task.failed', { agent, error: 'tool call failed', retryable: true }, millis, work);
    else if (roll < 0.05) emit('task.failed', { agent, error: 'model refused' }, millis, work);
    else if (roll < 0.08) emit('task.timeout', { agent, reason: 'deadline exceeded' }, millis, work);
    else emit('task.completed', { agent, tokens: Math.floor(random() * 4000) }, millis, work);
  }
}

/**
 * Realistic swarm traffic: tasks through their whole lifecycle (some retried on another agent,
 * some failing or timing out), agent heartbeats, and ~5% duplicates (the same event published twice).
 * Returns at least `count` messages and the number of distinct events among them.
 */
export function generateTraffic(
  count: number,
  seed = 1,
): { messages: BenchEvent[]; distinct: number; traces: number } {
  const random = rng(seed);
  const agents = Array.from({ length: 40 }, (_, i) => `agent-${i}`);
  const messages: BenchEvent[] = [];
  let distinct = 0;
  let traces = 0;
  const heartbeatTraces = new Set<string>();
  let clock = Date.parse('2026-11-01T00:00:00Z');
  const busy = new Map<string, number>();
  const push = (subject: string, event: object): void => {
    const payload = JSON.stringify(event);
    messages.push({ subject, payload });
    distinct++;
    if (random() < 0.05) messages.push({ subject, payload });
  };
  while (messages.length < count) {
    const traceId = `task-${uuidFrom(random)}`;
    traces++;
    let t = clock;
    const ev = (type: string, metadata: object): void => {
      push(`swarm.task.${type.split('.')[1]}`, {
        event_id: uuidFrom(random),
        trace_id: traceId,
        source: type === 'task.created' ? 'dispatcher' : 'agent-runtime',
        event_type: type,
        timestamp: new Date(t).toISOString(),
        metadata,
      });
    };
    taskLifecycle(
      random,
      agents,
      `Summarise report ${traces}`,
      GROUPED_TIMING,
      (type, metadata, afterMillis, work) => {
        t += afterMillis;
        if (work) busy.set(work.agent, (busy.get(work.agent) ?? 0) + work.millis);
        ev(type, metadata);
      },
    );
    if (traces % 10 === 0) {
      const agent = agents[Math.floor(random() * agents.length)]!;
      heartbeatTraces.add(agent);
      push('swarm.agent.heartbeat', {
        event_id: uuidFrom(random),
        trace_id: `agent-${agent}`,
        source: agent,
        event_type: 'agent.heartbeat',
        timestamp: new Date(clock).toISOString(),
        metadata: {
          agent,
          busy_ms: busy.get(agent) ?? 0,
          uptime_ms: clock - Date.parse('2026-10-31T00:00:00Z'),
        },
      });
    }
    clock += 20;
  }
  return { messages, distinct, traces: traces + heartbeatTraces.size };
}

/** What shapes interleaved traffic (generateInterleavedTraffic). */
export interface InterleavedOptions {
  /** Agents, each heartbeating every `heartbeatMillis` of simulated time. */
  agents: number;
  /** New tasks per simulated second: with tasks lasting seconds to minutes, thousands are in flight. */
  tasksPerSecond: number;
  heartbeatMillis: number;
  /** Share of events published twice, the copy a little later (a redelivery, a retried publish). */
  duplicateRate: number;
  /** Share of events swapped with one of the next few (publishers racing each other). */
  reorderRate: number;
  /** Simulated time of the first event. */
  start: string;
  /** Tasks to generate; absent: as many as make about `count` messages. */
  tasks?: number;
}

export const INTERLEAVED_DEFAULTS: InterleavedOptions = {
  agents: 40,
  tasksPerSecond: 20,
  heartbeatMillis: 10_000,
  duplicateRate: 0.05,
  reorderRate: 0.02,
  start: '2026-11-01T00:00:00Z',
};

interface TimedEvent {
  t: number;
  subject: string;
  event: { metadata: Record<string, unknown> } & Record<string, unknown>;
  /** An end event's agent and its work, counted into the agent's busy time from then on. */
  work?: { agent: string; millis: number };
}

/**
 * Traffic as a live swarm sends it: tasks arrive at `tasksPerSecond` and each lives seconds to minutes
 * (a queue wait of 0.5–30 s, a pickup of 0.2–5 s, work of 5 s–5 min, a tenth retried on another agent),
 * so thousands are in flight and a batch holds one or two events of each of many tasks. The stream is
 * in simulated-time order across tasks, with a little reordering, ~5 % duplicates and every agent's
 * heartbeat at its cadence. The same lifecycle mix as generateTraffic (the grouped profile).
 */
export function generateInterleavedTraffic(
  count: number,
  seed = 1,
  options: Partial<InterleavedOptions> = {},
): { messages: BenchEvent[]; distinct: number; traces: number; inFlight: number; simulatedSeconds: number } {
  const o = { ...INTERLEAVED_DEFAULTS, ...options };
  const random = rng(seed);
  const agents = Array.from({ length: o.agents }, (_, i) => `agent-${i}`);
  const start = Date.parse(o.start);
  const between = (min: number, max: number) => min + Math.floor(random() * (max - min));
  const events: TimedEvent[] = [];
  // About 4.2 task events per task, and the heartbeats (~5 %); the duplicates come on top.
  const tasks = o.tasks ?? Math.ceil(count / (1 + o.duplicateRate) / 4.4);
  let lifetimes = 0;
  for (let n = 0; n < tasks; n++) {
    const traceId = `task-${uuidFrom(random)}`;
    const created = start + Math.floor((n / o.tasksPerSecond) * 1000);
    let t = created;
    const ev = (type: string, metadata: Record<string, unknown>, work?: TimedEvent['work']): void => {
      events.push({
        t,
        subject: `swarm.task.${type.split('.')[1]}`,
        event: {
          event_id: uuidFrom(random),
          trace_id: traceId,
          source: type === 'task.created' ? 'dispatcher' : 'agent-runtime',
          event_type: type,
          timestamp: new Date(t).toISOString(),
          metadata,
        },
        ...(work ? { work } : {}),
      });
    };
    taskLifecycle(
      random,
      agents,
      `Summarise report ${n}`,
      INTERLEAVED_TIMING,
      (type, metadata, afterMillis, work) => {
        t += afterMillis;
        ev(type, metadata, work);
      },
    );
    lifetimes += t - created;
  }
  const end = events.reduce((max, e) => Math.max(max, e.t), start);
  for (const agent of agents) {
    // Agents start a little apart, so their heartbeats do not all share a millisecond.
    for (let t = start + between(0, o.heartbeatMillis); t <= end; t += o.heartbeatMillis) {
      events.push({
        t,
        subject: 'swarm.agent.heartbeat',
        event: {
          event_id: uuidFrom(random),
          trace_id: `agent-${agent}`,
          source: agent,
          event_type: 'agent.heartbeat',
          timestamp: new Date(t).toISOString(),
          metadata: { agent, uptime_ms: t - start + 86_400_000 },
        },
      });
    }
  }
  // In time order across tasks (stable: a task's events at one millisecond keep their order).
  events.sort((a, b) => a.t - b.t);
  const busy = new Map<string, number>();
  for (const e of events) {
    if (e.work) busy.set(e.work.agent, (busy.get(e.work.agent) ?? 0) + e.work.millis);
    else if (e.event.event_type === 'agent.heartbeat') {
      e.event.metadata.busy_ms = busy.get(e.event.metadata.agent as string) ?? 0;
    }
  }
  for (let i = 0; i + 1 < events.length; i++) {
    if (random() < o.reorderRate) {
      const j = Math.min(events.length - 1, i + 1 + Math.floor(random() * 5));
      [events[i], events[j]] = [events[j]!, events[i]!];
    }
  }
  const messages: BenchEvent[] = [];
  // Duplicates wait a few hundred messages before they are published again.
  const later: { at: number; message: BenchEvent }[] = [];
  events.forEach((e, i) => {
    const message = { subject: e.subject, payload: JSON.stringify(e.event) };
    messages.push(message);
    if (random() < o.duplicateRate) later.push({ at: i + 1 + Math.floor(random() * 500), message });
    while (later.length > 0 && later[0]!.at <= i) messages.push(later.shift()!.message);
    later.sort((a, b) => a.at - b.at);
  });
  for (const { message } of later) messages.push(message);
  const simulatedSeconds = (end - start) / 1000;
  return {
    messages,
    distinct: events.length,
    traces: tasks + agents.length,
    // Little's law: arrival rate × mean lifetime.
    inFlight: Math.round(o.tasksPerSecond * (lifetimes / tasks / 1000)),
    simulatedSeconds,
  };
}

/** What spreads interleaved traffic over days (generateDailyTraffic). */
export interface DailyOptions {
  /** Tasks created each simulated day. */
  tasksPerDay: number;
  /** The first simulated day, YYYY-MM-DD (UTC). */
  firstDay: string;
  /** Days of traffic. */
  days: number;
  /** When each day's traffic starts (UTC), HH:MM:SS. */
  startOfTraffic: string;
  /** The rest of the interleaved profile: agents, arrival rate, heartbeats, duplicates, reordering. */
  interleaved: Partial<Omit<InterleavedOptions, 'start' | 'tasks'>>;
}

/** One simulated day of generateDailyTraffic. */
export interface TrafficDay {
  /** YYYY-MM-DD (UTC). */
  day: string;
  messages: BenchEvent[];
  distinct: number;
  /** The simulated time its events span, epoch milliseconds. */
  from: number;
  to: number;
}

/**
 * Interleaved traffic over many days, one day at a time so that only a day is ever in memory: each day
 * `tasksPerDay` tasks arrive at the interleaved profile's rate from `startOfTraffic` (at 20 a second,
 * 20,000 tasks come in ~17 minutes, ~3,700 of them in flight), with the heartbeats of every agent while
 * they run. Each day has its own seed; every run with the same options yields the same messages.
 */
export function* generateDailyTraffic(seed: number, options: DailyOptions): Generator<TrafficDay> {
  for (let d = 0; d < options.days; d++) {
    const day = new Date(Date.parse(`${options.firstDay}T00:00:00Z`) + d * 86_400_000)
      .toISOString()
      .slice(0, 10);
    const start = `${day}T${options.startOfTraffic}Z`;
    const traffic = generateInterleavedTraffic(0, seed * 1_000 + d, {
      ...options.interleaved,
      start,
      tasks: options.tasksPerDay,
    });
    yield {
      day,
      messages: traffic.messages,
      distinct: traffic.distinct,
      from: Date.parse(start),
      to: Date.parse(start) + traffic.simulatedSeconds * 1000,
    };
  }
}
