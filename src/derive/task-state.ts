import { LIFECYCLE, TERMINAL_STATUSES } from '../events/lifecycle.js';
import { sqlText, sqlTextList } from './sql-literal.js';

/**
 * The lifecycle table as SQL (generated from LIFECYCLE, src/events/lifecycle.ts): the WHEN arms of a
 * `CASE <event_type>` that give the status a task has when that is its last lifecycle event.
 */
export const STATUS_CASE_ARMS_SQL = LIFECYCLE.map(
  (s) => `WHEN ${sqlText(s.eventType)} THEN ${sqlText(s.status)}`,
).join('\n      ');

/** The event types that end a task, for `IN (…)`. */
export const TERMINAL_EVENT_TYPES_SQL = sqlTextList(
  LIFECYCLE.filter((s) => s.terminal).map((s) => s.eventType),
);

/** The statuses that end a task, for `IN (…)`. */
export const TERMINAL_STATUSES_SQL = sqlTextList(TERMINAL_STATUSES);

/**
 * Task state: one swarm_traces row per trace_id, recomputed set-based from the trace's distinct
 * events, so arrival order, duplicates and redeliveries cannot change it. The rules (issue #3):
 *
 * - Lifecycle events, their rank and the status each leads to: the table LIFECYCLE
 *   (src/events/lifecycle.ts), from which the status CASE and the terminal lists below are generated
 *   (the rank comes from the SQL function chronicle_lifecycle_rank, tested equal to the table). They are
 *   ordered by (timestamp, rank, event_id); `last` is the greatest. A trace with no lifecycle event is
 *   not a task (is_task = false).
 * - status: the status of last's event type.
 * - created_at: earliest task.created timestamp, else the earliest event of the trace.
 * - task_title, owner, scoring_breakdown: from the earliest task.created carrying each (non-null).
 * - created_by: the source of the earliest task.created (the service that created the task).
 * - assigned_agent: metadata agent (or agent_id) of the latest task.assigned carrying one; if none
 *   does, of the latest lifecycle event carrying one.
 * - assigned_at: latest task.assigned; attempts: number of task.assigned; started_at: latest task.started.
 * - completed_at: last.timestamp when the status is terminal.
 * - duration_ms: completed_at − started_at when both are set and started_at ≤ completed_at.
 * - time_to_pickup_ms: started_at − the latest task.assigned at or before started_at.
 * - span_count: distinct events of any type.
 * - error (failed or timed_out): last's metadata error, else its reason, else 'timeout' for timed_out.
 * - first_terminal_at: set once, to the time (now()) of the transaction that first gave the row a
 *   terminal status; kept when a later event makes the task active again
 *   (a failed task retried), so the task is counted once, by its first terminal status.
 *
 * One statement per flush, under the trace locks. span_count, first_event_at and last_event_at add the
 * batch's new events to the stored row (exact: the ledger admits each event_id once, and the change
 * commits or rolls back with the events). The lifecycle columns are recomputed from the trace's stored
 * lifecycle events, for traces that are tasks or just received a lifecycle event; a long non-task trace
 * (an agent's heartbeats under one trace_id) is never re-read.
 *
 * Parameters, one entry per touched trace, sorted by trace id and already locked: $1 trace ids, $2 new
 * events, $3 earliest and $4 latest new timestamp, $5 whether a new event is a lifecycle event.
 * Returns rows of two kinds. `metric`: per (agent, day) key of agent_metrics the change touches, the
 * change of that key's totals: for each trace whose metric inputs (agent, completed_at, status,
 * duration, pickup) changed, what it counted for before is subtracted and what it counts for now is
 * added (ADR 0003). `terminal` (at most one row, none when zero): in completed, failed and timed_out,
 * the tasks whose first_terminal_at this statement set, by their status (the sink reports them as its
 * TerminalCounts, src/pipeline/records.ts); the caller counts them in chronicle_tasks_terminal_total
 * once the transaction has committed. The trace locks make this exact
 * across replicas: the statement reads each row after every earlier writer of it has committed.
 */
