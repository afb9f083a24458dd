import { z } from 'zod';
import { parseTimestamp } from '../events/timestamp.js';
import { REJECT_ORIGINS, TRACE_STATUSES } from '../sinks/postgres/queries.js';

/** Rows per page when `limit` is absent, and the most a client may ask for. */
export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 1000;

/** A query or path parameter the client got wrong; the API answers 400 naming it. */
export class BadParameterError extends Error {
  override readonly name = 'BadParameterError';
  constructor(
    readonly parameter: string,
    readonly why: string,
  ) {
    super(`invalid parameter ${parameter}: ${why}`);
  }
}

// Longer than any stored key (trace_id is at most 256 characters); bounds what reaches Postgres.
const MAX_TEXT_CHARS = 1024;

const text = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_TEXT_CHARS, `must be at most ${MAX_TEXT_CHARS} characters`);

const limit = z
  .string()
  .regex(/^-?\d+$/, 'must be an integer')
  .transform(Number)
  .refine((n) => n >= 1 && n <= MAX_LIMIT, `must be between 1 and ${MAX_LIMIT}`);

/** RFC 3339 (any offset) or epoch milliseconds; becomes RFC 3339 UTC. */
const timestamp = z.string().transform((v, ctx) => {
  const ms = parseTimestamp(/^-?\d+$/.test(v) ? Number(v) : v);
  if (ms !== undefined) return new Date(ms).toISOString();
  ctx.issues.push({
    code: 'custom',
    input: v,
    message: 'must be an RFC 3339 timestamp or epoch milliseconds',
  });
  return z.NEVER;
});

const cursor = z.string().regex(/^[A-Za-z0-9_-]{1,4096}$/, 'is not a valid cursor');

const date = z.string().refine(isUtcDate, 'must be a date YYYY-MM-DD');

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `must be one of ${values.join(', ')}` });

const page = { limit: limit.optional(), cursor: cursor.optional() };

/** Query parameters of each route; any other parameter is refused. */
export const querySchemas = {
  events: z.object({
    trace_id: text.optional(),
    trace_prefix: text.optional(),
    event_type: text.optional(),
    source: text.optional(),
    since: timestamp.optional(),
    until: timestamp.optional(),
    ...page,
  }),
  traces: z.object({
    trace_prefix: text.optional(),
    status: oneOf(TRACE_STATUSES).optional(),
    agent: text.optional(),
    owner: text.optional(),
    since: timestamp.optional(),
    until: timestamp.optional(),
    ...page,
  }),
  dlq: z.object({
    reason: text.optional(),
    source: text.optional(),
    recovered: oneOf(['true', 'false'])
      .transform((v) => v === 'true')
      .optional(),
    ...page,
  }),
  rejects: z.object({
    reason: text.optional(),
    origin: oneOf(REJECT_ORIGINS).optional(),
    ...page,
  }),
  metricsSummary: z.object({ date: date.optional() }),
  none: z.object({}),
} as const;

/** A path segment naming a stored key (trace id, agent id). */
export const pathId = text;

function isUtcDate(value: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!m || Number(m[1]) < 1) return false;
  const d = new Date(0);
  d.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return d.toISOString().slice(0, 10) === value;
}

/** Today's UTC day, YYYY-MM-DD. */
export function todayUtc(now = new Date()): string {
  return now.toISOString().slice(0, 10);
}

/**
 * Validates raw parameters (req.query or req.params) against a schema, or throws BadParameterError
 * for the first problem: an unknown name, a repeated one, a NUL character, or a value the schema refuses.
 */
export function parseParams<S extends z.ZodObject>(schema: S, raw: Record<string, unknown>): z.output<S> {
  for (const [name, value] of Object.entries(raw)) {
    if (!Object.hasOwn(schema.shape, name)) throw new BadParameterError(name, 'unknown parameter');
    if (typeof value !== 'string') throw new BadParameterError(name, 'must be given once');
    // Postgres text cannot hold NUL; refusing it here keeps it from becoming a database error.
    if (value.includes('\u0000')) throw new BadParameterError(name, 'must not contain NUL characters');
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new BadParameterError(String(issue.path[0] ?? 'query'), issue.message);
  }
  return result.data;
}
