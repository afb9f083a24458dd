/**
 * Swarm overview (Postgres): how the swarm is doing over the dashboard's range — outcomes and their
 * rates, throughput, durations and pickup times, tasks in flight and stuck, recent failures (each a
 * click away from its trace in Tempo or Jaeger and from the task drill-down), dead letters and rejects,
 * with task failures and Chronicle's write-failure alerts as annotations.
 *
 * Index use: tasks are found by created_at (swarm_traces_created_idx) or by status and created_at
 * (swarm_traces_status_idx: tasks in flight, stuck tasks); tasks that finished in the range by status and
 * completed_at (swarm_traces_finished_idx, migration 0014), tasks started in it by started_at
 * (swarm_traces_started_idx). Dead letters and rejects by their received_at / rejected_at indexes.
 */
import {
  barchart,
  sql,
  customVariable,
  dashboard,
  dashboardLink,
  dataLink,
  fixedColor,
  hiddenColumns,
  override,
  postgresTarget,
  queryAnnotation,
  row,
  stat,
  table,
  tempoExploreUrl,
  textboxVariable,
  timeseries,
} from './panels.js';
import { DASHBOARD_UIDS, DATASOURCES, type DashboardFile } from './model.js';

const pg = DATASOURCES.postgres;

/** Colors of the task statuses, the same on every panel. */
const STATUS_COLORS: Record<string, string> = {
  completed: 'green',
  failed: 'red',
  timed_out: 'orange',
  in_progress: 'blue',
  assigned: 'purple',
  pending: 'text',
};

/**
 * Swarm traces of the tasks that finished in the range with one of `statuses` (alias t). A task's
 * completed_at is set exactly when its status is terminal, to the timestamp of its last lifecycle event,
 * a terminal one (src/derive/task-state.ts), so these are the tasks whose terminal event in the range is
 * their last. The partial index swarm_traces_finished_idx (status, completed_at) finds them; until
 * migration 0014 these panels found them through their terminal events in swarm_events, which also left
 * out, once retention had dropped those events, tasks whose rows are still kept.
 */
function finishedTasks(statuses: readonly string[] = ['completed', 'failed', 'timed_out']): string {
  return `swarm_traces t
WHERE t.is_task AND t.status IN (${statuses.map((x) => `'${x}'`).join(', ')}) AND $__timeFilter(t.completed_at)`;
}

/**
 * A per-interval series: `columns` (name → aggregate) over the rows of `from` grouped by Grafana's
 * interval of `time`, with `fill` (0 or NULL) where an interval has none. Rows are bucketed by `date_bin`
 * on $__interval_ms: a timestamp, hashed or sorted cheaply, where $__timeGroup's
 * floor(extract(epoch …) / interval) * interval is numeric arithmetic per row and a numeric sort (3×
 * the time over 7 days of finished tasks at 5,000,000 events). $__timeGroupAlias then maps each bucket's
 * start to itself, so the times are those it would give, and Grafana still fills by it.
 */
function perInterval(
  time: string,
  fill: '0' | 'NULL',
  columns: Record<string, string>,
  from: string,
): string {
  const names = Object.keys(columns);
  return `SELECT $__timeGroupAlias(b.bucket, $__interval, ${fill}), ${names.map((n) => `b.${n}`).join(', ')}
FROM (
  SELECT date_bin($__interval_ms * interval '1 millisecond', ${time}, timestamptz 'epoch') AS bucket,
    ${names.map((n) => `${columns[n]} AS ${n}`).join(',\n    ')}
  FROM ${from.split('\n').join('\n  ')}
  GROUP BY 1
) b
ORDER BY 1`;
}

/** Tasks (alias t) that failed or timed out in the range and are still failed or timed out. */
const FAILED_TASKS = finishedTasks(['failed', 'timed_out']);

/**
 * The columns a task row's links need (alias t): its OpenTelemetry trace id and the window the API's
 * Grafana link uses (first to last event, ± 1 h).
 */
