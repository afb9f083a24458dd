-- The dashboards' task graph (grafana/generate/traces.ts) draws an edge from the service that created
-- each task (the source of its earliest task.created event) to its agent. swarm_traces did not hold that
-- service, so the graph found the range's task.created events through swarm_events and probed a trace
-- row per task: 250-310 ms over 24 h and 1.1-1.5 s over 7 days at 5,000,000 events (bench:scale,
-- docs/benchmarks.md). created_by is now a column of the trace row, set by the trace recompute
-- (src/derive/task-state.ts) from the same events as the rest of the row, so it is a function of the set
-- of events like every other column.
--
-- Rows stored before are not rewritten here: filling the column from their events took 5 min 15 s on
-- 1,080,000 task rows (every row version rewritten with its eleven index entries), a start-up that long
-- for an upgrade. Their created_by stays unset until their next event, and the graph reads the creator
-- of an unset row from its task.created event, as before (swarm_traces_creator_unset_idx finds them).
ALTER TABLE swarm_traces ADD COLUMN IF NOT EXISTS created_by text;

-- The pinned copies (0009) carry every column the API serves of a trace; the copy of a task pinned
-- before shows it unset until the task is pinned again.
ALTER TABLE archive_traces ADD COLUMN created_by text;

-- The graph's rows read from an index alone: the tasks created in the range with what the graph shows
-- of each. Partial (tasks with a creator); every included column but created_by is already in another
-- index and changes only when an indexed column does, and created_by is set with the row, so it turns
-- no HOT update into a non-HOT one.
CREATE INDEX swarm_traces_created_by_idx ON swarm_traces (created_at)
  INCLUDE (created_by, assigned_agent, status, duration_ms)
  WHERE is_task AND created_by IS NOT NULL;

-- The tasks whose creator is unset: those stored before this migration (until they age out), and a
-- task whose task.created has not arrived yet.
CREATE INDEX swarm_traces_creator_unset_idx ON swarm_traces (created_at)
  WHERE is_task AND created_by IS NULL;
