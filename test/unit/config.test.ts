import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/pipeline/errors.js';
import { HTTP_INGEST_ENV } from '../../src/sources/http-ingest/config.js';
import { JETSTREAM_ENV } from '../../src/sources/jetstream/config.js';
import { OTLP_HTTP_ENV } from '../../src/sources/otlp-http/config.js';
import { OTLP_NATS_ENV } from '../../src/sources/otlp-nats/config.js';

/** Calls loadConfig and returns the ConfigError it throws; fails the test when it does not throw one. */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

const DEFAULTS = {
  port: 8700,
  // No DATABASE_URL: the embedded PostgreSQL, and loopback only.
  host: '127.0.0.1',
  databaseUrl: undefined,
  embedded: { dataDir: '.chronicle', port: 0 },
  natsUrl: undefined,
  natsNamespace: '',
  batch: {
    flushIntervalMillis: 200,
    flushThresholdEvents: 4000,
    maxBufferEvents: 12_000,
    maxBufferBytes: 64 * 1024 * 1024,
    lingerMillis: 20,
    maxConcurrentFlushes: 3,
  },
  ingestMaxBodyBytes: 5 * 1024 * 1024,
  jetstream: { maxDeliver: 3, ackWaitMillis: 5_000, fetchBatch: 1000 },
  pgPoolMax: 8,
  shutdownTimeoutMillis: 30_000,
  heapGrowthPercent: 75,
  logLevel: 'info',
  otlpReceiver: { dedicatedPort: undefined, maxBodyBytes: 5 * 1024 * 1024 },
  spans: { settleMillis: 2000, maxDelayMillis: 5_000, concurrency: 2, batchTraces: 100 },
  export: undefined,
  resource: { serviceName: 'chronicle', attributes: {} },
  links: { jaegerUiUrl: undefined, grafanaUrl: undefined, tempoDatasourceUid: 'tempo' },
  otlpNats: undefined,
  stream: { pollMillis: 250, clientQueueEvents: 1000, maxClients: 1000, keepAliveMillis: 15_000 },
  retention: {
    policy: { eventsDays: 30, tracesDays: 90, spansDays: 30, rejectsDays: 30, dlqDays: 90 },
    maintenanceIntervalMillis: 3_600_000,
    vacuumIntervalMillis: 30_000,
  },
};

/** Every variable set to a valid value that differs from its default. */
const EVERY_VARIABLE = {
  CHRONICLE_PORT: '9100',
  CHRONICLE_HOST: '127.0.0.2',
  CHRONICLE_DATA_DIR: '/var/lib/chronicle',
  CHRONICLE_EMBEDDED_PG_PORT: '55432',
  DATABASE_URL: 'postgresql://user:pw@db.internal:6543/swarm',
  NATS_URL: 'tls://nats.internal:4443',
  CHRONICLE_NATS_NAMESPACE: 'T_side-1',
  BATCH_FLUSH_INTERVAL_MS: '750',
  BATCH_FLUSH_THRESHOLD: '250',
  BUFFER_MAX_SIZE: '2000',
  BUFFER_MAX_BYTES: '1048576',
  HTTP_LINGER_MS: '5',
  FLUSH_CONCURRENCY: '4',
  INGEST_MAX_BODY_BYTES: '65536',
  JETSTREAM_MAX_DELIVER: '7',
  JETSTREAM_ACK_WAIT_MS: '45000',
  JETSTREAM_FETCH_BATCH: '300',
  PG_POOL_MAX: '12',
  SHUTDOWN_TIMEOUT_MS: '5000',
  CHRONICLE_HEAP_GROWTH_PERCENT: '0',
  LOG_LEVEL: 'debug',
  CHRONICLE_OTLP_ENABLED: 'true',
  CHRONICLE_OTLP_PORT: '14318',
  OTLP_MAX_BODY_BYTES: '2048',
  SPAN_SETTLE_MS: '500',
  SPAN_MAX_DELAY_MS: '9000',
  SPAN_BUILD_CONCURRENCY: '3',
  SPAN_BUILD_BATCH_TRACES: '250',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://tempo.internal/otlp/v1/traces',
  OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc,x-scope-orgid=base',
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-scope-orgid=swarm',
  OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
  OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '3000',
  OTEL_EXPORTER_OTLP_COMPRESSION: 'none',
  OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'gzip',
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
  OTEL_SERVICE_NAME: 'chronicle-eu',
  OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=obs%2Csre',
  JAEGER_UI_URL: 'http://jaeger:16686',
  GRAFANA_URL: 'http://grafana:3000',
  GRAFANA_TEMPO_DATASOURCE_UID: 'tempo-eu',
  CHRONICLE_OTLP_NATS_ENABLED: 'true',
  CHRONICLE_OTLP_NATS_STREAM: 'SWARM_TRACES',
  CHRONICLE_OTLP_NATS_SUBJECTS: 'otlp.traces.eu, otlp.traces.us.>',
  CHRONICLE_STREAM_POLL_MS: '100',
  CHRONICLE_STREAM_CLIENT_QUEUE_EVENTS: '50',
  CHRONICLE_STREAM_MAX_CLIENTS: '20',
  CHRONICLE_STREAM_KEEPALIVE_MS: '5000',
  SWARM_EVENTS_RETENTION_DAYS: '14',
  SWARM_TRACES_RETENTION_DAYS: '0',
  OTEL_SPANS_RETENTION_DAYS: '7',
  REJECTS_RETENTION_DAYS: '60',
  DLQ_RETENTION_DAYS: '365',
  CHRONICLE_MAINTENANCE_INTERVAL_MS: '600000',
  CHRONICLE_VACUUM_INTERVAL_MS: '45000',
};

