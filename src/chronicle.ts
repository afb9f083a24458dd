import { randomUUID } from 'node:crypto';
import express from 'express';
import { createApiApp, createRouterApp } from './api/app.js';
import type { HealthReport } from './api/health.js';
import { type HttpServer, createHttpServer } from './api/server.js';
import { STREAM_DEFAULTS, createEventStream } from './api/stream/event-stream.js';
import { isLoopbackHost } from './api/auth/loopback.js';
import { clientOf } from './api/auth/require-token.js';
import { type Batcher, createBatcher } from './batch/batcher.js';
import type { Config } from './config.js';
import { createDatabase } from './db/database.js';
import type { Component, DependencyState } from './pipeline/contracts.js';
import { createRunner, startWhen, together } from './pipeline/runner.js';
import { createEventWriter } from './sinks/postgres/event-writer.js';
import { createQueryStore, readExportBacklog } from './sinks/postgres/queries.js';
import { countPinned, createPinStore } from './sinks/postgres/archive.js';
import { createPinRefresher } from './sinks/postgres/pin-refresher.js';
import { createHttpIngest } from './sources/http-ingest/http-ingest.js';
import { DEFAULT_STREAMS, createJetStreamSource } from './sources/jetstream/jetstream-source.js';
import { type NatsLink, createNatsLink } from './sources/nats/nats-link.js';
import { createOtlpReceiver } from './sources/otlp-http/otlp-receiver.js';
import { createOtlpNatsSource } from './sources/otlp-nats/otlp-nats-source.js';
import { createSpanBuilder } from './spans/span-builder.js';
import { createRetentionRoutes } from './api/retention.js';
import { createMaintenanceLoop } from './sinks/postgres/maintenance-loop.js';
import { createVacuumLoop } from './sinks/postgres/vacuum-loop.js';
import { DEFAULT_MAINTENANCE_OPTIONS } from './sinks/postgres/partition-maintenance.js';
import { DEFAULT_RETENTION } from './sinks/postgres/retention-policy.js';
import { readRetentionStatus } from './sinks/postgres/retention-status.js';
import { createExportLoop, createOtlpExporter } from './spans/span-export.js';
import type { Logger } from './telemetry/logger.js';
import { redactUrl } from './telemetry/redact.js';
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

