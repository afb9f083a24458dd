/**
 * Traces (Tempo + Prometheus + Postgres): the task traces Chronicle exports, searched with TraceQL, and what Tempo's
 * metrics generator derives from them and writes to Prometheus by remote write: the service graph
 * (`traces_service_graph_request_total`, `…_failed_total`, `…_server_seconds`/`…_client_seconds`
 * histograms, labels `client`, `server`, `connection_type`) and span metrics (`traces_spanmetrics_calls_total`,
 * `traces_spanmetrics_latency` histogram, labels `service`, `span_name`, `span_kind`, `status_code`),
 * as named in Tempo's modules/generator/processor/{servicegraphs,spanmetrics}.
 * Span names and attributes: docs/spans.md (root `swarm.task`, attempts `invoke_agent {agent}`).
 *
 * Beside Tempo's service graph, the task graph draws the same multi-agent view from Chronicle's own
 * Postgres: Tempo only draws an edge for a CLIENT span with a SERVER span under it in another service
 * (or a CLIENT span with a peer attribute), and Chronicle's task spans never pair that way.
 */
import { DASHBOARD_UIDS, DATASOURCES, type DashboardFile, chronicleDashboardsLink } from './model.js';
import {
  type PanelSpec,
  customVariable,
  dashboard,
  dashboardLink,
  panel,
  postgresTarget,
  promGraph,
  row,
  serviceGraph,
  sql,
  textboxVariable,
  traceSearch,
} from './panels.js';

const RATE = '$__rate_interval';
/** Span metrics of agent attempts (`invoke_agent {agent}` spans; service.name is the agent) for the agents picked. */
const ATTEMPTS = 'span_name=~"invoke_agent.*", service=~"$agent"';

const searches: PanelSpec[] = [
  row('Task traces (TraceQL search in Tempo)'),
  traceSearch({
    w: 24,
    h: 10,
    title: 'Recent task traces',
    description:
      'Root spans of finished tasks (`swarm.task`), newest first, filtered by the status variable. A root span is exported once the task is terminal; a running task shows only its finished phases. Open a trace id to see its attempts and every raw event on the timeline.',
    query:
      '{ name = "swarm.task" && span.swarm.task.status =~ "$status" } | select(span.swarm.task.title, span.swarm.agent, span.swarm.task.attempts, span.swarm.trace_id)',
    tableType: 'traces',
    limit: 50,
    spansPerTrace: 1,
  }),
  traceSearch({
    w: 12,
    h: 10,
    title: 'Failed and timed-out tasks',
    description:
      'Task root spans with status ERROR (failed or timed out), with the error as the status message and the swarm trace id to open the task drill-down.',
    query:
      '{ name = "swarm.task" && status = error } | select(span.swarm.task.status, span.swarm.agent, span.swarm.trace_id, statusMessage)',
    tableType: 'traces',
    limit: 50,
    spansPerTrace: 1,
  }),
  traceSearch({
    w: 12,
    h: 10,
    title: 'Agent attempts',
    description:
      'Executions (`invoke_agent {agent}` spans, one per attempt that started) of the agents matching the agent variable, with how each attempt ended and the error type of failed ones.',
    query:
      '{ span.gen_ai.operation.name = "invoke_agent" && span.gen_ai.agent.name =~ "$agent" } | select(span.swarm.attempt.outcome, span.error.type, span.swarm.trace_id)',
    tableType: 'spans',
    limit: 50,
    spansPerTrace: 10,
  }),
];

const pg = DATASOURCES.postgres;

/** The node a task with no agent (never assigned) goes to. */
const NO_AGENT = '(no agent)';

/** How many agents the task graph draws, by tasks handled; the others are one node, OTHER_AGENTS. */
export const GRAPH_AGENTS = 15;

/** The node of the agents beyond the GRAPH_AGENTS busiest: their tasks summed. */
const OTHER_AGENTS = '(other agents)';