describe('loadConfig - defaults', () => {
  it('an empty environment gives the documented defaults', () => {
    expect(loadConfig({})).toEqual(DEFAULTS);
  });

  it('an empty string counts as unset and gives the default', () => {
    const empty = Object.fromEntries(Object.keys(EVERY_VARIABLE).map((k) => [k, '']));
    expect(loadConfig({ ...empty, NATS_URL: undefined })).toEqual(DEFAULTS);
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ PATH: '/usr/bin', CHRONICLE_UNKNOWN: 'x', PORT: 'not a number' })).toEqual(DEFAULTS);
  });

  it('SPAN_MAX_DELAY_MS unset is 5 s, or SPAN_SETTLE_MS when longer; set, it is taken as it is', () => {
    expect(loadConfig({ SPAN_SETTLE_MS: '3000' }).spans).toEqual({
      settleMillis: 3000,
      maxDelayMillis: 5000,
      concurrency: 2,
      batchTraces: 100,
    });
    expect(loadConfig({ SPAN_SETTLE_MS: '20000' }).spans).toEqual({
      settleMillis: 20_000,
      maxDelayMillis: 20_000,
      concurrency: 2,
      batchTraces: 100,
    });
    expect(loadConfig({ SPAN_SETTLE_MS: '20000', SPAN_MAX_DELAY_MS: '3000' }).spans).toEqual({
      settleMillis: 20_000,
      maxDelayMillis: 3000,
      concurrency: 2,
      batchTraces: 100,
    });
  });
});

