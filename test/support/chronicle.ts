/**
 * Runs Chronicle in-process for integration tests: a fresh database and a unique NATS namespace per
 * environment, any number of Chronicle instances on them (replicas share both), publishing helpers,
 * and a cleanup that leaves nothing behind (instances stopped, streams deleted, database dropped).
 */
import { randomBytes } from 'node:crypto';
import {
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  type PubAck,
  connect,
} from 'nats';
import type pg from 'pg';
import { type Chronicle, createChronicle } from '../../src/chronicle.js';
import { STREAM_DEFAULTS } from '../../src/api/stream/event-stream.js';
import { type AuthConfig, authOptions } from '../../src/api/auth/config.js';
import type { Config, StreamConfig } from '../../src/config.js';
import type { CanonicalEvent } from '../../src/events/schema.js';
import {
  ADVISORY_STREAM,
  DEFAULT_STREAMS,
  durableName,
} from '../../src/sources/jetstream/jetstream-source.js';
import { type Logger, createLogger, silentLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { type TestDatabase, createTestDatabase } from './db.js';
import { NATS_URL } from './services.js';

// Beside the instances whose counters tests read; it lives apart so that unit tests need not load this file.
export { counterValue } from './metric-values.js';

/** Polls until `predicate` returns something truthy and returns it; a throwing predicate counts as not yet. */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMillis = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMillis;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMillis} ms waiting for ${what}${cause}`);
    }
    await sleep(50);
  }
}

export function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis));
}

/**
 * The subject a swarm component publishes an event on (the payload carries its event_type): task.*,
 * agent.* and system.* under swarm. (TASK_EVENTS, SYSTEM_EVENTS), anything else under swarm.lifecycle.
 */
export function subjectOf(event: CanonicalEvent): string {
  const head = event.event_type.split('.')[0];
  return head === 'task' || head === 'agent' || head === 'system'
    ? `swarm.${event.event_type}`
    : `swarm.lifecycle.${event.event_type}`;
}

/** Tunables a test may change; everything else is a small, fast default. */
export interface ChronicleOverrides {
  batch?: Partial<Config['batch']>;
  jetstream?: Partial<Config['jetstream']>;
  ingestMaxBodyBytes?: number;
  pgPoolMax?: number;
  /** Serve OTLP/HTTP on its own port too (0: any free port). */
  otlpPort?: number;
  spans?: Partial<Config['spans']>;
  /** Export spans to this OTLP endpoint. */
  export?: Config['export'];
  links?: Partial<Config['links']>;
  /** Consume OTLP traces from NATS with these options. */
  otlpNats?: Config['otlpNats'];
  /** The live stream's tunables (the rest its defaults). */
  stream?: Partial<StreamConfig>;
  /**
   * API tokens, as CHRONICLE_API_TOKENS would give them (`reader:read:t0ken,…`); parsed by the same
   * code. Omitted: no access control.
   */
  apiTokens?: string;
  /** The interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Where the instance logs (default: silent, or CHRONICLE_TEST_LOG_LEVEL). */
  logger?: Logger;
  /** Retention and scheduled maintenance; absent: the default policy, no scheduled pass. */
  retention?: Config['retention'];
}

/** One Chronicle instance started by a test. */
export interface TestChronicle {
  readonly chronicle: Chronicle;
  readonly config: Config;
  /** Base URL of its HTTP API. */
  readonly url: string;
  /** Graceful shutdown (as on SIGTERM): stops intake, flushes, settles, closes. */
  stop(deadlineMillis?: number): Promise<void>;
  /** Shutdown whose deadline has already passed: nothing still unwritten is waited for. */
  crash(): Promise<void>;
}

/** A database and a NATS namespace that Chronicle instances of one test share. */
export interface ChronicleTestEnv {
  readonly db: TestDatabase;
  /** Prefix of stream names (`T1A2B3C4D_`); subjects use it lower-cased. */
  readonly namespace: string;
  /** The test's own NATS connection; undefined when the environment has no NATS. */
  readonly nc: NatsConnection | undefined;
  /** Starts an instance on this environment and waits until it reports ready. */
  start(overrides?: ChronicleOverrides): Promise<TestChronicle>;
  /** `TASK_EVENTS` → `T1A2B3C4D_TASK_EVENTS`. */
  streamName(stream: string): string;
  /** `swarm.task.created` → `t1a2b3c4d_swarm.task.created`. */
  subject(local: string): string;
  jsm(): JetStreamManager;
  js(): JetStreamClient;
  /** Acked JetStream publish, for a few messages. `payload` objects are sent as JSON, strings as they are. */
  publish(localSubject: string, payload: unknown): Promise<PubAck>;
  /**
   * Fast core-NATS publishes, then waits until the namespace's streams hold that many more messages
   * (the acked publish is too slow for thousands of messages).
   */
  publishBulk(messages: readonly { subject: string; payload: unknown }[]): Promise<void>;
  /** Messages stored in one of the namespace's streams (`TASK_EVENTS`, ...). */
  streamMessages(stream: string): Promise<number>;
  /** Info of Chronicle's durable consumer on one of the namespace's streams. */
  consumerInfo(stream: string): Promise<ConsumerInfo>;
  /** True when every durable of the namespace has nothing pending and nothing waiting for an ack. */
  consumersSettled(): Promise<boolean>;
  /** Stops every instance still running, deletes the namespace's streams, drops the database. */
  cleanup(): Promise<void>;
}

const EVENT_STREAMS = DEFAULT_STREAMS.map((s) => s.name);
const ALL_STREAMS = [...EVENT_STREAMS, ADVISORY_STREAM];

/** CHRONICLE_TEST_LOG_LEVEL=debug shows the logs of the instances under test; silent otherwise. */
function testLogger(): Logger {
  const level = process.env.CHRONICLE_TEST_LOG_LEVEL;
  return level ? createLogger({ level, name: 'chronicle-test' }) : silentLogger();
}

/** The clients of CHRONICLE_API_TOKENS-style entries; throws on a bad entry, as Chronicle's start would. */
function apiTokens(value: string): AuthConfig {
  const { auth, problems } = authOptions({ CHRONICLE_API_TOKENS: value });
  if (auth === undefined || problems.length > 0) throw new Error(problems.join('; ') || 'no API token');
  return auth;
}

function encode(payload: unknown): string | Uint8Array {
  if (typeof payload === 'string' || payload instanceof Uint8Array) return payload;
  return JSON.stringify(payload);
}

export async function createChronicleTestEnv(options: { nats?: boolean } = {}): Promise<ChronicleTestEnv> {
  const withNats = options.nats ?? true;
  const namespace = `T${randomBytes(4).toString('hex').toUpperCase()}_`;
  const db = await createTestDatabase();
  let nc: NatsConnection | undefined;
  let jsm: JetStreamManager | undefined;
  let js: JetStreamClient | undefined;
  if (withNats) {
    try {
      nc = await connect({ servers: NATS_URL, name: `chronicle-test-${namespace}` });
      jsm = await nc.jetstreamManager();
      js = nc.jetstream();
    } catch (err) {
      await db.drop();
      throw err;
    }
  }
  const running = new Set<TestChronicle>();

  const streamName = (stream: string): string => `${namespace}${stream}`;
  const needJsm = (): JetStreamManager => {
    if (!jsm) throw new Error('this test environment has no NATS');
    return jsm;
  };

  async function streamMessages(stream: string): Promise<number> {
    try {
      return (await needJsm().streams.info(streamName(stream))).state.messages;
    } catch (err) {
      if (/stream not found/i.test((err as Error).message)) return 0;
      throw err;
    }
  }

  async function totalMessages(): Promise<number> {
    const counts = await Promise.all(EVENT_STREAMS.map(streamMessages));
    return counts.reduce((a, b) => a + b, 0);
  }

  const env: ChronicleTestEnv = {
    db,
    namespace,
    nc,
    streamName,
    subject: (local) => `${namespace.toLowerCase()}${local}`,
    jsm: needJsm,
    js() {
      if (!js) throw new Error('this test environment has no NATS');
      return js;
    },

    async start(overrides = {}) {
      const config: Config & { databaseUrl: string } = {
        port: 0,
        host: overrides.host ?? '127.0.0.1',
        databaseUrl: db.url,
        embedded: { dataDir: '.chronicle', port: 0 },
        natsUrl: withNats ? NATS_URL : undefined,
        natsNamespace: namespace,
        batch: {
          flushIntervalMillis: 50,
          flushThresholdEvents: 1000,
          maxBufferEvents: 20_000,
          maxBufferBytes: 64 * 1024 * 1024,
          lingerMillis: 20,
          maxConcurrentFlushes: 2,
          ...overrides.batch,
        },
        ingestMaxBodyBytes: overrides.ingestMaxBodyBytes ?? 5 * 1024 * 1024,
        jetstream: { maxDeliver: 3, ackWaitMillis: 30_000, fetchBatch: 1000, ...overrides.jetstream },
        pgPoolMax: overrides.pgPoolMax ?? 4,
        shutdownTimeoutMillis: 10_000,
        heapGrowthPercent: 100,
        logLevel: 'silent',
        otlpReceiver: {
          dedicatedPort: overrides.otlpPort,
          maxBodyBytes: overrides.ingestMaxBodyBytes ?? 5 * 1024 * 1024,
        },
        spans: { settleMillis: 0, maxDelayMillis: 0, concurrency: 2, batchTraces: 100, ...overrides.spans },
        export: overrides.export,
        resource: { serviceName: 'chronicle', attributes: {} },
        links: {
          jaegerUiUrl: undefined,
          grafanaUrl: undefined,
          tempoDatasourceUid: 'tempo',
          ...overrides.links,
        },
        otlpNats: overrides.otlpNats,
        stream: overrides.stream && { ...STREAM_DEFAULTS, ...overrides.stream },
        auth: overrides.apiTokens === undefined ? undefined : apiTokens(overrides.apiTokens),
        retention: overrides.retention,
      };
      const chronicle = createChronicle(config, {
        logger: overrides.logger ?? testLogger(),
        metrics: createMetrics({ defaultMetrics: false }),
      });
      let stopped: Promise<void> | undefined;
      const shutdown = (signal: AbortSignal): Promise<void> => {
        stopped ??= chronicle.shutdown(signal).finally(() => running.delete(instance));
        return stopped;
      };
      const instance: TestChronicle = {
        chronicle,
        config,
        get url() {
          return chronicle.url();
        },
        stop: (deadlineMillis = 10_000) => shutdown(AbortSignal.timeout(deadlineMillis)),
        crash: () => shutdown(AbortSignal.abort()),
      };
      running.add(instance);
      try {
        await chronicle.start();
        await waitFor(async () => (await chronicle.health()).ready, 20_000, 'Chronicle to be ready');
      } catch (err) {
        await instance.crash();
        throw err;
      }
      return instance;
    },

    async publish(localSubject, payload) {
      return env.js().publish(env.subject(localSubject), encode(payload));
    },

    async publishBulk(messages) {
      if (!nc) throw new Error('this test environment has no NATS');
      const before = await totalMessages();
      for (const m of messages) nc.publish(env.subject(m.subject), encode(m.payload));
      await nc.flush();
      const expected = before + messages.length;
      await waitFor(
        async () => (await totalMessages()) >= expected,
        30_000,
        `${messages.length} messages to be stored in the streams`,
      );
    },

    streamMessages,

    consumerInfo(stream) {
      const name = streamName(stream);
      return needJsm().consumers.info(name, durableName(name));
    },

    async consumersSettled() {
      const infos = await Promise.all(ALL_STREAMS.map((s) => env.consumerInfo(s)));
      return infos.every((i) => i.num_pending === 0 && i.num_ack_pending === 0);
    },

    async cleanup() {
      await Promise.allSettled([...running].map((c) => c.stop(5_000)));
      if (jsm) {
        for (const stream of ALL_STREAMS) {
          await jsm.streams.delete(streamName(stream)).catch(() => undefined);
        }
      }
      await nc?.close();
      await db.drop();
    },
  };
  return env;
}

export async function countRows(pool: pg.Pool, table: string, where = 'true'): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`);
  return rows[0]!.n;
}
