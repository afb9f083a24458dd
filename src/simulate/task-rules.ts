/**
 * An independent oracle, kept apart on purpose: `chronicle simulate --verify` checks what Chronicle
 * computed against this module, so it deliberately restates the task-state rules (the lifecycle event
 * types, their rank, the status each leads to) instead of reading them from Chronicle's own table
 * (src/events/lifecycle.ts, which src/derive and src/spans use). It must not import that table, or
 * anything derived from it: a mistake there would then be repeated here, and --verify would not see it.
 *
 * The task-state rules of README "Task state and agent metrics" (issue 3), reduced to the columns the
 * simulator verifies. Ported from test/support/reference.ts, which tests compare with the SQL in
 * src/derive; src must not import tests, hence the copy. Only string metadata is read: the simulator
 * never sends other types for these fields.
 */
import type { CanonicalEvent } from '../events/schema.js';

/** A task's status as swarm_traces reports it. */
export type TaskStatus = 'pending' | 'assigned' | 'in_progress' | 'completed' | 'failed' | 'timed_out';

/** The swarm_traces columns the simulator checks. */
export interface TraceOutcome {
  trace_id: string;
  is_task: boolean;
  status: TaskStatus | null;
  assigned_agent: string | null;
  /** Number of task.assigned events. */
  attempts: number;
  /** Distinct events of the trace. */
  span_count: number;
  error: string | null;
  /** Earliest task.created, else the earliest event; epoch ms. */
  created_at_ms: number;
  /** Time of the terminal event when the status is terminal; epoch ms. */
  completed_at_ms: number | null;
}

/** Rank of each lifecycle event type (order within one timestamp); restated, see the top of this file. */
const RANK_OF: ReadonlyMap<string, number> = new Map([
  ['task.created', 0],
  ['task.assigned', 1],
  ['task.started', 2],
  ['task.completed', 3],
  ['task.failed', 3],
  ['task.timeout', 3],
]);

const STATUS_OF: Readonly<Record<string, TaskStatus>> = {
  'task.created': 'pending',
  'task.assigned': 'assigned',
  'task.started': 'in_progress',
  'task.completed': 'completed',
  'task.failed': 'failed',
  'task.timeout': 'timed_out',
};

/** Statuses that end a task and count in agent metrics. */
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['completed', 'failed', 'timed_out']);

interface Lifecycle {
  event: CanonicalEvent;
  ms: number;
  rank: number;
}

/** Applies the rules to one trace's distinct events (any order). */
export function traceOutcome(traceId: string, events: readonly CanonicalEvent[]): TraceOutcome {
  const lifecycle: Lifecycle[] = [];
  for (const event of events) {
    const rank = RANK_OF.get(event.event_type);
    if (rank !== undefined) lifecycle.push({ event, ms: Date.parse(event.timestamp), rank });
  }
  // (timestamp, rank, event_id): code-unit order of lower-case UUIDs is Postgres's uuid order.
  lifecycle.sort((a, b) => a.ms - b.ms || a.rank - b.rank || compareText(a.event.event_id, b.event.event_id));
  const last = lifecycle.at(-1);
  const status = last === undefined ? null : STATUS_OF[last.event.event_type]!;
  const assigned = lifecycle.filter((l) => l.event.event_type === 'task.assigned');
  const created = lifecycle.filter((l) => l.event.event_type === 'task.created');
  const latestWithAgent = (list: readonly Lifecycle[]): string | null => {
    for (let i = list.length - 1; i >= 0; i--) {
      const agent = agentOf(list[i]!.event.metadata);
      if (agent !== null) return agent;
    }
    return null;
  };
  let error: string | null = null;
  if (last !== undefined && (status === 'failed' || status === 'timed_out')) {
    error =
      text(last.event.metadata, 'error') ??
      text(last.event.metadata, 'reason') ??
      (status === 'timed_out' ? 'timeout' : null);
  }
  const times = events.map((e) => Date.parse(e.timestamp));
  return {
    trace_id: traceId,
    is_task: last !== undefined,
    status,
    assigned_agent: last === undefined ? null : (latestWithAgent(assigned) ?? latestWithAgent(lifecycle)),
    attempts: assigned.length,
    span_count: events.length,
    error,
    created_at_ms: created.length > 0 ? Math.min(...created.map((c) => c.ms)) : Math.min(...times),
    completed_at_ms: status !== null && TERMINAL_STATUSES.has(status) ? last!.ms : null,
  };
}

/** The agent an event names: metadata `agent`, else `agent_id`; an empty name is no name. */
export function agentOf(metadata: Record<string, unknown>): string | null {
  const agent = text(metadata, 'agent');
  if (agent !== null && agent !== '') return agent;
  const agentId = text(metadata, 'agent_id');
  return agentId !== null && agentId !== '' ? agentId : null;
}

function text(metadata: Record<string, unknown>, key: string): string | null {
  const value = metadata[key];
  return typeof value === 'string' ? value : null;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
