import express from 'express';
import { classify } from '../pipeline/errors.js';
import { EXPORT_BACKLOG_COUNT_CAP, type ExportBacklog, type QueryStore } from '../sinks/postgres/queries.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { HealthCheck, HealthReport } from './health.js';
import { parseParams, querySchemas } from './params.js';

/**
 * GET /api/v1/pipeline: this replica's pipeline at a glance, for the console's Pipeline page. The
 * counters are read in-process from the same prom-client metrics /metrics serves (so the two agree),
 * and count what this process did since it started; the export backlog is read from the store, so it
 * is the same on every replica. Totals summed over a label are the sum of that metric's series.
 */
export interface PipelineReport {
  /** The report of /api/v1/health (dependencies, buffer fill, writer state). */
  health: HealthReport;
  writer: {
    /** True while flushes fail and are retried (health.writer.failing). */
    failing: boolean;
    /** Failed flushes in a row, 0 once one succeeds (health.writer.consecutive_failures). */
    consecutive_failures: number;
    /** chronicle_write_failures_total: flush transactions that failed (each batch kept and retried). */
    write_failures_total: number;
    /** chronicle_write_failure_alerts_total: write_failure alerts published. */
    write_failure_alerts_total: number;
    /** chronicle_flushes_total{result="ok"}: flush transactions committed. */
    flushes_total: number;
    /** chronicle_flush_events_sum: inputs those flushes committed (events, duplicates, dead letters, rejects). */
    flushed_inputs_total: number;
  };
  export: {
    /** Whether an OTLP endpoint is configured; without one spans are built and served, never exported. */
    enabled: boolean;
    /**
     * Spans stored and not exported yet, from the store (every replica's), counted up to
     * EXPORT_BACKLOG_COUNT_CAP (100,000); null when disabled or unreadable.
     */
    backlog_spans: number | null;
    /** Whether backlog_spans stopped at the cap (at least that many wait); null like backlog_spans. */
    backlog_capped: boolean | null;
    /** Age in seconds of the oldest of them, 0 when none waits; null like backlog_spans. */
    oldest_waiting_seconds: number | null;
    /** Why the backlog is null while export is enabled; null otherwise. */
    backlog_error: string | null;
    /**
     * chronicle_span_build_lag_seconds: age of the oldest change not yet turned into spans (0 when none
     * waits), as this replica's span builder last sampled it (every second; read from the store, so the
     * same on every replica); 0 before the first sample.
     */
    build_lag_seconds: number;
    /** chronicle_spans_built_total. */
    spans_built_total: number;
    /** chronicle_span_build_failures_total: traces whose build failed (parked and retried). */
    span_build_failures_total: number;
    /** chronicle_spans_exported_total: spans the OTLP backend accepted. */
    spans_exported_total: number;
    /** chronicle_span_export_failures_total: export requests that failed (retried with backoff). */
    export_failures_total: number;
  };
  ingest: {
    /** chronicle_inputs_received_total, and by origin (http, nats, otlp). */
    received_total: number;
    received_by_origin: Record<string, number>;
    /** Inputs committed as events or dead-letter entries: stored + duplicates + dlq_entries. */
    accepted_total: number;
    /** chronicle_events_stored_total: events stored for the first time. */
    stored_total: number;
    /** chronicle_events_duplicate_total: events whose event_id was already stored. */
    duplicates_total: number;
    /** chronicle_dlq_entries_total: dead-letter entries stored. */
    dlq_entries_total: number;
    /** chronicle_inputs_rejected_total, by reason and by origin. */
    rejected_total: number;
    rejected_by_reason: Record<string, number>;
    rejected_by_origin: Record<string, number>;
    /** chronicle_backpressure_total: intake refused (HTTP 429) or paused (JetStream) for a full buffer, by source. */
    backpressure_total: number;
    backpressure_by_source: Record<string, number>;
    /** Per JetStream stream this process consumes (empty without NATS). */
    jetstream: Record<string, JetStreamState>;
  };
}

/** One JetStream stream as this process sees it. */
export interface JetStreamState {
  /** chronicle_inputs_received_total{origin="nats"} of the stream. */
  received_total: number;
  /** chronicle_jetstream_consumer_lag_messages (refreshed every 5 s); null before the first refresh. */
  lag_messages: number | null;
  /** chronicle_jetstream_paused: pulling waits for buffer room. */
  paused: boolean;
  redeliveries_total: number;
  naks_total: number;
}