/**
 * The tasks created in the range (CTE `created_tasks`: creator, agent, status, duration_ms). The creator
 * is the source of the task's first task.created event (the trace row's created_by), the service.name of
 * its root span (docs/spans.md); the agent is the one it was last assigned to, null when never assigned.
 * The graph folds the agents outside the GRAPH_AGENTS that handled the most of these tasks (RANK) into
 * one node, OTHER_AGENTS, so a swarm of hundreds of agents stays a readable graph. A task's created_at
 * is its earliest task.created, so a task created before the range whose duplicate task.created (another
 * event id) falls in it is left out; a trace with no task.created is not drawn. A row whose created_by is unset (stored before migration 0016, which does
 * not rewrite them) has its creator read from that event, as the graph did before.
 */
const CREATED_TASKS = `WITH created_tasks AS (
  SELECT t.created_by AS creator, t.assigned_agent AS agent, t.status, t.duration_ms
  FROM swarm_traces t
  WHERE t.is_task AND t.created_by IS NOT NULL AND $__timeFilter(t.created_at)
  UNION ALL
  -- A row stored before migration 0016 (or whose task.created has not arrived): the creator from its
  -- earliest task.created, whose timestamp is the row's created_at (one probe of that day's partition).
  SELECT c.source, t.assigned_agent, t.status, t.duration_ms
  FROM swarm_traces t
  CROSS JOIN LATERAL (
    SELECT e.source FROM swarm_events e
    WHERE e.trace_id = t.trace_id AND e.event_type = 'task.created' AND e."timestamp" = t.created_at
    ORDER BY e.event_id
    LIMIT 1
  ) c
  WHERE t.is_task AND t.created_by IS NULL AND $__timeFilter(t.created_at)
)`;

/**
 * True for the GRAPH_AGENTS busiest agents: by tasks, ties by name in code-point order (null, never
 * assigned, last).
 */
const RANK = `row_number() OVER (ORDER BY agent IS NULL, tasks DESC, agent COLLATE "C") <= ${GRAPH_AGENTS}`;

/** The outcome counts of a group of created_tasks, and the p95 duration of its completed tasks. */
const OUTCOMES = `count(*) AS tasks,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'timed_out') AS timed_out,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE status = 'completed') AS p95_ms`;

/** Outcome shares of a node's tasks (arc__*: fractions summing to 1) and their colours. */
const ARCS = [
  { field: 'arc__completed', color: 'green', name: 'Completed' },
  { field: 'arc__failed', color: 'red', name: 'Failed' },
  { field: 'arc__timed_out', color: 'orange', name: 'Timed out' },
  { field: 'arc__in_flight', color: 'blue', name: 'In flight' },
] as const;

/**
 * Who gives work to whom, from Postgres, as a node graph. Grafana's nodeGraph panel
 * (public/app/plugins/panel/nodeGraph/utils.ts, getNodeGraphDataFrames and getGraphFrame) keeps the
 * frames whose refId is `nodes` or `edges` (or that have an `id` field), takes the frame with a `source`
 * field as the edges and the other as the nodes, and reads fields by lower-cased name: nodes `id`,
 * `title`, `subtitle`, `mainstat`, `secondarystat`, `arc__*` (coloured by the panel's `nodes.arcs`
 * option), `detail__*` (shown on click); edges `id`, `source`, `target`, `mainstat`, `secondarystat`,
 * `detail__*`. Every edge's source and target must be a node id. It offers no standard field options
 * (units, display names) but links, so the stats' units are the panel's `nodes`/`edges` options (written
 * after the value as they are) and the legend and click-menu labels are display names the organize
 * transformation sets.
 */
