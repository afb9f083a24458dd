-- Each build of a task's spans compares what the mapping plans now with what was already sent
-- (src/spans/trace-spans.ts, spansToEmit). It read every sent span of the task back, a root carrying
-- every event of its task, and hashed it again: about a seventh of Chronicle's CPU under live traffic
-- (bench:spans CPU profile, docs/benchmarks.md). The builder now stores each span's fingerprint and
-- name as it stores the span, and a build reads those instead of the span.
--
-- Rows stored before keep both unset: a build reads such a span and computes its fingerprint, as
-- before. Nullable columns without a default: no row is rewritten.
ALTER TABLE otel_spans ADD COLUMN fingerprint text, ADD COLUMN name text;
