/**
 * Chronicle pipeline (Prometheus): is Chronicle keeping up? Ingest by source and stream, JetStream lag
 * and pauses, the buffer and its flushes, writes, the span outbox, HTTP and OTLP, and the process.
 * Metrics: src/telemetry/metrics.ts (GET /metrics). `job` and `instance` pick replicas; rates are summed
 * across the replicas picked, per-process gauges are shown per instance, and gauges that every replica
 * reads from the same shared state (a JetStream durable, the span outbox table) take the max.
 */
import { DASHBOARD_UIDS, type DashboardFile, chronicleDashboardsLink } from './model.js';
import {
  type PanelSpec,
  dashboard,
  dashboardLink,
  labelValuesVariable,
  promGraph,
  promStat,
  row,
} from './panels.js';

/** The replicas picked by the `job` and `instance` variables. */
const S = 'job=~"$job", instance=~"$instance"';
const RATE = '$__rate_interval';

/** `sum by (labels) (rate(metric{selector}[$__rate_interval]))` */
const sumRate = (by: string, metric: string, matchers = ''): string =>
  `sum${by ? ` by (${by})` : ''} (rate(${metric}{${matchers}${matchers ? ', ' : ''}${S}}[${RATE}]))`;

/** The q-quantile of a histogram over the picked replicas, per `by` labels. */
const quantile = (q: number, metric: string, by = ''): string =>
  `histogram_quantile(${q}, sum by (le${by ? `, ${by}` : ''}) (rate(${metric}_bucket{${S}}[${RATE}])))`;

/** A row header and its panels, `perLine` of them side by side (each 24 / perLine grid units wide). */
const section = (title: string, perLine: number, panels: readonly PanelSpec[]): PanelSpec[] => [
  row(title),
  ...panels.map((p) => ({ ...p, w: 24 / perLine })),
];

const OK_FAILING = [
  { value: 0, text: 'ok', color: 'green' },
  { value: 1, text: 'failing', color: 'red' },
];

const health = section('Health', 6, [
  promStat({
    title: 'Ready',
    description:
      'Per replica: 1 when GET /ready would answer 200 (Postgres reachable, sources started), else 0 (chronicle_ready). A replica missing here is not scraped at all: see the ChronicleDown alert.',
    unit: 'none',
    queries: [{ expr: `sum by (instance) (chronicle_ready{${S}})`, legend: '{{instance}}', instant: true }],
    thresholds: [],
    valueText: [
      { value: 0, text: 'not ready', color: 'red' },
      { value: 1, text: 'ready', color: 'green' },
    ],
  }),
  promStat({
    title: 'Writes failing',
    description:
      'Per replica: 1 while flushes to Postgres fail and are retried (chronicle_writer_failing). Nothing is acknowledged meanwhile; JetStream redelivers and HTTP clients get errors.',
    unit: 'none',
    queries: [
      {
        expr: `max by (instance) (chronicle_writer_failing{${S}})`,
        legend: '{{instance}}',
        instant: true,
      },
    ],
    valueText: OK_FAILING,
  }),
  promStat({
    title: 'Inputs received',
    description:
      'Inputs per second over all sources (NATS, HTTP, OTLP) and the replicas picked (chronicle_inputs_received_total).',
    unit: 'count:inputs/s',
    queries: [{ expr: sumRate('', 'chronicle_inputs_received_total') }],
    sparkline: true,
  }),
  promStat({
    title: 'Consumer lag',
    description:
      'Messages the JetStream durables have not had acknowledged yet, all streams (num_pending + num_ack_pending, chronicle_jetstream_consumer_lag_messages). Replicas share each durable and report the same value, so the max per stream is taken.',
    unit: 'count:messages',
    queries: [{ expr: `sum (max by (stream) (chronicle_jetstream_consumer_lag_messages{${S}}))` }],
    thresholds: [
      { value: 1000, color: 'orange' },
      { value: 10000, color: 'red' },
    ],
    sparkline: true,
  }),
  promStat({
    title: 'Oldest span waiting',
    description:
      'Age of the oldest span stored and not exported yet (chronicle_span_export_oldest_age_seconds; 0 when none wait). A big backlog that moves is fine; an old one means the OTLP backend is not taking spans.',
    unit: 's',
    queries: [{ expr: `max (chronicle_span_export_oldest_age_seconds{${S}})` }],
    thresholds: [
      { value: 60, color: 'orange' },
      { value: 600, color: 'red' },
    ],
    sparkline: true,
  }),
  promStat({
    title: 'Task failure ratio',
    description:
      'Share of the tasks that reached a terminal status in the time range that failed or timed out (chronicle_tasks_terminal_total, counted once per task when its row first becomes terminal).',
    unit: 'percentunit',
    decimals: 1,
    queries: [
      {
        expr: `sum (increase(chronicle_tasks_terminal_total{status=~"failed|timed_out", ${S}}[$__range])) / sum (increase(chronicle_tasks_terminal_total{${S}}[$__range]))`,
        instant: true,
      },
    ],
    thresholds: [
      { value: 0.05, color: 'orange' },
      { value: 0.2, color: 'red' },
    ],
  }),
]);