function taskGraph(): PanelSpec {
  const rename: Record<string, string> = {
    mainstat: 'Tasks',
    secondarystat: 'Failed or timed out (% of finished)',
    detail__created: 'Tasks created',
    detail__handled: 'Tasks handled',
    detail__p95_duration_ms: 'p95 duration of completed tasks (ms)',
    detail__completed: 'Completed',
    detail__failed: 'Failed',
    detail__timed_out: 'Timed out',
    detail__in_flight: 'In flight',
  };
  for (const arc of ARCS) rename[arc.field] = arc.name;
  return panel('nodeGraph', {
    w: 12,
    h: 14,
    title: 'Task graph (Postgres)',
    description: `Services that create tasks and the agents that work on them, for the tasks created in the range, from Chronicle's Postgres: an edge from the service that created each task (the source of its task.created event) to the agent it was last assigned to (${NO_AGENT}: never assigned). The ${GRAPH_AGENTS} agents that handled the most of these tasks have a node each; the others are one node, ${OTHER_AGENTS}, with their tasks summed (its subtitle says how many agents). An agent that creates tasks itself is one node with edges in and out. Node: tasks handled (agents) or created (services), the share of those that finished which failed or timed out, and their outcomes as the coloured ring; click a node for tasks created, handled and the p95 duration. Edge: tasks and the share failed or timed out.`,
    datasource: pg,
    targets: [
      postgresTarget(
        pg,
        sql`
        ${CREATED_TASKS},
        -- Each side grouped apart on its one column, sorted bytewise (a percentile needs its group's
        -- rows sorted: GROUP BY cannot hash); the agents folded from those groups, their percentile
        -- taken anew over their rows alone. 30 % faster than one group by (name, role) over both sides.
        by_agent AS (
          SELECT agent COLLATE "C" AS agent, ${OUTCOMES} FROM created_tasks GROUP BY 1
        ), ranked AS (
          SELECT *, agent IS NULL OR ${RANK} AS shown FROM by_agent
        ), folded AS (
          SELECT count(*) AS agents, sum(tasks) AS tasks, sum(completed) AS completed, sum(failed) AS failed,
            sum(timed_out) AS timed_out,
            (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY c.duration_ms) FROM created_tasks c
             WHERE c.status = 'completed' AND c.agent IN (SELECT agent FROM ranked WHERE NOT shown)) AS p95_ms
          FROM ranked WHERE NOT shown
        ), by_creator AS (
          SELECT creator COLLATE "C" AS creator, ${OUTCOMES} FROM created_tasks GROUP BY 1
        ), per_role AS (
          SELECT coalesce(agent, '${NO_AGENT}') COLLATE "default" AS name,
            CASE WHEN agent IS NULL THEN 'never assigned' ELSE 'agent' END AS role,
            tasks, completed, failed, timed_out, p95_ms
          FROM ranked WHERE shown
          UNION ALL
          SELECT '${OTHER_AGENTS}', agents || ' more agents', tasks, completed, failed, timed_out, p95_ms
          FROM folded WHERE agents > 0
          UNION ALL
          SELECT creator COLLATE "default", 'service', tasks, completed, failed, timed_out, p95_ms FROM by_creator
        )
        SELECT DISTINCT ON (name)
          name AS id,
          name AS title,
          CASE WHEN count(*) OVER w > 1 THEN 'agent, creates tasks' ELSE role END AS subtitle,
          tasks AS mainstat,
          100 * (failed + timed_out)::float8 / nullif(completed + failed + timed_out, 0) AS secondarystat,
          completed::float8 / tasks AS arc__completed,
          failed::float8 / tasks AS arc__failed,
          timed_out::float8 / tasks AS arc__timed_out,
          (tasks - completed - failed - timed_out)::float8 / tasks AS arc__in_flight,
          coalesce(sum(tasks) FILTER (WHERE role = 'service') OVER w, 0)::bigint AS detail__created,
          coalesce(sum(tasks) FILTER (WHERE role <> 'service') OVER w, 0)::bigint AS detail__handled,
          p95_ms AS detail__p95_duration_ms
        FROM per_role
        WINDOW w AS (PARTITION BY name)
        ORDER BY name, role = 'service'`,
        'table',
        'nodes',
      ),
      postgresTarget(
        pg,
        sql`
        ${CREATED_TASKS}, ranked AS (
          SELECT agent, ${RANK} AS shown
          FROM (SELECT agent, count(*) AS tasks FROM created_tasks WHERE agent IS NOT NULL GROUP BY agent) a
        ), tasks AS (
          SELECT c.creator, CASE WHEN r.shown IS FALSE THEN '${OTHER_AGENTS}' ELSE c.agent END AS agent, c.status
          FROM created_tasks c
          LEFT JOIN ranked r ON r.agent = c.agent
        )
        SELECT creator || ' → ' || target AS id, creator AS source, target,
          count(*) AS mainstat,
          100 * count(*) FILTER (WHERE status IN ('failed', 'timed_out'))::float8
            / nullif(count(*) FILTER (WHERE status IN ('completed', 'failed', 'timed_out')), 0) AS secondarystat,
          count(*) FILTER (WHERE status = 'completed') AS detail__completed,
          count(*) FILTER (WHERE status = 'failed') AS detail__failed,
          count(*) FILTER (WHERE status = 'timed_out') AS detail__timed_out,
          count(*) FILTER (WHERE status NOT IN ('completed', 'failed', 'timed_out')) AS detail__in_flight
        FROM (SELECT creator, coalesce(agent, '${NO_AGENT}') AS target, status FROM tasks) x
        GROUP BY creator, target
        ORDER BY creator, target`,
        'table',
        'edges',
      ),
    ],
    options: {
      nodes: {
        mainStatUnit: 'tasks',
        secondaryStatUnit: '% failed',
        arcs: ARCS.map((a) => ({ field: a.field, color: a.color })),
      },
      edges: { mainStatUnit: 'tasks', secondaryStatUnit: '% failed' },
    },
    transformations: [
      { id: 'organize', options: { excludeByName: {}, indexByName: {}, renameByName: rename } },
    ],
  });
}

