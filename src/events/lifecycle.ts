/**
 * The task lifecycle (issue 3), stated once: which event types are lifecycle events, their rank (their
 * order within one timestamp), and the status each leaves a task in. src/derive builds the parts of its
 * SQL that encode this table from it; src/spans reads it. The SQL function chronicle_lifecycle_rank
 * (migrations/0001_initial.sql) restates the ranks and is tested equal to this table
 * (test/unit/events/lifecycle.test.ts). src/simulate/task-rules.ts restates the rules on purpose, as an
 * independent oracle for `chronicle simulate --verify`, and does not import this module.
 */

/** A task's status as swarm_traces stores it. */
export type TaskStatus = 'pending' | 'assigned' | 'in_progress' | 'completed' | 'failed' | 'timed_out';

/** One lifecycle event type and what it means for its task. */
export interface LifecycleStep {
  /** The event_type. */
  readonly eventType: string;
  /** Order among lifecycle events with the same timestamp: they sort by (timestamp, rank, event_id). */
  readonly rank: number;
  /** The task's status when this is its last lifecycle event. */
  readonly status: TaskStatus;
  /** Whether that status ends the task (completed_at is set, and agent metrics count it). */
  readonly terminal: boolean;
}

/** The lifecycle table, in rank order. A trace with none of these events is not a task. */
export const LIFECYCLE = [
  { eventType: 'task.created', rank: 0, status: 'pending', terminal: false },
  { eventType: 'task.assigned', rank: 1, status: 'assigned', terminal: false },
  { eventType: 'task.started', rank: 2, status: 'in_progress', terminal: false },
  { eventType: 'task.completed', rank: 3, status: 'completed', terminal: true },
  { eventType: 'task.failed', rank: 3, status: 'failed', terminal: true },
  { eventType: 'task.timeout', rank: 3, status: 'timed_out', terminal: true },
] as const satisfies readonly LifecycleStep[];

type Step = (typeof LIFECYCLE)[number];

/** An event type of the lifecycle table. */
export type LifecycleEventType = Step['eventType'];

/** A status that ends a task. */
export type TerminalStatus = Extract<Step, { terminal: true }>['status'];

const TERMINAL_STEPS = LIFECYCLE.filter((s): s is Extract<Step, { terminal: true }> => s.terminal);

/** The terminal statuses, in table order. */
export const TERMINAL_STATUSES: readonly TerminalStatus[] = Object.freeze(
  TERMINAL_STEPS.map((s) => s.status),
);

/** Event type → value, without a prototype, so an event_type such as `constructor` finds nothing. */
function byEventType<S extends Step, T>(
  steps: readonly S[],
  value: (step: S) => T,
): Readonly<Record<string, T>> {
  const out = Object.create(null) as Record<string, T>;
  for (const step of steps) out[step.eventType] = value(step);
  return Object.freeze(out);
}

/** Rank of each lifecycle event type; undefined for every other type. */
export const LIFECYCLE_RANK: Readonly<Record<string, number>> = byEventType(LIFECYCLE, (s) => s.rank);

/** Status each lifecycle event type leads to; undefined for every other type. */
export const LIFECYCLE_STATUS: Readonly<Record<string, TaskStatus>> = byEventType(LIFECYCLE, (s) => s.status);

/** Terminal status of each terminal event type (task.completed → completed, …); undefined otherwise. */
export const TERMINAL_STATUS_OF: Readonly<Record<string, TerminalStatus>> = byEventType(
  TERMINAL_STEPS,
  (s) => s.status,
);

/** Whether `status` (as swarm_traces stores it; null for a trace that is not a task) ends the task. */
export function isTerminalStatus(status: string | null): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly (string | null)[]).includes(status);
}

/**
 * Events a task's spans show before the task ends (on an update span), so a stuck task still shows
 * why: dead-letter entries and errors (src/spans/trace-spans.ts).
 */
export function shownAtOnce(eventType: string): boolean {
  return eventType === 'dlq.entry' || eventType.startsWith('system.') || eventType.endsWith('.error');
}

/**
 * An event that alone makes no span of a task that has no assignment, no start and never ended: not an
 * assignment, a start or an end (the only events that end a span of a task), and not shown at once.
 */
export function inertForSpans(eventType: string): boolean {
  return (
    eventType !== 'task.assigned' &&
    eventType !== 'task.started' &&
    TERMINAL_STATUS_OF[eventType] === undefined &&
    !shownAtOnce(eventType)
  );
}
