/**
 * Task drill-down (Postgres + Tempo): what happened to one task. A `trace_id` text box (filled by the
 * links of the other dashboards); the task's row, its events in order with their metadata, its
 * dead-letter entries, and its trace from Tempo. Every Postgres panel but "Recent tasks" is filtered by
 * the trace id alone (the task's whole history, whatever the time range), each through an index on
 * trace_id; "Recent tasks", at the top so the first load (no trace id yet) opens on something to pick,
 * lists the range's newest tasks: a click on one shows it in the panels below.
 *
 * The trace id is quoted as '${trace_id}': Grafana doubles its single quotes and adds nothing else.
 * (The `sqlstring` format would also turn " into \", which Postgres keeps, so an id with a double quote
 * would not be found.)
 */
import {
  dashboard,
  dashboardLink,
  override,
  postgresTarget,
  queryVariable,
  sql,
  table,
  tempoExploreUrl,
  tempoTarget,
  textboxVariable,
  traces,
} from './panels.js';
import { DASHBOARD_UIDS, DATASOURCES, type DashboardFile } from './model.js';
import {
  JAEGER_URL_VARIABLE,
  TIME_WITH_MS,
  TRACE_LINK_COLUMNS,
  dashboardLinks,
  taskTableOverrides,
} from './swarm-overview.js';

const pg = DATASOURCES.postgres;

/** A timestamp as text in the key/value table (UTC, milliseconds). */
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export function taskDrilldown(): DashboardFile {
  const panels = [
    table({
      title: 'Recent tasks: click a trace id to open the task below',
      description:
        'The newest tasks created in the range (50). Click a trace id and choose "Task drill-down" to show that task in the panels below (or type a trace id in the Trace id box above), or open its trace in Tempo or Jaeger.',
      datasource: pg,
      w: 24,
      h: 7,
      overrides: taskTableOverrides(override('duration_ms', { unit: 'ms' })),
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT t.created_at AS "time", t.trace_id, t.status, t.assigned_agent AS agent, t.task_title AS title,
            t.attempts, t.duration_ms, t.error,
            ${TRACE_LINK_COLUMNS}
          FROM swarm_traces t
          WHERE t.is_task AND $__timeFilter(t.created_at)
          ORDER BY t.created_at DESC, t.trace_id DESC
          LIMIT 50`,
          'table',
        ),
      ],
    }),
    table({
      title: 'Task',
      description:
        "The task's swarm_traces row: status, agent, attempts, times, durations (ms), error, and its OpenTelemetry trace id.",
      datasource: pg,
      w: 9,
      h: 14,
      defaults: { custom: { align: 'left', cellOptions: { type: 'auto' }, inspect: true } },
      overrides: [override('field', { 'custom.width': 160 })],
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT kv.field, kv.value
          FROM swarm_traces t
          CROSS JOIN LATERAL (VALUES
            (1, 'trace_id', t.trace_id),
            (2, 'status', coalesce(t.status, '(not a task)')),
            (3, 'title', t.task_title),
            (4, 'owner', t.owner),
            (5, 'agent', t.assigned_agent),
            (6, 'attempts', t.attempts::text),
            (7, 'error', t.error),
            (8, 'created_at', ${iso('t.created_at')}),
            (9, 'assigned_at', ${iso('t.assigned_at')}),
            (10, 'started_at', ${iso('t.started_at')}),
            (11, 'completed_at', ${iso('t.completed_at')}),
            (12, 'duration_ms', t.duration_ms::text),
            (13, 'time_to_pickup_ms', t.time_to_pickup_ms::text),
            (14, 'events', t.span_count::text),
            (15, 'first_event_at', ${iso('t.first_event_at')}),
            (16, 'last_event_at', ${iso('t.last_event_at')}),
            (17, 'scoring_breakdown', t.scoring_breakdown::text),
            (18, 'otel_trace_id', chronicle_otel_trace_id(t.trace_id))
          ) AS kv(n, field, value)
          WHERE t.trace_id = '\${trace_id}'
          ORDER BY kv.n`,
          'table',
        ),
      ],
    }),
    table({
      title: 'Events',
      description:
        "The task's events in the order Chronicle lists them (timestamp, then event id), with their metadata (first 1000); times to the millisecond.",
      datasource: pg,
      w: 15,
      h: 14,
      overrides: [override('time', { unit: TIME_WITH_MS }), override('metadata', { 'custom.width': 480 })],
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT "timestamp" AS "time", event_type, source, chronicle_agent(metadata) AS agent,
            metadata::text AS metadata, event_id
          FROM swarm_events
          WHERE trace_id = '\${trace_id}'
          ORDER BY "timestamp", event_id
          LIMIT 1000`,
          'table',
        ),
      ],
    }),
    table({
      title: 'Dead-letter entries',
      description:
        'Dead-letter entries whose original payload names this task: when the swarm gave up on it (failed_at), the reason and retries, and when Chronicle received the entry.',
      datasource: pg,
      w: 24,
      h: 6,
      overrides: [
        override('failed_at', { unit: TIME_WITH_MS }),
        override('received_at', { unit: TIME_WITH_MS }),
      ],
      targets: [
        postgresTarget(
          pg,
          sql`
          SELECT failed_at, reason, reason_detail, retry_count, max_retries, dlq_id, source, recoverable, recovered,
            received_at, original_subject, original_payload::text AS original_payload
          FROM swarm_dlq
          WHERE trace_id = '\${trace_id}'
          ORDER BY failed_at NULLS LAST, received_at, dlq_id`,
          'table',
        ),
      ],
    }),
    traces({
      title: 'Trace (Tempo)',
      description:
        "The task's OpenTelemetry trace as Tempo holds it: root span, queue wait, pickup and execution per attempt, events as span events.",
      datasource: DATASOURCES.tempo,
      targets: [tempoTarget(DATASOURCES.tempo, '${otel_trace_id}')],
    }),
  ];

  return {
    file: 'task-drilldown.json',
    dashboard: dashboard({
      uid: DASHBOARD_UIDS.taskDrilldown,
      title: 'Task drill-down',
      description:
        'What happened to one task: its row, its events with metadata, its dead letters and its trace.',
      tags: ['chronicle', 'postgres', 'tempo'],
      time: { from: 'now-24h', to: 'now' },
      refresh: '',
      variables: [
        textboxVariable('trace_id', 'Trace id', '', "The task's trace_id (as the swarm named it)"),
        queryVariable({
          name: 'otel_trace_id',
          description:
            'The OpenTelemetry trace id Chronicle exports the task as (src/spans/ids.ts); none while trace_id is empty',
          datasource: pg,
          query: sql`
            SELECT chronicle_otel_trace_id('\${trace_id}') AS otel_trace_id WHERE '\${trace_id}' <> ''`,
          hide: 2,
          refresh: 1,
        }),
        JAEGER_URL_VARIABLE,
      ],
      links: [
        dashboardLink({
          title: 'Trace in Tempo (Explore)',
          tooltip: "Open the task's trace in Grafana Explore on Tempo",
          url: tempoExploreUrl(DATASOURCES.tempo.uid, '${otel_trace_id}', '${__from}', '${__to}'),
          targetBlank: true,
        }),
        dashboardLink({
          title: 'Trace in Jaeger',
          tooltip: "Open the task's trace in the Jaeger UI",
          url: '${jaeger_url:raw}/trace/${otel_trace_id}',
          targetBlank: true,
        }),
        ...dashboardLinks(DASHBOARD_UIDS.taskDrilldown),
      ],
      panels,
    }),
  };
}
