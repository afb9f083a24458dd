/** How long each kind of stored row is kept, in days; 0 keeps it forever. */
export interface RetentionPolicy {
  /** swarm_events, by day partition, and their dedup ledger entries (SWARM_EVENTS_RETENTION_DAYS). */
  eventsDays: number;
  /** swarm_traces rows whose last event is older (SWARM_TRACES_RETENTION_DAYS). */
  tracesDays: number;
  /**
   * otel_spans rows (OTEL_SPANS_RETENTION_DAYS): with span export on, by when they were exported (a span
   * not exported yet is never trimmed); with export off, by when they were built.
   */
  spansDays: number;
  /** chronicle_rejects rows (REJECTS_RETENTION_DAYS). */
  rejectsDays: number;
  /** swarm_dlq rows, by the time Chronicle received them (DLQ_RETENTION_DAYS). */
  dlqDays: number;
}

/** The defaults of the variables (README: Retention). */
export const DEFAULT_RETENTION: RetentionPolicy = {
  eventsDays: 30,
  tracesDays: 90,
  spansDays: 30,
  rejectsDays: 30,
  dlqDays: 90,
};

const DAY_MILLIS = 86_400_000;

/** Midnight UTC at the start of the day of `time`. */
export function startOfUtcDay(time: Date): Date {
  return new Date(Math.floor(time.getTime() / DAY_MILLIS) * DAY_MILLIS);
}

/** `time` moved by whole days. */
export function addDays(time: Date, days: number): Date {
  return new Date(time.getTime() + days * DAY_MILLIS);
}

/**
 * The events' retention horizon at `now`: events before it are dropped (whole days: midnight UTC of the
 * day `days` days ago). undefined when events are kept forever.
 */
export function eventsHorizon(policy: RetentionPolicy, now: Date): Date | undefined {
  return policy.eventsDays > 0 ? addDays(startOfUtcDay(now), -policy.eventsDays) : undefined;
}

/** The time before which rows kept for `days` days are trimmed; undefined for 0 (forever). */
export function trimHorizon(days: number, now: Date): Date | undefined {
  return days > 0 ? addDays(now, -days) : undefined;
}