const ingest = section('Ingest', 2, [
  promGraph({
    title: 'Inputs received by source and stream',
    description:
      'Inputs per second by origin (nats, http, otlp) and JetStream stream (`none` for HTTP and OTLP), summed over the replicas picked (chronicle_inputs_received_total).',
    unit: 'count:inputs/s',
    stacked: true,
    queries: [
      {
        expr: sumRate('origin, stream', 'chronicle_inputs_received_total'),
        legend: '{{origin}} {{stream}}',
      },
    ],
  }),
  promGraph({
    title: 'Events stored and duplicates',
    description:
      'Events committed to swarm_events for the first time, and inputs whose event_id was already stored (redeliveries, client retries), per second by origin.',
    unit: 'count:events/s',
    queries: [
      { expr: sumRate('origin', 'chronicle_events_stored_total'), legend: 'stored {{origin}}' },
      { expr: sumRate('origin', 'chronicle_events_duplicate_total'), legend: 'duplicate {{origin}}' },
    ],
  }),
  promGraph({
    title: 'Rejects by reason',
    description:
      'Inputs refused as invalid (recorded in chronicle_rejects with their reason), per second by origin and reason (chronicle_inputs_rejected_total). A jump usually means a producer changed its payloads.',
    unit: 'count:inputs/s',
    queries: [
      {
        expr: sumRate('origin, reason', 'chronicle_inputs_rejected_total'),
        legend: '{{origin}} {{reason}}',
      },
    ],
  }),
  promGraph({
    title: 'Dead-letter entries by reason',
    description:
      'Dead-letter entries stored in swarm_dlq, per second by reason (chronicle_dlq_entries_total).',
    unit: 'count:entries/s',
    queries: [{ expr: sumRate('reason', 'chronicle_dlq_entries_total'), legend: '{{reason}}' }],
  }),
]);

const jetstream = section('JetStream', 3, [
  promGraph({
    title: 'Consumer lag per stream',
    description:
      'Messages waiting or unacknowledged on each stream durable (num_pending + num_ack_pending, refreshed every 5 s). Replicas share a durable, so the max over replicas is shown. Growing for minutes: Chronicle is not keeping up.',
    unit: 'count:messages',
    min: 0,
    queries: [
      { expr: `max by (stream) (chronicle_jetstream_consumer_lag_messages{${S}})`, legend: '{{stream}}' },
    ],
  }),
  promGraph({
    title: 'Redeliveries and naks',
    description:
      'Messages JetStream delivered again (after a nak or an ack timeout) and messages Chronicle nak-ed to retry later, per second by stream.',
    unit: 'count:messages/s',
    queries: [
      {
        expr: sumRate('stream', 'chronicle_jetstream_redeliveries_total'),
        legend: 'redelivered {{stream}}',
      },
      { expr: sumRate('stream', 'chronicle_jetstream_naks_total'), legend: 'nak {{stream}}' },
    ],
  }),
  promGraph({
    title: 'Pulling paused and backpressure',
    description:
      'Paused: 1 while a replica stops pulling a stream because its buffer is full (chronicle_jetstream_paused). Backpressure: times intake was refused (HTTP 429) or paused, per second by source (chronicle_backpressure_total).',
    unit: 'none',
    min: 0,
    steps: true,
    queries: [
      {
        expr: `max by (instance, stream) (chronicle_jetstream_paused{${S}})`,
        legend: 'paused {{instance}} {{stream}}',
      },
      { expr: sumRate('source', 'chronicle_backpressure_total'), legend: 'backpressure/s {{source}}' },
    ],
  }),
]);

