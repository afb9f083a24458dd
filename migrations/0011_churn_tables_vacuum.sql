-- Vacuum settings for the tables Chronicle rewrites or empties all day (docs/adr/0015-performance-on-live-traffic.md).
-- Postgres's defaults vacuum a table once a fifth of it is dead: for swarm_traces (a new row version per
-- event of a task) that lets a million-row table carry hundreds of thousands of dead versions and their
-- index entries; otel_pending is a queue (every row inserted, then deleted by the span builder) whose
-- size should stay its backlog's. otel_spans (every export rewrites its rows) keeps Postgres's default
-- of 20 %: at 2 %, bench:scale vacuumed its 5 GB every minute or so, scanning all its indexes each time.
-- These apply when the server's autovacuum is on; when it is off,
-- Chronicle vacuums the same tables by the same thresholds itself (src/sinks/postgres/vacuum-loop.ts).
ALTER TABLE swarm_traces SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
  autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000);
ALTER TABLE otel_pending SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 5000);
ALTER TABLE agent_metrics SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