/**
 * Wiring only: builds the components from the configuration and hands them to the runner, which
 * starts them in this order and shuts them down in reverse — the sources stop taking input (all at
 * once), the batcher drains, spans and the servers stop, NATS sends the last acks, Postgres closes (docs/adr/0006).
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
  const components: Component[] = [];
  const add = <C extends Component>(component: C): C => {
    components.push(component);
    return component;
  };

  const database = add(
    createDatabase(
      {
        url: config.databaseUrl,
        maxConnections: config.pgPoolMax,
        // A connection for each build round in flight, and one for export.
        spanConnections: config.spans.concurrency + 1,
        migrateRetryInitialMillis: 500,
        migrateRetryMaxMillis: 10_000,
      },
      { logger },
    ),
  );
  const migrated = database.migrated();
  const link = config.natsUrl
    ? add(
        createNatsLink(
          { url: config.natsUrl, ...config.natsConnection, name: 'chronicle', reconnectWaitMillis: 1_000 },
          { logger },
        ),
      )
    : undefined;

  const batcher = createBatcher(
    { ...config.batch, retryInitialMillis: 100, retryMaxMillis: 10_000, alertAfterFailures: 3 },
    {
      writer: createEventWriter({ pool: database.pool, logger, metrics }),
      logger,
      metrics,
      onWriteFailure: (failure) => publishWriteFailure(link, config.natsNamespace, logger, failure, batcher),
    },
  );
  const ingest = createHttpIngest(
    { maxBodyBytes: config.ingestMaxBodyBytes, retryAfterSeconds: 1 },
    { consumer: batcher, logger, metrics },
  );
  const otlp = createOtlpReceiver(
    { maxBodyBytes: config.otlpReceiver.maxBodyBytes, retryAfterSeconds: 1 },
    { consumer: batcher, logger, metrics },
  );

  // Retention: day partitions ahead, old days dropped, old rows trimmed; one replica at a time.
  // Without a retention configuration (a Config built by hand), no scheduled pass.
  const retention = config.retention ?? { policy: DEFAULT_RETENTION, maintenanceIntervalMillis: 0 };
  const maintenance = createMaintenanceLoop(
    {
      ...DEFAULT_MAINTENANCE_OPTIONS,
      policy: retention.policy,
      spansExported: config.export !== undefined,
      intervalMillis: retention.maintenanceIntervalMillis,
      // Shortly after start, once the start-up traffic (a backlog drained) has settled.
      firstDelayMillis: 60_000,
    },
    { pool: database.pool, logger, metrics },
  );

  const store = createQueryStore(database.pool);
  // Added after the API server, so it shuts down just before it: its streams end, then the server closes.
  const stream = createEventStream(config.stream ?? STREAM_DEFAULTS, { store, logger, metrics });
  const api = add(
    createHttpServer(
      { name: 'api', host: config.host, port: config.port },
      createApiApp({
        store,
        health,
        metrics,
        logger,
        ingest: express.Router().use(ingest.router, otlp.router),
        links: config.links,
        stream: stream.router,
        clients: config.auth?.clients,
        pins: createPinStore(database.pool),
        pinRoutes: { actorOf: (_req, res) => clientOf(res) },
        retention: createRetentionRoutes({
          status: () => readRetentionStatus(database.pool, retention.policy),
          pinned: () => countPinned(database.pool),
          runNow: () => maintenance.runNow(),
        }),
      }),
    ),
  );
  add(stream);
  let otlpPort: HttpServer | undefined;
  if (config.otlpReceiver.dedicatedPort !== undefined) {
    otlpPort = add(
      createHttpServer(
        { name: 'otlp-port', host: config.host, port: config.otlpReceiver.dedicatedPort },
        createRouterApp(otlp.router, metrics, { clients: config.auth?.clients, logger }),
      ),
    );
  }

  // Spans are built from what each flush committed, and exported when an endpoint is set
  // (docs/spans.md): both after the commit, never in the ingest path.
  add(
    startWhen(
      migrated,
      createSpanBuilder(
        {
          resource: config.resource.attributes,
          serviceName: config.resource.serviceName,
          parkMillis: 60_000,
          ...config.spans,
          idleMillis: 250,
        },
        {
          pool: database.spanPool,
          logger,
          metrics,
          ingestBusy: () => batcher.state().heldEvents >= config.batch.flushThresholdEvents,
        },
      ),
      { logger },
    ),
  );
  if (config.export) {
    const exportLoop = createExportLoop(
      {
        batchSpans: 512,
        idleMillis: 250,
        minBackoffMillis: 1_000,
        maxBackoffMillis: 60_000,
        shutdownGraceMillis: 1_000,
        maxBatchBytes: 4 * 1024 * 1024,
        endpoint: config.export.url,
      },
      {
        pool: database.spanPool,
        backlog: () => readExportBacklog(database.spanPool),
        exporter: createOtlpExporter(config.export),
        logger,
        metrics,
      },
    );
    add(startWhen(migrated, exportLoop, { logger }));
  }

  // Pinned copies follow their tasks (docs/adr/0012-pinned-tasks-archive.md), off the ingest connections.
  add(
    startWhen(
      migrated,
      createPinRefresher({ intervalMillis: 300_000, batchTraces: 500 }, { pool: database.spanPool, logger }),
      { logger },
    ),
  );

  add(startWhen(migrated, maintenance, { logger }));
  // The churn tables kept vacuumed when the server's autovacuum is off, off the ingest connections.
  add(
    startWhen(
      migrated,
      createVacuumLoop(
        { intervalMillis: retention.vacuumIntervalMillis ?? 0 },
        { pool: database.spanPool, logger, metrics },
      ),
      { logger },
    ),
  );
  add(batcher);
  // The sources last: they start once everything they feed runs, and stop first, all at once.
  const sources: Component[] = [ingest, otlp];
  if (link) {
    const jetstream = createJetStreamSource(
      {
        streams: DEFAULT_STREAMS,
        namespace: config.natsNamespace,
        maxDeliver: config.jetstream.maxDeliver,
        ackWaitMillis: config.jetstream.ackWaitMillis,
        fetchBatch: Math.min(config.jetstream.fetchBatch, config.batch.maxBufferEvents),
        maxAckPending: config.batch.maxBufferEvents,
      },
      { link, consumer: batcher, logger, metrics },
    );
    sources.push(startWhen(migrated, jetstream, { logger }));
    if (config.otlpNats) {
      const otlpNats = createOtlpNatsSource(config.otlpNats, { link, consumer: batcher, logger, metrics });
      sources.push(startWhen(migrated, otlpNats, { logger }));
    }
  }
  add(together('sources', sources));

  const runner = createRunner(components, { logger });
  let stopping: Promise<void> | undefined;

  /** What is not configured, as the health report shows it. */
  const disabled: Record<string, DependencyState> = {
    ...(link ? {} : { nats: { state: 'disabled', detail: 'NATS_URL not set: HTTP ingest only' } }),
    ...(config.export
      ? {}
      : {
          otlp_export: {
            state: 'disabled',
            detail: 'no OTEL_EXPORTER_OTLP_ENDPOINT: spans are built and served by the API',
          },
        }),
  };

  async function health(): Promise<HealthReport> {
    const { dependencies, reasons } = await runner.health();
    const b = batcher.state();
    const ready = reasons.length === 0;
    return {
      status: ready ? 'ok' : 'degraded',
      ready,
      reasons,
      dependencies: { ...dependencies, ...disabled },
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

  return {
    batcher,
    metrics,
    health,
    url() {
      const url = api.url();
      if (url === undefined) throw new Error('Chronicle is not listening');
      return url;
    },
    otlpUrl: () => otlpPort?.url(),
    async start() {
      await runner.start();
      logger.info(
        {
          url: api.url(),
          otlp: otlpPort?.url() ?? 'API port only',
          nats: config.natsUrl ? redactUrl(config.natsUrl) : 'disabled',
          export: config.export ? redactUrl(config.export.url) : 'disabled',
          // The clients API tokens allow, by name (never a token); off: no access control.
          auth: config.auth?.clients.map((c) => c.name) ?? 'off',
        },
        'Chronicle listening',
      );
      warnWhenOpen(config, api.url(), logger);
    },
    shutdown(deadline) {
      stopping ??= (async () => {
        await runner.shutdown(deadline);
        // Last, and awaited even past the deadline: the server outlives every write (its stop is bounded).
        await deps.embeddedPostgres?.stop();
        logger.info('Chronicle stopped');
      })();
      return stopping;
    },
  };
}

/**
 * Once at start: without API tokens, a listener beyond loopback lets anyone who reaches it read and
 * write (README "Access control").
 */
function warnWhenOpen(config: Config, url: string | undefined, logger: Logger): void {
  if (config.auth !== undefined || isLoopbackHost(config.host)) return;
  const where = `${config.host}:${url === undefined ? config.port : new URL(url).port}`;
  logger.warn(
    { host: config.host, auth: 'off' },
    `no API tokens configured: anyone who can reach ${where} can read every event and send their own; set CHRONICLE_API_TOKENS`,
  );
}

/** Publishes the write_failure alert on NATS, for the swarm's own alerting; logged either way. */
function publishWriteFailure(
  link: NatsLink | undefined,
  namespace: string,
  logger: Logger,
  failure: { consecutiveFailures: number; batchSize: number; error: string },
  batcher: Batcher,
): void {
  logger.error(failure, 'writes to Postgres keep failing; publishing write_failure alert');
  const published = link?.publish(`${namespace.toLowerCase()}${WRITE_FAILURE_SUBJECT}`, {
    event_id: randomUUID(),
    trace_id: 'chronicle',
    source: 'chronicle',
    event_type: 'system.chronicle.write_failure',
    timestamp: new Date().toISOString(),
    metadata: { ...failure, buffer_events: batcher.state().heldEvents },
  });
  if (!published) logger.warn('write_failure alert not published: NATS is not connected');
}