const batch = section('Buffer, flushes and writes', 3, [
  promGraph({
    title: 'Buffer fill',
    description:
      'Per replica: inputs held in memory against maxBufferEvents, and their bytes against maxBufferBytes (chronicle_buffer_events / chronicle_buffer_max_events, chronicle_buffer_bytes / chronicle_buffer_max_bytes). At 100% intake pauses (JetStream) or answers 429 (HTTP).',
    unit: 'percent',
    min: 0,
    max: 100,
    thresholds: [
      { value: 80, color: 'orange' },
      { value: 95, color: 'red' },
    ],
    queries: [
      {
        expr: `100 * chronicle_buffer_events{${S}} / chronicle_buffer_max_events{${S}}`,
        legend: 'events {{instance}}',
      },
      {
        expr: `100 * chronicle_buffer_bytes{${S}} / chronicle_buffer_max_bytes{${S}}`,
        legend: 'bytes {{instance}}',
      },
    ],
  }),
  promGraph({
    title: 'Flush latency',
    description:
      'Time to commit one flush (events, traces, agent metrics in one transaction), p99 and p50 over the replicas picked (chronicle_flush_duration_seconds).',
    unit: 's',
    min: 0,
    queries: [
      { expr: quantile(0.99, 'chronicle_flush_duration_seconds'), legend: 'p99' },
      { expr: quantile(0.5, 'chronicle_flush_duration_seconds'), legend: 'p50' },
    ],
  }),
  promGraph({
    title: 'Flush size',
    description:
      'Inputs per flush: p99, p50 and the mean (chronicle_flush_events). Large flushes mean a backlog is draining.',
    unit: 'count:inputs',
    min: 0,
    queries: [
      { expr: quantile(0.99, 'chronicle_flush_events'), legend: 'p99' },
      { expr: quantile(0.5, 'chronicle_flush_events'), legend: 'p50' },
      {
        expr: `${sumRate('', 'chronicle_flush_events_sum')} / ${sumRate('', 'chronicle_flush_events_count')}`,
        legend: 'mean',
      },
    ],
  }),
  promGraph({
    title: 'Flushes by result',
    description:
      'Flush transactions per second by result: ok, or retry after a failure (chronicle_flushes_total).',
    unit: 'count:flushes/s',
    queries: [{ expr: sumRate('result', 'chronicle_flushes_total'), legend: '{{result}}' }],
  }),
  promGraph({
    title: 'Write failures',
    description:
      'Flush transactions that failed (each batch is kept and retried; chronicle_write_failures_total) and write_failure alerts published on NATS (chronicle_write_failure_alerts_total), per second.',
    unit: 'count:/s',
    queries: [
      { expr: sumRate('', 'chronicle_write_failures_total'), legend: 'failed flushes' },
      { expr: sumRate('', 'chronicle_write_failure_alerts_total'), legend: 'alerts published' },
    ],
  }),
  promGraph({
    title: 'Writer failing',
    description:
      'Per replica: 1 while writes to Postgres fail and are being retried (chronicle_writer_failing); the same moments appear as write-failure annotations on the Swarm overview.',
    unit: 'none',
    min: 0,
    max: 1,
    steps: true,
    valueText: OK_FAILING,
    queries: [{ expr: `max by (instance) (chronicle_writer_failing{${S}})`, legend: '{{instance}}' }],
  }),
]);

