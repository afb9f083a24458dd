-- Two lists of /api/v1/traces that read the whole of swarm_traces at 5,000,000 events (bench:scale,
-- docs/adr/0015-performance-on-live-traffic.md): task=false (the traces that are not tasks, an agent's
-- heartbeats: a few among a million tasks, found by walking every row in created_at order; p99 251 ms)
-- and trace_prefix (starts_with, which only an index in pattern order can serve; p99 452 ms).
-- The first is partial (a few rows, never touched by a task's update); trace_id never changes, so the
-- second adds an entry per new trace, and per row version only where an update could not be HOT anyway.
CREATE INDEX swarm_traces_not_task_idx ON swarm_traces (created_at DESC, trace_id DESC) WHERE NOT is_task;
CREATE INDEX swarm_traces_prefix_idx ON swarm_traces (trace_id text_pattern_ops);
