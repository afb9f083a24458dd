/**
 * classify(): one table of errors, and what each of its three callers decides from it — the event writer
 * (isolate the row as a reject, or retry the batch whole), the API (503 or 500) and the span exporter
 * (the backend refused these spans, or an outage). The callers are exercised through their own code.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { describeError } from '../../../src/api/app.js';
import { type ErrorClass, PermanentError, RetryableError, classify } from '../../../src/pipeline/errors.js';
import type { WriteRecord } from '../../../src/pipeline/records.js';
import { createEventWriter } from '../../../src/sinks/postgres/event-writer.js';
import { refusedByBackend } from '../../../src/spans/span-export.js';
import { silentLogger } from '../../../src/telemetry/logger.js';

const coded = (code: string | number, message = `failed with ${code}`): Error =>
  Object.assign(new Error(message), { code });

interface Case {
  name: string;
  err: unknown;
  cls: ErrorClass;
  /** The event writer: `reject` isolates the record and records it; `retry` keeps the batch for a retry. */
  writer: 'reject' | 'retry';
  /** The API's answer. */
  api: 503 | 500;
  /** The span exporter: `refused` sets the spans aside with their own backoff; `retry` is an outage. */
  exporter: 'refused' | 'retry';
}

const unavailable = { cls: 'unavailable', writer: 'retry', api: 503, exporter: 'retry' } as const;
const permanent = { cls: 'permanent', writer: 'reject', api: 500, exporter: 'refused' } as const;
const unknown = { cls: 'unknown', writer: 'retry', api: 500, exporter: 'retry' } as const;

const CASES: Case[] = [
  // SQLSTATE classes: data errors are the row's fault.
  { name: 'SQLSTATE 21000 cardinality violation', err: coded('21000'), ...permanent },
  { name: 'SQLSTATE 22P05 untranslatable character', err: coded('22P05'), ...permanent },
  { name: 'SQLSTATE 22001 value too long', err: coded('22001'), ...permanent },
  { name: 'SQLSTATE 23505 unique violation', err: coded('23505'), ...permanent },
  { name: 'SQLSTATE 54000 program limit (index row too large)', err: coded('54000'), ...permanent },
  // …connection, resources and operator intervention are the moment's.
  { name: 'SQLSTATE 08006 connection failure', err: coded('08006'), ...unavailable },
  { name: 'SQLSTATE 53300 too many connections', err: coded('53300'), ...unavailable },
  { name: 'SQLSTATE 57P01 admin shutdown', err: coded('57P01'), ...unavailable },
  { name: 'SQLSTATE 57014 query canceled', err: coded('57014'), ...unavailable },
  // …and anything else is neither: retried whole by the writer (a bug must not reject every input), a 500.
  { name: 'SQLSTATE 42601 syntax error (a bug)', err: coded('42601'), ...unknown },
  { name: 'SQLSTATE 42P01 undefined table', err: coded('42P01'), ...unknown },
  { name: 'SQLSTATE 40P01 deadlock', err: coded('40P01'), ...unknown },
  { name: 'SQLSTATE XX000 internal error', err: coded('XX000'), ...unknown },
  // Network errnos.
  ...['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE'].map((code) => ({
    name: `errno ${code}`,
    err: coded(code),
    ...unavailable,
  })),
  { name: 'errno EACCES', err: coded('EACCES'), ...unknown },
  // node-postgres's own connection errors, which carry no code.
  { name: 'pg: connect timeout', err: new Error('timeout exceeded when trying to connect'), ...unavailable },
  { name: 'pg: Connection terminated', err: new Error('Connection terminated unexpectedly'), ...unavailable },
  {
    name: 'pg: connection timeout',
    err: new Error('Query read timeout; connection timeout'),
    ...unavailable,
  },
  { name: 'a plain error', err: new Error('something broke'), ...unknown },
  // AggregateError: every address of a host refused, or a mix.
  {
    name: 'AggregateError of refused connections',
    err: new AggregateError([coded('ECONNREFUSED'), coded('ECONNREFUSED')], 'connect failed'),
    ...unavailable,
  },
  {
    name: 'AggregateError with a code of its own',
    err: Object.assign(new AggregateError([], 'x'), { code: 'ECONNREFUSED' }),
    ...unavailable,
  },
  {
    name: 'AggregateError with one unavailable error among others',
    err: new AggregateError([new Error('odd'), coded('ETIMEDOUT')], 'connect failed'),
    ...unavailable,
  },
  {
    name: 'AggregateError of data errors (no code of its own)',
    err: new AggregateError([coded('23505'), coded('22001')], 'several failed'),
    ...unknown,
  },
  // HTTP statuses, as the OTLP exporters report them (a numeric code).
  { name: 'HTTP 400', err: coded(400), ...permanent },
  { name: 'HTTP 404', err: coded(404), ...permanent },
  { name: 'HTTP 413 too large', err: coded(413), ...permanent },
  { name: 'HTTP 408 request timeout', err: coded(408), ...unavailable },
  { name: 'HTTP 429 too many requests', err: coded(429), ...unavailable },
  { name: 'HTTP 502', err: coded(502), ...unavailable },
  { name: 'HTTP 503', err: coded(503), ...unavailable },
  { name: 'HTTP 504', err: coded(504), ...unavailable },
  { name: 'HTTP 500', err: coded(500), ...unknown },
  // Chronicle's own error classes.
  { name: 'PermanentError', err: new PermanentError('bad input'), ...permanent },
  { name: 'RetryableError', err: new RetryableError('database is down'), ...unavailable },
  // Not an Error at all.
  { name: 'a thrown string', err: 'ECONNREFUSED', ...unknown },
  { name: 'a plain object with a SQLSTATE', err: { code: '23505', message: 'x' }, ...unknown },
];

