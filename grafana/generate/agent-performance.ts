/**
 * Agent performance (Postgres): which agent is slow or failing. agent_metrics holds one row per agent
 * per UTC day, so every panel works on the UTC days the range touches (metric_date between the days of
 * $__timeFrom() and $__timeTo(), served by agent_metrics_date_idx or its primary key); the ranking's
 * exact p95 over those days reads the completed durations from swarm_traces_agent_duration_idx.
 *
 * `agent` is multi-value with All. Selected agents expand to a quoted list (`IN ('a','b')`); All expands
 * to its allValue, a subquery of the agents with a row in the range, so All stays valid SQL when the
 * range has no agent at all (the list of every value would give `IN ()`).
 */
import {
  dashboard,
  dataLink,
  fixedColor,
  override,
  postgresTarget,
  queryVariable,
  sql,
  row,
  stat,
  table,
  timeseries,
} from './panels.js';
import { DASHBOARD_UIDS, DATASOURCES, type DashboardFile } from './model.js';
import { dashboardLinks } from './swarm-overview.js';

const pg = DATASOURCES.postgres;

/** The UTC days the range touches. */
const DAYS = `metric_date BETWEEN ($__timeFrom()::timestamptz AT TIME ZONE 'UTC')::date
    AND ($__timeTo()::timestamptz AT TIME ZONE 'UTC')::date`;

/** The rows of agent_metrics for the selected agents on the days of the range. */
const SELECTED_AGENT_DAYS = `agent_metrics
WHERE ${DAYS}
  AND agent_id IN ($agent)`;

/** A day's row as a time: midnight UTC. */
const DAY_TIME = `(metric_date::timestamp AT TIME ZONE 'UTC') AS "time"`;

