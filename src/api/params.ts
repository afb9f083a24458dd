import { z } from 'zod';
import { parseTimestamp } from '../events/timestamp.js';
import { REJECT_ORIGINS, TRACE_STATUSES } from '../sinks/postgres/queries.js';
import { parseStreamPosition } from './stream/position.js';

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

const trueOrFalse = oneOf(['true', 'false']).transform((v) => v === 'true');

// pinned=true lists the pinned traces; there is no list of the traces not pinned.
const onlyTrue = oneOf(['true']).transform(() => true as const);

/** The filters of the events list and of the stream (src/sinks/postgres/queries.ts eventFilterSql). */
const eventFilters = {
  trace_id: text.optional(),
  trace_prefix: text.optional(),
  event_type: text.optional(),
  source: text.optional(),
  since: timestamp.optional(),
  until: timestamp.optional(),
  agent: text.optional(),
  errors: trueOrFalse.optional(),
};

/** A stream position as the stream's `id:` lines give it: `<txid>-<seq>`, both decimal. */
export const streamPosition = z.string().transform((v, ctx) => {
  const position = parseStreamPosition(v);
  if (position !== undefined) return position;
  ctx.issues.push({
    code: 'custom',
    input: v,
    message: 'must be an event id of the stream: <txid>-<seq> (decimal)',
  });
  return z.NEVER;
});

/** Query parameters of each route; any other parameter is refused. */
export const querySchemas = {
  events: z.object({ ...eventFilters, ...page }),
  // The events' filters, and where to resume (the Last-Event-ID header wins; neither: from now).
  stream: z.object({ ...eventFilters, last_event_id: streamPosition.optional() }),
  traces: z.object({
    trace_prefix: text.optional(),
    status: oneOf(TRACE_STATUSES).optional(),
    agent: text.optional(),
    owner: text.optional(),
    since: timestamp.optional(),
    until: timestamp.optional(),
    task: trueOrFalse.optional(),
    pinned: onlyTrue.optional(),
    ...page,
  }),
  // The filters of traces but status (the counts are by status) and paging.
  traceCounts: z.object({
    trace_prefix: text.optional(),
    agent: text.optional(),
    owner: text.optional(),
    since: timestamp.optional(),
    until: timestamp.optional(),
    task: trueOrFalse.optional(),
    pinned: onlyTrue.optional(),
  }),
  dlq: z.object({
    reason: text.optional(),
    source: text.optional(),
    recovered: oneOf(['true', 'false'])
      .transform((v) => v === 'true')
      .optional(),
    trace_id: text.optional(),
    ...page,
  }),
  rejects: z.object({
    reason: text.optional(),
    origin: oneOf(REJECT_ORIGINS).optional(),
    ...page,
  }),
  metricsSummary: z.object({ date: date.optional() }),
  metricsDaily: z.object({ from: date.optional(), to: date.optional(), agent: text.optional() }),
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

/** Days GET /api/v1/metrics/daily covers without `from`, and the most it covers. */
export const DEFAULT_DAILY_DAYS = 14;
export const MAX_DAILY_DAYS = 92;

const DAY_MILLIS = 86_400_000;
const FIRST_DAY = '0001-01-01';

// YYYY-MM-DD of four-digit years compare as strings; anything before year 1 (0000-…, -0000…) sorts first.
const maxDay = (a: string, b: string): string => (a > b ? a : b);

/** A UTC day (YYYY-MM-DD) moved by whole days. */
export function addDays(day: string, days: number): string {
  return new Date(Date.parse(`${day}T00:00:00.000Z`) + days * DAY_MILLIS).toISOString().slice(0, 10);
}

/**
 * The inclusive day range of /api/v1/metrics/daily: `to` defaults to today (UTC), `from` to the
 * DEFAULT_DAILY_DAYS days ending at `to`; throws BadParameterError (naming `from`) when `from` is after
 * `to` or the range is over MAX_DAILY_DAYS days.
 */
export function dailyRange(
  q: { from?: string | undefined; to?: string | undefined },
  today: string,
): { from: string; to: string } {
  const to = q.to ?? today;
  // Days before year 1 are not valid dates: the default range of a `to` in its first days is shorter.
  const from = q.from ?? maxDay(addDays(to, 1 - DEFAULT_DAILY_DAYS), FIRST_DAY);
  if (from > to) throw new BadParameterError('from', `must not be after to (${to})`);
  const days = (Date.parse(to) - Date.parse(from)) / DAY_MILLIS + 1;
  if (days > MAX_DAILY_DAYS) {
    throw new BadParameterError('from', `the range is ${days} days; at most ${MAX_DAILY_DAYS}`);
  }
  return { from, to };
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
