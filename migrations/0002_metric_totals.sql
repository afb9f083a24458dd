-- Agent metrics kept by exact deltas (ADR 0003): each flush adds the change of the traces it
-- recomputed to the (agent, day) totals, instead of re-aggregating every task of the day.

-- Running totals behind the averages.
ALTER TABLE agent_metrics
  ADD COLUMN duration_count int    NOT NULL DEFAULT 0,
  ADD COLUMN duration_sum   bigint NOT NULL DEFAULT 0,
  ADD COLUMN pickup_count   int    NOT NULL DEFAULT 0,
  ADD COLUMN pickup_sum     bigint NOT NULL DEFAULT 0;

UPDATE agent_metrics m SET
  duration_count = s.duration_count, duration_sum = s.duration_sum,
  pickup_count = s.pickup_count, pickup_sum = s.pickup_sum
FROM (
  SELECT assigned_agent AS agent_id, (completed_at AT TIME ZONE 'UTC')::date AS metric_date,
    count(duration_ms) FILTER (WHERE status = 'completed')::int AS duration_count,
    coalesce(sum(duration_ms) FILTER (WHERE status = 'completed'), 0)::bigint AS duration_sum,
    count(time_to_pickup_ms)::int AS pickup_count,
    coalesce(sum(time_to_pickup_ms), 0)::bigint AS pickup_sum
  FROM swarm_traces
  WHERE is_task AND status IN ('completed', 'failed', 'timed_out') AND assigned_agent IS NOT NULL
  GROUP BY 1, 2
) s
WHERE m.agent_id = s.agent_id AND m.metric_date = s.metric_date;

-- The completed durations of one agent on one UTC day, in order: min, max and the two values around
-- the 95th percentile are a few index probes away.
DROP INDEX swarm_traces_agent_day_idx;
CREATE INDEX swarm_traces_agent_duration_idx
  ON swarm_traces (assigned_agent, ((completed_at AT TIME ZONE 'UTC')::date), duration_ms)
  WHERE is_task AND status = 'completed' AND duration_ms IS NOT NULL;
