/**
 * The task-state and agent-metric rules of issue #3, written plainly in TypeScript from the issue's
 * text (not from the SQL in src/derive), so the integration tests can compare what Postgres computes
 * with what the rules say. Slow and simple on purpose: it is the spec in code.
 *
 * Readings of points the issue leaves open (shared with the SQL, stated here so they are visible):
 * - A metadata text field (title, owner, agent, agent_id, error, reason) is "carried" when it is a
 *   string; `agent` / `agent_id` must also be non-empty. Other JSON types are outside this reference
 *   (it throws) because their text form is Postgres's, not the issue's.
 * - scoring_breakdown is carried when present and not JSON null.
 * - busy_ms / uptime_ms count when they are JSON numbers from 0 to 2^53 − 1, rounded to whole ms (half away from zero).
 * - A heartbeat with busy_ms missing has a null utilization, like one with uptime 0 or missing.
 */
import type { CanonicalEvent } from '../../src/events/schema.js';

export type TaskStatus = 'pending' | 'assigned' | 'in_progress' | 'completed' | 'failed' | 'timed_out';

/**
 * A swarm_traces row: every column the recompute sets except updated_at and first_terminal_at (wall-clock
 * times); times as ISO strings.
 */
export interface TraceRow {
  trace_id: string;
  is_task: boolean;
  task_title: string | null;
  owner: string | null;
  /** The source of the earliest task.created. */
  created_by: string | null;
  status: TaskStatus | null;
  assigned_agent: string | null;
  created_at: string;
  assigned_at: string | null;
  started_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
  time_to_pickup_ms: number | null;
  attempts: number;
  span_count: number;
  error: string | null;
  scoring_breakdown: unknown;
  last_event_at: string;
}

/** An agent_metrics row: every column except updated_at; metric_date as YYYY-MM-DD. */
export interface AgentMetricsRow {
  agent_id: string;
  metric_date: string;
  tasks_completed: number;
  tasks_failed: number;
  tasks_timed_out: number;
  avg_duration_ms: number | null;
  p95_duration_ms: number | null;
  min_duration_ms: number | null;
  max_duration_ms: number | null;
  time_to_pickup_avg_ms: number | null;
  uptime_ms: number | null;
  busy_ms: number | null;
  utilization_pct: number | null;
}

export interface ReferenceRows {
  traces: TraceRow[];
  metrics: AgentMetricsRow[];
}

/** Lifecycle event types and their rank within one timestamp (issue #3). */
const RANK: Readonly<Record<string, number>> = {
  'task.created': 0,
  'task.assigned': 1,
  'task.started': 2,
  'task.completed': 3,
  'task.failed': 3,
  'task.timeout': 3,
};

const STATUS_OF: Readonly<Record<string, TaskStatus>> = {
  'task.created': 'pending',
  'task.assigned': 'assigned',
  'task.started': 'in_progress',
  'task.completed': 'completed',
  'task.failed': 'failed',
  'task.timeout': 'timed_out',
};

const TERMINAL: ReadonlySet<TaskStatus> = new Set(['completed', 'failed', 'timed_out']);

interface Ev {
  id: string;
  type: string;
  ms: number;
  rank: number | undefined;
  metadata: Record<string, unknown>;
  source: string;
}

/** Keeps the first event of each event_id, in list order. */
export function distinctEvents(events: readonly CanonicalEvent[]): CanonicalEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => {
    if (seen.has(e.event_id)) return false;
    seen.add(e.event_id);
    return true;
  });
}

/** Computes the swarm_traces and agent_metrics rows the rules give for these events. */
export function referenceRows(events: readonly CanonicalEvent[]): ReferenceRows {
  const byTrace = new Map<string, Ev[]>();
  for (const e of distinctEvents(events)) {
    const list = byTrace.get(e.trace_id) ?? [];
    list.push({
      id: e.event_id,
      type: e.event_type,
      ms: Date.parse(e.timestamp),
      rank: RANK[e.event_type],
      metadata: e.metadata,
      source: e.source,
    });
    byTrace.set(e.trace_id, list);
  }
  const traces = [...byTrace].map(([traceId, evs]) => traceRow(traceId, evs));
  const heartbeats = distinctEvents(events).filter((e) => e.event_type === 'agent.heartbeat');
  return {
    traces: sortTraces(traces),
    metrics: sortMetrics(metricRows(traces, heartbeats)),
  };
}

export function sortTraces<T extends { trace_id: string }>(rows: T[]): T[] {
  return [...rows].sort((a, b) => compareText(a.trace_id, b.trace_id));
}

export function sortMetrics<T extends { agent_id: string; metric_date: string }>(rows: T[]): T[] {
  return [...rows].sort(
    (a, b) => compareText(a.agent_id, b.agent_id) || compareText(a.metric_date, b.metric_date),
  );
}

