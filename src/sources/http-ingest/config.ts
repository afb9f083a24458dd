import { type EnvOf, int } from '../../pipeline/env.js';
import type { HttpIngestOptions } from './http-ingest.js';

/**
 * The configuration slice of HTTP ingest: its variables (composed into the schema of src/config.ts,
 * the only reader of process.env) and the options they give.
 */

/** The variables of the slice. */
export const HTTP_INGEST_ENV = {
  INGEST_MAX_BODY_BYTES: int(1024).default(5 * 1024 * 1024),
};

/** The slice's variables once parsed. */
export type HttpIngestEnv = EnvOf<typeof HTTP_INGEST_ENV>;

/** The options the variables set (Retry-After is the wiring's). */
export type HttpIngestConfig = Pick<HttpIngestOptions, 'maxBodyBytes'>;

/** The slice's part of the configuration. */
export function httpIngestOptions(e: HttpIngestEnv): HttpIngestConfig {
  return { maxBodyBytes: e.INGEST_MAX_BODY_BYTES };
}
