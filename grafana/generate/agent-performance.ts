/**
 * Agent performance (Postgres): which agent is slow or failing. agent_metrics holds one row per agent
 * per UTC day, so every panel works on the UTC days the range touches (metric_date between the days of
 * $__timeFrom() and $__timeTo(), served by agent_metrics_date_idx or its primary key); the ranking's
 * exact p95 over those days reads the completed durations from swarm_traces_agent_duration_idx.
 *
 * The per-agent graphs draw at most TOP_AGENTS series: the agents of the selection that rank highest in
 * the range on what the graph answers (most failures, slowest p95, slowest pickup, busiest); the ranking
 * table lists every selected agent.
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
  tableLegend,
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

/** How many agents a per-agent graph draws. */
export const TOP_AGENTS = 10;

/**
 * Failure-rate colours, the same on the stat and the ranking: green below 5 %, orange from 5 %, red
 * from 10 %.
 */
const FAILURE_RATE_THRESHOLDS = {
  mode: 'absolute',
  steps: [
    { color: 'green', value: null },
    { color: 'orange', value: 0.05 },
    { color: 'red', value: 0.1 },
  ],
};

/**
 * The lower bound of the Wilson score interval (95 %, z = 1.96: z² = 3.8416) of a failure rate `p` over
 * `n` finished tasks (n null when none finished, and then the bound too). 1 failure of 5 gives 3.6 %, 28
 * of 240 gives 8.2 %: a rate from few tasks counts for less than the same rate from many. No failure
 * gives 0, exactly (the formula's rounding leaves ±1e-17, which would order such agents by noise).
 */
function wilsonLowerBound(p: string, n: string): string {
  const bound = `(${p} + 1.9208 / ${n} - 1.96 * sqrt(${p} * (1 - ${p}) / ${n} + 0.9604 / (${n} * ${n})))
      / (1 + 3.8416 / ${n})`;
  return `CASE WHEN ${p} = 0 THEN 0
    ELSE ${bound} END`;
}