/**
 * A pool whose connection throws `err` at the first statement of a transaction and then succeeds, so
 * that the writer's decision shows: a reject recorded in its place, or the write retried.
 */
function poolFailingOnce(err: unknown): pg.Pool {
  let failed = false;
  const client = {
    // eslint-disable-next-line @typescript-eslint/require-await -- throws inside the promise, as pg does
    async query(sql: string) {
      if (sql !== 'BEGIN' && sql !== 'COMMIT' && sql !== 'ROLLBACK' && !failed) {
        failed = true;
        throw err;
      }
      return { rows: [] };
    },
    on() {},
    off() {},
    release() {},
  };
  return { connect: () => Promise.resolve(client) } as unknown as pg.Pool;
}

const record: WriteRecord = {
  kind: 'event',
  input: { origin: 'http', subject: null, key: null },
  event: {
    event_id: '00000000-0000-4000-8000-000000000001',
    trace_id: 'task-1',
    source: 'test',
    event_type: 'task.created',
    timestamp: '2026-01-01T00:00:00.000Z',
    metadata: {},
  },
};

async function writerDecides(err: unknown): Promise<Case['writer']> {
  const writer = createEventWriter({ pool: poolFailingOnce(err), logger: silentLogger() });
  try {
    const { results } = await writer.write([record]);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ status: 'rejected', reason: 'write_failed' });
    return 'reject';
  } catch (thrown) {
    expect(thrown).toBeInstanceOf(RetryableError);
    return 'retry';
  }
}

describe('classify - one decision for the writer, the API and the exporter', () => {
  it.each(CASES)('$name: $cls', async (c) => {
    expect(classify(c.err)).toBe(c.cls);
    expect(await writerDecides(c.err)).toBe(c.writer);
    expect(describeError(c.err).status).toBe(c.api);
    if (c.err === undefined || c.err instanceof Error) {
      expect(refusedByBackend(c.err) ? 'refused' : 'retry').toBe(c.exporter);
    }
  });

  it('classify - an export that failed without an error is an outage', () => {
    expect(classify(undefined)).toBe('unknown');
    expect(refusedByBackend(undefined)).toBe(false);
  });
});
