/**
 * Agent metrics: one agent_metrics row per (agent_id, UTC day). The rules (issue #3):
 *
 * - Task side: S = task traces with a terminal status and an assigned_agent whose completed_at falls on
 *   that UTC day. tasks_completed / tasks_failed / tasks_timed_out count S by status. Over the completed
 *   ones with a duration: avg_duration_ms (rounded), p95_duration_ms (percentile_cont(0.95), rounded),
 *   min_duration_ms, max_duration_ms. time_to_pickup_avg_ms: rounded mean over S where set.
 * - Heartbeat side: agent.heartbeat events; agent = metadata agent or agent_id, else source; day from the
 *   event timestamp. From the latest heartbeat of the day (by timestamp, then event_id): uptime_ms,
 *   busy_ms (JSON numbers from 0 to 2^53 − 1, rounded to whole ms; anything else counts as missing) and
 *   utilization_pct = 100 × busy_ms / uptime_ms rounded to 2 decimals (NULL when uptime is 0 or missing).
 * - A key with neither side has no row (it is deleted if it had one).
 *
 * How (ADR 0003): the counts and the sums behind the averages are totals kept per key, changed by the
 * exact deltas the trace recompute returns (what each changed trace counted for before, subtracted;
 * what it counts for now, added). The statistics a total cannot give are read from the ordered index of
 * the day's completed durations: min and max are its ends, and the 95th percentile interpolates the two
 * values around rank 0.95 × (n − 1), found from the top end (a scan of ~5% of the day), with the same
 * float8 arithmetic as percentile_cont. The latest heartbeat is one index probe.
 *
 * Parameters, one entry per key, sorted and already locked: $1 agent ids, $2 days (YYYY-MM-DD), then the
 * deltas: $3 completed, $4 failed, $5 timed out, $6 durations and $7 their sum, $8 pickups and $9 their
 * sum. A key touched only by heartbeats has zero deltas.
 */
