/**
 * A deterministic model of a swarm: a dispatcher creating tasks, agents with their own speed and
 * failure profiles taking them through assigned → started → completed, failures, timeouts from every
 * state, retries on another agent, progress reports, heartbeats with running busy/uptime totals,
 * dead-letter entries for tasks no agent can take, and system errors. The same options (seed
 * included) always give the same messages, ids included, so a run can be repeated and re-verified.
 *
 * The simulated clock advances about 1000 / ratePerSecond ms per message, so a run published at its
 * rate from startTimeMillis = now looks live.
 *
 * A run stops at its count-th message: the tasks still running then never end (they stay pending,
 * assigned or in progress for good). With wholeTasks the run goes on after the count with the rest of
 * the tasks already started (and the agents' heartbeats until their last event), and nothing else, so
 * every task it sends ends (completed, failed or timed out) and it sends more than the count.
 */
import { createHash } from 'node:crypto';
import { uuidV5 } from '../events/uuid.js';
import { TRAFFIC_OPTION_KEYS, type TrafficOptions, resolveTrafficOptions } from './options.js';
import { createRandom } from './random.js';

/** One message to publish: `payload` is a canonical event, or a dead-letter entry on `dlq.*`. */
export interface SimMessage {
  /** Un-prefixed subject, e.g. `swarm.task.created`, `swarm.agent.heartbeat`, `dlq.task`. */
  subject: string;
  payload: Record<string, unknown>;
  /** True for a re-publication of a message sent earlier in the run (same id). */
  duplicate: boolean;
}

/** What a run contains, for the report. */
export interface TrafficStats {
  messages: number;
  duplicates: number;
  /** Messages moved out of timestamp order. */
  reordered: number;
  /** Task traces with at least one message sent. */
  tasks: number;
  /** Distinct messages per event type (`dlq.task` for dead-letter entries). */
  byType: Record<string, number>;
}

/** The generated run. */
export interface Traffic {
  /**
   * Fingerprint of the traffic options (nothing else: not the target, nor verification): names this
   * run's traces and agents, so runs never mix, and the same options always name the same run.
   */
  runId: string;
  /** Resolved options; `count` is what was asked for (with wholeTasks, `messages` holds more). */
  options: TrafficOptions & { count: number };
  messages: SimMessage[];
  stats: TrafficStats;
}

/** Subject prefix of dead-letter entries (the `DLQ` stream's `dlq.>`). */
export const DLQ_SUBJECT_PREFIX = 'dlq.';

/** The id JetStream dedups a message on: the event_id, or the dead-letter entry's dlq_id. */
export function messageIdOf(message: SimMessage): string {
  const id = message.subject.startsWith(DLQ_SUBJECT_PREFIX)
    ? message.payload.dlq_id
    : message.payload.event_id;
  return typeof id === 'string' ? id : '';
}

/** The prefix of every trace id and agent name of a run. */
export function runPrefix(runId: string): string {
  return `sim-${runId}-`;
}

const MAX_ATTEMPTS = 3;
const SYSTEM_ERROR_RATE = 0.01;
const PROGRESS_RATE = 0.3;
const OUT_OF_ORDER_REACH = 20;
/** Simulated pace when no rate is given (messages per simulated second). */
const DEFAULT_TIMELINE_RATE = 200;
/** Roughly the messages one task produces; spaces task arrivals. */
const MESSAGES_PER_TASK = 4.5;

const VERBS = ['Summarise', 'Index', 'Translate', 'Refactor', 'Review', 'Triage', 'Classify', 'Rank'];
const OBJECTS = ['support tickets', 'the parser', 'release notes', 'alerts', 'the corpus', 'search results'];
const OWNERS = ['alice', 'bob', 'carol', 'dave', 'erin'];
const CAPABILITIES = ['code', 'search', 'writing', 'vision', 'math'];
const FAILURES = [
  'tool call failed',
  'model refused',
  'out of memory',
  'rate limited by provider',
  'bad input',
];
const SYSTEM_FAILURES = ['disk full', 'registry unreachable', 'scheduler lagging', 'lease lost'];
const DEADLINE_MS = { pending: 5_000, assigned: 3_000, in_progress: 20_000 } as const;

interface Agent {
  name: string;
  /** Work-time multiplier. */
  speed: number;
  failureRate: number;
  timeoutRate: number;
  /** Work intervals and their task, for the busy_ms totals of heartbeats. */
  work: { startMs: number; endMs: number; task: string }[];
}

