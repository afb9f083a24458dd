/**
 * What Chronicle must have recorded for the messages of a run: the distinct events, each trace's task
 * state (by the same rules as swarm_traces), each agent's terminal tasks and latest heartbeat totals
 * per UTC day (as agent_metrics), and the dead-letter entries.
 */
import type { CanonicalEvent } from '../events/schema.js';
import { storedEventOf } from './stored-event.js';
import { TERMINAL_STATUSES, type TraceOutcome, agentOf, traceOutcome } from './task-rules.js';
import { DLQ_SUBJECT_PREFIX, type SimMessage } from './traffic.js';

/** How the messages reach Chronicle; over HTTP dead-letter entries arrive as `dlq.entry` events only. */
export type TargetKind = 'nats' | 'http';

/** One agent's figures for one UTC day. */
export interface AgentDayExpectation {
  tasks_completed: number;
  tasks_failed: number;
  tasks_timed_out: number;
  /** From the day's latest heartbeat; null when the agent sent none that day. */
  uptime_ms: number | null;
  busy_ms: number | null;
}

/** The state Chronicle must reach. */
export interface ExpectedState {
  /** Trace ids and agent names of the run start with this (see runPrefix). */
  prefix: string;
  /** Distinct events in swarm_events. */
  events: number;
  /** trace_id → the event_ids of its distinct events. */
  eventIds: ReadonlyMap<string, readonly string[]>;
  traces: ReadonlyMap<string, TraceOutcome>;
  /** UTC day (YYYY-MM-DD) → agent → figures. */
  agentDays: ReadonlyMap<string, ReadonlyMap<string, AgentDayExpectation>>;
  /** dlq_ids expected in swarm_dlq (none over HTTP). */
  dlqIds: ReadonlySet<string>;
  /** Range of the traces' created_at, epoch ms, until exclusive; null without traces. */
  createdWindow: { sinceMillis: number; untilMillis: number } | null;
}

/** Computes the expected state of `messages` as sent to a target of `kind`. */
export function computeExpected(
  messages: readonly SimMessage[],
  options: { prefix: string; target: TargetKind },
): ExpectedState {
  const byTrace = new Map<string, CanonicalEvent[]>();
  const seen = new Set<string>();
  const dlqIds = new Set<string>();
  for (const message of messages) {
    if (message.subject.startsWith(DLQ_SUBJECT_PREFIX) && options.target === 'nats') {
      dlqIds.add(String(message.payload.dlq_id));
    }
    const event = storedEventOf(message);
    if (event === null || seen.has(event.event_id)) continue;
    seen.add(event.event_id);
    const list = byTrace.get(event.trace_id) ?? [];
    list.push(event);
    byTrace.set(event.trace_id, list);
  }

  const traces = new Map<string, TraceOutcome>();
  let since = Infinity;
  let until = -Infinity;
  for (const [traceId, events] of byTrace) {
    const outcome = traceOutcome(traceId, events);
    traces.set(traceId, outcome);
    since = Math.min(since, outcome.created_at_ms);
    until = Math.max(until, outcome.created_at_ms + 1);
  }

  return {
    prefix: options.prefix,
    events: seen.size,
    eventIds: new Map([...byTrace].map(([id, events]) => [id, events.map((e) => e.event_id)])),
    traces,
    agentDays: agentDays(traces, byTrace),
    dlqIds,
    createdWindow: traces.size === 0 ? null : { sinceMillis: since, untilMillis: until },
  };
}

function agentDays(
  traces: ReadonlyMap<string, TraceOutcome>,
  byTrace: ReadonlyMap<string, CanonicalEvent[]>,
): Map<string, Map<string, AgentDayExpectation>> {
  const days = new Map<string, Map<string, AgentDayExpectation>>();
  const rowFor = (day: string, agent: string): AgentDayExpectation => {
    let agents = days.get(day);
    if (agents === undefined) days.set(day, (agents = new Map<string, AgentDayExpectation>()));
    let row = agents.get(agent);
    if (row === undefined) {
      row = { tasks_completed: 0, tasks_failed: 0, tasks_timed_out: 0, uptime_ms: null, busy_ms: null };
      agents.set(agent, row);
    }
    return row;
  };
  // Task side: terminal tasks with an agent, on the UTC day they ended.
  for (const t of traces.values()) {
    if (t.status === null || !TERMINAL_STATUSES.has(t.status) || t.assigned_agent === null) continue;
    const row = rowFor(utcDay(t.completed_at_ms!), t.assigned_agent);
    if (t.status === 'completed') row.tasks_completed++;
    else if (t.status === 'failed') row.tasks_failed++;
    else row.tasks_timed_out++;
  }
  // Heartbeat side: the latest heartbeat of each (agent, day) by (timestamp, event_id).
  const latest = new Map<string, CanonicalEvent>();
  for (const events of byTrace.values()) {
    for (const e of events) {
      if (e.event_type !== 'agent.heartbeat') continue;
      const key = JSON.stringify([agentOf(e.metadata) ?? e.source, utcDay(Date.parse(e.timestamp))]);
      const current = latest.get(key);
      if (current === undefined || laterHeartbeat(e, current)) latest.set(key, e);
    }
  }
  for (const [key, hb] of latest) {
    const [agent, day] = JSON.parse(key) as [string, string];
    const row = rowFor(day, agent);
    row.uptime_ms = wholeMillis(hb.metadata.uptime_ms);
    row.busy_ms = wholeMillis(hb.metadata.busy_ms);
  }
  return days;
}

function laterHeartbeat(a: CanonicalEvent, b: CanonicalEvent): boolean {
  const diff = Date.parse(a.timestamp) - Date.parse(b.timestamp);
  return diff > 0 || (diff === 0 && a.event_id > b.event_id);
}

function wholeMillis(value: unknown): number | null {
  if (typeof value !== 'number' || value < 0 || value > Number.MAX_SAFE_INTEGER) return null;
  return Math.round(value);
}

/** YYYY-MM-DD of an epoch-ms time, in UTC. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