export const UPDATE_AGENT_METRICS_SQL = `
WITH delta AS (
  SELECT * FROM unnest($1::text[], $2::date[], $3::int[], $4::int[], $5::int[], $6::int[], $7::bigint[],
      $8::int[], $9::bigint[])
    AS d(agent_id, metric_date, completed, failed, timed_out, duration_count, duration_sum, pickup_count, pickup_sum)
),
totals AS (
  SELECT d.agent_id, d.metric_date,
    coalesce(m.tasks_completed, 0) + d.completed AS tasks_completed,
    coalesce(m.tasks_failed, 0) + d.failed AS tasks_failed,
    coalesce(m.tasks_timed_out, 0) + d.timed_out AS tasks_timed_out,
    coalesce(m.duration_count, 0) + d.duration_count AS duration_count,
    coalesce(m.duration_sum, 0) + d.duration_sum AS duration_sum,
    coalesce(m.pickup_count, 0) + d.pickup_count AS pickup_count,
    coalesce(m.pickup_sum, 0) + d.pickup_sum AS pickup_sum,
    0.95::float8 * (coalesce(m.duration_count, 0) + d.duration_count - 1) AS p95_rank
  FROM delta d
  LEFT JOIN agent_metrics m ON m.agent_id = d.agent_id AND m.metric_date = d.metric_date
),
durations AS (
  -- Each subquery is an index-only probe of swarm_traces_agent_duration_idx (same predicate).
  SELECT t.*,
    (SELECT x.duration_ms FROM swarm_traces x
      WHERE x.assigned_agent = t.agent_id AND (x.completed_at AT TIME ZONE 'UTC')::date = t.metric_date
        AND x.is_task AND x.status = 'completed' AND x.duration_ms IS NOT NULL
      ORDER BY x.duration_ms LIMIT 1) AS min_duration_ms,
    (SELECT x.duration_ms FROM swarm_traces x
      WHERE x.assigned_agent = t.agent_id AND (x.completed_at AT TIME ZONE 'UTC')::date = t.metric_date
        AND x.is_task AND x.status = 'completed' AND x.duration_ms IS NOT NULL
      ORDER BY x.duration_ms DESC LIMIT 1) AS max_duration_ms,
    -- The values at ranks ceil(p95_rank) and, when different, floor(p95_rank), read from the top end.
    (SELECT array_agg(y.duration_ms::float8 ORDER BY y.duration_ms DESC) FROM (
      SELECT x.duration_ms FROM swarm_traces x
      WHERE x.assigned_agent = t.agent_id AND (x.completed_at AT TIME ZONE 'UTC')::date = t.metric_date
        AND x.is_task AND x.status = 'completed' AND x.duration_ms IS NOT NULL
      ORDER BY x.duration_ms DESC
      OFFSET t.duration_count - 1 - ceil(t.p95_rank)::int
      LIMIT 1 + (ceil(t.p95_rank) - floor(t.p95_rank))::int) y) AS p95_around
  FROM totals t
  WHERE t.duration_count > 0
),
beats AS (
  SELECT t.agent_id, t.metric_date,
    chronicle_json_ms(e.metadata -> 'uptime_ms') AS uptime_ms,
    chronicle_json_ms(e.metadata -> 'busy_ms') AS busy_ms
  FROM totals t
  CROSS JOIN LATERAL (
    SELECT h.metadata FROM swarm_events h
    WHERE h.event_type = 'agent.heartbeat' AND chronicle_heartbeat_agent(h.metadata, h.source) = t.agent_id
      AND h."timestamp" >= (t.metric_date::timestamp AT TIME ZONE 'UTC')
      AND h."timestamp" < ((t.metric_date + 1)::timestamp AT TIME ZONE 'UTC')
    ORDER BY h."timestamp" DESC, h.event_id DESC
    LIMIT 1
  ) e
),
rows AS (
  SELECT t.*, d.min_duration_ms, d.max_duration_ms,
    CASE WHEN t.duration_count > 0 THEN round(t.duration_sum::numeric / t.duration_count)::bigint END
      AS avg_duration_ms,
    -- percentile_cont: lo + (rank − floor(rank)) × (hi − lo), in float8.
    round((d.p95_around[cardinality(d.p95_around)]
      + ((t.p95_rank - floor(t.p95_rank)) * (d.p95_around[1] - d.p95_around[cardinality(d.p95_around)])))::numeric)::bigint
      AS p95_duration_ms,
    CASE WHEN t.pickup_count > 0 THEN round(t.pickup_sum::numeric / t.pickup_count)::bigint END
      AS time_to_pickup_avg_ms,
    b.uptime_ms, b.busy_ms,
    CASE WHEN b.uptime_ms > 0 AND b.busy_ms IS NOT NULL
      THEN round(100 * b.busy_ms::numeric / b.uptime_ms, 2) END AS utilization_pct
  FROM totals t
  LEFT JOIN durations d USING (agent_id, metric_date)
  LEFT JOIN beats b USING (agent_id, metric_date)
  WHERE t.tasks_completed + t.tasks_failed + t.tasks_timed_out > 0 OR b.agent_id IS NOT NULL
),
removed AS (
  DELETE FROM agent_metrics m USING totals t
  WHERE m.agent_id = t.agent_id AND m.metric_date = t.metric_date
    AND NOT EXISTS (SELECT 1 FROM rows r WHERE r.agent_id = t.agent_id AND r.metric_date = t.metric_date)
)
INSERT INTO agent_metrics AS m (agent_id, metric_date, tasks_completed, tasks_failed, tasks_timed_out,
  avg_duration_ms, p95_duration_ms, min_duration_ms, max_duration_ms, time_to_pickup_avg_ms,
  uptime_ms, busy_ms, utilization_pct, duration_count, duration_sum, pickup_count, pickup_sum, updated_at)
SELECT agent_id, metric_date, tasks_completed, tasks_failed, tasks_timed_out,
  avg_duration_ms, p95_duration_ms, min_duration_ms, max_duration_ms, time_to_pickup_avg_ms,
  uptime_ms, busy_ms, utilization_pct, duration_count, duration_sum, pickup_count, pickup_sum, now()
FROM rows
ON CONFLICT (agent_id, metric_date) DO UPDATE SET
  tasks_completed = excluded.tasks_completed, tasks_failed = excluded.tasks_failed,
  tasks_timed_out = excluded.tasks_timed_out, avg_duration_ms = excluded.avg_duration_ms,
  p95_duration_ms = excluded.p95_duration_ms, min_duration_ms = excluded.min_duration_ms,
  max_duration_ms = excluded.max_duration_ms, time_to_pickup_avg_ms = excluded.time_to_pickup_avg_ms,
  uptime_ms = excluded.uptime_ms, busy_ms = excluded.busy_ms, utilization_pct = excluded.utilization_pct,
  duration_count = excluded.duration_count, duration_sum = excluded.duration_sum,
  pickup_count = excluded.pickup_count, pickup_sum = excluded.pickup_sum, updated_at = excluded.updated_at`;