interface Item {
  ms: number;
  seq: number;
  subject: string;
  payload: Record<string, unknown>;
  /** The task trace the message belongs to; undefined for heartbeats and system errors. */
  task: string | undefined;
}

/** A heartbeat's payload metadata, kept to recompute its busy_ms when the run drops tasks (wholeTasks). */
interface Beat {
  ms: number;
  metadata: { agent: string; uptime_ms: number; busy_ms: number };
}

/** The run id of resolved options: a hash of the TrafficOptions values, in a fixed key order. */
export function runIdOf(options: TrafficOptions): string {
  const values = TRAFFIC_OPTION_KEYS.flatMap((key) =>
    options[key] === undefined ? [] : [[key, options[key]] as const],
  );
  return createHash('sha1')
    .update(JSON.stringify(Object.fromEntries(values)))
    .digest('hex')
    .slice(0, 8);
}

/**
 * Generates the messages of one run; throws SimulationOptionsError for bad options. Only the
 * TrafficOptions keys of `input` count: passing a larger object (SimulateOptions) gives the same run.
 */
export function generateTraffic(input: Partial<TrafficOptions>): Traffic {
  const options = resolveTrafficOptions(input);
  const runId = runIdOf(options);
  const prefix = runPrefix(runId);
  const rnd = createRandom(options.seed);
  const gapMs = 1000 / (options.ratePerSecond ?? DEFAULT_TIMELINE_RATE);
  const step = (meanMs: number): number => Math.max(1, Math.round(rnd.exponential(meanMs)));

  const agents: Agent[] = Array.from({ length: options.agents }, (_, i) => ({
    name: `${prefix}agent-${String(i + 1).padStart(2, '0')}`,
    speed: 0.5 + rnd.next() * 1.5,
    failureRate: Math.min(1, options.errorRate * (0.5 + rnd.next())),
    timeoutRate: Math.min(1, options.timeoutRate * (0.5 + rnd.next())),
    work: [],
  }));

  const items: Item[] = [];
  let seq = 0;
  const emit = (ms: number, subject: string, payload: Record<string, unknown>, task?: string): void => {
    items.push({ ms, seq: seq++, subject, payload, task });
  };
  const event = (
    traceId: string,
    type: string,
    ms: number,
    source: string,
    metadata: Record<string, unknown>,
  ): Record<string, unknown> => {
    const payload = {
      event_id: uuidV5(`simulate:${runId}:${seq}`),
      trace_id: traceId,
      source,
      event_type: type,
      timestamp: new Date(ms).toISOString(),
      metadata,
    };
    emit(ms, `swarm.${type}`, payload, type.startsWith('task.') ? traceId : undefined);
    return payload;
  };

  let clock = options.startTimeMillis;
  let taskNumber = 0;
  let systemNumber = 0;
  // Each task is generated whole, from created to its end; generate until there are enough messages.
  // The run is cut at its count below, and with wholeTasks goes on with the tasks it started.
  while (items.length < options.count) {
    clock += step(gapMs * MESSAGES_PER_TASK);
    taskNumber++;
    simulateTask(`${prefix}task-${String(taskNumber).padStart(6, '0')}`, clock);
    if (rnd.chance(SYSTEM_ERROR_RATE)) {
      systemNumber++;
      const component = rnd.chance(0.5) ? rnd.pick(agents).name : rnd.pick(['dispatcher', 'scheduler']);
      event(`${prefix}system-${String(systemNumber).padStart(4, '0')}`, 'system.error', clock, component, {
        component,
        error: rnd.pick(SYSTEM_FAILURES),
        severity: rnd.pick(['warning', 'error', 'critical']),
      });
    }
  }
  items.sort(byTime);
  // The count is reached by this time at the latest (heartbeats and duplicates come on top).
  const cutoffMs = items[options.count - 1]!.ms;
  // With wholeTasks, heartbeats go on as long as a task might (the ones not needed are left out).
  const beats = addHeartbeats(options.wholeTasks === true ? items.at(-1)!.ms : cutoffMs);
  items.sort(byTime);

  const messages: SimMessage[] = [];
  const send = (item: Item, limit: number): void => {
    messages.push({ subject: item.subject, payload: item.payload, duplicate: false });
    if (messages.length < limit && rnd.chance(options.duplicateRate)) {
      messages.push({ subject: item.subject, payload: item.payload, duplicate: true });
    }
  };
  let next = 0;
  const started = new Set<string>();
  for (; next < items.length && messages.length < options.count; next++) {
    const item = items[next]!;
    if (item.task !== undefined) started.add(item.task);
    send(item, options.count);
  }
  if (options.wholeTasks === true) {
    // The rest of the tasks already started, to their ends, and the heartbeats until then; the tasks
    // created after the count (and their agents' work), and later system errors, are not part of the run.
    const rest = items.slice(next);
    const endMs = rest.findLast((item) => item.task !== undefined && started.has(item.task))?.ms ?? -Infinity;
    for (const item of rest) {
      if (
        item.task !== undefined
          ? started.has(item.task)
          : item.subject === HEARTBEAT_SUBJECT && item.ms <= endMs
      ) {
        send(item, Infinity);
      }
    }
    countBusy(beats, (task) => started.has(task));
  }
  let reordered = 0;
  for (let i = 0; i < messages.length - 1; i++) {
    if (!rnd.chance(options.outOfOrderRate)) continue;
    const j = Math.min(messages.length - 1, i + rnd.int(1, OUT_OF_ORDER_REACH));
    [messages[i], messages[j]] = [messages[j]!, messages[i]!];
    reordered++;
  }
  return { runId, options, messages: markDuplicates(messages), stats: statsOf(messages, reordered) };

  function simulateTask(traceId: string, createdMs: number): void {
    let t = createdMs;
    const created = event(traceId, 'task.created', t, 'dispatcher', {
      title: `${rnd.pick(VERBS)} ${rnd.pick(OBJECTS)}`,
      owner: rnd.pick(OWNERS),
      priority: rnd.int(1, 5),
      capability: rnd.pick(CAPABILITIES),
      scoring_breakdown: { urgency: rnd.int(0, 100) / 100, fit: rnd.int(0, 100) / 100 },
    });
    if (rnd.chance(options.unassignableRate)) {
      deadLetter(traceId, created, t);
      return;
    }
    let previous: Agent | undefined;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const agent =
        previous === undefined || agents.length === 1
          ? rnd.pick(agents)
          : rnd.pick(agents.filter((a) => a !== previous));
      const outcome = runAttempt(traceId, agent, attempt, t, previous);
      t = outcome.endMs;
      if (outcome.done || !rnd.chance(options.retryRate)) return;
      previous = agent;
    }
  }

  /** One attempt on one agent; `done` when the task needs no retry (completed, or not retriable). */
  function runAttempt(
    traceId: string,
    agent: Agent,
    attempt: number,
    fromMs: number,
    previous: Agent | undefined,
  ): { endMs: number; done: boolean } {
    let t = fromMs;
    // Where this attempt times out, if it does: before assignment only on the first attempt.
    const timeoutAt = rnd.chance(agent.timeoutRate)
      ? rnd.pick(
          attempt === 1
            ? (['pending', 'assigned', 'in_progress'] as const)
            : (['assigned', 'in_progress'] as const),
        )
      : undefined;
    const timeout = (state: keyof typeof DEADLINE_MS, metadata: Record<string, unknown>) => {
      t += DEADLINE_MS[state];
      event(traceId, 'task.timeout', t, 'dispatcher', {
        ...metadata,
        reason: `not ${state === 'pending' ? 'assigned' : state === 'assigned' ? 'started' : 'finished'} within ${DEADLINE_MS[state]} ms`,
        deadline_ms: DEADLINE_MS[state],
        attempt,
      });
      return { endMs: t, done: false };
    };
    if (timeoutAt === 'pending') return timeout('pending', {});
    t += step(400);
    event(traceId, 'task.assigned', t, 'dispatcher', {
      agent: agent.name,
      attempt,
      ...(previous !== undefined ? { reassigned_from: previous.name } : {}),
    });
    if (timeoutAt === 'assigned') return timeout('assigned', { agent: agent.name });
    t += step(250);
    event(traceId, 'task.started', t, agent.name, { agent: agent.name, attempt });
    const startedMs = t;
    if (timeoutAt === 'in_progress') {
      const outcome = timeout('in_progress', { agent: agent.name });
      agent.work.push({ startMs: startedMs, endMs: t, task: traceId });
      return outcome;
    }
    const workMs = step(3_000 * agent.speed);
    if (rnd.chance(PROGRESS_RATE)) {
      event(traceId, 'task.progress', t + Math.floor(workMs / 2), agent.name, {
        agent: agent.name,
        pct: rnd.int(10, 90),
      });
    }
    t += workMs;
    agent.work.push({ startMs: startedMs, endMs: t, task: traceId });
    if (rnd.chance(agent.failureRate)) {
      event(traceId, 'task.failed', t, agent.name, { agent: agent.name, attempt, error: rnd.pick(FAILURES) });
      return { endMs: t, done: false };
    }
    event(traceId, 'task.completed', t, agent.name, {
      agent: agent.name,
      attempt,
      tokens: rnd.int(200, 9_000),
    });
    return { endMs: t, done: true };
  }

  function deadLetter(traceId: string, created: Record<string, unknown>, createdMs: number): void {
    const history = [1, 2, 3].map((n) => ({
      attempt: n,
      at: new Date(createdMs + n * 1_000).toISOString(),
      error: 'no agent offers the capability',
    }));
    const failedMs = createdMs + 3_000 + rnd.int(1, 500);
    emit(
      failedMs,
      `${DLQ_SUBJECT_PREFIX}task`,
      {
        dlq_id: uuidV5(`simulate:${runId}:${seq}`),
        original_subject: 'swarm.task.created',
        original_payload: created,
        reason: 'no_capable_agent',
        reason_detail: `no agent offers ${String((created.metadata as Record<string, unknown>).capability)}`,
        failed_at: new Date(failedMs).toISOString(),
        retry_count: 3,
        max_retries: 3,
        retry_history: history,
        source: 'dispatcher',
        recoverable: false,
      },
      traceId,
    );
    event(traceId, 'task.failed', failedMs + 1, 'dispatcher', {
      reason: 'unassignable',
      error: 'dead-lettered: no capable agent',
    });
  }

  /** Each agent's heartbeats until `untilMs`, with their busy_ms counting all its work. */
  function addHeartbeats(untilMs: number): Map<Agent, Beat[]> {
    // About one message in 20 is a heartbeat.
    const intervalMs = Math.max(250, Math.round(gapMs * 20 * agents.length));
    const beats = new Map<Agent, Beat[]>();
    for (const agent of agents) {
      const bootMs = options.startTimeMillis - rnd.int(0, 600_000);
      const list: Beat[] = [];
      for (let ms = options.startTimeMillis + rnd.int(0, intervalMs); ms <= untilMs; ms += intervalMs) {
        const metadata = { agent: agent.name, uptime_ms: ms - bootMs, busy_ms: 0 };
        event(
          `${prefix}heartbeat-${agent.name.slice(prefix.length)}`,
          'agent.heartbeat',
          ms,
          agent.name,
          metadata,
        );
        list.push({ ms, metadata });
      }
      beats.set(agent, list);
    }
    countBusy(beats, () => true);
    return beats;
  }

  /** Sets the busy_ms of every heartbeat from the work (of the tasks `counts`) its agent has finished. */
  function countBusy(beats: ReadonlyMap<Agent, readonly Beat[]>, counts: (task: string) => boolean): void {
    for (const [agent, list] of beats) {
      // busy_ms counts work once it has finished (what an agent can report), capped by its uptime.
      const finished = agent.work.filter((w) => counts(w.task)).sort((a, b) => a.endMs - b.endMs);
      let next = 0;
      let busyMs = 0;
      for (const beat of list) {
        while (next < finished.length && finished[next]!.endMs <= beat.ms) {
          busyMs += finished[next]!.endMs - finished[next]!.startMs;
          next++;
        }
        beat.metadata.busy_ms = Math.min(busyMs, beat.metadata.uptime_ms);
      }
    }
  }
}

const HEARTBEAT_SUBJECT = 'swarm.agent.heartbeat';

function byTime(a: Item, b: Item): number {
  return a.ms - b.ms || a.seq - b.seq;
}

/** After reordering, the first copy of each id is the original. */
function markDuplicates(messages: SimMessage[]): SimMessage[] {
  const seen = new Set<string>();
  return messages.map((m) => {
    const id = messageIdOf(m);
    const duplicate = seen.has(id);
    seen.add(id);
    return duplicate === m.duplicate ? m : { ...m, duplicate };
  });
}

function statsOf(messages: readonly SimMessage[], reordered: number): TrafficStats {
  const byType: Record<string, number> = {};
  const tasks = new Set<string>();
  let duplicates = 0;
  for (const m of messages) {
    if (m.duplicate) {
      duplicates++;
      continue;
    }
    const dlq = m.subject.startsWith(DLQ_SUBJECT_PREFIX);
    const type = dlq ? m.subject : String(m.payload.event_type);
    byType[type] = (byType[type] ?? 0) + 1;
    if (!dlq && type.startsWith('task.')) tasks.add(String(m.payload.trace_id));
  }
  return { messages: messages.length, duplicates, reordered, tasks: tasks.size, byType };
}
