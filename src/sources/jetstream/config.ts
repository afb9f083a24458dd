import { type EnvOf, int } from '../../pipeline/env.js';
import { DEFAULT_JETSTREAM_OPTIONS, type JetStreamSourceOptions } from './jetstream-source.js';

/**
 * The configuration slice of the JetStream source: its variables (composed into the schema of
 * src/config.ts, the only reader of process.env) and the tunables they give. The OTLP-over-NATS source
 * uses the same tunables. NATS_URL and CHRONICLE_NATS_NAMESPACE stay in src/config.ts: the connection
 * and the namespace are shared by every NATS user.
 */

/** The variables of the slice. */
export const JETSTREAM_ENV = {
  JETSTREAM_MAX_DELIVER: int(1, 1000).default(DEFAULT_JETSTREAM_OPTIONS.maxDeliver),
  JETSTREAM_ACK_WAIT_MS: int(1000, 3_600_000).default(DEFAULT_JETSTREAM_OPTIONS.ackWaitMillis),
  JETSTREAM_FETCH_BATCH: int(1, 10_000).default(DEFAULT_JETSTREAM_OPTIONS.fetchBatch),
};

/** The slice's variables once parsed. */
export type JetStreamEnv = EnvOf<typeof JETSTREAM_ENV>;

/** The consumer tunables the variables set (the fetch batch is bounded by the buffer when wired). */
export type JetStreamConfig = Pick<JetStreamSourceOptions, 'maxDeliver' | 'ackWaitMillis' | 'fetchBatch'>;

/** The slice's part of the configuration. */
export function jetstreamOptions(e: JetStreamEnv): JetStreamConfig {
  return {
    maxDeliver: e.JETSTREAM_MAX_DELIVER,
    ackWaitMillis: e.JETSTREAM_ACK_WAIT_MS,
    fetchBatch: e.JETSTREAM_FETCH_BATCH,
  };
}
