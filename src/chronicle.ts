import { randomUUID } from 'node:crypto';
import http from 'node:http';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { createApiApp, httpMetrics } from './api/app.js';
import type { HealthReport } from './api/health.js';
import type { DependencyState } from './pipeline/contracts.js';
import { type Batcher, createBatcher } from './batch/batcher.js';
import type { Config } from './config.js';
import { untilAborted } from './pipeline/timing.js';
import { createEventWriter } from './sinks/postgres/event-writer.js';
import { ensureDatabase, migrate } from './db/migrate.js';
import { createPool, endPool } from './db/pool.js';
import { createQueryStore } from './sinks/postgres/queries.js';
import { createHttpIngest } from './sources/http-ingest/http-ingest.js';
import {
  type JetStreamSource,
  DEFAULT_STREAMS,
  createJetStreamSource,
} from './sources/jetstream/jetstream-source.js';
import { type NatsLink, createNatsLink } from './sources/nats/nats-link.js';
import { createOtlpReceiver } from './sources/otlp-http/otlp-receiver.js';
import { createSpanBuilder } from './spans/span-builder.js';
import { type ExportLoop, createExportLoop, createOtlpExporter } from './spans/span-export.js';
import type { Logger } from './telemetry/logger.js';
import { type Metrics, createMetrics } from './telemetry/metrics.js';

export const WRITE_FAILURE_SUBJECT = 'swarm.system.chronicle.write_failure';

/** A running Chronicle: sources → normalize → batch → Postgres, with the API beside it. */
export interface Chronicle {
  /** Listens, then migrates and starts consuming in the background (retrying until Postgres is up). */
  start(): Promise<void>;
  /** Stops intake, flushes and settles what was accepted, closes connections. Idempotent. */
  shutdown(deadline: AbortSignal): Promise<void>;
  /** Base URL of the HTTP API once started. */
  url(): string;
  /** Base URL of the dedicated OTLP/HTTP port once started; undefined when it is not enabled. */
  otlpUrl(): string | undefined;
  health(): Promise<HealthReport>;
  readonly batcher: Batcher;
  readonly metrics: Metrics;
}

/*
 * States: created → starting (HTTP up; migrations retried until they succeed) → running (JetStream
 * consuming where configured) → stopping (HTTP and JetStream intake stopped, batcher draining) → stopped.
 */