describe('loadConfig - every variable is read', () => {
  it('maps each variable to its option', () => {
    expect(loadConfig(EVERY_VARIABLE)).toEqual({
      port: 9100,
      host: '127.0.0.2',
      databaseUrl: 'postgresql://user:pw@db.internal:6543/swarm',
      embedded: { dataDir: '/var/lib/chronicle', port: 55432 },
      natsUrl: 'tls://nats.internal:4443',
      natsNamespace: 'T_side-1',
      batch: {
        flushIntervalMillis: 750,
        flushThresholdEvents: 250,
        maxBufferEvents: 2000,
        maxBufferBytes: 1_048_576,
        lingerMillis: 5,
        maxConcurrentFlushes: 4,
      },
      ingestMaxBodyBytes: 65_536,
      jetstream: { maxDeliver: 7, ackWaitMillis: 45_000, fetchBatch: 300 },
      pgPoolMax: 12,
      shutdownTimeoutMillis: 5000,
      heapGrowthPercent: 0,
      logLevel: 'debug',
      // The values the logger masks: the database password and the Authorization header's value.
      secrets: ['pw', 'Bearer abc'],
      otlpReceiver: { dedicatedPort: 14318, maxBodyBytes: 2048 },
      spans: { settleMillis: 500, maxDelayMillis: 9000, concurrency: 3, batchTraces: 250 },
      // The traces-specific variables win over the general ones.
      export: {
        url: 'https://tempo.internal/otlp/v1/traces',
        protocol: 'http/protobuf',
        headers: { authorization: 'Bearer abc', 'x-scope-orgid': 'swarm' },
        timeoutMillis: 3000,
        compression: 'gzip',
      },
      resource: {
        serviceName: 'chronicle-eu',
        attributes: { 'deployment.environment.name': 'prod', team: 'obs,sre' },
      },
      links: {
        jaegerUiUrl: 'http://jaeger:16686',
        grafanaUrl: 'http://grafana:3000',
        tempoDatasourceUid: 'tempo-eu',
      },
      // The JetStream tunables are shared with the event streams; the fetch batch is bounded by the buffer.
      otlpNats: {
        stream: 'SWARM_TRACES',
        subjects: ['otlp.traces.eu', 'otlp.traces.us.>'],
        namespace: 'T_side-1',
        maxDeliver: 7,
        ackWaitMillis: 45_000,
        fetchBatch: 300,
        maxAckPending: 2000,
      },
      stream: { pollMillis: 100, clientQueueEvents: 50, maxClients: 20, keepAliveMillis: 5000 },
      retention: {
        policy: { eventsDays: 14, tracesDays: 0, spansDays: 7, rejectsDays: 60, dlqDays: 365 },
        maintenanceIntervalMillis: 600_000,
        vacuumIntervalMillis: 45_000,
      },
    });
  });

  it('OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: /v1/traces is appended', () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).export).toEqual({
      url: 'http://collector:4318/v1/traces',
      protocol: 'http/json',
      headers: {},
      timeoutMillis: 10_000,
      compression: 'none',
    });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/base/' }).export?.url).toBe(
      'http://c:4318/base/v1/traces',
    );
  });

  it('refuses unknown compressions, malformed header lists and booleans', () => {
    expect(
      configError({
        OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd',
        OTEL_EXPORTER_OTLP_HEADERS: 'novalue',
        CHRONICLE_OTLP_ENABLED: 'maybe',
      }).problems.map((p) => p.split(':')[0]),
    ).toEqual(['CHRONICLE_OTLP_ENABLED', 'OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_COMPRESSION']);
  });

  it('refuses grpc only when it is the protocol in use: the traces-specific variable wins', () => {
    expect(configError({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }).problems).toEqual([
      'OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not supported: use http/json or http/protobuf',
    ]);
    const config = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
    });
    expect(config.export?.protocol).toBe('http/protobuf');
  });

  it('OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES, which wins over the default', () => {
    expect(loadConfig({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=bridge-eu' }).resource.serviceName).toBe(
      'bridge-eu',
    );
    expect(
      loadConfig({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=bridge-eu', OTEL_SERVICE_NAME: 'bridge' }).resource
        .serviceName,
    ).toBe('bridge');
  });

  it('accepts every documented log level', () => {
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) {
      expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
    }
  });

  it('accepts the bounds of a range', () => {
    expect(loadConfig({ CHRONICLE_PORT: '0' }).port).toBe(0);
    expect(loadConfig({ CHRONICLE_PORT: '65535' }).port).toBe(65535);
    expect(loadConfig({ HTTP_LINGER_MS: '0' }).batch.lingerMillis).toBe(0);
    expect(loadConfig({ PG_POOL_MAX: '2' }).pgPoolMax).toBe(2);
  });

  it('accepts postgres:// and postgresql:// database URLs', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://a@h/db' }).databaseUrl).toBe('postgres://a@h/db');
    expect(loadConfig({ DATABASE_URL: 'postgresql://a@h/db' }).databaseUrl).toBe('postgresql://a@h/db');
  });

  it('accepts nats, tls, ws and wss NATS URLs', () => {
    for (const url of ['nats://n:4222', 'tls://n:4443', 'ws://n:8080', 'wss://n:443']) {
      expect(loadConfig({ NATS_URL: url }).natsUrl).toBe(url);
    }
  });
});