export interface PipelineDeps {
  health: HealthCheck;
  metrics: Metrics;
  /** Where the export backlog is read. */
  store: Pick<QueryStore, 'exportBacklog'>;
  logger: Logger;
}

/**
 * The page must answer during an outage: the health check and the backlog read run side by side, and
 * either one slower than this is reported as unanswered (the health check's Postgres probe can wait
 * for a connection for 5 s, or longer on a connection whose server vanished).
 */
export const BACKLOG_TIMEOUT_MILLIS = 2_000;
export const HEALTH_TIMEOUT_MILLIS = 2_000;

interface Sample {
  labels: Partial<Record<string, string | number>>;
  value: number;
  metricName?: string;
}

const sum = (samples: readonly Sample[]): number => samples.reduce((total, s) => total + s.value, 0);

/** Sums the samples by one label's value. */
function byLabel(samples: readonly Sample[], label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    const key = String(s.labels[label] ?? '');
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

const valuesOf = async (metric: { get(): Promise<{ values: Sample[] }> }): Promise<Sample[]> =>
  (await metric.get()).values;

/** `promise`'s value, or `late()` when it has not settled after `millis`. */
async function within<T, U>(promise: Promise<T>, millis: number, late: () => U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<U>((resolve) => {
    timer = setTimeout(() => resolve(late()), millis);
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The report given when the health check did not answer in time: not ready, with the reason, and each
 * dependency of the last report that answered shown `down` with "unknown" as its detail (those not
 * configured stay `disabled`). Buffer and writer are that report's, or zero before any answered.
 */
export function unansweredHealth(last: HealthReport | undefined): HealthReport {
  const reason = `the health check did not answer in ${HEALTH_TIMEOUT_MILLIS / 1000} s`;
  const dependencies: HealthReport['dependencies'] = {};
  for (const [name, dependency] of Object.entries(last?.dependencies ?? {})) {
    dependencies[name] =
      dependency.state === 'disabled' ? dependency : { state: 'down', detail: `unknown: ${reason}` };
  }
  return {
    status: 'degraded',
    ready: false,
    reasons: [reason],
    dependencies,
    buffer: last?.buffer ?? { events: 0, bytes: 0, max_events: 0, max_bytes: 0 },
    writer: last?.writer ?? { failing: false, consecutive_failures: 0 },
  };
}

/** The router serving GET /api/v1/pipeline. */
export function createPipelineRoutes(deps: PipelineDeps): express.Router {
  const { metrics, logger } = deps;
  const router = express.Router();

  // The last health report that answered, and whether export is configured (fixed for the life of the
  // process: the report marks export `disabled` when no endpoint is configured, src/chronicle.ts, and
  // the export loop reports it up or down otherwise). Once known, the backlog read starts alongside
  // the health check instead of after it.
  let lastHealth: HealthReport | undefined;
  let exportEnabled: boolean | undefined;

  async function readBacklog(): Promise<ExportBacklog | string> {
    const read = deps.store.exportBacklog().catch((err: unknown) => {
      if (classify(err) === 'unavailable') return 'the database is unavailable';
      logger.error({ err }, 'cannot read the span export backlog');
      return 'the backlog could not be read';
    });
    return await within(read, BACKLOG_TIMEOUT_MILLIS, () => 'the database did not answer in time');
  }

  /** The health report, or one saying it did not answer in time (dependencies not known to be up). */
  async function readHealth(): Promise<HealthReport> {
    const report = await within(
      deps.health().catch((err: unknown) => {
        logger.error({ err }, 'health check failed');
        return undefined;
      }),
      HEALTH_TIMEOUT_MILLIS,
      () => undefined,
    );
    if (report) {
      lastHealth = report;
      const exportState = report.dependencies.otlp_export?.state;
      exportEnabled = exportState !== undefined && exportState !== 'disabled';
      return report;
    }
    return unansweredHealth(lastHealth);
  }

  router.get('/api/v1/pipeline', async (req, res) => {
    parseParams(querySchemas.none, req.query);
    const knownEnabled = exportEnabled;
    const healthRead = readHealth();
    // Unknown only until the first health check answers: then read the backlog after it.
    const backlogPending =
      knownEnabled === undefined
        ? healthRead.then(() => (exportEnabled ? readBacklog() : null))
        : knownEnabled
          ? readBacklog()
          : null;
    const health = await healthRead;
    const enabled = exportEnabled ?? false;
    const [
      backlog,
      writeFailures,
      writeFailureAlerts,
      flushes,
      flushEvents,
      spansBuilt,
      spanBuildFailures,
      buildLag,
      spansExported,
      exportFailures,
      received,
      stored,
      duplicates,
      dlqEntries,
      rejected,
      backpressure,
      lag,
      paused,
      redeliveries,
      naks,
    ] = await Promise.all([
      backlogPending,
      valuesOf(metrics.writeFailures),
      valuesOf(metrics.writeFailureAlerts),
      valuesOf(metrics.flushes),
      valuesOf(metrics.flushEvents),
      valuesOf(metrics.spansBuilt),
      valuesOf(metrics.spanBuildFailures),
      valuesOf(metrics.spanBuildLagSeconds),
      valuesOf(metrics.spansExported),
      valuesOf(metrics.exportFailures),
      valuesOf(metrics.received),
      valuesOf(metrics.stored),
      valuesOf(metrics.duplicates),
      valuesOf(metrics.dlqEntries),
      valuesOf(metrics.rejected),
      valuesOf(metrics.backpressure),
      valuesOf(metrics.consumerLag),
      valuesOf(metrics.jetstreamPaused),
      valuesOf(metrics.redeliveries),
      valuesOf(metrics.naks),
    ]);

    const natsReceived = received.filter((s) => s.labels.origin === 'nats');
    const streams = new Set(
      [...natsReceived, ...lag, ...paused, ...redeliveries, ...naks].map((s) => String(s.labels.stream)),
    );
    const ofStream = (samples: readonly Sample[], stream: string) =>
      samples.filter((s) => String(s.labels.stream) === stream);
    const jetstream: Record<string, JetStreamState> = {};
    for (const stream of [...streams].sort()) {
      const lagged = ofStream(lag, stream);
      jetstream[stream] = {
        received_total: sum(ofStream(natsReceived, stream)),
        lag_messages: lagged.length === 0 ? null : sum(lagged),
        paused: sum(ofStream(paused, stream)) > 0,
        redeliveries_total: sum(ofStream(redeliveries, stream)),
        naks_total: sum(ofStream(naks, stream)),
      };
    }

    const backlogRead = typeof backlog === 'string' ? null : backlog;
    const report: PipelineReport = {
      health,
      writer: {
        failing: health.writer.failing,
        consecutive_failures: health.writer.consecutive_failures,
        write_failures_total: sum(writeFailures),
        write_failure_alerts_total: sum(writeFailureAlerts),
        flushes_total: sum(flushes.filter((s) => s.labels.result === 'ok')),
        flushed_inputs_total: sum(flushEvents.filter((s) => s.metricName === 'chronicle_flush_events_sum')),
      },
      export: {
        enabled,
        backlog_spans: backlogRead?.spans ?? null,
        backlog_capped: backlogRead === null ? null : backlogRead.spans >= EXPORT_BACKLOG_COUNT_CAP,
        oldest_waiting_seconds: backlogRead?.oldest_seconds ?? null,
        backlog_error: typeof backlog === 'string' ? backlog : null,
        build_lag_seconds: sum(buildLag),
        spans_built_total: sum(spansBuilt),
        span_build_failures_total: sum(spanBuildFailures),
        spans_exported_total: sum(spansExported),
        export_failures_total: sum(exportFailures),
      },
      ingest: {
        received_total: sum(received),
        received_by_origin: byLabel(received, 'origin'),
        accepted_total: sum(stored) + sum(duplicates) + sum(dlqEntries),
        stored_total: sum(stored),
        duplicates_total: sum(duplicates),
        dlq_entries_total: sum(dlqEntries),
        rejected_total: sum(rejected),
        rejected_by_reason: byLabel(rejected, 'reason'),
        rejected_by_origin: byLabel(rejected, 'origin'),
        backpressure_total: sum(backpressure),
        backpressure_by_source: byLabel(backpressure, 'source'),
        jetstream,
      },
    };
    res.json(report);
  });

  return router;
}
