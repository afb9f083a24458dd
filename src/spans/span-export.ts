import type { Attributes as OtelAttributes, HrTime } from '@opentelemetry/api';
import { TraceFlags, createTraceState } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpHttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpHttpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type pg from 'pg';
import type { Component } from '../pipeline/contracts.js';
import { sleep, untilAborted } from '../pipeline/timing.js';
import { classify } from '../pipeline/errors.js';
import { withTransaction } from '../db/transaction.js';
import type { Logger } from '../telemetry/logger.js';
import { redactUrl } from '../telemetry/redact.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { SpanRecord } from '../events/span-record.js';

/** Where and how spans are exported (the standard OTEL_EXPORTER_OTLP_* settings, parsed by config). */
export interface OtlpExportOptions {
  /** Full URL of the traces endpoint, e.g. http://tempo:4318/v1/traces. */
  url: string;
  protocol: 'http/json' | 'http/protobuf';
  headers: Record<string, string>;
  timeoutMillis: number;
  compression: 'gzip' | 'none';
}

/** The official OTLP/HTTP exporter for the protocol: JSON by default, protobuf on request. */
export function createOtlpExporter(options: OtlpExportOptions): SpanExporter {
  const config = {
    url: options.url,
    headers: options.headers,
    timeoutMillis: options.timeoutMillis,
    compression: options.compression,
  } as ConstructorParameters<typeof OtlpHttpJsonExporter>[0];
  return options.protocol === 'http/protobuf'
    ? new OtlpHttpProtoExporter(config)
    : new OtlpHttpJsonExporter(config);
}

const NANOS_PER_SECOND = 1_000_000_000n;

function hrTime(unixNano: string): HrTime {
  const n = BigInt(unixNano);
  return [Number(n / NANOS_PER_SECOND), Number(n % NANOS_PER_SECOND)];
}

/**
 * A stored span as the SDK's ReadableSpan, with its own ids, times and resource: the exporter sends
 * exactly what is stored. Resources are shared per distinct attribute set (the exporter groups by them).
 */
