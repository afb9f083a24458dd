-- The agent ranking (grafana/generate/agent-performance.ts) and the writer's per-agent p95
-- (src/derive/agent-metrics.ts) read an agent's completed durations on given UTC days through
-- swarm_traces_agent_duration_idx. The index keys on the day expression of completed_at, but an
-- index-only scan needs every column the query names, and completed_at itself was not stored: each
-- duration was fetched from the heap (a bitmap heap scan of 35,948 blocks for a 24 h ranking over
-- 1,080,000 task rows, 36 ms at p99; 57.7 ms in bench:scale, docs/benchmarks.md). With completed_at
-- included the durations are read from the index alone once pages are all-visible. completed_at is
-- already in this index's expression, so an update that changes it was not HOT anyway.
--
-- The old index is dropped first, so the table's ACCESS EXCLUSIVE lock is this migration's first lock
-- (the rule in src/db/migrate.ts).
DROP INDEX swarm_traces_agent_duration_idx;
CREATE INDEX swarm_traces_agent_duration_idx
  ON swarm_traces (assigned_agent, ((completed_at AT TIME ZONE 'UTC')::date), duration_ms)
  INCLUDE (completed_at)
  WHERE is_task AND status = 'completed' AND duration_ms IS NOT NULL;
