import type pg from 'pg';
import {
  type AgentMetricsRow,
  type ReferenceRows,
  type TraceRow,
  sortMetrics,
  sortTraces,
} from './reference.js';

const TRACE_COLUMNS = [
  'trace_id',
  'is_task',
  'task_title',
  'owner',
  'created_by',
  'status',
  'assigned_agent',
  'created_at',
  'assigned_at',
  'started_at',
  'completed_at',
  'duration_ms',
  'time_to_pickup_ms',
  'attempts',
  'span_count',
  'error',
  'scoring_breakdown',
  'last_event_at',
] as const satisfies readonly (keyof TraceRow)[];

const METRIC_COLUMNS = [
  'agent_id',
  'metric_date',
  'tasks_completed',
  'tasks_failed',
  'tasks_timed_out',
  'avg_duration_ms',
  'p95_duration_ms',
  'min_duration_ms',
  'max_duration_ms',
  'time_to_pickup_avg_ms',
  'uptime_ms',
  'busy_ms',
  'utilization_pct',
] as const satisfies readonly (keyof AgentMetricsRow)[];

const TIME_COLUMNS = ['created_at', 'assigned_at', 'started_at', 'completed_at', 'last_event_at'] as const;

/** swarm_traces and agent_metrics as stored, shaped and sorted like referenceRows() output. */
export async function storedRows(pool: pg.Pool): Promise<ReferenceRows> {
  const traces = await pool.query<Record<string, unknown>>(
    `SELECT ${TRACE_COLUMNS.join(', ')} FROM swarm_traces`,
  );
  const metrics = await pool.query<AgentMetricsRow>(`SELECT ${METRIC_COLUMNS.join(', ')} FROM agent_metrics`);
  return {
    traces: sortTraces(
      traces.rows.map((row) => {
        const out: Record<string, unknown> = { ...row };
        for (const c of TIME_COLUMNS) out[c] = row[c] === null ? null : (row[c] as Date).toISOString();
        return out as unknown as TraceRow;
      }),
    ),
    metrics: sortMetrics(metrics.rows),
  };
}