export const TRACE_LINK_COLUMNS = `chronicle_otel_trace_id(t.trace_id) AS otel_trace_id,
  (extract(epoch FROM t.first_event_at) * 1000)::bigint - 3600000 AS trace_from_ms,
  (extract(epoch FROM t.last_event_at) * 1000)::bigint + 3600000 AS trace_to_ms`;

/**
 * A table's time column with milliseconds (Grafana shows them only when a column's first and last
 * values are less than a minute apart), in the dashboard's time zone.
 */
export const TIME_WITH_MS = 'time: YYYY-MM-DD HH:mm:ss.SSS';

/**
 * The overrides of a table of tasks whose SQL selects TRACE_LINK_COLUMNS: the trace_id cell links to
 * the task (taskLinks), `more` style other columns, and the link columns are hidden.
 */
export function taskTableOverrides(...more: Record<string, unknown>[]): Record<string, unknown>[] {
  return [
    override('trace_id', { links: taskLinks() }),
    ...more,
    ...hiddenColumns('otel_trace_id', 'trace_from_ms', 'trace_to_ms'),
  ];
}

/** Links on a task's trace_id cell: the drill-down, its trace in Tempo (Explore) and in Jaeger. */
function taskLinks(): Record<string, unknown>[] {
  return [
    dataLink(
      'Task drill-down',
      `/d/${DASHBOARD_UIDS.taskDrilldown}?var-trace_id=\${__value.raw:percentencode}&\${__url_time_range}`,
    ),
    dataLink(
      'Trace in Tempo (Explore)',
      tempoExploreUrl(
        DATASOURCES.tempo.uid,
        '${__data.fields.otel_trace_id}',
        '${__data.fields.trace_from_ms}',
        '${__data.fields.trace_to_ms}',
      ),
      true,
    ),
    dataLink('Trace in Jaeger', '${jaeger_url:raw}/trace/${__data.fields.otel_trace_id}', true),
  ];
}

/** The Jaeger UI the trace links open (a text box, so each Grafana can point at its own). */
export const JAEGER_URL_VARIABLE = textboxVariable(
  'jaeger_url',
  'Jaeger UI',
  'http://localhost:16686',
  'Base URL of the Jaeger UI that trace links open',
);

/** Links to the other dashboards, keeping the time range. */
export function dashboardLinks(except: string): Record<string, unknown>[] {
  const all = [
    {
      uid: DASHBOARD_UIDS.swarmOverview,
      title: 'Swarm overview',
      tooltip: 'Outcomes, failures, stuck tasks',
    },
    { uid: DASHBOARD_UIDS.taskDrilldown, title: 'Task drill-down', tooltip: 'One task: row, events, trace' },
    {
      uid: DASHBOARD_UIDS.agentPerformance,
      title: 'Agent performance',
      tooltip: 'Which agent is slow or failing',
    },
    { uid: DASHBOARD_UIDS.pipeline, title: 'Chronicle pipeline', tooltip: "Chronicle's own metrics" },
    {
      uid: DASHBOARD_UIDS.traces,
      title: 'Traces',
      tooltip: 'Trace search, the task graph (which service gives work to which agent), Tempo service graph',
    },
  ];
  return all
    .filter((d) => d.uid !== except)
    .map((d) => dashboardLink({ title: d.title, tooltip: d.tooltip, url: `/d/${d.uid}`, keepTime: true }));
}

/**
 * When a task entered its current status, assigned or in progress: its latest assignment or start,
 * whichever is later (a retried task assigned again keeps the start of its earlier attempt in
 * started_at, so coalesce(started_at, assigned_at) would date it from that attempt).
 */
const STUCK_SINCE = 'greatest(t.assigned_at, t.started_at)';

/** The end of the range, or now when the range ends later: how long a task has been stuck is measured to it. */
const STUCK_END = 'least($__timeTo()::timestamptz, now())';

/** What "stuck" means, for the panels' descriptions. */
const STUCK_DEFINITION =
  'A task is stuck when it is assigned (not started) or in progress (not finished), was created in the range, and its latest assignment or start lies more than "Stuck after" minutes before the end of the range (or now, if the range ends later).';

/**
 * Stuck tasks (alias t), as STUCK_DEFINITION says. The status index serves it: status, then created_at
 * in the range.
 */
