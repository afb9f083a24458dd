-- The dashboards' panels of finished tasks (grafana/generate/swarm-overview.ts: outcome rates,
-- throughput, failure rate, task duration, failures) read the tasks that finished in the range by
-- completed_at, and the pickup-time panel the tasks started in it by started_at. Neither column had an
-- index, so the panels went through swarm_events (the terminal or task.started events of the range by
-- type and time, then one primary-key probe per task): 150-650 ms over 24 h and 0.8-1.9 s over 7 days
-- at 5,000,000 events in bench:scale (docs/benchmarks.md).
-- Both partial: completed_at is set exactly when the status is terminal (src/derive/task-state.ts), so
-- only a finished task's row versions have an entry in the first (one per task, more only if a late
-- event rewrites the row), and only a started task's in the second (at its start and at its end).
-- Status leads the first, so the failure panels read failures only; the included columns let the
-- aggregations read the indexes alone once pages are all-visible. Every column of the first is already
-- in another index (status, assigned_agent, completed_at, duration_ms, is_task), so it turns no HOT
-- update into a non-HOT one; started_at and time_to_pickup_ms change only with a task.started or
-- task.assigned, which changes status or assigned_agent too (an update that was not HOT anyway).
-- Measured on a flush-like upsert loop (bench/trace-upserts.ts): within the run-to-run noise, a few
-- per cent per row version at most.
CREATE INDEX swarm_traces_finished_idx ON swarm_traces (status, completed_at)
  INCLUDE (duration_ms, assigned_agent)
  WHERE is_task AND completed_at IS NOT NULL;
CREATE INDEX swarm_traces_started_idx ON swarm_traces (started_at) INCLUDE (time_to_pickup_ms)
  WHERE is_task AND time_to_pickup_ms IS NOT NULL;