const graph: PanelSpec[] = [
  row('Multi-agent graph'),
  taskGraph(),
  serviceGraph({
    w: 12,
    h: 14,
    title: 'Service graph (Tempo)',
    description:
      "Services and agents as nodes, calls as edges, with rate, errors and latency, as Tempo's metrics generator derives them (traces_service_graph_* in Prometheus). Tempo draws an edge for a CLIENT span with a SERVER span under it in another service (or PRODUCER/CONSUMER), or for an unmatched CLIENT span carrying one of the peer attributes it is configured to read (peer.service, db.name, db.system by default). Chronicle's own `invoke_agent` spans are CLIENT spans with no SERVER span under them, so edges come from the services that send their own spans through Chronicle's OTLP receiver and from those peer attributes; the task graph beside it shows who gives work to which agent from Chronicle's Postgres.",
  }),
  promGraph({
    w: 12,
    h: 8,
    title: 'Calls between services',
    description:
      'Requests per second on each edge of the service graph (traces_service_graph_request_total, by client and server).',
    unit: 'reqps',
    queries: [
      {
        expr: `sum by (client, server) (rate(traces_service_graph_request_total[${RATE}]))`,
        legend: '{{client}} → {{server}}',
      },
    ],
  }),
  promGraph({
    w: 12,
    h: 8,
    title: 'Failed calls between services',
    description:
      'Failed requests per second on each edge, where either span of the pair has status ERROR (traces_service_graph_request_failed_total).',
    unit: 'reqps',
    queries: [
      {
        expr: `sum by (client, server) (rate(traces_service_graph_request_failed_total[${RATE}]))`,
        legend: '{{client}} → {{server}}',
      },
    ],
  }),
];

