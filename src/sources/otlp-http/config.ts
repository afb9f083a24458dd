import { type EnvOf, bool, int } from '../../pipeline/env.js';
import type { OtlpReceiverOptions } from './otlp-receiver.js';

/**
 * The configuration slice of the OTLP/HTTP receiver: its variables (composed into the schema of
 * src/config.ts, the only reader of process.env) and the options they give.
 */

/** The variables of the slice. */
export const OTLP_HTTP_ENV = {
  // OTLP/HTTP receiver: always on the API port; on its own port too when enabled.
  CHRONICLE_OTLP_ENABLED: bool.default(false),
  CHRONICLE_OTLP_PORT: int(0, 65535).default(4318),
  OTLP_MAX_BODY_BYTES: int(1024).default(5 * 1024 * 1024),
};

/** The slice's variables once parsed. */
export type OtlpHttpEnv = EnvOf<typeof OTLP_HTTP_ENV>;

/** What the variables set: the receiver's body limit, and whether it has a port of its own. */
export interface OtlpHttpConfig extends Pick<OtlpReceiverOptions, 'maxBodyBytes'> {
  /** Also serve POST /v1/traces on its own port (it is always on the API port). */
  dedicatedPort: number | undefined;
}

/** The slice's part of the configuration. */
export function otlpHttpOptions(e: OtlpHttpEnv): OtlpHttpConfig {
  return {
    dedicatedPort: e.CHRONICLE_OTLP_ENABLED ? e.CHRONICLE_OTLP_PORT : undefined,
    maxBodyBytes: e.OTLP_MAX_BODY_BYTES,
  };
}
