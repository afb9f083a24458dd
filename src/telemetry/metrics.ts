import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics about Chronicle itself, served on GET /metrics. Every label has a bounded set of
 * values (docs/metrics.md lists them); units are in the names.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Inputs received, by origin (nats, http, otlp) and stream (the JetStream stream; `none` otherwise). */
  readonly received: Counter<'origin' | 'stream'>;
  /** Events committed to swarm_events for the first time. */
  readonly stored: Counter<'origin'>;
  /** Events whose event_id was already stored. */
  readonly duplicates: Counter<'origin'>;
  /** Inputs recorded in chronicle_rejects, by origin and reason. */
  readonly rejected: Counter<'origin' | 'reason'>;
  /** Dead-letter entries stored, by reason (bounded by dlqReasonLabel()). */
  readonly dlqEntries: Counter<'reason'>;
  /** Flush transactions by result (ok, retry). */
  readonly flushes: Counter<'result'>;
  readonly flushSeconds: Histogram;
  readonly flushEvents: Histogram;
  /**
   * How long a flush that writes swarm_events waited for the write gate: about a round trip, unless a
   * maintenance pass was attaching or dropping a day partition (src/sinks/postgres/write-gate.ts).
   */
  readonly writeGateWaitSeconds: Histogram;
  readonly bufferEvents: Gauge;
  readonly bufferBytes: Gauge;
  /** The buffer's bounds (BUFFER_MAX_SIZE, BUFFER_MAX_BYTES), set once. */
  readonly bufferMaxEvents: Gauge;
  readonly bufferMaxBytes: Gauge;
  /** Times intake was refused or paused because the buffer was full, by source. */
  readonly backpressure: Counter<'source'>;
  /** Flush transactions that failed (the batch is kept and retried). */
  readonly writeFailures: Counter;
  /** write_failure alerts published. */
  readonly writeFailureAlerts: Counter;
  /** 1 while the writer is failing and retrying. */
  readonly writerFailing: Gauge;
  /** Tasks whose swarm_traces row first became terminal, by that status; counted after the commit. */
  readonly tasksTerminal: Counter<'status'>;
  /** num_pending + num_ack_pending of Chronicle's durable on each stream (refreshed by a timer). */
  readonly consumerLag: Gauge<'stream'>;
  /** Messages delivered again (delivery count > 1), by stream. */
  readonly redeliveries: Counter<'stream'>;
  /** Messages handed back to the server with a nak, by stream. */
  readonly naks: Counter<'stream'>;
  /** 1 while a stream's pull loop waits for buffer room. */
  readonly jetstreamPaused: Gauge<'stream'>;
  /** Spans built from traces' events and stored for export. */
  readonly spansBuilt: Counter;
  /** Traces whose span build failed on its own (parked and retried later). */
  readonly spanBuildFailures: Counter;
  /**
   * Age in seconds of the oldest change not yet turned into spans (now − the oldest queued_at of
   * otel_pending), sampled by the span builder; 0 when nothing waits.
   */
  readonly spanBuildLagSeconds: Gauge;
  /** Spans the OTLP backend accepted. */
  readonly spansExported: Counter;
  /** Export requests that failed (each is retried with backoff). */
  readonly exportFailures: Counter;
  /** Spans stored and not exported yet (sampled by the export loop). */
  readonly exportBacklog: Gauge;
  /** Age of the oldest span not exported yet, sampled with the backlog; 0 when none waits. */
  readonly exportOldestAgeSeconds: Gauge;
  /** HTTP requests answered, by route template, method and status. */
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly httpRequestSeconds: Histogram<'route' | 'method'>;
  /** Requests refused for want of a valid API token (401) or of its scope (403), by AUTH_FAILURE_REASONS. */
  readonly httpAuthFailures: Counter<'reason'>;
  /** Requests let through by an API token, by the token's client name and the scope the route needs. */
  readonly httpClientRequests: Counter<'client' | 'scope'>;
  /** OTLP/HTTP export requests answered, by status. */
  readonly otlpRequests: Counter<'status'>;
  /** Streams (GET /api/v1/stream) open on this replica. */
  readonly streamClients: Gauge;
  /** Events written to stream clients. */
  readonly streamEventsSent: Counter;
  /** Events waiting in stream clients' queues (a socket backed up), summed over the clients. */
  readonly streamQueuedEvents: Gauge;
  /** Stream clients disconnected because their queue overflowed (too slow to keep up). */
  readonly streamSlowDisconnects: Counter;
  /** Stream requests refused with 503, by reason (STREAM_REFUSED_REASONS). */
  readonly streamRefused: Counter<'reason'>;
  /** How long the stream's horizon has stood still behind a running transaction; 0 when nothing holds it. */
  readonly streamHorizonAgeSeconds: Gauge;
  /** 1 when /ready would answer 200: computed on each scrape by the probe given to observeReadiness(). */
  readonly ready: Gauge;
  /** Maintenance passes (src/sinks/postgres/maintenance-loop.ts), by result (done, skipped, failed). */
  readonly maintenancePasses: Counter<'result'>;
  /** Day partitions of swarm_events created and dropped by maintenance. */
  readonly maintenancePartitions: Counter<'action'>;
  /** Rows deleted by maintenance in batches, by table. */
  readonly maintenanceRowsTrimmed: Counter<'table'>;
  /** When a maintenance pass last finished on this replica, in seconds since the epoch. */
  readonly maintenanceLastSuccess: Gauge;
  readonly maintenanceSeconds: Histogram;
  /** VACUUM and ANALYZE Chronicle ran on its churn tables (src/sinks/postgres/vacuum-loop.ts). */
  readonly vacuumRuns: Counter<'table' | 'action'>;
  /** Sets the check behind chronicle_ready (the health check /ready uses). */
  observeReadiness(probe: () => Promise<boolean>): void;
  /** The `reason` label of a DLQ entry's reason: bounded to DLQ_REASON_LIMIT identifiers, else `other`. */
  dlqReasonLabel(reason: string | null): string;
}

