/**
 * Compares what Chronicle recorded with what a run should have left, as human-readable lines; no
 * line means everything matched.
 */
import type { AgentDayExpectation, ExpectedState } from './expected.js';

/** The swarm_traces columns read back from the API. */
export interface ObservedTrace {
  trace_id: string;
  is_task: boolean;
  status: string | null;
  assigned_agent: string | null;
  attempts: number;
  span_count: number;
  error: string | null;
  first_event_at?: string;
  last_event_at?: string;
}

/** What the API shows for the run's traces, agents and dead-letter entries. */
export interface ObservedState {
  /** The run's traces (expected ids, and any other id with the run's prefix). */
  traces: ReadonlyMap<string, ObservedTrace>;
  /** UTC day → the run's agents' rows that day (only days the expectation names). */
  agentDays: ReadonlyMap<string, ReadonlyMap<string, AgentDayExpectation>>;
  /** The run's dlq_ids found in swarm_dlq; undefined when not read. */
  dlqIds?: ReadonlySet<string> | undefined;
  /**
   * Events found in the raw log (swarm_events, through /api/v1/events) per trace: checked apart from
   * the trace rows' span_count, so a lost event shows even where a derived row still counts it.
   */
  logEvents?: ReadonlyMap<string, number> | undefined;
}

const TRACE_FIELDS = ['is_task', 'status', 'assigned_agent', 'attempts', 'error'] as const;
const AGENT_FIELDS = ['tasks_completed', 'tasks_failed', 'tasks_timed_out', 'uptime_ms', 'busy_ms'] as const;

/** Lists every difference between `expected` and `observed`. */
export function compareState(expected: ExpectedState, observed: ObservedState): string[] {
  const out: string[] = [];
  const show = (v: unknown): string => JSON.stringify(v);

  let recorded = 0;
  for (const t of observed.traces.values()) recorded += t.span_count;
  if (recorded !== expected.events) {
    out.push(`events: expected ${expected.events} distinct events, Chronicle recorded ${recorded}`);
  }

  if (observed.logEvents !== undefined) {
    let inLog = 0;
    for (const n of observed.logEvents.values()) inLog += n;
    if (inLog !== expected.events) {
      out.push(`events: expected ${expected.events} distinct events in the log, found ${inLog}`);
    }
    for (const [id, want] of expected.traces) {
      const found = observed.logEvents.get(id) ?? 0;
      if (found !== want.span_count)
        out.push(`trace ${id}: expected ${want.span_count} events in the log, found ${found}`);
    }
  }

  for (const [id, want] of expected.traces) {
    const got = observed.traces.get(id);
    if (got === undefined) {
      out.push(`trace ${id}: missing (expected ${want.status ?? 'a non-task trace'})`);
      continue;
    }
    if (got.span_count !== want.span_count) {
      out.push(`trace ${id}: expected ${want.span_count} events, Chronicle recorded ${got.span_count}`);
    }
    for (const field of TRACE_FIELDS) {
      if (got[field] !== want[field]) {
        out.push(`trace ${id}: ${field} expected ${show(want[field])}, got ${show(got[field])}`);
      }
    }
  }
  for (const id of observed.traces.keys()) {
    if (!expected.traces.has(id)) out.push(`trace ${id}: recorded but never sent in this run`);
  }

  for (const [day, agents] of expected.agentDays) {
    const gotAgents = observed.agentDays.get(day);
    for (const [agent, want] of agents) {
      const got = gotAgents?.get(agent);
      if (got === undefined) {
        out.push(`agent ${agent} on ${day}: no agent_metrics row`);
        continue;
      }
      for (const field of AGENT_FIELDS) {
        if (got[field] !== want[field]) {
          out.push(
            `agent ${agent} on ${day}: ${field} expected ${show(want[field])}, got ${show(got[field])}`,
          );
        }
      }
    }
    for (const [agent, got] of gotAgents ?? []) {
      // A row left at zero (a task that counted for the agent only until a later event arrived) is fine.
      const empty = AGENT_FIELDS.every((f) => got[f] === 0 || got[f] === null);
      if (!agents.has(agent) && !empty) {
        out.push(`agent ${agent} on ${day}: row recorded but not expected (${show(got)})`);
      }
    }
  }

  if (observed.dlqIds !== undefined) {
    const missing = [...expected.dlqIds].filter((id) => !observed.dlqIds!.has(id));
    const extra = [...observed.dlqIds].filter((id) => !expected.dlqIds.has(id));
    if (missing.length > 0 || extra.length > 0) {
      out.push(
        `dlq: expected ${expected.dlqIds.size} entries, found ${observed.dlqIds.size}` +
          (missing.length > 0 ? `; missing ${missing.slice(0, 5).join(', ')}` : '') +
          (extra.length > 0 ? `; unexpected ${extra.slice(0, 5).join(', ')}` : ''),
      );
    }
  }
  return out;
}
