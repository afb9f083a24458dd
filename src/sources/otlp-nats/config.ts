import { z } from 'zod';
import { type EnvOf, bool, list } from '../../pipeline/env.js';
import {
  type OtlpNatsSourceOptions,
  DEFAULT_OTLP_NATS_STREAM,
  DEFAULT_OTLP_NATS_SUBJECTS,
} from './otlp-nats-source.js';

/**
 * The configuration slice of the OTLP-over-NATS source: its variables (composed into the schema of
 * src/config.ts, the only reader of process.env) and the options they give. Off unless enabled.
 */

// A JetStream stream name: no whitespace, dots, wildcards or path separators.
const streamName = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9_-]+$/, 'may only contain letters, digits, _ and -');

// Comma-separated NATS subjects: dot-separated tokens without whitespace (wildcards allowed).
const subjects = list('NATS subjects', (s) => /^[^\s.]+(\.[^\s.]+)*$/.test(s));

/** The variables of the slice. */
export const OTLP_NATS_ENV = {
  /** Consume OTLP trace payloads from NATS (requires NATS_URL). */
  CHRONICLE_OTLP_NATS_ENABLED: bool.default(false),
  CHRONICLE_OTLP_NATS_STREAM: streamName.default(DEFAULT_OTLP_NATS_STREAM),
  CHRONICLE_OTLP_NATS_SUBJECTS: subjects.default([...DEFAULT_OTLP_NATS_SUBJECTS]),
};

/** The slice's variables once parsed. */
export type OtlpNatsEnv = EnvOf<typeof OTLP_NATS_ENV>;

/** What the slice takes from the rest of the configuration (its JetStream tunables are shared). */
export interface OtlpNatsShared {
  /** undefined when NATS is disabled. */
  natsUrl: string | undefined;
  namespace: string;
  maxDeliver: number;
  ackWaitMillis: number;
  fetchBatch: number;
  /** BUFFER_MAX_SIZE: bounds the messages pulled at once and those awaiting their ack. */
  maxBufferEvents: number;
}

/** Problems that involve other variables: the variable to name, and what is wrong. */
export function otlpNatsProblems(
  e: OtlpNatsEnv,
  shared: Pick<OtlpNatsShared, 'natsUrl'>,
): { variable: keyof OtlpNatsEnv; message: string }[] {
  return e.CHRONICLE_OTLP_NATS_ENABLED && shared.natsUrl === undefined
    ? [{ variable: 'CHRONICLE_OTLP_NATS_ENABLED', message: 'OTLP over NATS needs NATS: set NATS_URL' }]
    : [];
}

/** The source's options; undefined when it is not enabled. */
export function otlpNatsOptions(e: OtlpNatsEnv, shared: OtlpNatsShared): OtlpNatsSourceOptions | undefined {
  if (!e.CHRONICLE_OTLP_NATS_ENABLED || shared.natsUrl === undefined) return undefined;
  return {
    stream: e.CHRONICLE_OTLP_NATS_STREAM,
    subjects: e.CHRONICLE_OTLP_NATS_SUBJECTS,
    namespace: shared.namespace,
    maxDeliver: shared.maxDeliver,
    ackWaitMillis: shared.ackWaitMillis,
    fetchBatch: Math.min(shared.fetchBatch, shared.maxBufferEvents),
    maxAckPending: shared.maxBufferEvents,
  };
}
