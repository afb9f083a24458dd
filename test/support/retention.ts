import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { CanonicalEvent } from '../../src/events/schema.js';
import type { WriteResult } from '../../src/pipeline/contracts.js';
import { createEventWriter } from '../../src/sinks/postgres/event-writer.js';
import {
  DEFAULT_MAINTENANCE_OPTIONS,
  type MaintenanceOptions,
} from '../../src/sinks/postgres/partition-maintenance.js';
import {
  DEFAULT_RETENTION,
  type RetentionPolicy,
  addDays,
  startOfUtcDay,
} from '../../src/sinks/postgres/retention-policy.js';
import { silentLogger } from '../../src/telemetry/logger.js';

/** Writes events through the event writer (ledger, events, traces, agent_metrics, as in production). */
export async function writeEvents(pool: pg.Pool, events: CanonicalEvent[]): Promise<WriteResult> {
  const writer = createEventWriter({ pool, logger: silentLogger() });
  return writer.write(
    events.map((event) => ({ kind: 'event', input: { origin: 'http', subject: null, key: null }, event })),
  );
}

/** A completed task of agent-<n % 3> on the day `day` (at 01:00 UTC + minutes), as four events. */
export function taskOnDay(prefix: string, day: Date, n: number): CanonicalEvent[] {
  const base = day.getTime() + 3_600_000 + n * 60_000;
  const ev = (event_type: string, offsetMillis: number): CanonicalEvent => ({
    event_id: randomUUID(),
    trace_id: `${prefix}-${day.toISOString().slice(0, 10)}-${n}`,
    source: 'test',
    event_type,
    timestamp: new Date(base + offsetMillis).toISOString(),
    metadata: { agent: `agent-${n % 3}` },
  });
  return [
    ev('task.created', 0),
    ev('task.assigned', 1_000),
    ev('task.started', 2_000),
    ev('task.completed', 7_000),
  ];
}

/** Tasks on each of the `days` days before today (offset 0 = today), `perDay` each. */
export function tasksOverDays(prefix: string, now: Date, days: number, perDay: number): CanonicalEvent[] {
  const today = startOfUtcDay(now);
  const events: CanonicalEvent[] = [];
  for (let d = 0; d < days; d++) {
    for (let n = 0; n < perDay; n++) events.push(...taskOnDay(prefix, addDays(today, -d), n));
  }
  return events;
}

/**
 * Maintenance options for tests: the defaults with small batches, no pause, the given policy, and span
 * export on unless told otherwise (spans waiting for export kept).
 */
export function testMaintenance(
  policy: Partial<RetentionPolicy>,
  options: { spansExported?: boolean } = {},
): MaintenanceOptions {
  return {
    ...DEFAULT_MAINTENANCE_OPTIONS,
    batchRows: 50,
    batchPauseMillis: 0,
    policy: { ...DEFAULT_RETENTION, ...policy },
    spansExported: options.spansExported ?? true,
  };
}

/** Every partition of swarm_events with its row count. */
export async function partitionCounts(pool: pg.Pool): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ name: string; n: number }>(
    `SELECT c.relname AS name, (SELECT count(*) FROM swarm_events e WHERE e.tableoid = c.oid)::int AS n
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'swarm_events'::regclass`,
  );
  return new Map(rows.map((r) => [r.name, r.n]));
}

/** Event ids stored, and ledger ids, sorted. */
export async function storedIds(pool: pg.Pool): Promise<{ events: string[]; ledger: string[] }> {
  const events = await pool.query<{ id: string }>('SELECT event_id::text AS id FROM swarm_events ORDER BY 1');
  const ledger = await pool.query<{ id: string }>(
    'SELECT event_id::text AS id FROM swarm_event_ids ORDER BY 1',
  );
  return { events: events.rows.map((r) => r.id), ledger: ledger.rows.map((r) => r.id) };
}

export const METRICS_SQL = `SELECT * FROM agent_metrics ORDER BY agent_id, metric_date`;
