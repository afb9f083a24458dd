import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { Config } from '../config.js';
import { createPool, endPool } from '../db/pool.js';
import type { SpanRecord } from '../events/span-record.js';
import { type OtlpExportOptions, createOtlpExporter, toReadableSpan } from '../spans/span-export.js';
import { createLogger } from '../telemetry/logger.js';
import { redactUrl } from '../telemetry/redact.js';
import { openDatabaseForCommand } from './database.js';

export interface BackfillOptions {
  /** Traces with an event at or after this time… */
  since: Date;
  /** …and before this one. */
  until: Date;
  /** Where to send them (default: the OTEL_EXPORTER_OTLP_* configuration). */
  endpoint: OtlpExportOptions;
  /** Spans per request. */
  batchSpans: number;
}

// Keyset pages over the stored spans of the traces active in the window, in a stable order.
const PAGE_SQL = `
SELECT s.otel_trace_id, s.span_id, s.span
FROM otel_spans s
JOIN swarm_traces t ON t.trace_id = s.trace_id
WHERE t.last_event_at >= $1 AND t.first_event_at < $2
  AND (s.otel_trace_id, s.span_id) > ($3, $4)
ORDER BY s.otel_trace_id, s.span_id
LIMIT $5`;

const UNBUILT_SQL = `
SELECT count(DISTINCT p.trace_id)::int AS n
FROM otel_pending p
JOIN swarm_traces t ON t.trace_id = p.trace_id
WHERE t.last_event_at >= $1 AND t.first_event_at < $2`;

/**
 * `chronicle export`: re-sends the stored spans of the traces active in a time window to an OTLP
 * endpoint, exactly as they were exported (same ids and content): backfills a new trace backend. It
 * does not touch the outbox; the regular export goes on as before. Exit 0 when every span was accepted.
 */
export async function backfill(baseConfig: Config, options: BackfillOptions): Promise<number> {
  const logger = createLogger({ level: baseConfig.logLevel, secrets: baseConfig.secrets ?? [] });
  // Beside a running `chronicle serve`, its embedded server; never a new, empty cluster.
  const database = await openDatabaseForCommand(baseConfig, logger, { share: true, create: false });
  const { config } = database;
  const pool = createPool({ connectionString: config.databaseUrl, maxConnections: 1 });
  const exporter = createOtlpExporter(options.endpoint);
  const resources = new Map<string, Resource>();
  let sent = 0;
  try {
    let after = ['', ''];
    for (;;) {
      const { rows } = await pool.query<{ otel_trace_id: string; span_id: string; span: SpanRecord }>(
        PAGE_SQL,
        [options.since, options.until, after[0], after[1], options.batchSpans],
      );
      if (rows.length === 0) break;
      const result = await new Promise<ExportResult>((resolve) =>
        exporter.export(
          rows.map((r) => toReadableSpan(r.span, resources)),
          resolve,
        ),
      );
      if (result.code !== ExportResultCode.SUCCESS) {
        logger.error({ err: result.error, sent }, 'export to the endpoint failed');
        return 1;
      }
      sent += rows.length;
      const last = rows.at(-1)!;
      after = [last.otel_trace_id, last.span_id];
      logger.info({ sent }, 'spans sent');
    }
    // Traces whose latest events are not built into spans yet (they settle first): sent next time.
    const { rows } = await pool.query<{ n: number }>(UNBUILT_SQL, [options.since, options.until]);
    const unbuilt = rows[0]?.n ?? 0;
    logger.info({ sent, unbuilt, endpoint: redactUrl(options.endpoint.url) }, 'backfill done');
    process.stdout.write(
      `chronicle export: ${sent} spans sent to ${options.endpoint.url}` +
        (unbuilt > 0
          ? `; ${unbuilt} traces in the window still wait for their spans to be built (SPAN_SETTLE_MS): export again later\n`
          : '\n'),
    );
    return 0;
  } finally {
    await exporter.shutdown();
    await endPool(pool);
    await database.stop();
  }
}
