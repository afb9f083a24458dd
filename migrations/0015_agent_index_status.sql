-- GET /api/v1/trace-counts?agent= counts an agent's traces by status: the agent index finds its ~25,000
-- rows of a 1,000,000-task store in 20 ms, but status is not in it, so every row was fetched from the
-- heap (146 ms at p99 in bench:scale, docs/benchmarks.md). With status included the count is read from
-- the index alone once pages are all-visible (the vacuum loop keeps swarm_traces vacuumed). status is
-- already in swarm_traces_status_idx and swarm_traces_finished_idx, so an update that changes it was not
-- HOT anyway: including it here turns no HOT update into a non-HOT one.
CREATE INDEX swarm_traces_agent_status_idx ON swarm_traces (assigned_agent, created_at DESC, trace_id DESC)
  INCLUDE (status);
DROP INDEX swarm_traces_agent_idx;
ALTER INDEX swarm_traces_agent_status_idx RENAME TO swarm_traces_agent_idx;