const STUCK_TASKS = `swarm_traces t
WHERE t.status IN ('assigned', 'in_progress') AND $__timeFilter(t.created_at)
  AND ${STUCK_SINCE} < ${STUCK_END} - make_interval(mins => '$stuck_after'::int)`;

/**
 * The width of the buckets the "Task failures" annotation counts failures in, in seconds: the smallest
 * of these steps that cuts the range into at most 40 buckets (a week for ranges over 40 days).
 */
const FAILURE_BUCKET = `SELECT coalesce(min(s), 604800)::float8 AS s
FROM unnest(ARRAY[60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]) AS s
WHERE s >= extract(epoch FROM $__timeTo()::timestamptz - $__timeFrom()::timestamptz) / 40`;

/**
 * The "Task failures" annotation: one marker per bucket (FAILURE_BUCKET) in which tasks failed or timed
 * out, at the bucket's start, saying how many and the most frequent error; not one per failed task,
 * which floods the graphs. The failed tasks are found as FAILED_TASKS finds them (swarm_traces_finished_idx).
 */
const FAILURE_ANNOTATION_SQL = sql`
  WITH bucket AS (
    ${FAILURE_BUCKET}
  ), failures AS (
    SELECT floor(extract(epoch FROM t.completed_at) / b.s) * b.s AS start_s, b.s AS width_s,
      coalesce(t.error, '(no error)') AS error, t.status
    FROM bucket b, ${FAILED_TASKS}
  ), by_error AS (
    SELECT start_s, width_s, error, count(*) AS n,
      count(*) FILTER (WHERE status = 'failed') AS failed,
      count(*) FILTER (WHERE status = 'timed_out') AS timed_out
    FROM failures
    GROUP BY start_s, width_s, error
  )
  SELECT to_timestamp(start_s) AS "time",
    sum(failed) || ' failed, ' || sum(timed_out) || ' timed out in the '
      || CASE WHEN width_s < 3600 THEN (width_s / 60)::int || ' min'
        WHEN width_s < 86400 THEN (width_s / 3600)::int || ' h'
        ELSE (width_s / 86400)::int || ' d' END
      || ' from here; most frequent error: ' || (array_agg(error ORDER BY n DESC, error COLLATE "C"))[1]
      || ' (' || max(n) || ')' AS text,
    'task,failures' AS tags
  FROM by_error
  GROUP BY start_s, width_s
  ORDER BY 1`;

const statusColors = (names: readonly string[]) =>
  names.filter((n) => STATUS_COLORS[n]).map((n) => fixedColor(n, STATUS_COLORS[n]!));