function traceRow(traceId: string, evs: Ev[]): TraceRow {
  const lifecycle = evs.filter((e) => e.rank !== undefined).sort(lifecycleOrder);
  const ofType = (type: string) => lifecycle.filter((e) => e.type === type);
  const created = ofType('task.created');
  const assigned = ofType('task.assigned');
  const started = ofType('task.started');
  const last = lifecycle.at(-1);
  const isTask = last !== undefined;

  const status = last === undefined ? null : STATUS_OF[last.type]!;
  const earliestMs = Math.min(...evs.map((e) => e.ms));
  const createdMs = created.length > 0 ? Math.min(...created.map((e) => e.ms)) : earliestMs;
  const assignedMs = maxOrNull(assigned.map((e) => e.ms));
  const startedMs = maxOrNull(started.map((e) => e.ms));
  const completedMs = status !== null && TERMINAL.has(status) ? last!.ms : null;

  const durationMs =
    completedMs !== null && startedMs !== null && startedMs <= completedMs ? completedMs - startedMs : null;
  const pickedFromMs =
    startedMs === null ? null : maxOrNull(assigned.filter((e) => e.ms <= startedMs).map((e) => e.ms));
  const timeToPickupMs = startedMs !== null && pickedFromMs !== null ? startedMs - pickedFromMs : null;

  // The earliest task.created carrying each field (created events share a rank, so lifecycle order is time order).
  const firstCreated = (key: string) => created.find((e) => text(e.metadata, key) !== null);
  const title = firstCreated('title');
  const owner = firstCreated('owner');
  const scoring = created.find(
    (e) => e.metadata.scoring_breakdown !== undefined && e.metadata.scoring_breakdown !== null,
  );

  const latestAssignedWithAgent = [...assigned].reverse().find((e) => agentOf(e.metadata) !== null);
  const latestLifecycleWithAgent = [...lifecycle].reverse().find((e) => agentOf(e.metadata) !== null);
  const agentEvent = latestAssignedWithAgent ?? latestLifecycleWithAgent;

  let error: string | null = null;
  if (status === 'failed' || status === 'timed_out') {
    error =
      text(last!.metadata, 'error') ??
      text(last!.metadata, 'reason') ??
      (status === 'timed_out' ? 'timeout' : null);
  }

  return {
    trace_id: traceId,
    is_task: isTask,
    task_title: isTask && title ? text(title.metadata, 'title') : null,
    owner: isTask && owner ? text(owner.metadata, 'owner') : null,
    created_by: created[0]?.source ?? null,
    status,
    assigned_agent: isTask && agentEvent ? agentOf(agentEvent.metadata) : null,
    created_at: iso(createdMs),
    assigned_at: isoOrNull(assignedMs),
    started_at: isoOrNull(startedMs),
    completed_at: isoOrNull(completedMs),
    duration_ms: durationMs,
    time_to_pickup_ms: timeToPickupMs,
    attempts: assigned.length,
    span_count: evs.length,
    error,
    scoring_breakdown: isTask && scoring ? scoring.metadata.scoring_breakdown : null,
    last_event_at: iso(Math.max(...evs.map((e) => e.ms))),
  };
}