const tasks = section('Tasks', 2, [
  promGraph({
    title: 'Tasks reaching a terminal status',
    description:
      'Tasks per minute that became completed, failed or timed_out, each counted once when its swarm_traces row first becomes terminal (chronicle_tasks_terminal_total).',
    unit: 'count:tasks/min',
    stacked: true,
    queries: [
      {
        expr: `60 * sum by (status) (rate(chronicle_tasks_terminal_total{${S}}[${RATE}]))`,
        legend: '{{status}}',
      },
    ],
  }),
  promGraph({
    title: 'Task failure ratio',
    description:
      'Share of terminal tasks that failed or timed out, over a sliding rate window (chronicle_tasks_terminal_total). The task failure alert watches the same ratio.',
    unit: 'percentunit',
    min: 0,
    max: 1,
    queries: [
      {
        expr: `sum (rate(chronicle_tasks_terminal_total{status=~"failed|timed_out", ${S}}[${RATE}])) / sum (rate(chronicle_tasks_terminal_total{${S}}[${RATE}]))`,
        legend: 'failed or timed out',
      },
    ],
  }),
]);

const spans = section('Spans (outbox and OTLP export)', 4, [
  promGraph({
    title: 'Span export backlog',
    description:
      'Spans stored in the outbox and not exported yet (chronicle_span_export_backlog). Every replica samples the same table, so the max is shown.',
    unit: 'count:spans',
    min: 0,
    queries: [{ expr: `max (chronicle_span_export_backlog{${S}})`, legend: 'waiting' }],
  }),
  promGraph({
    title: 'Oldest span waiting',
    description:
      'Age of the oldest span waiting for export (chronicle_span_export_oldest_age_seconds). It grows without bound while the OTLP backend is down; the alert fires above a threshold.',
    unit: 's',
    min: 0,
    queries: [{ expr: `max (chronicle_span_export_oldest_age_seconds{${S}})`, legend: 'oldest' }],
  }),
  promGraph({
    title: 'Spans built and exported',
    description:
      'Spans built from the stored events and put in the outbox (chronicle_spans_built_total), and spans the OTLP backend accepted (chronicle_spans_exported_total), per second.',
    unit: 'count:spans/s',
    queries: [
      { expr: sumRate('', 'chronicle_spans_built_total'), legend: 'built' },
      { expr: sumRate('', 'chronicle_spans_exported_total'), legend: 'exported' },
    ],
  }),
  promGraph({
    title: 'Span build and export failures',
    description:
      'Traces whose span build failed (parked and retried later; chronicle_span_build_failures_total) and OTLP export requests that failed (retried with backoff; chronicle_span_export_failures_total), per second.',
    unit: 'count:/s',
    queries: [
      { expr: sumRate('', 'chronicle_span_build_failures_total'), legend: 'build failures (traces)' },
      { expr: sumRate('', 'chronicle_span_export_failures_total'), legend: 'export failures (requests)' },
    ],
  }),
]);

const http = section('HTTP API and OTLP receiver', 4, [
  promGraph({
    title: 'HTTP requests by route',
    description:
      'Requests per second by route template (e.g. /api/v1/traces/:id; `unmatched` for unknown paths) and method (chronicle_http_requests_total).',
    unit: 'reqps',
    queries: [
      { expr: sumRate('route, method', 'chronicle_http_requests_total'), legend: '{{method}} {{route}}' },
    ],
  }),
  promGraph({
    title: 'HTTP latency p95 and p99 by route',
    description:
      'Request latency by route template, p95 and p99 over the replicas picked (chronicle_http_request_duration_seconds).',
    unit: 's',
    min: 0,
    queries: [
      {
        expr: quantile(0.99, 'chronicle_http_request_duration_seconds', 'route'),
        legend: 'p99 {{route}}',
      },
      {
        expr: quantile(0.95, 'chronicle_http_request_duration_seconds', 'route'),
        legend: 'p95 {{route}}',
      },
    ],
  }),
  promGraph({
    title: 'HTTP 5xx errors by route',
    description: 'Responses with a 5xx status, per second by route template (chronicle_http_requests_total).',
    unit: 'reqps',
    queries: [
      { expr: sumRate('route', 'chronicle_http_requests_total', 'status=~"5.."'), legend: '{{route}}' },
    ],
  }),
  promGraph({
    title: 'OTLP requests by status',
    description:
      'POST /v1/traces requests per second by HTTP status (chronicle_otlp_requests_total): 200 accepted (possibly with partial_success), 4xx malformed, 429 backpressure, 5xx store failures.',
    unit: 'reqps',
    queries: [{ expr: sumRate('status', 'chronicle_otlp_requests_total'), legend: '{{status}}' }],
  }),
]);

