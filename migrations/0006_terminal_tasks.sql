-- When a task's row first had a terminal status (completed, failed, timed_out): the time of the
-- transaction that first made it terminal. Set once by the trace recompute (src/derive/task-state.ts)
-- and never changed, even when a later event makes the task active again (a failed task retried).
-- The flush that sets it counts the task in chronicle_tasks_terminal_total, after its commit: once per
-- task, whichever replica wrote it.
ALTER TABLE swarm_traces ADD COLUMN first_terminal_at timestamptz;

-- Rows terminal before this column existed are not "newly terminal" when a late event touches them
-- after the upgrade: an upgrade counts nothing again. Their first terminal time is not known; their
-- completed_at is the closest value kept.
UPDATE swarm_traces SET first_terminal_at = completed_at
WHERE status IN ('completed', 'failed', 'timed_out');
