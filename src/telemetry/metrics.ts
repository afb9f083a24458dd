import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics about Chronicle itself, served on GET /metrics. */
export interface Metrics {
  readonly registry: Registry;
  /** Inputs received, by origin (nats, http, otlp). */
  readonly received: Counter<'origin'>;
  /** Events committed to swarm_events for the first time. */
  readonly stored: Counter<'origin'>;
  /** Events whose event_id was already stored. */
  readonly duplicates: Counter<'origin'>;
  /** Inputs recorded in chronicle_rejects, by origin and reason. */
  readonly rejected: Counter<'origin' | 'reason'>;
  /** Dead-letter entries stored. */
  readonly dlqEntries: Counter;
  /** Flush transactions by result (ok, retry, split). */
  readonly flushes: Counter<'result'>;
  readonly flushSeconds: Histogram;
  readonly flushEvents: Histogram;
  readonly bufferEvents: Gauge;
  readonly bufferBytes: Gauge;
  /** Times intake was refused or paused because the buffer was full, by source. */
  readonly backpressure: Counter<'source'>;
  /** write_failure alerts published. */
  readonly writeFailureAlerts: Counter;
  /** 1 while the writer is failing and retrying. */
  readonly writerFailing: Gauge;
  /** Spans built from traces' events and stored for export. */
  readonly spansBuilt: Counter;
  /** Traces whose span build failed on its own (parked and retried later). */
  readonly spanBuildFailures: Counter;
  /** Spans the OTLP backend accepted. */
  readonly spansExported: Counter;
  /** Export requests that failed (each is retried with backoff). */
  readonly exportFailures: Counter;
  /** Spans stored and not exported yet (sampled by the export loop). */
  readonly exportBacklog: Gauge;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'chronicle_' });
  const registers = [registry];
  return {
    registry,
    received: new Counter({
      name: 'chronicle_inputs_received_total',
      help: 'Inputs received, by origin.',
      labelNames: ['origin'],
      registers,
    }),
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
      help: 'Dead-letter entries stored in swarm_dlq.',
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
    backpressure: new Counter({
      name: 'chronicle_backpressure_total',
      help: 'Times intake was refused (HTTP 429) or paused (JetStream) because the buffer was full.',
      labelNames: ['source'],
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
      help: 'Spans stored and not yet exported.',
      registers,
    }),
  };
}
