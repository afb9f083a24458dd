-- GET /api/v1/trace-counts?agent= counts an agent's traces by status: the agent index finds its ~25,000
-- rows of a 1,000,000-task store in 20 ms, but status is not in it, so every row was fetched from the
-- heap (146 ms at p99 in bench:scale, docs/benchmarks.md). With status included the count is read from
-- the index alone once pages are all-visible (the vacuum loop keeps swarm_traces vacuumed). status is
-- already in swarm_traces_status_idx and swarm_traces_finished_idx, so an update that changes it was not
-- HOT anyway: including it here turns no HOT update into a non-HOT one.
--
-- The old index is dropped first, so this takes the table's ACCESS EXCLUSIVE lock with its first
-- statement. Building first took a SHARE lock and then asked for ACCESS EXCLUSIVE: a writer of another
-- replica that had read swarm_traces in its transaction and then waited behind the SHARE lock to write
-- it deadlocked with the migration (test/integration/upgrade-partitioned.test.ts, 3 runs in 6). Reads of
-- swarm_traces wait for the build, as they do for 0016's.
DROP INDEX swarm_traces_agent_idx;
CREATE INDEX swarm_traces_agent_idx ON swarm_traces (assigned_agent, created_at DESC, trace_id DESC)
  INCLUDE (status);