const spanMetrics: PanelSpec[] = [
  row('Span metrics (Tempo metrics generator)'),
  promGraph({
    w: 8,
    h: 8,
    title: 'Agent attempts by agent',
    description:
      'Executions per minute by agent, from the `invoke_agent` spans Tempo received (traces_spanmetrics_calls_total; the span service is the agent).',
    unit: 'count:attempts/min',
    stacked: true,
    queries: [
      {
        expr: `60 * sum by (service) (rate(traces_spanmetrics_calls_total{${ATTEMPTS}}[${RATE}]))`,
        legend: '{{service}}',
      },
    ],
  }),
  promGraph({
    w: 8,
    h: 8,
    title: 'Agent attempt error ratio',
    description:
      'Share of executions per agent whose span has status ERROR: the attempt failed or timed out (traces_spanmetrics_calls_total by status_code).',
    unit: 'percentunit',
    min: 0,
    max: 1,
    queries: [
      {
        expr: `sum by (service) (rate(traces_spanmetrics_calls_total{${ATTEMPTS}, status_code="STATUS_CODE_ERROR"}[${RATE}])) / sum by (service) (rate(traces_spanmetrics_calls_total{${ATTEMPTS}}[${RATE}]))`,
        legend: '{{service}}',
      },
    ],
  }),
  promGraph({
    w: 8,
    h: 8,
    title: 'Agent attempt duration p95',
    description:
      "p95 execution time per agent (traces_spanmetrics_latency). Tempo's histogram buckets cap what it can tell: with its default buckets (up to 16.384 s) a longer attempt only counts as +Inf.",
    unit: 's',
    min: 0,
    queries: [
      {
        expr: `histogram_quantile(0.95, sum by (le, service) (rate(traces_spanmetrics_latency_bucket{${ATTEMPTS}}[${RATE}])))`,
        legend: '{{service}}',
      },
    ],
  }),
  promGraph({
    w: 12,
    h: 8,
    title: 'Task duration (root spans)',
    description:
      'p50 and p95 of task duration, created to terminal, from the `swarm.task` root spans Tempo received (traces_spanmetrics_latency). Postgres has the exact figures on the Swarm overview.',
    unit: 's',
    min: 0,
    queries: [
      {
        expr: `histogram_quantile(0.95, sum by (le) (rate(traces_spanmetrics_latency_bucket{span_name="swarm.task"}[${RATE}])))`,
        legend: 'p95',
      },
      {
        expr: `histogram_quantile(0.5, sum by (le) (rate(traces_spanmetrics_latency_bucket{span_name="swarm.task"}[${RATE}])))`,
        legend: 'p50',
      },
    ],
  }),
  promGraph({
    w: 12,
    h: 8,
    title: 'Spans by service',
    description:
      'Spans per second Tempo received, by service.name: the task sources (root spans), the agents (attempt spans) and services sending their own spans through Chronicle (traces_spanmetrics_calls_total).',
    unit: 'count:spans/s',
    stacked: true,
    queries: [
      {
        expr: `sum by (service) (rate(traces_spanmetrics_calls_total[${RATE}]))`,
        legend: '{{service}}',
      },
    ],
  }),
];

export function tracesDashboard(): DashboardFile {
  return {
    file: 'traces.json',
    dashboard: dashboard({
      uid: DASHBOARD_UIDS.traces,
      title: 'Chronicle traces',
      description:
        "Task traces in Tempo (TraceQL search), who gives work to which agent (the task graph, from Postgres), and the service graph and span metrics Tempo's metrics generator writes to Prometheus.",
      tags: ['chronicle'],
      time: { from: 'now-3h', to: 'now' },
      refresh: '1m',
      variables: [
        {
          ...customVariable(
            'status',
            'task status',
            ['completed', 'failed', 'timed_out'],
            '$__all',
            'Status of the tasks listed in Recent task traces (swarm.task.status on the root span).',
          ),
          includeAll: true,
          allValue: '.*',
          allowCustomValue: false,
          current: { text: 'All', value: '$__all' },
        },
        textboxVariable(
          'agent',
          'agent (regex)',
          '.*',
          'Regular expression on the agent name: gen_ai.agent.name of the attempt spans, and the service of their span metrics.',
        ),
      ],
      links: [
        chronicleDashboardsLink(),
        dashboardLink({
          title: 'Task drill-down',
          url: `/d/${DASHBOARD_UIDS.taskDrilldown}`,
          tooltip: "A task's row, events and trace: paste its swarm.trace_id",
          keepTime: true,
        }),
      ],
      panels: [...searches, ...graph, ...spanMetrics],
    }),
  };
}