const processSection = section('Process', 4, [
  promGraph({
    title: 'CPU',
    description:
      'CPU time per second per replica, user and system (chronicle_process_cpu_seconds_total): 100% is one core.',
    unit: 'percentunit',
    min: 0,
    queries: [{ expr: sumRate('instance', 'chronicle_process_cpu_seconds_total'), legend: '{{instance}}' }],
  }),
  promGraph({
    title: 'Resident memory',
    description: 'Resident set size per replica (chronicle_process_resident_memory_bytes).',
    unit: 'bytes',
    min: 0,
    queries: [
      {
        expr: `sum by (instance) (chronicle_process_resident_memory_bytes{${S}})`,
        legend: '{{instance}}',
      },
    ],
  }),
  promGraph({
    title: 'Event loop lag',
    description:
      'How late the Node.js event loop runs timers, per replica: the last sample and the p99 since the previous scrape (chronicle_nodejs_eventloop_lag_seconds, chronicle_nodejs_eventloop_lag_p99_seconds).',
    unit: 's',
    min: 0,
    queries: [
      {
        expr: `max by (instance) (chronicle_nodejs_eventloop_lag_seconds{${S}})`,
        legend: 'lag {{instance}}',
      },
      {
        expr: `max by (instance) (chronicle_nodejs_eventloop_lag_p99_seconds{${S}})`,
        legend: 'p99 {{instance}}',
      },
    ],
  }),
  promGraph({
    title: 'Garbage collection',
    description:
      'Share of wall time spent in garbage collection per replica and GC kind (rate of chronicle_nodejs_gc_duration_seconds_sum).',
    unit: 'percentunit',
    min: 0,
    stacked: true,
    queries: [
      {
        expr: sumRate('instance, kind', 'chronicle_nodejs_gc_duration_seconds_sum'),
        legend: '{{instance}} {{kind}}',
      },
    ],
  }),
]);

export function pipelineDashboard(): DashboardFile {
  return {
    file: 'chronicle-pipeline.json',
    dashboard: dashboard({
      uid: DASHBOARD_UIDS.pipeline,
      title: 'Chronicle pipeline',
      description:
        "Chronicle's own health from its Prometheus metrics: ingest, JetStream lag, buffer and flushes, writes, span export, HTTP and the process.",
      tags: ['chronicle'],
      time: { from: 'now-1h', to: 'now' },
      refresh: '30s',
      variables: [
        labelValuesVariable({
          name: 'job',
          label: 'job',
          selector: 'chronicle_ready',
          description: 'Prometheus scrape job(s) of Chronicle.',
        }),
        labelValuesVariable({
          name: 'instance',
          label: 'instance',
          selector: 'chronicle_ready{job=~"$job"}',
          description: 'Chronicle replicas: all of them added up, or one at a time.',
        }),
      ],
      links: [
        chronicleDashboardsLink(),
        dashboardLink({
          title: 'Traces',
          url: `/d/${DASHBOARD_UIDS.traces}`,
          tooltip: 'Task traces and the service graph in Tempo',
          keepTime: true,
        }),
      ],
      panels: [...health, ...ingest, ...jetstream, ...batch, ...tasks, ...spans, ...http, ...processSection],
    }),
  };
}