export function toReadableSpan(span: SpanRecord, resources: Map<string, Resource>): ReadableSpan {
  const key = JSON.stringify(span.resource);
  let resource = resources.get(key);
  if (!resource) {
    resource = resourceFromAttributes(span.resource as OtelAttributes);
    resources.set(key, resource);
  }
  const start = BigInt(span.startTimeUnixNano);
  const end = BigInt(span.endTimeUnixNano);
  const duration = end - start;
  return {
    name: span.name,
    // OTLP numbers kinds from 1 (internal); the API's enum from 0. Unspecified is sent as internal.
    kind: Math.max(0, span.kind - 1),
    // Received spans keep their flags and trace state; Chronicle's own are sampled.
    spanContext: () => ({
      traceId: span.traceId,
      spanId: span.spanId,
      traceFlags: span.flags === undefined ? TraceFlags.SAMPLED : span.flags & 0xff,
      ...(span.traceState !== undefined ? { traceState: createTraceState(span.traceState) } : {}),
    }),
    ...(span.parentSpanId
      ? {
          parentSpanContext: {
            traceId: span.traceId,
            spanId: span.parentSpanId,
            traceFlags: TraceFlags.SAMPLED,
            // OTLP span flags bit 9: the parent is remote (meaningful when bit 8 says it is known).
            isRemote: span.flags !== undefined && (span.flags & 0x300) === 0x300,
          },
        }
      : {}),
    startTime: hrTime(span.startTimeUnixNano),
    endTime: hrTime(span.endTimeUnixNano),
    duration: [Number(duration / NANOS_PER_SECOND), Number(duration % NANOS_PER_SECOND)],
    status: {
      code: span.status.code,
      ...(span.status.message !== undefined ? { message: span.status.message } : {}),
    },
    attributes: span.attributes as OtelAttributes,
    links: span.links.map((l) => ({
      context: { traceId: l.traceId, spanId: l.spanId, traceFlags: TraceFlags.SAMPLED },
      attributes: l.attributes as OtelAttributes,
    })),
    events: span.events.map((e) => ({
      name: e.name,
      time: hrTime(e.timeUnixNano),
      attributes: e.attributes as OtelAttributes,
    })),
    ended: true,
    resource,
    instrumentationScope: span.scope,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

/**
 * Whether the backend refused an export for what it holds (an HTTP 4xx other than 408 and 429: too
 * large, or a span it will not take), so that sending the same spans again cannot help. Any other
 * failure (a 5xx, 408, 429, a network error) is an outage: the same spans are sent again later.
 */
export function refusedByBackend(error: Error | undefined): boolean {
  return classify(error) === 'permanent';
}

export interface ExportLoopOptions {
  /** Spans per export request. */
  batchSpans: number;
  /** Pause when the queue is empty. */
  idleMillis: number;
  /** Backoff after a failed export: doubles from min to max, with jitter. */
  minBackoffMillis: number;
  maxBackoffMillis: number;
  /** Serialized spans per request, about (a backend refuses requests past its limit). */
  maxBatchBytes: number;
  /** How long shutdown waits for an export in flight. */
  shutdownGraceMillis: number;
  /** How often the backlog and the age of its oldest span are sampled (default 5 s). */
  backlogSampleMillis?: number;
  /** Where spans go, as the health report names it (`otlp_export`); the exporter's URL. */
  endpoint?: string;
}

export interface ExportLoopDeps {
  pool: pg.Pool;
  /**
   * Reads the spans waiting and the age of the oldest, for the gauges (the store's reader,
   * readExportBacklog of src/sinks/postgres/queries.ts, which /api/v1/pipeline serves too).
   */
  backlog: () => Promise<{ spans: number; oldest_seconds: number }>;
  exporter: SpanExporter;
  logger: Logger;
  metrics: Metrics;
}

export interface ExportLoop extends Component {
  /** Failed export rounds in a row (0 once one succeeds), and the last failure's message. */
  state(): { consecutiveFailures: number; lastError: string | undefined };
  /** One round: claims due spans, exports them; returns how many were exported (-1: the export failed). */
  exportOnce(): Promise<number>;
}

// A round's claim (ADR 0015): due spans in queue order, each try-locked with a transaction advisory
// lock (class 4; the builder's trace locks are class 3) until $1 are held. Replicas' rounds skip each
// other's spans without waiting. An advisory lock takes no transaction id and writes nothing, so the
// round holds no id across the export (the live stream releases events only below the oldest one,
// ADR 0007) and no span row is rewritten to claim it: the only write is the mark after the export.
// A span exported since the candidates were read is dropped by the second statement (CLAIMED_SQL).
// The due spans are read in queue order (otel_spans_queue_idx) and the lock tried row by row until $1
// are held (the subquery, kept apart by OFFSET 0, is read in order and the LIMIT stops it): the spans
// other rounds hold are stepped over however many there are. (It read the first 2 × $1 only: with
// three replicas, two rounds could hold all of them, and the third exported nothing while the rest of
// the queue waited.)
const CANDIDATES_SQL = `
SELECT otel_trace_id, span_id FROM (
  SELECT otel_trace_id, span_id FROM otel_spans
  WHERE exported_at IS NULL AND next_attempt_at <= now()
  ORDER BY next_attempt_at
  OFFSET 0
) c
WHERE pg_try_advisory_xact_lock(4, hashtext(otel_trace_id || ':' || span_id))
LIMIT $1`;

// The locked spans still waiting, read after the locks were granted (a statement of its own, so a round
// that exported one of them and committed is seen), in queue order: at most about $3 bytes (a backend
// refuses requests past its size limit), always one.
const CLAIMED_SQL = `
SELECT otel_trace_id, span_id, span FROM (
  SELECT s.otel_trace_id, s.span_id, s.span,
    sum(octet_length(s.span::text)) OVER w - octet_length(s.span::text) AS before
  FROM otel_spans s
  WHERE (s.otel_trace_id, s.span_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
    AND s.exported_at IS NULL AND s.next_attempt_at <= now()
  WINDOW w AS (ORDER BY s.next_attempt_at, s.otel_trace_id, s.span_id)
) r
WHERE r.before = 0 OR r.before < $3
ORDER BY r.before`;

const DONE_SQL = `
UPDATE otel_spans SET exported_at = now(), lease_until = NULL, last_error = NULL
WHERE (otel_trace_id, span_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`;

const FAILED_SQL = `
UPDATE otel_spans SET lease_until = NULL, export_attempts = export_attempts + 1, last_error = $3,
  next_attempt_at = now() + CASE WHEN $5
    THEN least(3600000, 1000 * 2 ^ least(export_attempts, 12)) ELSE $4 END * interval '1 millisecond'
WHERE (otel_trace_id, span_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`;

interface ClaimedRow {
  otel_trace_id: string;
  span_id: string;
  span: SpanRecord;
}

/**
 * The outbox's export loop: claims due spans of otel_spans (advisory locks held by the round's
 * transaction), hands them to the official exporter, and marks them exported only when the backend
 * accepted them, in that transaction just before it commits; a failure puts them back with a backoff.
 * An outage of any length loses nothing and never touches ingest: the queue is in Postgres.
 * At least once: a crash between the backend's answer and the mark re-sends the same spans (same ids,
 * same content).
 *
 * States: idle → running (rounds; waits idleMillis when the queue is empty, the backoff after a
 * failure; beside them a timer samples the backlog and its oldest span's age every
 * backlogSampleMillis) → stopped (the timer is cleared; the round in progress finishes; one that
 * outlasts the grace ends with its connection, its spans unmarked, to go out again).
 */
export function createExportLoop(options: ExportLoopOptions, deps: ExportLoopDeps): ExportLoop {
  const { pool, exporter, logger, metrics } = deps;
  const stop = new AbortController();
  const resources = new Map<string, Resource>();
  let loop: Promise<void> | undefined;
  let backlogTimer: NodeJS.Timeout | undefined;
  let sampling: Promise<void> | undefined;
  let failures = 0;
  let lastError: string | undefined;

  async function readBacklog(): Promise<void> {
    try {
      const backlog = await deps.backlog();
      metrics.exportBacklog.set(backlog.spans);
      metrics.exportOldestAgeSeconds.set(backlog.oldest_seconds);
    } catch (err) {
      // The gauges keep their last value; the loop reports an unreachable database.
      logger.debug({ err }, 'cannot sample the span export backlog');
    }
  }

  /** One sample at a time: a slow one is not overlapped by the next tick. */
  function sampleBacklog(): Promise<void> {
    sampling ??= readBacklog().finally(() => (sampling = undefined));
    return sampling;
  }

  function backoffMillis(): number {
    const base = Math.min(
      options.maxBackoffMillis,
      options.minBackoffMillis * 2 ** Math.min(failures - 1, 20),
    );
    return Math.round(base / 2 + Math.random() * (base / 2));
  }

  async function send(spans: ReadableSpan[]): Promise<ExportResult> {
    return new Promise((resolve) => exporter.export(spans, resolve));
  }

  /** What a round's export came to: the marks its transaction writes before it commits. */
  interface Outcome {
    done: ClaimedRow[];
    failed: { rows: readonly ClaimedRow[]; message: string; backoff: number; refused: boolean }[];
  }

  const idsOf = (rows: readonly ClaimedRow[]) => [
    rows.map((r) => r.otel_trace_id),
    rows.map((r) => r.span_id),
  ];

  /**
   * Exports the rows; when the backend refuses a request for what it holds (a 4xx other than 408/429:
   * too large, or a span it will not take), the rows are split in halves so that the others still go
   * out and only the refused ones wait, each with its own backoff.
   */
  async function exportRows(rows: readonly ClaimedRow[], outcome: Outcome): Promise<void> {
    const result = await send(rows.map((r) => toReadableSpan(r.span, resources)));
    if (result.code === ExportResultCode.SUCCESS) {
      outcome.done.push(...rows);
      return;
    }
    const status = (result.error as { code?: unknown } | undefined)?.code;
    const refused = refusedByBackend(result.error);
    if (refused && rows.length > 1) {
      const mid = Math.ceil(rows.length / 2);
      await exportRows(rows.slice(0, mid), outcome);
      await exportRows(rows.slice(mid), outcome);
      return;
    }
    metrics.exportFailures.inc();
    const message = result.error?.message ?? 'export failed';
    lastError = message;
    // A span refused on its own backs off by its own count of attempts; an outage by the loop's.
    outcome.failed.push({ rows, message: message.slice(0, 1000), backoff: backoffMillis(), refused });
    logger.warn({ err: result.error, spans: rows.length, status }, 'span export failed; will retry');
  }

  async function exportOnce(): Promise<number> {
    const outcome: Outcome = { done: [], failed: [] };
    const claimed = await withTransaction(pool, async (client) => {
      const { rows: locked } = await client.query<{ otel_trace_id: string; span_id: string }>(
        CANDIDATES_SQL,
        [options.batchSpans],
      );
      if (locked.length === 0) return 0;
      const { rows } = await client.query<ClaimedRow>(CLAIMED_SQL, [
        locked.map((r) => r.otel_trace_id),
        locked.map((r) => r.span_id),
        options.maxBatchBytes,
      ]);
      if (rows.length === 0) return 0;
      if (resources.size > 1000) resources.clear();
      await exportRows(rows, outcome);
      // Every mark in the last statements before the commit: the round's transaction takes an id only
      // now, and a builder's insert of the same span never waits on a mark across an export.
      if (outcome.done.length > 0) await client.query(DONE_SQL, idsOf(outcome.done));
      for (const f of outcome.failed)
        await client.query(FAILED_SQL, [...idsOf(f.rows), f.message, f.backoff, f.refused]);
      return rows.length;
    });
    if (claimed === 0) return 0;
    metrics.spansExported.inc(outcome.done.length);
    if (outcome.failed.length === 0) failures = 0;
    else failures += 1;
    return outcome.done.length > 0 ? outcome.done.length : -1;
  }

  async function run(): Promise<void> {
    while (!stop.signal.aborted) {
      let exported: number;
      try {
        exported = await exportOnce();
      } catch (err) {
        logger.warn({ err }, 'span export round failed; retrying');
        lastError = (err as Error).message;
        exported = -1;
        failures += 1;
      }
      if (exported > 0) continue;
      await sleep(exported < 0 ? backoffMillis() : options.idleMillis, stop.signal);
    }
  }

  return {
    name: 'span-export',
    state: () => ({ consecutiveFailures: failures, lastError }),
    // The trace backend is reported, but never makes Chronicle unready: spans wait in the outbox.
    health() {
      // Served by /api/v1/health: a password in the URL is masked.
      const endpoint = options.endpoint === undefined ? 'the OTLP endpoint' : redactUrl(options.endpoint);
      const detail = `${endpoint}: ${failures} failed exports in a row (${lastError ?? 'unknown'}); spans are kept and retried`;
      return {
        dependencies: {
          otlp_export: failures === 0 ? { state: 'up', detail: endpoint } : { state: 'down', detail },
        },
      };
    },
    exportOnce,
    start() {
      if (loop || stop.signal.aborted) return Promise.resolve();
      loop = run();
      // Its own timer, not the loop's rounds: during a long backoff the age must still grow.
      backlogTimer = setInterval(() => void sampleBacklog(), options.backlogSampleMillis ?? 5_000);
      void sampleBacklog();
      return Promise.resolve();
    },
    async shutdown(deadline) {
      stop.abort();
      if (backlogTimer) clearInterval(backlogTimer);
      // An export in flight may wait on a dead backend for its whole timeout: do not hold shutdown for
      // it. Its spans are marked only if it commits; unmarked, they go out again (at least once).
      const grace = AbortSignal.any([deadline, AbortSignal.timeout(options.shutdownGraceMillis)]);
      await untilAborted(grace, Promise.all([loop, sampling]));
      await untilAborted(grace, exporter.shutdown());
    },
  };
}
