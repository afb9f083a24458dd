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
    ev('task.created', {
      title: `Summarise report ${traces}`,
      owner: `team-${Math.floor(random() * 8)}`,
      priority: Math.floor(random() * 5),
      scoring_breakdown: { capability: random(), availability: random() },
    });
    const attempts = random() < 0.1 ? 2 : 1;
    for (let a = 1; a <= attempts; a++) {
      const agent = agents[Math.floor(random() * agents.length)]!;
      t += 50 + Math.floor(random() * 500);
      ev('task.assigned', { agent, attempt: a });
      t += 20 + Math.floor(random() * 300);
      ev('task.started', { agent, attempt: a });
      const work = 200 + Math.floor(random() * 5000);
      t += work;
      busy.set(agent, (busy.get(agent) ?? 0) + work);
      const roll = random();
      if (a < attempts) {
        ev('task.failed', { agent, error: 'tool call failed', retryable: true });
      } else if (roll < 0.05) {
        ev('task.failed', { agent, error: 'model refused' });
      } else if (roll < 0.08) {
        ev('task.timeout', { agent, reason: 'deadline exceeded' });
      } else {
        ev('task.completed', { agent, tokens: Math.floor(random() * 4000) });
      }
    }
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