function metricRows(traces: readonly TraceRow[], heartbeats: readonly CanonicalEvent[]): AgentMetricsRow[] {
  const rows = new Map<string, AgentMetricsRow>();
  const rowFor = (agent: string, day: string): AgentMetricsRow => {
    const key = JSON.stringify([agent, day]);
    let row = rows.get(key);
    if (row === undefined) {
      row = {
        agent_id: agent,
        metric_date: day,
        tasks_completed: 0,
        tasks_failed: 0,
        tasks_timed_out: 0,
        avg_duration_ms: null,
        p95_duration_ms: null,
        min_duration_ms: null,
        max_duration_ms: null,
        time_to_pickup_avg_ms: null,
        uptime_ms: null,
        busy_ms: null,
        utilization_pct: null,
      };
      rows.set(key, row);
    }
    return row;
  };

  // Task side: S = terminal task traces with an assigned agent, grouped by the UTC day of completed_at.
  const groups = new Map<string, TraceRow[]>();
  for (const t of traces) {
    if (!t.is_task || t.status === null || !TERMINAL.has(t.status) || t.assigned_agent === null) continue;
    const key = JSON.stringify([t.assigned_agent, t.completed_at!.slice(0, 10)]);
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  for (const [key, s] of groups) {
    const [agent, day] = JSON.parse(key) as [string, string];
    const row = rowFor(agent, day);
    row.tasks_completed = s.filter((t) => t.status === 'completed').length;
    row.tasks_failed = s.filter((t) => t.status === 'failed').length;
    row.tasks_timed_out = s.filter((t) => t.status === 'timed_out').length;
    const durations = s
      .filter((t) => t.status === 'completed' && t.duration_ms !== null)
      .map((t) => t.duration_ms!)
      .sort((a, b) => a - b);
    if (durations.length > 0) {
      row.avg_duration_ms = roundedMean(durations);
      row.p95_duration_ms = percentileCont(durations, 95);
      row.min_duration_ms = durations[0]!;
      row.max_duration_ms = durations.at(-1)!;
    }
    const pickups = s.filter((t) => t.time_to_pickup_ms !== null).map((t) => t.time_to_pickup_ms!);
    if (pickups.length > 0) row.time_to_pickup_avg_ms = roundedMean(pickups);
  }

  // Heartbeat side: the latest heartbeat (by timestamp, then event_id) of each (agent, UTC day).
  const latest = new Map<string, CanonicalEvent>();
  for (const hb of heartbeats) {
    const key = JSON.stringify([agentOf(hb.metadata) ?? hb.source, utcDay(Date.parse(hb.timestamp))]);
    const current = latest.get(key);
    if (current === undefined || compareHeartbeats(hb, current) > 0) latest.set(key, hb);
  }
  for (const [key, hb] of latest) {
    const [agent, day] = JSON.parse(key) as [string, string];
    const row = rowFor(agent, day);
    row.uptime_ms = wholeMillis(hb.metadata.uptime_ms);
    row.busy_ms = wholeMillis(hb.metadata.busy_ms);
    if (row.uptime_ms !== null && row.uptime_ms > 0 && row.busy_ms !== null) {
      // 100 × busy / uptime to 2 decimals = (10,000 × busy / uptime) hundredths, rounded exactly.
      row.utilization_pct = roundDiv(10_000n * BigInt(row.busy_ms), BigInt(row.uptime_ms)) / 100;
    }
  }
  return [...rows.values()];
}

/** Lifecycle order: (timestamp, rank, event_id). */
function lifecycleOrder(a: Ev, b: Ev): number {
  return a.ms - b.ms || a.rank! - b.rank! || compareText(a.id, b.id);
}

function compareHeartbeats(a: CanonicalEvent, b: CanonicalEvent): number {
  return Date.parse(a.timestamp) - Date.parse(b.timestamp) || compareText(a.event_id, b.event_id);
}

/** Code-unit order; for lower-case UUIDs it is Postgres's uuid order. */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A metadata field as text when the event carries it; see the header for the types accepted. */
function text(metadata: Record<string, unknown>, key: string): string | null {
  const value = metadata[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string')
    throw new Error(`reference: metadata ${key} must be a string, got ${typeof value}`);
  return value;
}

/** The agent an event names: metadata `agent`, else `agent_id`; an empty name is no name. */
export function agentOf(metadata: Record<string, unknown>): string | null {
  return nonEmpty(text(metadata, 'agent')) ?? nonEmpty(text(metadata, 'agent_id'));
}

function nonEmpty(value: string | null): string | null {
  return value === '' ? null : value;
}

function wholeMillis(value: unknown): number | null {
  // Running totals in ms: a negative value or one beyond 2^53 is not one (null).
  if (typeof value !== 'number' || value < 0 || value > Number.MAX_SAFE_INTEGER) return null;
  return Math.round(value);
}

/** Mean of integers, rounded half away from zero, computed exactly. */
function roundedMean(values: readonly number[]): number {
  const sum = values.reduce((acc, v) => acc + BigInt(v), 0n);
  return roundDiv(sum, BigInt(values.length));
}

/**
 * Percentile with linear interpolation between closest ranks, like Postgres percentile_cont(p / 100),
 * rounded half away from zero. Exact: position (n − 1) × p / 100 is kept as a fraction.
 */
export function percentileCont(sorted: readonly number[], p: number): number {
  const n = sorted.length;
  const scaled = (n - 1) * p; // position × 100
  const lo = Math.floor(scaled / 100);
  const frac = BigInt(scaled % 100); // hundredths of the way from sorted[lo] to sorted[lo + 1]
  const a = BigInt(sorted[lo]!);
  const b = BigInt(sorted[Math.min(lo + 1, n - 1)]!);
  return roundDiv(a * 100n + frac * (b - a), 100n);
}

/** numerator / denominator (denominator > 0) rounded half away from zero, as Postgres numeric round(). */
export function roundDiv(numerator: bigint, denominator: bigint): number {
  const negative = numerator < 0n;
  const abs = negative ? -numerator : numerator;
  const rounded = (2n * abs + denominator) / (2n * denominator);
  return Number(negative ? -rounded : rounded);
}

function maxOrNull(values: readonly number[]): number | null {
  return values.length === 0 ? null : Math.max(...values);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : iso(ms);
}

function utcDay(ms: number): string {
  return iso(ms).slice(0, 10);
}