export const RECOMPUTE_TRACES_SQL = `
WITH batch AS (
  SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::timestamptz[], $5::bool[])
    AS b(trace_id, n, first_at, last_at, lifecycle)
),
old AS (
  -- LATERAL with OFFSET 0: one index probe per trace, whatever stale statistics suggest.
  SELECT b.*, t.is_task AS was_task, t.assigned_agent, t.completed_at, t.status, t.duration_ms, t.time_to_pickup_ms,
    t.first_terminal_at,
    least(t.first_event_at, b.first_at) AS first_event_at,
    greatest(t.last_event_at, b.last_at) AS last_event_at,
    coalesce(t.span_count, 0) + b.n AS span_count
  FROM batch b
  LEFT JOIN LATERAL (
    SELECT x.is_task, x.assigned_agent, x.completed_at, x.status, x.duration_ms, x.time_to_pickup_ms,
      x.first_event_at, x.last_event_at, x.span_count, x.first_terminal_at
    FROM swarm_traces x WHERE x.trace_id = b.trace_id OFFSET 0
  ) t ON true
),
ev AS (
  SELECT o.trace_id, e.event_id, e.event_type, e."timestamp" AS ts, e.metadata, e.source,
         chronicle_lifecycle_rank(e.event_type) AS rank,
         chronicle_agent(e.metadata) AS agent,
         max(e."timestamp") FILTER (WHERE e.event_type = 'task.started') OVER (PARTITION BY o.trace_id) AS started_at
  FROM old o
  CROSS JOIN LATERAL (
    SELECT x.event_id, x.event_type, x."timestamp", x.metadata, x.source FROM swarm_events x
    WHERE (o.lifecycle OR o.was_task) AND x.trace_id = o.trace_id
      -- Every event of the trace lies in its [first_event_at, last_event_at]: the bound prunes the day
      -- partitions outside it at run time, so a probe touches the trace's days, not every day stored.
      -- (Widened by a millisecond: the bounds pass through JavaScript Dates, exact to the millisecond
      -- only; stored timestamps are, as normalized, but the bound must not depend on it.)
      AND x."timestamp" >= o.first_event_at - interval '1 millisecond'
      AND x."timestamp" < o.last_event_at + interval '1 millisecond'
      -- An expression the (event_type, …) index cannot serve, so the plan stays a trace-index probe.
      AND chronicle_lifecycle_rank(x.event_type) IS NOT NULL
    OFFSET 0
  ) e
),
agg AS (
  SELECT trace_id,
    min(ts) FILTER (WHERE event_type = 'task.created') AS created_min,
    max(ts) FILTER (WHERE event_type = 'task.assigned') AS assigned_at,
    count(*) FILTER (WHERE event_type = 'task.assigned')::int AS attempts,
    max(started_at) AS started_at,
    max(ts) FILTER (WHERE event_type = 'task.assigned' AND ts <= started_at) AS picked_from,
    (array_agg(event_type ORDER BY ts DESC, rank DESC, event_id DESC))[1] AS last_type,
    (array_agg(ts ORDER BY ts DESC, rank DESC, event_id DESC))[1] AS last_ts,
    (array_agg(coalesce(metadata ->> 'error', metadata ->> 'reason') ORDER BY ts DESC, rank DESC, event_id DESC))[1]
      AS last_error,
    (array_agg(metadata ->> 'title' ORDER BY ts, event_id)
      FILTER (WHERE event_type = 'task.created' AND metadata ->> 'title' IS NOT NULL))[1] AS task_title,
    (array_agg(metadata ->> 'owner' ORDER BY ts, event_id)
      FILTER (WHERE event_type = 'task.created' AND metadata ->> 'owner' IS NOT NULL))[1] AS owner,
    (array_agg(source ORDER BY ts, event_id) FILTER (WHERE event_type = 'task.created'))[1] AS created_by,
    (array_agg(metadata -> 'scoring_breakdown' ORDER BY ts, event_id)
      FILTER (WHERE event_type = 'task.created' AND metadata ->> 'scoring_breakdown' IS NOT NULL))[1] AS scoring_breakdown,
    coalesce(
      (array_agg(agent ORDER BY ts DESC, event_id DESC) FILTER (WHERE event_type = 'task.assigned' AND agent IS NOT NULL))[1],
      (array_agg(agent ORDER BY ts DESC, rank DESC, event_id DESC) FILTER (WHERE agent IS NOT NULL))[1]
    ) AS assigned_agent
  FROM ev
  GROUP BY trace_id
),
computed AS (
  SELECT o.trace_id, o.first_event_at, o.last_event_at, o.span_count, a.created_min, a.assigned_at, a.attempts,
    a.started_at, a.picked_from, a.last_error, a.task_title, a.owner, a.created_by, a.scoring_breakdown,
    a.assigned_agent,
    a.trace_id IS NOT NULL AS is_task, o.first_terminal_at IS NOT NULL AS had_terminal,
    CASE a.last_type
      ${STATUS_CASE_ARMS_SQL}
    END AS status,
    CASE WHEN a.last_type IN (${TERMINAL_EVENT_TYPES_SQL}) THEN a.last_ts END AS completed_at
  FROM old o LEFT JOIN agg a USING (trace_id)
),
upserted AS (
  INSERT INTO swarm_traces AS t (trace_id, is_task, task_title, owner, created_by, status, assigned_agent,
    created_at, assigned_at, started_at, completed_at, duration_ms, time_to_pickup_ms, attempts, span_count, error,
    scoring_breakdown, first_event_at, last_event_at, first_terminal_at, updated_at)
  SELECT c.trace_id, c.is_task, c.task_title, c.owner, c.created_by, c.status, c.assigned_agent,
    coalesce(c.created_min, c.first_event_at),
    c.assigned_at, c.started_at, c.completed_at,
    CASE WHEN c.completed_at >= c.started_at
      THEN round(extract(epoch FROM c.completed_at - c.started_at) * 1000)::bigint END,
    CASE WHEN c.picked_from IS NOT NULL
      THEN round(extract(epoch FROM c.started_at - c.picked_from) * 1000)::bigint END,
    coalesce(c.attempts, 0), c.span_count,
    CASE WHEN c.status IN ('failed', 'timed_out')
      THEN coalesce(c.last_error, CASE WHEN c.status = 'timed_out' THEN 'timeout' END) END,
    c.scoring_breakdown, c.first_event_at, c.last_event_at,
    CASE WHEN c.status IN (${TERMINAL_STATUSES_SQL}) THEN now() END, now()
  FROM computed c
  ON CONFLICT (trace_id) DO UPDATE SET
    is_task = excluded.is_task, task_title = excluded.task_title, owner = excluded.owner,
    created_by = excluded.created_by, status = excluded.status,
    assigned_agent = excluded.assigned_agent, created_at = excluded.created_at, assigned_at = excluded.assigned_at,
    started_at = excluded.started_at, completed_at = excluded.completed_at, duration_ms = excluded.duration_ms,
    time_to_pickup_ms = excluded.time_to_pickup_ms, attempts = excluded.attempts, span_count = excluded.span_count,
    error = excluded.error, scoring_breakdown = excluded.scoring_breakdown, first_event_at = excluded.first_event_at,
    last_event_at = excluded.last_event_at, updated_at = excluded.updated_at,
    first_terminal_at = coalesce(t.first_terminal_at, excluded.first_terminal_at)
  RETURNING t.trace_id, t.is_task, t.assigned_agent, t.completed_at, t.status, t.duration_ms, t.time_to_pickup_ms
),
-- Tasks whose row is terminal for the first time: first_terminal_at was unset and the upsert sets it.
newly_terminal AS (
  SELECT status FROM computed WHERE NOT had_terminal AND status IN (${TERMINAL_STATUSES_SQL})
),
-- Only traces whose metric inputs changed touch agent_metrics: a span added to a finished task does not.
changed AS (
  SELECT o.trace_id, o.assigned_agent AS old_agent, o.completed_at AS old_completed_at, o.status AS old_status,
    o.duration_ms AS old_duration_ms, o.time_to_pickup_ms AS old_pickup_ms,
    u.assigned_agent AS new_agent, u.completed_at AS new_completed_at, u.status AS new_status,
    u.duration_ms AS new_duration_ms, u.time_to_pickup_ms AS new_pickup_ms
  FROM upserted u JOIN old o USING (trace_id)
  WHERE u.is_task
    AND (o.assigned_agent, o.completed_at, o.status, o.duration_ms, o.time_to_pickup_ms)
      IS DISTINCT FROM (u.assigned_agent, u.completed_at, u.status, u.duration_ms, u.time_to_pickup_ms)
),
-- What each changed trace counted for before (sign −1) and counts for now (+1): a terminal task with an
-- agent counts for the (agent, UTC day) of its completed_at.
contribution AS (
  SELECT -1 AS sign, old_agent AS agent_id, old_completed_at AS completed_at, old_status AS status,
    old_duration_ms AS duration_ms, old_pickup_ms AS pickup_ms
  FROM changed
  UNION ALL
  SELECT 1, new_agent, new_completed_at, new_status, new_duration_ms, new_pickup_ms FROM changed
)
SELECT 'metric' AS kind, agent_id, (completed_at AT TIME ZONE 'UTC')::date::text AS metric_date,
  coalesce(sum(sign) FILTER (WHERE status = 'completed'), 0)::int AS completed,
  coalesce(sum(sign) FILTER (WHERE status = 'failed'), 0)::int AS failed,
  coalesce(sum(sign) FILTER (WHERE status = 'timed_out'), 0)::int AS timed_out,
  coalesce(sum(sign) FILTER (WHERE status = 'completed' AND duration_ms IS NOT NULL), 0)::int AS duration_count,
  coalesce(sum(sign * duration_ms) FILTER (WHERE status = 'completed'), 0)::bigint AS duration_sum,
  coalesce(sum(sign) FILTER (WHERE pickup_ms IS NOT NULL), 0)::int AS pickup_count,
  coalesce(sum(sign * pickup_ms), 0)::bigint AS pickup_sum
FROM contribution
WHERE agent_id IS NOT NULL AND status IN (${TERMINAL_STATUSES_SQL})
GROUP BY 2, 3
UNION ALL
SELECT 'terminal', NULL, NULL,
  (count(*) FILTER (WHERE status = 'completed'))::int, (count(*) FILTER (WHERE status = 'failed'))::int,
  (count(*) FILTER (WHERE status = 'timed_out'))::int, 0, 0, 0, 0
FROM newly_terminal
HAVING count(*) > 0`;
