import { z } from 'zod';
import { int, url } from './pipeline/env.js';
import { ConfigError } from './pipeline/errors.js';
import { AUTH_VARIABLES, type AuthConfig, authOptions } from './api/auth/config.js';
import { HTTP_INGEST_ENV, httpIngestOptions } from './sources/http-ingest/config.js';
import {
  NATS_CONNECTION_ENV,
  decoded,
  natsConnectionProblems,
  natsConnectionSettings,
  splitNatsUrl,
  type UrlCredentials,
} from './sources/nats/config.js';
import type { NatsConnectionSettings } from './sources/nats/nats-connect.js';
import { JETSTREAM_ENV, type JetStreamConfig, jetstreamOptions } from './sources/jetstream/config.js';
import { OTLP_HTTP_ENV, type OtlpHttpConfig, otlpHttpOptions } from './sources/otlp-http/config.js';
import { OTLP_NATS_ENV, otlpNatsOptions, otlpNatsProblems } from './sources/otlp-nats/config.js';
import type { OtlpNatsSourceOptions } from './sources/otlp-nats/otlp-nats-source.js';
import type { OtlpExportOptions } from './spans/span-export.js';

/**
 * The only reader of process.env. Every variable is validated; an invalid configuration is reported
 * with every problem at once. Names follow the Go service Chronicle replaces where it had them. Each
 * source's variables are its config slice (src/sources/<name>/config.ts), composed here; the value
 * parsers they share are in src/pipeline/env.ts.
 */
/** `key1=value1,key2=value2` with percent-encoded values (the OpenTelemetry list format). */
const headers = z.string().transform((value, ctx) => {
  const out: Record<string, string> = {};
  for (const item of value.split(',')) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    const key = eq > 0 ? item.slice(0, eq).trim() : '';
    if (key === '') {
      ctx.addIssue({ code: 'custom', message: `"${item.trim()}" is not key=value` });
      return z.NEVER;
    }
    try {
      out[key] = decodeURIComponent(item.slice(eq + 1).trim());
    } catch {
      ctx.addIssue({ code: 'custom', message: `the value of ${key} is not percent-encoded correctly` });
      return z.NEVER;
    }
  }
  return out;
});

const compression = z.enum(['gzip', 'none'], { error: 'must be gzip or none' });

// grpc is a valid value of the variables, refused only when it is the protocol actually used.
const protocol = z.enum(['http/json', 'http/protobuf', 'grpc'], {
  error: 'must be http/json or http/protobuf',
});