export function agentPerformance(): DashboardFile {
  /**
   * One series per agent, for the TOP_AGENTS agents of the selection that rank first by `rank` (an
   * aggregate over the agent's days in the range, largest first; ties by name in code-point order). The
   * legend is a table sorted by `sortBy` (a calculation of `calcs`).
   */
  const perAgentPerDay = (o: {
    title: string;
    description: string;
    unit: string;
    value: string;
    rank: string;
    calcs: readonly string[];
    sortBy: string;
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
      options: { legend: tableLegend(o.calcs, o.sortBy) },
      targets: [
        postgresTarget(
          pg,
          sql`
          WITH top AS (
            SELECT agent_id
            FROM ${SELECTED_AGENT_DAYS}
            GROUP BY agent_id
            ORDER BY ${o.rank} DESC NULLS LAST, agent_id COLLATE "C"
            LIMIT ${TOP_AGENTS}
          )
          SELECT ${DAY_TIME}, agent_id AS metric, ${o.value}
          FROM agent_metrics
          WHERE ${DAYS}
            AND agent_id IN (SELECT agent_id FROM top)
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
        'Of the tasks the selected agents finished on the days of the range, the share that failed or timed out: green below 5 %, orange from 5 %, red from 10 %.',
      datasource: pg,
      w: 4,
      unit: 'percentunit',
      defaults: { decimals: 1, color: { mode: 'thresholds' }, thresholds: FAILURE_RATE_THRESHOLDS },
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
      description: 'Tasks the selected agents finished each UTC day, by outcome; each bar covers its day.',
      datasource: pg,
      w: 12,
      bars: true,
      barAlignment: 1,
      stacked: true,
      unit: 'short',
      defaults: { decimals: 0 },
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
      title: `Failure rate per day: the ${TOP_AGENTS} agents with the most failures`,
      description: `Share of each agent’s finished tasks that failed or timed out, per UTC day, for the ${TOP_AGENTS} selected agents with the most failed or timed-out tasks over the days of the range (every agent: the ranking below). The axis fits the values.`,
      unit: 'percentunit',
      value: `(tasks_failed + tasks_timed_out)::float8 / nullif(tasks_completed + tasks_failed + tasks_timed_out, 0) AS failure_rate`,
      rank: 'sum(tasks_failed + tasks_timed_out)',
      calcs: ['mean', 'max'],
      sortBy: 'Mean',
    }),
    perAgentPerDay({
      title: `p95 task duration per day: the ${TOP_AGENTS} slowest agents`,
      description: `95th percentile of the duration of each agent’s completed tasks, per UTC day (trend: rising = slower), for the ${TOP_AGENTS} selected agents with the highest daily p95 in the range (every agent: the ranking below).`,
      unit: 'ms',
      value: 'p95_duration_ms',
      rank: 'max(p95_duration_ms)',
      calcs: ['mean', 'max'],
      sortBy: 'Max',
    }),
    perAgentPerDay({
      title: `Pickup time per day: the ${TOP_AGENTS} slowest agents to pick up`,
      description: `Average time from assignment to start of each agent’s finished tasks, per UTC day, for the ${TOP_AGENTS} selected agents with the longest average pickup over the days of the range (every agent: the ranking below).`,
      unit: 'ms',
      value: 'time_to_pickup_avg_ms',
      rank: 'sum(pickup_sum)::float8 / nullif(sum(pickup_count), 0)',
      calcs: ['mean', 'max'],
      sortBy: 'Mean',
    }),
    perAgentPerDay({
      title: `Utilization per day: the ${TOP_AGENTS} busiest agents`,
      description: `Busy time over uptime from each agent’s latest heartbeat of the UTC day, for the ${TOP_AGENTS} selected agents with the highest average utilization over the days of the range (every agent: the ranking below).`,
      unit: 'percentunit',
      max: 1,
      value: 'utilization_pct / 100 AS utilization',
      rank: 'avg(utilization_pct)',
      calcs: ['mean', 'max'],
      sortBy: 'Mean',
    }),
    row('Ranking'),
    // The exact p95 is computed per agent (LATERAL) from that agent's completed durations on the range's
    // days, one range of swarm_traces_agent_duration_idx each, whatever the statistics say: as a CTE
    // joined to the rest, a table without statistics got a nested loop recomputing every agent's
    // durations once per agent (2.8 s instead of 8 ms on 10,000 tasks).
    table({
      title: 'Agents ranked by failure rate (95 % lower bound), then p95 duration',
      description:
        'Every selected agent over the days of the range, worst first: finished tasks, failure rate, exact p95 and average duration, pickup time, utilization. Ranked by the lower bound of the 95 % Wilson interval of the failure rate (rate ≥), so that 1 failure in 5 tasks (20 %, but ≥ 3.6 %) ranks below 28 in 240 (11.7 %, ≥ 8.2 %): a rate from few tasks counts for less. Failure rate: green below 5 %, orange from 5 %, red from 10 %. Click an agent to show only it.',
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
          'custom.cellOptions': { type: 'color-background', mode: 'basic' },
          color: { mode: 'thresholds' },
          thresholds: FAILURE_RATE_THRESHOLDS,
        }),
        override('failure_rate_low', { unit: 'percentunit', decimals: 1, displayName: 'rate ≥ (95 %)' }),
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
          ), r AS (
            SELECT m.*, (m.failed + m.timed_out)::float8 / nullif(m.completed + m.failed + m.timed_out, 0) AS rate,
              nullif(m.completed + m.failed + m.timed_out, 0)::float8 AS n
            FROM m
          )
          SELECT r.agent_id AS agent, r.completed + r.failed + r.timed_out AS finished,
            r.completed, r.failed, r.timed_out, r.rate AS failure_rate,
            ${wilsonLowerBound('r.rate', 'r.n')} AS failure_rate_low,
            d.p95_duration_ms, r.avg_duration_ms, r.avg_pickup_ms, r.utilization
          FROM r
          LEFT JOIN LATERAL (
            SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
            FROM swarm_traces
            WHERE is_task AND status = 'completed' AND duration_ms IS NOT NULL
              AND assigned_agent = r.agent_id
              AND (completed_at AT TIME ZONE 'UTC')::date
                BETWEEN ($__timeFrom()::timestamptz AT TIME ZONE 'UTC')::date
                AND ($__timeTo()::timestamptz AT TIME ZONE 'UTC')::date
          ) d ON true
          ORDER BY failure_rate_low DESC NULLS LAST, d.p95_duration_ms DESC NULLS LAST, r.agent_id COLLATE "C"`,
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