/** Distinct DLQ reasons one process labels; later ones count as `other`. */
export const DLQ_REASON_LIMIT = 50;

/** A DLQ reason that is a short identifier becomes its own label value. */
const DLQ_REASON_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/** A readiness probe that takes longer than this counts as not ready (the scrape must not hang). */
export const READY_PROBE_TIMEOUT_MILLIS = 2_000;

/** Why a stream request is refused with 503; the values of chronicle_stream_refused_total's label. */
export const STREAM_REFUSED_REASONS = ['too_many_streams', 'shutting_down'] as const;

/**
 * Why a request was refused by access control (the values of chronicle_http_auth_failures_total's
 * label): no token, a token that is not valid, a valid token without the scope the route needs.
 */
export const AUTH_FAILURE_REASONS = ['missing', 'invalid', 'scope'] as const;

export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** Statuses of a task that has finished; the values of chronicle_tasks_terminal_total's label. */
export const TERMINAL_STATUSES = ['completed', 'failed', 'timed_out'] as const;

// prom-client's default gauges whose names end in _total although they are not counters (promtool
// flags them); the per-type gauges without the suffix carry the same information.
const MISNAMED_DEFAULT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry, prefix: 'chronicle_' });
    for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(`chronicle_${name}`);
  }
  const registers = [registry];
  let readinessProbe: (() => Promise<boolean>) | undefined;
  const dlqReasons = new Set<string>();

  const received = new Counter({
    name: 'chronicle_inputs_received_total',
    help: 'Inputs received, by origin (nats, http, otlp) and JetStream stream (none for http and otlp).',
    labelNames: ['origin', 'stream'],
    registers,
  });
  received.inc({ origin: 'http', stream: 'none' }, 0);
  received.inc({ origin: 'otlp', stream: 'none' }, 0);
  const tasksTerminal = new Counter({
    name: 'chronicle_tasks_terminal_total',
    help: 'Tasks whose swarm_traces row first became terminal, by that first terminal status; once per task across replicas.',
    labelNames: ['status'],
    registers,
  });
  for (const status of TERMINAL_STATUSES) tasksTerminal.inc({ status }, 0);
  const streamRefused = new Counter({
    name: 'chronicle_stream_refused_total',
    help: 'Stream requests refused with 503, by reason (too_many_streams, shutting_down).',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of STREAM_REFUSED_REASONS) streamRefused.inc({ reason }, 0);
  const httpAuthFailures = new Counter({
    name: 'chronicle_http_auth_failures_total',
    help: 'HTTP requests refused by access control, by reason (missing, invalid: 401; scope: 403).',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of AUTH_FAILURE_REASONS) httpAuthFailures.inc({ reason }, 0);

  return {
    registry,
    received,
    stored: new Counter({
      name: 'chronicle_events_stored_total',
      help: 'Events committed to swarm_events for the first time.',
      labelNames: ['origin'],
      registers,
    }),
    duplicates: new Counter({
      name: 'chronicle_events_duplicate_total',
      help: 'Events whose event_id was already stored (no change made).',
      labelNames: ['origin'],
      registers,
    }),
    rejected: new Counter({
      name: 'chronicle_inputs_rejected_total',
      help: 'Inputs recorded in chronicle_rejects, by origin and reason.',
      labelNames: ['origin', 'reason'],
      registers,
    }),
    dlqEntries: new Counter({
      name: 'chronicle_dlq_entries_total',
      help: `Dead-letter entries stored in swarm_dlq, by reason (at most ${DLQ_REASON_LIMIT} distinct identifiers, else other).`,
      labelNames: ['reason'],
      registers,
    }),
    flushes: new Counter({
      name: 'chronicle_flushes_total',
      help: 'Flush transactions, by result.',
      labelNames: ['result'],
      registers,
    }),
    flushSeconds: new Histogram({
      name: 'chronicle_flush_duration_seconds',
      help: 'Time to commit one flush (events, traces and metrics).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    flushEvents: new Histogram({
      name: 'chronicle_flush_events',
      help: 'Inputs per flush.',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers,
    }),
    writeGateWaitSeconds: new Histogram({
      name: 'chronicle_write_gate_wait_seconds',
      help: 'Time a flush writing swarm_events waited for the write gate (a maintenance pass attaching or dropping a day partition holds it).',
      buckets: [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    bufferEvents: new Gauge({
      name: 'chronicle_buffer_events',
      help: 'Inputs held in memory (waiting or being written).',
      registers,
    }),
    bufferBytes: new Gauge({
      name: 'chronicle_buffer_bytes',
      help: 'Approximate bytes held in the buffer.',
      registers,
    }),
    bufferMaxEvents: new Gauge({
      name: 'chronicle_buffer_max_events',
      help: 'Inputs the buffer holds at most (BUFFER_MAX_SIZE).',
      registers,
    }),
    bufferMaxBytes: new Gauge({
      name: 'chronicle_buffer_max_bytes',
      help: 'Bytes the buffer holds at most (BUFFER_MAX_BYTES).',
      registers,
    }),
    backpressure: new Counter({
      name: 'chronicle_backpressure_total',
      help: 'Times intake was refused (HTTP 429) or paused (JetStream) because the buffer was full.',
      labelNames: ['source'],
      registers,
    }),
    writeFailures: new Counter({
      name: 'chronicle_write_failures_total',
      help: 'Flush transactions that failed; each batch is kept and retried.',
      registers,
    }),
    writeFailureAlerts: new Counter({
      name: 'chronicle_write_failure_alerts_total',
      help: 'Alerts published on swarm.system.chronicle.write_failure.',
      registers,
    }),
    writerFailing: new Gauge({
      name: 'chronicle_writer_failing',
      help: '1 while writes to Postgres are failing and being retried.',
      registers,
    }),
    tasksTerminal,
    consumerLag: new Gauge({
      name: 'chronicle_jetstream_consumer_lag_messages',
      help: "Messages of a stream not yet acked by Chronicle's durable (num_pending + num_ack_pending), refreshed every 5 s.",
      labelNames: ['stream'],
      registers,
    }),
    redeliveries: new Counter({
      name: 'chronicle_jetstream_redeliveries_total',
      help: 'JetStream messages received again (delivery count above 1), by stream.',
      labelNames: ['stream'],
      registers,
    }),
    naks: new Counter({
      name: 'chronicle_jetstream_naks_total',
      help: 'JetStream messages handed back with a nak (redelivered later), by stream.',
      labelNames: ['stream'],
      registers,
    }),
    jetstreamPaused: new Gauge({
      name: 'chronicle_jetstream_paused',
      help: '1 while pulling from a stream is paused because the buffer is full.',
      labelNames: ['stream'],
      registers,
    }),
    spansBuilt: new Counter({
      name: 'chronicle_spans_built_total',
      help: 'Spans built from traces and stored for export.',
      registers,
    }),
    spanBuildFailures: new Counter({
      name: 'chronicle_span_build_failures_total',
      help: 'Traces whose span build failed on its own; they are parked and retried later.',
      registers,
    }),
    spanBuildLagSeconds: new Gauge({
      name: 'chronicle_span_build_lag_seconds',
      help: 'Age of the oldest change committed and not yet turned into spans (0 when none waits).',
      registers,
    }),
    spansExported: new Counter({
      name: 'chronicle_spans_exported_total',
      help: 'Spans accepted by the OTLP backend.',
      registers,
    }),
    exportFailures: new Counter({
      name: 'chronicle_span_export_failures_total',
      help: 'Span export requests that failed (retried with backoff).',
      registers,
    }),
    exportBacklog: new Gauge({
      name: 'chronicle_span_export_backlog',
      help: 'Spans stored and not yet exported, counted up to a cap (at the cap: at least that many; docs/metrics.md).',
      registers,
    }),
    exportOldestAgeSeconds: new Gauge({
      name: 'chronicle_span_export_oldest_age_seconds',
      help: 'Age of the oldest span stored and not yet exported (0 when none waits).',
      registers,
    }),
    httpRequests: new Counter({
      name: 'chronicle_http_requests_total',
      help: 'HTTP requests answered, by route template (unmatched when no route took it), method and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    }),
    httpRequestSeconds: new Histogram({
      name: 'chronicle_http_request_duration_seconds',
      help: 'Time from receiving an HTTP request to the end of its answer, by route template and method.',
      labelNames: ['route', 'method'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    httpAuthFailures,
    httpClientRequests: new Counter({
      name: 'chronicle_http_client_requests_total',
      help: 'HTTP requests let through by an API token, by its client name (from the configured tokens) and the scope the route needs.',
      labelNames: ['client', 'scope'],
      registers,
    }),
    otlpRequests: new Counter({
      name: 'chronicle_otlp_requests_total',
      help: 'OTLP/HTTP trace export requests (POST /v1/traces) answered, by status.',
      labelNames: ['status'],
      registers,
    }),
    streamClients: new Gauge({
      name: 'chronicle_stream_clients',
      help: 'Streams (GET /api/v1/stream) open on this replica.',
      registers,
    }),
    streamEventsSent: new Counter({
      name: 'chronicle_stream_events_sent_total',
      help: 'Events written to stream clients (GET /api/v1/stream).',
      registers,
    }),
    streamQueuedEvents: new Gauge({
      name: 'chronicle_stream_queued_events',
      help: "Events waiting in stream clients' queues while their sockets are backed up, summed over the clients.",
      registers,
    }),
    streamSlowDisconnects: new Counter({
      name: 'chronicle_stream_slow_disconnects_total',
      help: 'Stream clients disconnected because their queue overflowed (too slow to keep up).',
      registers,
    }),
    streamRefused,
    streamHorizonAgeSeconds: new Gauge({
      name: 'chronicle_stream_horizon_age_seconds',
      help: 'How long the stream has been held back by a transaction still running on the Postgres cluster (0 when none holds it); sampled by the stream poller while streams are open.',
      registers,
    }),
    ready: new Gauge({
      name: 'chronicle_ready',
      help: '1 when /ready would answer 200 (computed on each scrape), else 0.',
      registers,
      async collect() {
        if (readinessProbe === undefined) return this.set(0);
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), READY_PROBE_TIMEOUT_MILLIS);
        });
        const ready = await Promise.race([readinessProbe().catch(() => false), timedOut]);
        clearTimeout(timer);
        this.set(ready ? 1 : 0);
      },
    }),
    maintenancePasses: new Counter({
      name: 'chronicle_maintenance_passes_total',
      help: 'Maintenance passes, by result: done, skipped (another replica held the lock), failed.',
      labelNames: ['result'],
      registers,
    }),
    maintenancePartitions: new Counter({
      name: 'chronicle_maintenance_partitions_total',
      help: 'Day partitions of swarm_events created or dropped by maintenance, by action (created, dropped).',
      labelNames: ['action'],
      registers,
    }),
    maintenanceRowsTrimmed: new Counter({
      name: 'chronicle_maintenance_rows_deleted_total',
      help: 'Rows deleted by maintenance past their retention, by table (rows of dropped partitions included).',
      labelNames: ['table'],
      registers,
    }),
    maintenanceLastSuccess: new Gauge({
      name: 'chronicle_maintenance_last_success_timestamp_seconds',
      help: 'When a maintenance pass last completed on this replica (seconds since the epoch); 0 before the first.',
      registers,
    }),
    maintenanceSeconds: new Histogram({
      name: 'chronicle_maintenance_duration_seconds',
      help: 'Duration of maintenance passes that ran (not those skipped).',
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 1800],
      registers,
    }),
    vacuumRuns: new Counter({
      name: 'chronicle_vacuum_runs_total',
      help: "VACUUM and ANALYZE Chronicle ran on its tables while the server's autovacuum is off, by table (a partition under its table) and action.",
      labelNames: ['table', 'action'],
      registers,
    }),
    observeReadiness(probe) {
      readinessProbe = probe;
    },
    dlqReasonLabel(reason) {
      if (reason === null || reason === '') return 'none';
      if (!DLQ_REASON_PATTERN.test(reason)) return 'other';
      if (dlqReasons.has(reason)) return reason;
      if (dlqReasons.size >= DLQ_REASON_LIMIT) return 'other';
      dlqReasons.add(reason);
      return reason;
    },
  };
}