const envSchema = z
  .object({
    CHRONICLE_PORT: int(0, 65535).default(8700),
    CHRONICLE_HOST: z.string().min(1).optional(),
    // Unset: an embedded PostgreSQL in CHRONICLE_DATA_DIR.
    DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
    CHRONICLE_DATA_DIR: z.string().min(1).default('.chronicle'),
    CHRONICLE_EMBEDDED_PG_PORT: int(0, 65535).default(0),
    // Unset, empty or none: no NATS (HTTP and OTLP ingest only).
    NATS_URL: z.union([z.literal(''), z.literal('none'), url(['nats:', 'tls:', 'ws:', 'wss:'])]).optional(),
    CHRONICLE_NATS_NAMESPACE: z
      .string()
      .regex(/^[A-Za-z0-9_-]*$/, 'may only contain letters, digits, _ and -')
      .default(''),
    BATCH_FLUSH_INTERVAL_MS: int(1, 60_000).default(200),
    BATCH_FLUSH_THRESHOLD: int(1, 50_000).default(4000),
    BUFFER_MAX_SIZE: int(1, 1_000_000).default(12_000),
    BUFFER_MAX_BYTES: int(1024).default(64 * 1024 * 1024),
    HTTP_LINGER_MS: int(0, 10_000).default(20),
    FLUSH_CONCURRENCY: int(1, 16).default(3),
    // HTTP ingest (sources/http-ingest/config.ts).
    ...HTTP_INGEST_ENV,
    // NATS credentials and TLS (sources/nats/config.ts).
    ...NATS_CONNECTION_ENV,
    // The JetStream consumers' tunables, shared by both NATS sources (sources/jetstream/config.ts).
    ...JETSTREAM_ENV,
    PG_POOL_MAX: int(2, 100).default(8),
    SHUTDOWN_TIMEOUT_MS: int(100, 600_000).default(30_000),
    // V8 lets the heap grow to this much above what the last full collection kept (0: V8's own factor).
    CHRONICLE_HEAP_GROWTH_PERCENT: int(0, 1_000).default(75),
    LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    // The OTLP/HTTP receiver (sources/otlp-http/config.ts).
    ...OTLP_HTTP_ENV,
    SPAN_SETTLE_MS: int(0, 600_000).default(2_000),
    // Unset: 5 s, or SPAN_SETTLE_MS when that is longer (the delay never cuts a settle short by default).
    SPAN_MAX_DELAY_MS: int(0, 3_600_000).optional(),
    // The span builder's rounds: how many run at once (each on a connection of its own) and their size.
    SPAN_BUILD_CONCURRENCY: int(1, 16).default(2),
    SPAN_BUILD_BATCH_TRACES: int(1, 10_000).default(100),
    // Span export, with the standard OpenTelemetry variables (the traces-specific ones win).
    OTEL_EXPORTER_OTLP_ENDPOINT: url(['http:', 'https:']).optional(),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url(['http:', 'https:']).optional(),
    OTEL_EXPORTER_OTLP_HEADERS: headers.optional(),
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: headers.optional(),
    OTEL_EXPORTER_OTLP_TIMEOUT: int(1, 600_000).optional(),
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: int(1, 600_000).optional(),
    OTEL_EXPORTER_OTLP_COMPRESSION: compression.optional(),
    OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: compression.optional(),
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol.optional(),
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol.optional(),
    OTEL_SERVICE_NAME: z.string().min(1).optional(),
    OTEL_RESOURCE_ATTRIBUTES: headers.optional(),
    // Links served with a trace.
    JAEGER_UI_URL: url(['http:', 'https:']).optional(),
    GRAFANA_URL: url(['http:', 'https:']).optional(),
    GRAFANA_TEMPO_DATASOURCE_UID: z.string().min(1).default('tempo'),
    // OTLP trace payloads from NATS: off unless enabled (sources/otlp-nats/config.ts).
    ...OTLP_NATS_ENV,
    // The live stream, GET /api/v1/stream (src/api/stream/event-stream.ts).
    CHRONICLE_STREAM_POLL_MS: int(10, 60_000).default(250),
    CHRONICLE_STREAM_CLIENT_QUEUE_EVENTS: int(1, 1_000_000).default(1000),
    CHRONICLE_STREAM_MAX_CLIENTS: int(0, 1_000_000).default(1000),
    CHRONICLE_STREAM_KEEPALIVE_MS: int(100, 3_600_000).default(15_000),
    // Retention and the scheduled maintenance (src/sinks/postgres/maintenance-loop.ts); 0 days: forever.
    SWARM_EVENTS_RETENTION_DAYS: int(0, 36_500).default(30),
    SWARM_TRACES_RETENTION_DAYS: int(0, 36_500).default(90),
    OTEL_SPANS_RETENTION_DAYS: int(0, 36_500).default(30),
    REJECTS_RETENTION_DAYS: int(0, 36_500).default(30),
    DLQ_RETENTION_DAYS: int(0, 36_500).default(90),
    CHRONICLE_MAINTENANCE_INTERVAL_MS: int(0, 604_800_000).default(3_600_000),
    CHRONICLE_VACUUM_INTERVAL_MS: int(0, 86_400_000).default(30_000),
  })
  .superRefine((e, ctx) => {
    for (const { variable, message } of natsConnectionProblems(e, natsUrlOf(e.NATS_URL))) {
      ctx.addIssue({ code: 'custom', path: [variable], message });
    }
    for (const { variable, message } of otlpNatsProblems(e, { natsUrl: natsUrlOf(e.NATS_URL) })) {
      ctx.addIssue({ code: 'custom', path: [variable], message });
    }
    // The traces-specific variable wins (OTLP exporter spec), so only the protocol in use is checked.
    const key = e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
      ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
      : 'OTEL_EXPORTER_OTLP_PROTOCOL';
    if (e[key] === 'grpc') {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: 'grpc is not supported: use http/json or http/protobuf',
      });
    }
  });