describe('loadConfig - embedded default', () => {
  it('with DATABASE_URL Chronicle listens on every interface; without, on loopback unless CHRONICLE_HOST says', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://a@h/db' }).host).toBe('0.0.0.0');
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(loadConfig({ CHRONICLE_HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
  });
});

describe('loadConfig - NATS can be disabled', () => {
  it("NATS_URL 'none' disables NATS", () => {
    expect(loadConfig({ NATS_URL: 'none' }).natsUrl).toBeUndefined();
  });

  it('an empty NATS_URL disables NATS instead of meaning the default', () => {
    expect(loadConfig({ NATS_URL: '' }).natsUrl).toBeUndefined();
  });

  it('an unset NATS_URL means no NATS (HTTP and OTLP ingest only)', () => {
    expect(loadConfig({}).natsUrl).toBeUndefined();
  });
});

describe('loadConfig - OTLP over NATS', () => {
  it('is off unless enabled, even with NATS', () => {
    expect(loadConfig({ NATS_URL: 'nats://n:4222' }).otlpNats).toBeUndefined();
    expect(
      loadConfig({ NATS_URL: 'nats://n:4222', CHRONICLE_OTLP_NATS_ENABLED: 'false' }).otlpNats,
    ).toBeUndefined();
  });

  it('enabled: stream OTLP_TRACES on otlp.traces, with the JetStream tunables and the namespace', () => {
    expect(
      loadConfig({
        NATS_URL: 'nats://n:4222',
        CHRONICLE_NATS_NAMESPACE: 'T1_',
        CHRONICLE_OTLP_NATS_ENABLED: '1',
        BUFFER_MAX_SIZE: '500',
      }).otlpNats,
    ).toEqual({
      stream: 'OTLP_TRACES',
      subjects: ['otlp.traces'],
      namespace: 'T1_',
      maxDeliver: 3,
      ackWaitMillis: 5_000,
      fetchBatch: 500,
      maxAckPending: 500,
    });
  });

  it('enabled without NATS is a configuration error that says what is missing', () => {
    for (const NATS_URL of [undefined, '', 'none']) {
      expect(configError({ NATS_URL, CHRONICLE_OTLP_NATS_ENABLED: 'true' }).problems).toEqual([
        'CHRONICLE_OTLP_NATS_ENABLED: OTLP over NATS needs NATS: set NATS_URL',
      ]);
    }
  });

  it('refuses a stream name a JetStream stream cannot have, and subjects that are not NATS subjects', () => {
    expect(
      configError({
        NATS_URL: 'nats://n:4222',
        CHRONICLE_OTLP_NATS_ENABLED: 'yes',
        CHRONICLE_OTLP_NATS_STREAM: 'otlp.traces',
        CHRONICLE_OTLP_NATS_SUBJECTS: 'otlp traces',
      }).problems,
    ).toEqual([
      'CHRONICLE_OTLP_NATS_ENABLED: must be true or false',
      'CHRONICLE_OTLP_NATS_STREAM: may only contain letters, digits, _ and -',
      'CHRONICLE_OTLP_NATS_SUBJECTS: must be comma-separated NATS subjects; "otlp traces" is not one',
    ]);
    for (const subjects of [',', 'otlp..traces', 'otlp.traces.']) {
      expect(configError({ CHRONICLE_OTLP_NATS_SUBJECTS: subjects }).problems).toEqual([
        expect.stringMatching(/^CHRONICLE_OTLP_NATS_SUBJECTS: must be comma-separated NATS subjects/),
      ]);
    }
  });
});

describe('loadConfig - an invalid environment', () => {
  it('throws ConfigError naming every bad variable at once', () => {
    const err = configError({
      CHRONICLE_PORT: 'eighty',
      DATABASE_URL: 'mysql://root@127.0.0.1/chronicle',
      NATS_URL: 'http://127.0.0.1:4222',
      CHRONICLE_NATS_NAMESPACE: 'has.dots',
      BATCH_FLUSH_THRESHOLD: '0',
      PG_POOL_MAX: '1.5',
      LOG_LEVEL: 'loud',
      SHUTDOWN_TIMEOUT_MS: '-1',
      // Valid ones are not reported.
      BUFFER_MAX_SIZE: '500',
    });
    expect(err.name).toBe('ConfigError');
    const named = err.problems.map((p) => p.split(':')[0]);
    expect(named.sort()).toEqual(
      [
        'BATCH_FLUSH_THRESHOLD',
        'CHRONICLE_NATS_NAMESPACE',
        'CHRONICLE_PORT',
        'DATABASE_URL',
        'LOG_LEVEL',
        'NATS_URL',
        'PG_POOL_MAX',
        'SHUTDOWN_TIMEOUT_MS',
      ].sort(),
    );
    for (const problem of err.problems) expect(err.message).toContain(problem);
  });

  it('says what is wrong with each variable', () => {
    const { problems } = configError({
      CHRONICLE_PORT: 'eighty',
      BATCH_FLUSH_THRESHOLD: '0',
      PG_POOL_MAX: '1.5',
      FLUSH_CONCURRENCY: '17',
      DATABASE_URL: 'not a url',
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'CHRONICLE_PORT: must be a whole number',
        'BATCH_FLUSH_THRESHOLD: must be at least 1',
        'PG_POOL_MAX: must be a whole number',
        'FLUSH_CONCURRENCY: must be at most 16',
        'DATABASE_URL: must be a URL starting with postgres:// or postgresql://',
      ]),
    );
    expect(problems).toHaveLength(5);
  });

  it('rejects a port outside 0..65535', () => {
    expect(configError({ CHRONICLE_PORT: '-1' }).problems).toEqual([
      'CHRONICLE_PORT: must be a whole number',
    ]);
    expect(configError({ CHRONICLE_PORT: '65536' }).problems).toEqual([
      'CHRONICLE_PORT: must be at most 65535',
    ]);
  });

  it('accepts only decimal digits for numbers: hex, exponents and fractions are errors', () => {
    for (const value of ['0x10', '1e3', '1.5', '12abc']) {
      expect(configError({ BATCH_FLUSH_THRESHOLD: value }).problems).toEqual([
        'BATCH_FLUSH_THRESHOLD: must be a whole number',
      ]);
    }
  });

  it('treats a whitespace-only value as unset', () => {
    expect(loadConfig({ CHRONICLE_PORT: '  ', BATCH_FLUSH_INTERVAL_MS: ' ' }).port).toBe(8700);
  });

  it('rejects an unknown log level', () => {
    expect(configError({ LOG_LEVEL: 'verbose' }).problems).toEqual([expect.stringMatching(/^LOG_LEVEL: /)]);
  });

  it('rejects a NATS_URL that is neither a NATS URL nor none', () => {
    expect(configError({ NATS_URL: 'None' }).problems).toEqual([expect.stringMatching(/^NATS_URL: /)]);
    expect(configError({ NATS_URL: '127.0.0.1:4222' }).problems).toEqual([
      expect.stringMatching(/^NATS_URL: /),
    ]);
  });
});

describe("loadConfig - the sources' config slices", () => {
  it('every variable of every slice is read (and covered by the test above)', () => {
    for (const shape of [HTTP_INGEST_ENV, JETSTREAM_ENV, OTLP_HTTP_ENV, OTLP_NATS_ENV]) {
      for (const name of Object.keys(shape)) expect(Object.keys(EVERY_VARIABLE)).toContain(name);
    }
  });

  it("a slice's variables are checked like the others, every problem at once", () => {
    expect(
      configError({
        INGEST_MAX_BODY_BYTES: '1023',
        JETSTREAM_MAX_DELIVER: '0',
        JETSTREAM_ACK_WAIT_MS: '999',
        JETSTREAM_FETCH_BATCH: '10001',
        CHRONICLE_OTLP_PORT: '65536',
        OTLP_MAX_BODY_BYTES: '1k',
      }).problems,
    ).toEqual([
      'INGEST_MAX_BODY_BYTES: must be at least 1024',
      'JETSTREAM_MAX_DELIVER: must be at least 1',
      'JETSTREAM_ACK_WAIT_MS: must be at least 1000',
      'JETSTREAM_FETCH_BATCH: must be at most 10000',
      'CHRONICLE_OTLP_PORT: must be at most 65535',
      'OTLP_MAX_BODY_BYTES: must be a whole number',
    ]);
  });

  it('the OTLP port is used only when the receiver is enabled (true, 1, any case)', () => {
    expect(loadConfig({ CHRONICLE_OTLP_PORT: '14318' }).otlpReceiver.dedicatedPort).toBeUndefined();
    expect(loadConfig({ CHRONICLE_OTLP_ENABLED: '0' }).otlpReceiver.dedicatedPort).toBeUndefined();
    expect(loadConfig({ CHRONICLE_OTLP_ENABLED: 'TRUE' }).otlpReceiver.dedicatedPort).toBe(4318);
    expect(
      loadConfig({ CHRONICLE_OTLP_ENABLED: '1', CHRONICLE_OTLP_PORT: '0' }).otlpReceiver.dedicatedPort,
    ).toBe(0);
  });

  it('the OTLP-over-NATS fetch batch is JETSTREAM_FETCH_BATCH, bounded by BUFFER_MAX_SIZE', () => {
    const nats = { NATS_URL: 'nats://n:4222', CHRONICLE_OTLP_NATS_ENABLED: 'true' };
    expect(loadConfig({ ...nats, JETSTREAM_FETCH_BATCH: '50' }).otlpNats?.fetchBatch).toBe(50);
    expect(loadConfig({ ...nats, JETSTREAM_FETCH_BATCH: '50' }).jetstream.fetchBatch).toBe(50);
    expect(loadConfig({ ...nats, JETSTREAM_FETCH_BATCH: '800', BUFFER_MAX_SIZE: '600' }).otlpNats).toEqual(
      expect.objectContaining({ fetchBatch: 600, maxAckPending: 600 }),
    );
  });
});