export function agentPerformance(): DashboardFile {
  const perAgentPerDay = (o: {
    title: string;
    description: string;
    unit: string;
    value: string;
    max?: number;
  }) =>
    timeseries({
      title: o.title,
      description: o.description,
      datasource: pg,
      w: 12,
      unit: o.unit,
      points: true,
      defaults: o.max !== undefined ? { max: o.max } : {},
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT ${DAY_TIME}, agent_id AS metric, ${o.value}
          FROM ${SELECTED_AGENT_DAYS}
          ORDER BY 1, 2`,
          'time_series',
        ),
      ],
    });

  const panels = [
    stat({
      title: 'Tasks finished',
      description:
        'Tasks of the selected agents that finished (completed, failed or timed out) on the days of the range.',
      datasource: pg,
      w: 8,
      unit: 'short',
      overrides: [
        fixedColor('Completed', 'green'),
        fixedColor('Failed', 'red'),
        fixedColor('Timed out', 'orange'),
      ],
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT sum(tasks_completed) AS "Completed", sum(tasks_failed) AS "Failed", sum(tasks_timed_out) AS "Timed out"
          FROM ${SELECTED_AGENT_DAYS}`,
          'table',
        ),
      ],
    }),
    stat({
      title: 'Failure rate',
      description:
        'Of the tasks the selected agents finished on the days of the range, the share that failed or timed out.',
      datasource: pg,
      w: 4,
      unit: 'percentunit',
      defaults: { decimals: 1, color: { mode: 'fixed', fixedColor: 'red' } },
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT sum(tasks_failed + tasks_timed_out)::float8
              / nullif(sum(tasks_completed + tasks_failed + tasks_timed_out), 0) AS "Failure rate"
          FROM ${SELECTED_AGENT_DAYS}`,
          'table',
        ),
      ],
    }),
    stat({
      title: 'Duration and pickup',
      description:
        'Average task duration (completed tasks) and average pickup time (assignment to start) of the selected agents over the days of the range.',
      datasource: pg,
      w: 8,
      unit: 'ms',
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT sum(duration_sum)::float8 / nullif(sum(duration_count), 0) AS "Avg duration",
            sum(pickup_sum)::float8 / nullif(sum(pickup_count), 0) AS "Avg pickup"
          FROM ${SELECTED_AGENT_DAYS}`,
          'table',
        ),
      ],
    }),
    stat({
      title: 'Agents',
      description: 'Selected agents with a task or a heartbeat on the days of the range.',
      datasource: pg,
      w: 4,
      unit: 'short',
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT count(DISTINCT agent_id) AS "Agents"
          FROM ${SELECTED_AGENT_DAYS}`,
          'table',
        ),
      ],
    }),
    timeseries({
      title: 'Completed and failed per day',
      description: 'Tasks the selected agents finished each UTC day, by outcome.',
      datasource: pg,
      w: 12,
      bars: true,
      stacked: true,
      unit: 'short',
      overrides: [
        fixedColor('completed', 'green'),
        fixedColor('failed', 'red'),
        fixedColor('timed_out', 'orange'),
      ],
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT ${DAY_TIME}, sum(tasks_completed) AS completed, sum(tasks_failed) AS failed,
            sum(tasks_timed_out) AS timed_out
          FROM ${SELECTED_AGENT_DAYS}
          GROUP BY 1
          ORDER BY 1`,
          'time_series',
        ),
      ],
    }),
    perAgentPerDay({
      title: 'Failure rate per day, by agent',
      description: 'Share of each agent’s finished tasks that failed or timed out, per UTC day.',
      unit: 'percentunit',
      max: 1,
      value: `(tasks_failed + tasks_timed_out)::float8 / nullif(tasks_completed + tasks_failed + tasks_timed_out, 0) AS failure_rate`,
    }),
    perAgentPerDay({
      title: 'p95 task duration per day, by agent',
      description:
        '95th percentile of the duration of each agent’s completed tasks, per UTC day (trend: rising = slower).',
      unit: 'ms',
      value: 'p95_duration_ms',
    }),
    perAgentPerDay({
      title: 'Pickup time per day, by agent',
      description: 'Average time from assignment to start of each agent’s finished tasks, per UTC day.',
      unit: 'ms',
      value: 'time_to_pickup_avg_ms',
    }),
    perAgentPerDay({
      title: 'Utilization per day, by agent',
      description: 'Busy time over uptime from each agent’s latest heartbeat of the UTC day.',
      unit: 'percentunit',
      max: 1,
      value: 'utilization_pct / 100 AS utilization',
    }),
    row('Ranking'),
    table({
      title: 'Agents ranked by failure rate, then p95 duration',
      description:
        'Every selected agent over the days of the range, worst first: finished tasks, failure rate, exact p95 and average duration, pickup time, utilization. Click an agent to show only it.',
      datasource: pg,
      w: 24,
      h: 10,
      overrides: [
        override('agent', {
          links: [
            dataLink(
              'Only this agent',
              `/d/${DASHBOARD_UIDS.agentPerformance}?var-agent=\${__value.raw:percentencode}&\${__url_time_range}`,
            ),
          ],
        }),
        override('failure_rate', {
          unit: 'percentunit',
          decimals: 1,
          'custom.cellOptions': { type: 'color-background', mode: 'gradient' },
          color: { mode: 'continuous-GrYlRd' },
          min: 0,
          max: 1,
        }),
        override('utilization', { unit: 'percentunit', decimals: 1 }),
        override('p95_duration_ms', { unit: 'ms' }),
        override('avg_duration_ms', { unit: 'ms' }),
        override('avg_pickup_ms', { unit: 'ms' }),
      ],
      targets: [
        postgresTarget(
          pg,
          sql`
          WITH m AS (
            SELECT agent_id,
              sum(tasks_completed)::int AS completed, sum(tasks_failed)::int AS failed,
              sum(tasks_timed_out)::int AS timed_out,
              sum(duration_sum)::float8 / nullif(sum(duration_count), 0) AS avg_duration_ms,
              sum(pickup_sum)::float8 / nullif(sum(pickup_count), 0) AS avg_pickup_ms,
              avg(utilization_pct)::float8 / 100 AS utilization
            FROM ${SELECTED_AGENT_DAYS}
            GROUP BY agent_id
          ), d AS (
            SELECT assigned_agent AS agent_id,
              percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
            FROM swarm_traces
            WHERE is_task AND status = 'completed' AND duration_ms IS NOT NULL
              AND assigned_agent IN ($agent)
              AND (completed_at AT TIME ZONE 'UTC')::date
                BETWEEN ($__timeFrom()::timestamptz AT TIME ZONE 'UTC')::date
                AND ($__timeTo()::timestamptz AT TIME ZONE 'UTC')::date
            GROUP BY 1
          )
          SELECT m.agent_id AS agent, m.completed + m.failed + m.timed_out AS finished,
            m.completed, m.failed, m.timed_out,
            (m.failed + m.timed_out)::float8 / nullif(m.completed + m.failed + m.timed_out, 0) AS failure_rate,
            d.p95_duration_ms, m.avg_duration_ms, m.avg_pickup_ms, m.utilization
          FROM m LEFT JOIN d USING (agent_id)
          ORDER BY failure_rate DESC NULLS LAST, d.p95_duration_ms DESC NULLS LAST, m.agent_id`,
          'table',
        ),
      ],
    }),
  ];

  return {
    file: 'agent-performance.json',
    dashboard: dashboard({
      uid: DASHBOARD_UIDS.agentPerformance,
      title: 'Agent performance',
      description:
        'Which agent is slow or failing: per-day outcomes, failure rate, p95 duration, pickup, utilization, and a ranking.',
      tags: ['chronicle', 'postgres'],
      time: { from: 'now-7d', to: 'now' },
      refresh: '1m',
      timezone: 'utc',
      variables: [
        queryVariable({
          name: 'agent',
          label: 'Agent',
          description: 'Agents with a task or a heartbeat on the days of the range',
          datasource: pg,
          query: sql`
            SELECT DISTINCT agent_id FROM agent_metrics
            WHERE ${DAYS}
            ORDER BY 1`,
          multi: true,
          includeAll: true,
          allValue: sql`
            SELECT agent_id FROM agent_metrics
            WHERE ${DAYS}`,
          refresh: 2,
        }),
      ],
      links: dashboardLinks(DASHBOARD_UIDS.agentPerformance),
      panels,
    }),
  };
}