export type Env = z.infer<typeof envSchema>;

export interface Config {
  port: number;
  host: string;
  /** undefined: run an embedded PostgreSQL (see `embedded`). */
  databaseUrl: string | undefined;
  /** Where the embedded PostgreSQL keeps its data, and its port (0: a free loopback port at each start). */
  embedded: { dataDir: string; port: number };
  /** undefined: NATS disabled (HTTP ingest only). Without credentials (they are in natsConnection). */
  natsUrl: string | undefined;
  /** NATS credentials and TLS (sources/nats/config.ts); absent: none. */
  natsConnection?: Omit<NatsConnectionSettings, 'url'> | undefined;
  /** Every secret value configured: the logger masks them (telemetry/redact.ts). */
  secrets?: readonly string[] | undefined;
  natsNamespace: string;
  batch: {
    flushIntervalMillis: number;
    flushThresholdEvents: number;
    maxBufferEvents: number;
    maxBufferBytes: number;
    lingerMillis: number;
    maxConcurrentFlushes: number;
  };
  ingestMaxBodyBytes: number;
  jetstream: JetStreamConfig;
  pgPoolMax: number;
  shutdownTimeoutMillis: number;
  /**
   * How far V8 lets the heap grow past what the last full collection kept, in percent (0: V8's own
   * factor, up to 4x on a large machine). Applied by `chronicle serve`.
   */
  heapGrowthPercent: number;
  logLevel: string;
  /** The OTLP/HTTP receiver: its body limit, and its own port when enabled (sources/otlp-http/config.ts). */
  otlpReceiver: OtlpHttpConfig;
  /** When a touched trace's spans are built: after it settles, or at the latest after maxDelayMillis. */
  spans: {
    settleMillis: number;
    maxDelayMillis: number;
    /** Build rounds run at once, each on a connection of the span pool. */
    concurrency: number;
    /** Pending traces claimed per round. */
    batchTraces: number;
  };
  /** undefined: no export (spans are still built and served by the API). */
  export: OtlpExportOptions | undefined;
  /** Chronicle's own resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES). */
  resource: { serviceName: string; attributes: Record<string, string> };
  links: { jaegerUiUrl: string | undefined; grafanaUrl: string | undefined; tempoDatasourceUid: string };
  /** The OTLP-over-NATS source; undefined (or absent): not enabled. */
  otlpNats?: OtlpNatsSourceOptions | undefined;
  /** The live stream (GET /api/v1/stream); absent: its defaults, which are those of the variables. */
  stream?: StreamConfig | undefined;
  /** Access control by API tokens (src/api/auth/config.ts); undefined (or absent): no tokens, all open. */
  auth?: AuthConfig | undefined;
  /** CHRONICLE_API_TOKEN: the token `chronicle simulate` sends to Chronicle's API; absent: none. */
  apiToken?: string | undefined;
  /** Retention and maintenance; absent: the default policy and no scheduled pass (loadConfig sets it). */
  retention?: RetentionConfig | undefined;
}

/** How long rows are kept (SWARM_*_RETENTION_DAYS, …) and how often maintenance runs. */
export interface RetentionConfig {
  /** Days each kind of row is kept, 0 forever (src/sinks/postgres/retention-policy.ts says what each covers). */
  policy: { eventsDays: number; tracesDays: number; spansDays: number; rejectsDays: number; dlqDays: number };
  /** CHRONICLE_MAINTENANCE_INTERVAL_MS; 0: no scheduled pass. */
  maintenanceIntervalMillis: number;
  /** CHRONICLE_VACUUM_INTERVAL_MS: how often the churn tables are checked while autovacuum is off; 0: never. */
  vacuumIntervalMillis?: number;
}

/** The live stream's tunables (CHRONICLE_STREAM_*). */
export interface StreamConfig {
  /** Pause between reads of the store once the stream's poller has caught up. */
  pollMillis: number;
  /** Events a client may have waiting while its socket is backed up; one more and it is disconnected. */
  clientQueueEvents: number;
  /** Streams open at once per process; the next request gets 503 too_many_streams. */
  maxClients: number;
  /**
   * A keep-alive after this long without a write: a position message when the client's place moved,
   * else a comment.
   */
  keepAliveMillis: number;
}