export function swarmOverview(): DashboardFile {
  const panels = [
    row('Outcomes'),
    stat({
      title: 'Outcome rates',
      description:
        'Of the tasks that finished in the range (reached completed, failed or timed_out), the share of each outcome.',
      datasource: pg,
      w: 8,
      unit: 'percentunit',
      defaults: { decimals: 1 },
      overrides: [
        fixedColor('Success', 'green'),
        fixedColor('Failure', 'red'),
        fixedColor('Timeout', 'orange'),
      ],
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT
            count(*) FILTER (WHERE t.status = 'completed')::float8 / nullif(count(*), 0) AS "Success",
            count(*) FILTER (WHERE t.status = 'failed')::float8 / nullif(count(*), 0) AS "Failure",
            count(*) FILTER (WHERE t.status = 'timed_out')::float8 / nullif(count(*), 0) AS "Timeout"
          FROM ${finishedTasks()}`,
          'table',
        ),
      ],
    }),
    stat({
      title: 'Throughput',
      description: 'Tasks that finished in the range, and how many per minute on average.',
      datasource: pg,
      w: 6,
      unit: 'short',
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT count(*) AS "Finished",
            count(*) / greatest(extract(epoch FROM $__timeTo()::timestamptz - $__timeFrom()::timestamptz) / 60, 1)
              AS "Per minute"
          FROM ${finishedTasks()}`,
          'table',
        ),
      ],
    }),
    stat({
      title: 'Tasks in flight',
      description:
        'Tasks created up to the end of the range that are not finished: pending (no agent yet), assigned, in progress.',
      datasource: pg,
      w: 6,
      unit: 'short',
      overrides: [
        fixedColor('Pending', STATUS_COLORS.pending!),
        fixedColor('Assigned', STATUS_COLORS.assigned!),
        fixedColor('In progress', STATUS_COLORS.in_progress!),
      ],
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT count(*) FILTER (WHERE status = 'pending') AS "Pending",
            count(*) FILTER (WHERE status = 'assigned') AS "Assigned",
            count(*) FILTER (WHERE status = 'in_progress') AS "In progress"
          FROM swarm_traces
          WHERE status IN ('pending', 'assigned', 'in_progress') AND created_at <= $__timeTo()`,
          'table',
        ),
      ],
    }),
    stat({
      title: 'Stuck tasks (count)',
      description: `${STUCK_DEFINITION} Red from 1; listed in "Stuck tasks" below.`,
      datasource: pg,
      w: 4,
      unit: 'short',
      defaults: {
        color: { mode: 'thresholds' },
        thresholds: {
          mode: 'absolute',
          steps: [
            { color: 'green', value: null },
            { color: 'red', value: 1 },
          ],
        },
      },
      targets: [postgresTarget(pg, sql`SELECT count(*) AS "Stuck" FROM ${STUCK_TASKS}`, 'table')],
    }),
    timeseries({
      title: 'Tasks created, by current status',
      description:
        'Tasks created in each interval, split by the status they have now: a failure or timeout bar rising shows when the tasks that fail were created. An interval with none shows 0.',
      datasource: pg,
      bars: true,
      stacked: true,
      unit: 'short',
      defaults: { decimals: 0 },
      overrides: statusColors(Object.keys(STATUS_COLORS)),
      targets: [
        postgresTarget(
          pg,
          // Read from swarm_traces_created_by_idx alone (migration 0016: it holds the status), and the
          // few rows it leaves out (creator not known) apart: 24 h p99 95 -> 28 ms at 5,000,000 events.
          perInterval(
            't.created_at',
            '0',
            Object.fromEntries(
              Object.keys(STATUS_COLORS).map((status) => [
                status,
                `count(*) FILTER (WHERE t.status = '${status}')`,
              ]),
            ),
            `(
  SELECT created_at, status FROM swarm_traces
  WHERE is_task AND created_by IS NOT NULL AND $__timeFilter(created_at)
  UNION ALL
  SELECT created_at, status FROM swarm_traces
  WHERE is_task AND created_by IS NULL AND $__timeFilter(created_at)
) t`,
          ),
          'time_series',
        ),
      ],
    }),
    timeseries({
      title: 'Throughput: tasks finished per minute, by outcome',
      description:
        'Tasks reaching completed, failed or timed_out, per minute, by when they finished; 0 in an interval where none finished.',
      datasource: pg,
      stacked: true,
      unit: 'short',
      axisLabel: 'tasks / min',
      overrides: statusColors(['completed', 'failed', 'timed_out']),
      targets: [
        postgresTarget(
          pg,
          perInterval(
            't.completed_at',
            '0',
            Object.fromEntries(
              ['completed', 'failed', 'timed_out'].map((status) => [
                status,
                `count(*) FILTER (WHERE t.status = '${status}') * 60000.0 / $__interval_ms`,
              ]),
            ),
            finishedTasks(),
          ),
          'time_series',
        ),
      ],
    }),
    timeseries({
      title: 'Failure rate',
      gaps: true,
      description:
        'Of the tasks finished in each interval, the share that failed or timed out; a gap where no task finished. The axis fits the values (no fixed 100 %), so a few percent stay readable.',
      datasource: pg,
      w: 8,
      unit: 'percentunit',
      overrides: [fixedColor('failed', 'red'), fixedColor('timed_out', 'orange')],
      targets: [
        postgresTarget(
          pg,
          perInterval(
            't.completed_at',
            'NULL',
            {
              failed: `count(*) FILTER (WHERE t.status = 'failed')::float8 / count(*)`,
              timed_out: `count(*) FILTER (WHERE t.status = 'timed_out')::float8 / count(*)`,
            },
            finishedTasks(),
          ),
          'time_series',
        ),
      ],
    }),
    timeseries({
      title: 'Task duration p50 / p95',
      gaps: true,
      description:
        'Duration (start to completion) of the tasks completed in each interval: median and 95th percentile; a gap where none completed.',
      datasource: pg,
      w: 8,
      unit: 'ms',
      targets: [
        postgresTarget(
          pg,
          perInterval(
            't.completed_at',
            'NULL',
            {
              p50: 'percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms)',
              p95: 'percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms)',
            },
            `${finishedTasks(['completed'])} AND t.duration_ms IS NOT NULL`,
          ),
          'time_series',
        ),
      ],
    }),
    timeseries({
      title: 'Pickup time p50 / p95',
      gaps: true,
      description:
        'Time from assignment to start, for the tasks started in each interval (their latest start): median and 95th percentile; a gap where none started.',
      datasource: pg,
      w: 8,
      unit: 'ms',
      targets: [
        postgresTarget(
          pg,
          perInterval(
            't.started_at',
            'NULL',
            {
              p50: 'percentile_cont(0.5) WITHIN GROUP (ORDER BY t.time_to_pickup_ms)',
              p95: 'percentile_cont(0.95) WITHIN GROUP (ORDER BY t.time_to_pickup_ms)',
            },
            'swarm_traces t\nWHERE t.is_task AND $__timeFilter(t.started_at) AND t.time_to_pickup_ms IS NOT NULL',
          ),
          'time_series',
        ),
      ],
    }),
    row('Failures'),
    table({
      title: 'Recent failures',
      description:
        'The latest tasks that failed or timed out in the range. Click a trace id for the task drill-down, its trace in Tempo or in Jaeger.',
      datasource: pg,
      w: 24,
      h: 10,
      overrides: taskTableOverrides(
        override('time', { unit: TIME_WITH_MS }),
        override('duration_ms', { unit: 'ms' }),
      ),
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT t.completed_at AS "time", t.trace_id, t.status, t.assigned_agent AS agent, t.error, t.attempts,
            t.duration_ms, t.task_title AS title,
            ${TRACE_LINK_COLUMNS}
          FROM ${FAILED_TASKS}
          ORDER BY t.completed_at DESC, t.trace_id DESC
          LIMIT 100`,
          'table',
        ),
      ],
    }),
    barchart({
      title: 'Failures by error',
      description: 'The most frequent errors of the tasks that failed or timed out in the range.',
      datasource: pg,
      xField: 'error',
      unit: 'short',
      defaults: { decimals: 0 },
      overrides: [fixedColor('failures', 'red')],
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT coalesce(t.error, '(none)') AS error, count(*) AS failures
          FROM ${FAILED_TASKS}
          GROUP BY 1
          ORDER BY 2 DESC, 1
          LIMIT 10`,
          'table',
        ),
      ],
    }),
    barchart({
      title: 'Failures by agent',
      description:
        'Tasks that failed or timed out in the range, by the agent they were last assigned to ("(none)": never assigned).',
      datasource: pg,
      xField: 'agent',
      unit: 'short',
      defaults: { decimals: 0 },
      links: [
        {
          title: 'Task graph: which service gives work to which agent',
          url: `/d/${DASHBOARD_UIDS.traces}?\${__url_time_range}`,
        },
      ],
      overrides: [fixedColor('failed', 'red'), fixedColor('timed_out', 'orange')],
      options: { stacking: 'normal', legend: { displayMode: 'list', placement: 'bottom', showLegend: true } },
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT coalesce(t.assigned_agent, '(none)') AS agent,
            count(*) FILTER (WHERE t.status = 'failed') AS failed,
            count(*) FILTER (WHERE t.status = 'timed_out') AS timed_out
          FROM ${FAILED_TASKS}
          GROUP BY 1
          ORDER BY count(*) DESC, 1
          LIMIT 15`,
          'table',
        ),
      ],
    }),
    row('Stuck'),
    table({
      title: 'Stuck tasks',
      description: `${STUCK_DEFINITION} Longest stuck first (at most 200): since is its latest assignment or start, stuck for runs from then to the end of the range (or now).`,
      datasource: pg,
      w: 24,
      h: 8,
      overrides: taskTableOverrides(
        override('stuck_for_ms', { unit: 'dtdurationms', decimals: 1, displayName: 'stuck for' }),
      ),
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT t.trace_id, t.status, t.assigned_agent AS agent, ${STUCK_SINCE} AS since,
            (extract(epoch FROM ${STUCK_END} - ${STUCK_SINCE}) * 1000)::bigint AS stuck_for_ms,
            t.attempts, t.task_title AS title, t.created_at,
            ${TRACE_LINK_COLUMNS}
          FROM ${STUCK_TASKS}
          ORDER BY since, t.trace_id
          LIMIT 200`,
          'table',
        ),
      ],
    }),
    row('Dead letters and rejects'),
    barchart({
      title: 'Dead-letter entries by reason',
      description: 'Entries the swarm dead-lettered (dlq.>), received in the range, by reason.',
      datasource: pg,
      xField: 'reason',
      unit: 'short',
      defaults: { decimals: 0 },
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT coalesce(reason, '(none)') AS reason, count(*) AS entries
          FROM swarm_dlq
          WHERE $__timeFilter(received_at)
          GROUP BY 1
          ORDER BY 2 DESC, 1
          LIMIT 20`,
          'table',
        ),
      ],
    }),
    barchart({
      title: 'Rejects by reason',
      description:
        'Input Chronicle could not accept in the range (stored in chronicle_rejects), by reason and origin.',
      datasource: pg,
      xField: 'reason',
      unit: 'short',
      defaults: { decimals: 0 },
      options: { stacking: 'normal', legend: { displayMode: 'list', placement: 'bottom', showLegend: true } },
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT reason,
            count(*) FILTER (WHERE origin = 'nats') AS nats,
            count(*) FILTER (WHERE origin = 'http') AS http,
            count(*) FILTER (WHERE origin = 'otlp') AS otlp
          FROM chronicle_rejects
          WHERE $__timeFilter(rejected_at)
          GROUP BY 1
          ORDER BY count(*) DESC, 1
          LIMIT 20`,
          'table',
        ),
      ],
    }),
  ];

  return {
    file: 'swarm-overview.json',
    dashboard: dashboard({
      uid: DASHBOARD_UIDS.swarmOverview,
      title: 'Swarm overview',
      description:
        'How the swarm is doing: outcomes, throughput, durations, stuck tasks, failures (linked to their traces), dead letters and rejects.',
      tags: ['chronicle', 'postgres'],
      time: { from: 'now-6h', to: 'now' },
      refresh: '30s',
      variables: [
        customVariable(
          'stuck_after',
          'Stuck after (min)',
          ['5', '10', '15', '30', '60', '240'],
          '15',
          'A task created in the range, assigned or in progress, whose latest assignment or start lies more than this many minutes before the end of the range (or now) is stuck',
        ),
        JAEGER_URL_VARIABLE,
      ],
      annotations: [
        queryAnnotation({
          name: 'Task failures',
          datasource: pg,
          iconColor: 'red',
          target: postgresTarget(pg, FAILURE_ANNOTATION_SQL, 'table', 'Anno'),
        }),
        queryAnnotation({
          name: 'Chronicle write failures',
          datasource: pg,
          iconColor: 'dark-purple',
          target: postgresTarget(
            pg,
            sql`
            SELECT "timestamp" AS "time",
              'Chronicle cannot write to Postgres (' || coalesce(metadata ->> 'consecutiveFailures', '?')
                || ' failures in a row): ' || coalesce(metadata ->> 'error', 'unknown error') AS text,
              'chronicle,write_failure' AS tags
            FROM swarm_events
            WHERE event_type = 'system.chronicle.write_failure' AND $__timeFilter("timestamp")
            ORDER BY 1`,
            'table',
            'Anno',
          ),
        }),
      ],
      links: dashboardLinks(DASHBOARD_UIDS.swarmOverview),
      panels,
    }),
  };
}
