/**
 * Agent metrics: one agent_metrics row per (agent_id, UTC day), recomputed set-based from
 * swarm_traces and the day's heartbeats. The rules (issue #3):
 *
 * - Task side: S = task traces with a terminal status and an assigned_agent whose completed_at falls on
 *   that UTC day. tasks_completed / tasks_failed / tasks_timed_out count S by status. Over the completed
 *   ones with a duration: avg_duration_ms (rounded), p95_duration_ms (percentile_cont(0.95), rounded),
 *   min_duration_ms, max_duration_ms. time_to_pickup_avg_ms: rounded mean over S where set.
 * - Heartbeat side: agent.heartbeat events; agent = metadata agent or agent_id, else source; day from the
 *   event timestamp. From the latest heartbeat of the day (by timestamp, then event_id): uptime_ms,
 *   busy_ms (JSON numbers from 0 to 2^53 − 1, rounded to whole ms; anything else counts as missing) and utilization_pct = 100 × busy_ms / uptime_ms rounded
 *   to 2 decimals (NULL when uptime is 0 or missing).
 * - A key with neither side has no row (it is deleted if it had one).
 *
 * $1 agent ids and $2 days (YYYY-MM-DD), pairwise, sorted and already locked.
 */
export const RECOMPUTE_AGENT_METRICS_SQL = `
WITH keys AS (
  SELECT DISTINCT k.agent_id, k.metric_date,
    (k.metric_date::timestamp AT TIME ZONE 'UTC') AS day_start,
    ((k.metric_date + 1)::timestamp AT TIME ZONE 'UTC') AS day_end
  FROM unnest($1::text[], $2::date[]) AS k(agent_id, metric_date)
),
tasks AS (
  -- LATERAL: one aggregate per key over that key's index range, instead of one sort of every key's
  -- rows (which stale statistics on a growing table can send to disk).
  SELECT k.agent_id, k.metric_date, a.*
  FROM keys k
  CROSS JOIN LATERAL (
    SELECT
      count(*) FILTER (WHERE t.status = 'completed')::int AS tasks_completed,
      count(*) FILTER (WHERE t.status = 'failed')::int AS tasks_failed,
      count(*) FILTER (WHERE t.status = 'timed_out')::int AS tasks_timed_out,
      round(avg(t.duration_ms) FILTER (WHERE t.status = 'completed'))::bigint AS avg_duration_ms,
      round((percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms) FILTER (WHERE t.status = 'completed'))::numeric)::bigint
        AS p95_duration_ms,
      min(t.duration_ms) FILTER (WHERE t.status = 'completed') AS min_duration_ms,
      max(t.duration_ms) FILTER (WHERE t.status = 'completed') AS max_duration_ms,
      round(avg(t.time_to_pickup_ms))::bigint AS time_to_pickup_avg_ms,
      count(*) AS terminal_tasks
    FROM swarm_traces t
    WHERE t.assigned_agent = k.agent_id AND t.is_task AND t.status IN ('completed', 'failed', 'timed_out')
      AND t.completed_at >= k.day_start AND t.completed_at < k.day_end
  ) a
  WHERE a.terminal_tasks > 0
),
beats AS (
  SELECT k.agent_id, k.metric_date,
    chronicle_json_ms(e.metadata -> 'uptime_ms') AS uptime_ms,
    chronicle_json_ms(e.metadata -> 'busy_ms') AS busy_ms
  FROM keys k
  CROSS JOIN LATERAL (
    SELECT h.metadata FROM swarm_events h
    WHERE h.event_type = 'agent.heartbeat' AND chronicle_heartbeat_agent(h.metadata, h.source) = k.agent_id
      AND h."timestamp" >= k.day_start AND h."timestamp" < k.day_end
    ORDER BY h."timestamp" DESC, h.event_id DESC
    LIMIT 1
  ) e
),
rows AS (
  SELECT k.agent_id, k.metric_date, t.tasks_completed, t.tasks_failed, t.tasks_timed_out, t.avg_duration_ms,
    t.p95_duration_ms, t.min_duration_ms, t.max_duration_ms, t.time_to_pickup_avg_ms, b.uptime_ms, b.busy_ms,
    CASE WHEN b.uptime_ms > 0 AND b.busy_ms IS NOT NULL
      THEN round(100 * b.busy_ms::numeric / b.uptime_ms, 2) END AS utilization_pct
  FROM keys k
  LEFT JOIN tasks t USING (agent_id, metric_date)
  LEFT JOIN beats b USING (agent_id, metric_date)
  WHERE t.agent_id IS NOT NULL OR b.agent_id IS NOT NULL
),
removed AS (
  DELETE FROM agent_metrics m USING keys k
  WHERE m.agent_id = k.agent_id AND m.metric_date = k.metric_date
    AND NOT EXISTS (SELECT 1 FROM rows r WHERE r.agent_id = k.agent_id AND r.metric_date = k.metric_date)
)
INSERT INTO agent_metrics AS m (agent_id, metric_date, tasks_completed, tasks_failed, tasks_timed_out,
  avg_duration_ms, p95_duration_ms, min_duration_ms, max_duration_ms, time_to_pickup_avg_ms,
  uptime_ms, busy_ms, utilization_pct, updated_at)
SELECT agent_id, metric_date, coalesce(tasks_completed, 0), coalesce(tasks_failed, 0), coalesce(tasks_timed_out, 0),
  avg_duration_ms, p95_duration_ms, min_duration_ms, max_duration_ms, time_to_pickup_avg_ms,
  uptime_ms, busy_ms, utilization_pct, now()
FROM rows
ON CONFLICT (agent_id, metric_date) DO UPDATE SET
  tasks_completed = excluded.tasks_completed, tasks_failed = excluded.tasks_failed,
  tasks_timed_out = excluded.tasks_timed_out, avg_duration_ms = excluded.avg_duration_ms,
  p95_duration_ms = excluded.p95_duration_ms, min_duration_ms = excluded.min_duration_ms,
  max_duration_ms = excluded.max_duration_ms, time_to_pickup_avg_ms = excluded.time_to_pickup_avg_ms,
  uptime_ms = excluded.uptime_ms, busy_ms = excluded.busy_ms, utilization_pct = excluded.utilization_pct,
  updated_at = excluded.updated_at`;