export function createChronicle(
  config: Config & { databaseUrl: string },
  deps: {
    logger: Logger;
    metrics?: Metrics;
    /** An embedded PostgreSQL Chronicle started for itself: stopped last, after the final flush. */
    embeddedPostgres?: { stop(): Promise<void> };
  },
): Chronicle {
  const { logger } = deps;
  const metrics = deps.metrics ?? createMetrics();
  const pool = createPool({ connectionString: config.databaseUrl, maxConnections: config.pgPoolMax });
  // Span building and export have their own connections, so they can never hold one ingest needs.
  const spanPool = createPool({
    connectionString: config.databaseUrl,
    maxConnections: 3,
    applicationName: 'chronicle-spans',
  });
  const writer = createEventWriter({ pool, logger });
  const ns = config.natsNamespace;
  let link: NatsLink | undefined;
  const batcher = createBatcher(
    {
      ...config.batch,
      retryInitialMillis: 100,
      retryMaxMillis: 10_000,
      alertAfterFailures: 3,
    },
    {
      writer,
      logger,
      metrics,
      onWriteFailure: (failure) => {
        logger.error(failure, 'writes to Postgres keep failing; publishing write_failure alert');
        const published = link?.publish(`${ns.toLowerCase()}${WRITE_FAILURE_SUBJECT}`, {
          event_id: randomUUID(),
          trace_id: 'chronicle',
          source: 'chronicle',
          event_type: 'system.chronicle.write_failure',
          timestamp: new Date().toISOString(),
          metadata: { ...failure, buffer_events: batcher.state().heldEvents },
        });
        if (!published) logger.warn('write_failure alert not published: NATS is not connected');
      },
    },
  );
  const ingest = createHttpIngest(
    { maxBodyBytes: config.ingestMaxBodyBytes, retryAfterSeconds: 1 },
    { batcher, logger, metrics },
  );
  const otlp = createOtlpReceiver(
    { maxBodyBytes: config.otlpReceiver.maxBodyBytes, retryAfterSeconds: 1 },
    { batcher, logger, metrics },
  );
  let jetstream: JetStreamSource | undefined;
  if (config.natsUrl) {
    link = createNatsLink({ url: config.natsUrl, name: 'chronicle', reconnectWaitMillis: 1_000 }, { logger });
    jetstream = createJetStreamSource(
      {
        streams: DEFAULT_STREAMS,
        namespace: ns,
        maxDeliver: config.jetstream.maxDeliver,
        ackWaitMillis: config.jetstream.ackWaitMillis,
        fetchBatch: Math.min(config.jetstream.fetchBatch, config.batch.maxBufferEvents),
        maxAckPending: config.batch.maxBufferEvents,
      },
      { link, consumer: batcher, logger, metrics },
    );
  }

  let migrated = false;
  let migrationError: string | undefined;
  let server: http.Server | undefined;
  let stopping: Promise<void> | undefined;
  const stopMigrating = new AbortController();

  async function health(): Promise<HealthReport> {
    const dependencies: Record<string, DependencyState> = {};
    const reasons: string[] = [];
    try {
      await pool.query('SELECT 1');
      dependencies.postgres = { state: 'up' };
    } catch (err) {
      dependencies.postgres = { state: 'down', detail: (err as Error).message };
      reasons.push(`postgres unreachable: ${(err as Error).message}`);
    }
    dependencies.migrations = migrated
      ? { state: 'up' }
      : { state: 'down', detail: migrationError ?? 'not applied yet' };
    if (!migrated) reasons.push(`migrations not applied${migrationError ? `: ${migrationError}` : ''}`);
    if (link && jetstream) {
      const state = link.state();
      const up = state === 'connected' && jetstream.consuming();
      dependencies.nats = up
        ? { state: 'up' }
        : { state: 'down', detail: state === 'connected' ? 'setting up consumers' : state };
      if (!up) reasons.push(`nats ${dependencies.nats.detail}`);
    } else {
      dependencies.nats = { state: 'disabled', detail: 'NATS_URL not set: HTTP ingest only' };
    }
    // The trace backend is reported, but never makes Chronicle unready: spans wait in the outbox.
    if (exportLoop && config.export) {
      const { consecutiveFailures, lastError } = exportLoop.state();
      dependencies.otlp_export =
        consecutiveFailures === 0
          ? { state: 'up', detail: config.export.url }
          : {
              state: 'down',
              detail: `${config.export.url}: ${consecutiveFailures} failed exports in a row (${lastError ?? 'unknown'}); spans are kept and retried`,
            };
    } else {
      dependencies.otlp_export = {
        state: 'disabled',
        detail: 'no OTEL_EXPORTER_OTLP_ENDPOINT: spans are built and served by the API',
      };
    }
    const b = batcher.state();
    if (b.failing) reasons.push(`writes to Postgres failing (${b.consecutiveFailures} in a row)`);
    const ready = reasons.length === 0;
    return {
      status: ready ? 'ok' : 'degraded',
      ready,
      reasons,
      dependencies,
      buffer: {
        events: b.heldEvents,
        bytes: b.heldBytes,
        max_events: batcher.maxBufferEvents,
        max_bytes: batcher.maxBufferBytes,
      },
      writer: { failing: b.failing, consecutive_failures: b.consecutiveFailures },
    };
  }

  // chronicle_ready: the same check as /ready, computed on each scrape.
  metrics.observeReadiness(async () => (await health()).ready);

  async function migrateUntilDone(): Promise<void> {
    let delay = 500;
    while (!stopMigrating.signal.aborted) {
      try {
        await ensureDatabase(pool, config.databaseUrl, logger);
        await migrate(pool, logger);
        migrated = true;
        migrationError = undefined;
        return;
      } catch (err) {
        migrationError = (err as Error).message;
        logger.warn({ err, retryInMillis: delay }, 'cannot migrate the database yet; retrying');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  // Builds the spans of the traces each flush touched, and exports them when an endpoint is set
  // (docs/spans.md): both after the commit, never in the ingest path.
  const spanBuilder = createSpanBuilder(
    {
      resource: config.resource.attributes,
      serviceName: config.resource.serviceName,
      batchTraces: 100,
      concurrency: 2,
      parkMillis: 60_000,
      ...config.spans,
      idleMillis: 250,
    },
    {
      pool: spanPool,
      logger,
      metrics,
      ingestBusy: () => batcher.state().heldEvents >= config.batch.flushThresholdEvents,
    },
  );
  let exportLoop: ExportLoop | undefined;
  if (config.export) {
    exportLoop = createExportLoop(
      {
        batchSpans: 512,
        idleMillis: 250,
        minBackoffMillis: 1_000,
        maxBackoffMillis: 60_000,
        leaseMillis: config.export.timeoutMillis * 3 + 5_000,
        shutdownGraceMillis: 1_000,
        maxBatchBytes: 4 * 1024 * 1024,
      },
      { pool: spanPool, exporter: createOtlpExporter(config.export), logger, metrics },
    );
  }
  let otlpServer: http.Server | undefined;

  const baseUrl = (s: http.Server | undefined): string | undefined => {
    const address = s?.address() as AddressInfo | null | undefined;
    if (!address) return undefined;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
  };
  const listen = async (s: http.Server, port: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, config.host, () => resolve());
    });

  return {
    batcher,
    metrics,
    health,
    url() {
      const url = baseUrl(server);
      if (url === undefined) throw new Error('Chronicle is not listening');
      return url;
    },
    otlpUrl() {
      return baseUrl(otlpServer);
    },

    async start() {
      const app = createApiApp({
        store: createQueryStore(pool),
        health,
        metrics,
        logger,
        ingest: express.Router().use(ingest.router, otlp.router),
        links: config.links,
      });
      server = http.createServer(app);
      await listen(server, config.port);
      void link?.start();
      if (config.otlpReceiver.dedicatedPort !== undefined) {
        const otlpApp = express();
        otlpApp.disable('x-powered-by');
        otlpApp.use(httpMetrics(metrics));
        otlpApp.use(otlp.router);
        otlpApp.use((req, res) => {
          res.status(404).json({ error: 'not_found', message: `no route for ${req.method} ${req.path}` });
        });
        otlpServer = http.createServer(otlpApp);
        await listen(otlpServer, config.otlpReceiver.dedicatedPort);
      }
      logger.info(
        {
          url: this.url(),
          otlp: this.otlpUrl() ?? 'API port only',
          nats: config.natsUrl ?? 'disabled',
          export: config.export?.url ?? 'disabled',
        },
        'Chronicle listening',
      );
      void migrateUntilDone().then(() => {
        if (!migrated) return;
        void jetstream?.start();
        void spanBuilder.start();
        void exportLoop?.start();
      });
    },

    shutdown(deadline) {
      stopping ??= (async () => {
        stopMigrating.abort();
        ingest.stopIntake();
        otlp.stopIntake();
        // Upstream first: stop pulling, then drain what was accepted, then settle and close.
        const jetstreamStopped = jetstream?.shutdown(deadline);
        await batcher.drain(deadline);
        await jetstreamStopped;
        const untilDeadline = (work: Promise<unknown>): Promise<void> => untilAborted(deadline, work);
        await untilDeadline(Promise.all([spanBuilder.shutdown(deadline), exportLoop?.shutdown(deadline)]));
        // Draining NATS sends the acks still queued; while NATS is down it would wait for a reconnect.
        await untilDeadline(link?.drain() ?? Promise.resolve());
        await link?.close();
        for (const s of [server, otlpServer]) {
          if (!s) continue;
          s.closeIdleConnections();
          const closed = new Promise<void>((resolve) => s.close(() => resolve()));
          await untilDeadline(closed);
          s.closeAllConnections();
        }
        await untilDeadline(Promise.all([endPool(pool), endPool(spanPool)]).catch(() => undefined));
        // Last: the database outlives every write (it has its own bounded stop).
        await deps.embeddedPostgres?.stop();
        logger.info('Chronicle stopped');
      })();
      return stopping;
    },
  };
}