/** Unset, empty or none: no NATS. */
function natsUrlOf(value: string | undefined): string | undefined {
  return value === undefined || value === '' || value === 'none' ? undefined : value;
}

/** OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: the traces path is appended to it (OTLP exporter spec). */
function tracesUrl(e: Env): string | undefined {
  if (e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (!e.OTEL_EXPORTER_OTLP_ENDPOINT) return undefined;
  return `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
}

function exportOptions(e: Env): OtlpExportOptions | undefined {
  const url = tracesUrl(e);
  if (url === undefined) return undefined;
  return {
    url,
    protocol: (e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? e.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/json') as
      'http/json' | 'http/protobuf',
    headers: { ...e.OTEL_EXPORTER_OTLP_HEADERS, ...e.OTEL_EXPORTER_OTLP_TRACES_HEADERS },
    timeoutMillis: e.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT ?? e.OTEL_EXPORTER_OTLP_TIMEOUT ?? 10_000,
    compression: e.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION ?? e.OTEL_EXPORTER_OTLP_COMPRESSION ?? 'none',
  };
}

/** The configured secret values, for the logger to mask whatever writes them. */
function secretsOf(e: Env, env: NodeJS.ProcessEnv): string[] {
  const urls = [e.DATABASE_URL, e.OTEL_EXPORTER_OTLP_ENDPOINT, e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT];
  const fromUrls = urls.flatMap((value) => {
    if (value === undefined) return [];
    const url = new URL(value);
    return [decoded(url.password), url.password, url.searchParams.get('password') ?? ''];
  });
  const nats: Partial<UrlCredentials> = e.NATS_URL ? splitNatsUrl(e.NATS_URL) : {};
  // CHRONICLE_API_TOKENS: NAME:SCOPES:TOKEN entries separated by commas or whitespace, the token after
  // the second colon (src/api/auth/tokens.ts); read here only to be masked. CHRONICLE_API_TOKEN: the
  // token Chronicle's own clients send.
  const apiTokens = (env.CHRONICLE_API_TOKENS ?? '').split(/[\s,]+/).map((entry) => {
    const second = entry.indexOf(':', entry.indexOf(':') + 1);
    return second < 0 ? '' : entry.slice(second + 1);
  });
  if (env.CHRONICLE_API_TOKEN !== undefined) apiTokens.push(env.CHRONICLE_API_TOKEN);
  const all = [
    ...fromUrls,
    nats.password ?? (nats.user !== undefined ? nats.user : ''),
    e.NATS_PASSWORD,
    e.NATS_TOKEN,
    e.NATS_NKEY_SEED,
    ...Object.entries({ ...e.OTEL_EXPORTER_OTLP_HEADERS, ...e.OTEL_EXPORTER_OTLP_TRACES_HEADERS }).flatMap(
      ([name, value]) => (/auth|token|key|secret|password|cookie/i.test(name) ? [value] : []),
    ),
    ...apiTokens,
  ].filter((s): s is string => s !== undefined && s.trim() !== '');
  return [...new Set(all)];
}

/** Reads and validates the environment; throws ConfigError listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "unset", as in most shells and compose files.
  // Whitespace-only counts as empty too.
  const present = Object.fromEntries(
    Object.keys(envSchema.shape).flatMap((k) =>
      env[k] === undefined || (env[k].trim() === '' && k !== 'NATS_URL') ? [] : [[k, env[k]]],
    ),
  );
  const parsed = envSchema.safeParse(present);
  // API tokens (src/api/auth/config.ts): read here, outside the schema, so that no token is ever in a zod issue.
  const tokens = authOptions(
    Object.fromEntries(AUTH_VARIABLES.flatMap((k) => (env[k]?.trim() ? [[k, env[k]]] : []))),
  );
  if (!parsed.success || tokens.problems.length > 0) {
    const issues = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError([...issues, ...tokens.problems]);
  }
  const e = parsed.data;
  const jetstream = jetstreamOptions(e);
  const natsUrl = natsUrlOf(e.NATS_URL);
  const secrets = secretsOf(e, env);
  const { url: natsServer, ...natsConnection } =
    natsUrl === undefined ? { url: undefined } : natsConnectionSettings(e, natsUrl);
  return {
    port: e.CHRONICLE_PORT,
    // Embedded mode listens on loopback unless told otherwise: a laptop default, not a server one.
    host: e.CHRONICLE_HOST ?? (e.DATABASE_URL === undefined ? '127.0.0.1' : '0.0.0.0'),
    databaseUrl: e.DATABASE_URL,
    embedded: { dataDir: e.CHRONICLE_DATA_DIR, port: e.CHRONICLE_EMBEDDED_PG_PORT },
    natsUrl: natsServer,
    // Absent rather than empty, so that a configuration without them reads as before.
    natsConnection: Object.keys(natsConnection).length > 0 ? natsConnection : undefined,
    secrets: secrets.length > 0 ? secrets : undefined,
    natsNamespace: e.CHRONICLE_NATS_NAMESPACE,
    batch: {
      flushIntervalMillis: e.BATCH_FLUSH_INTERVAL_MS,
      flushThresholdEvents: e.BATCH_FLUSH_THRESHOLD,
      maxBufferEvents: e.BUFFER_MAX_SIZE,
      maxBufferBytes: e.BUFFER_MAX_BYTES,
      lingerMillis: e.HTTP_LINGER_MS,
      maxConcurrentFlushes: e.FLUSH_CONCURRENCY,
    },
    ingestMaxBodyBytes: httpIngestOptions(e).maxBodyBytes,
    jetstream,
    pgPoolMax: e.PG_POOL_MAX,
    shutdownTimeoutMillis: e.SHUTDOWN_TIMEOUT_MS,
    heapGrowthPercent: e.CHRONICLE_HEAP_GROWTH_PERCENT,
    logLevel: e.LOG_LEVEL,
    otlpReceiver: otlpHttpOptions(e),
    spans: {
      settleMillis: e.SPAN_SETTLE_MS,
      maxDelayMillis: e.SPAN_MAX_DELAY_MS ?? Math.max(5_000, e.SPAN_SETTLE_MS),
      concurrency: e.SPAN_BUILD_CONCURRENCY,
      batchTraces: e.SPAN_BUILD_BATCH_TRACES,
    },
    export: exportOptions(e),
    // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES (SDK environment spec).
    resource: {
      serviceName: e.OTEL_SERVICE_NAME ?? e.OTEL_RESOURCE_ATTRIBUTES?.['service.name'] ?? 'chronicle',
      attributes: e.OTEL_RESOURCE_ATTRIBUTES ?? {},
    },
    links: {
      jaegerUiUrl: e.JAEGER_UI_URL,
      grafanaUrl: e.GRAFANA_URL,
      tempoDatasourceUid: e.GRAFANA_TEMPO_DATASOURCE_UID,
    },
    stream: {
      pollMillis: e.CHRONICLE_STREAM_POLL_MS,
      clientQueueEvents: e.CHRONICLE_STREAM_CLIENT_QUEUE_EVENTS,
      maxClients: e.CHRONICLE_STREAM_MAX_CLIENTS,
      keepAliveMillis: e.CHRONICLE_STREAM_KEEPALIVE_MS,
    },
    auth: tokens.auth,
    apiToken: tokens.clientToken,
    retention: {
      policy: {
        eventsDays: e.SWARM_EVENTS_RETENTION_DAYS,
        tracesDays: e.SWARM_TRACES_RETENTION_DAYS,
        spansDays: e.OTEL_SPANS_RETENTION_DAYS,
        rejectsDays: e.REJECTS_RETENTION_DAYS,
        dlqDays: e.DLQ_RETENTION_DAYS,
      },
      maintenanceIntervalMillis: e.CHRONICLE_MAINTENANCE_INTERVAL_MS,
      vacuumIntervalMillis: e.CHRONICLE_VACUUM_INTERVAL_MS,
    },
    otlpNats: otlpNatsOptions(e, {
      natsUrl: natsUrlOf(e.NATS_URL),
      namespace: e.CHRONICLE_NATS_NAMESPACE,
      ...jetstream,
      maxBufferEvents: e.BUFFER_MAX_SIZE,
    }),
  };
}
