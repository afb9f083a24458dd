import type pg from 'pg';
import { pino } from 'pino';
import type { Config } from '../config.js';
import { createPool, endPool } from '../db/pool.js';
import type { OtlpFormat } from '../events/otlp/decode.js';
import { LIMITS, type PayloadEncoding } from '../events/schema.js';
import type { Origin } from '../pipeline/contracts.js';
import type { RecordInput, WriteRecord } from '../pipeline/records.js';
import { createEventWriter } from '../sinks/postgres/event-writer.js';
import { itemRecord, lineItem } from '../sources/http-ingest/body-items.js';
import { streamMessageRecord } from '../sources/jetstream/message-record.js';
import { namespacedStream } from '../sources/nats/pulled-stream.js';
import { otlpMessageOffers } from '../sources/otlp-nats/message-offers.js';
import { DEFAULT_OTLP_NATS_STREAM } from '../sources/otlp-nats/otlp-nats-source.js';
import { createLogger } from '../telemetry/logger.js';
import { openDatabaseForCommand } from './database.js';

/*
 * `chronicle replay-rejects`: feeds the raw payloads of recorded rejects back through the path their
 * source takes (the same conversion, the same event writer), so that input given up on (max_deliver)
 * or refused by a write (write_failed) is stored once its cause is gone. Safe to repeat: every
 * rebuilt input has the event_id its first delivery had (or, for HTTP input sent without one, a stable
 * one derived from the reject), so a second replay stores nothing twice.
 */

/** The reasons replayed when none is named: input that was fine, and failed for a passing cause. */
export const DEFAULT_REPLAY_REASONS: readonly string[] = ['max_deliver', 'write_failed'];

/** Rejects read per page (and written per transaction). */
const PAGE_ROWS = 200;

export interface ReplayOptions {
  /** Reject reasons to replay. */
  reasons: readonly string[];
  origin?: Origin | undefined;
  /** Rejects recorded at or after this time… */
  since?: Date | undefined;
  /** …and before this one. */
  until?: Date | undefined;
  /** Convert and check against the store, write nothing (the counts say what a replay would do). */
  dryRun: boolean;
  /** The most rejects one run reads. */
  limit: number;
  /** One JSON line on stdout instead of the table. */
  json: boolean;
}

/** What a run did, by reject (one reject is one input: a message, an HTTP item, an OTLP body). */
export interface ReplayReport {
  /** Rejects that match the filters (at most the limit). */
  matched: number;
  /** Rejects whose input stored something new. */
  stored: number;
  /** Rejects whose input was stored already (by its first delivery or an earlier replay). */
  duplicates: number;
  /** Rejects whose input is still refused, counted by the reason in `invalid_reasons`. */
  invalid: number;
  /** Rejects that cannot be rebuilt, counted by why in `skipped_reasons`. */
  skipped: number;
  invalid_reasons: Record<string, number>;
  skipped_reasons: Record<string, number>;
  dry_run: boolean;
}

/** One row of chronicle_rejects, as replay reads it. */
interface RejectToReplay {
  id: number;
  origin: Origin;
  subject: string | null;
  reason: string;
  payload: string;
  payload_bytes: number;
  payload_encoding: PayloadEncoding;
  reject_key: string | null;
  /** The input's default time: input_time, else when it was rejected (rows older than migration 0010). */
  time_millis: number;
}

const PAGE_SQL = `
SELECT id, origin, subject, reason, payload, payload_bytes, payload_encoding, reject_key,
  floor(extract(epoch FROM coalesce(input_time, rejected_at)) * 1000)::bigint AS time_millis
FROM chronicle_rejects
WHERE reason = ANY($1::text[])
  AND ($2::text IS NULL OR origin = $2)
  AND ($3::timestamptz IS NULL OR rejected_at >= $3)
  AND ($4::timestamptz IS NULL OR rejected_at < $4)
  AND id > $5
ORDER BY id
LIMIT $6`;

const MARK_SQL = `
UPDATE chronicle_rejects r SET replayed_at = now(), replay_result = m.result
FROM unnest($1::bigint[], $2::text[]) AS m(id, result)
WHERE r.id = m.id`;

const STORED_EVENTS_SQL = `SELECT event_id::text AS id FROM swarm_event_ids WHERE event_id = ANY($1::uuid[])`;
const STORED_DLQ_SQL = `SELECT dlq_id AS id FROM swarm_dlq WHERE dlq_id = ANY($1::text[])`;

/** Where the NATS sources put their streams: enough to tell an OTLP message from an event. */
export interface ReplayTopology {
  namespace: string;
  /** The OTLP-over-NATS stream, without the namespace. */
  otlpStream: string;
}

/** A reject rebuilt: the records its input gives (events, dead-letter entries, rejects), or why not. */
export type Rebuilt = { records: WriteRecord[] } | { skipped: string };

/** `nats:STREAM:SEQ`, `max_deliver:STREAM:SEQ` and, for a span of an OTLP message, `nats:STREAM:SEQ:I`. */
const STREAM_KEY = /^(?:nats|max_deliver):(.+?):(\d+)(?::(\d+))?$/;

/** OTLP/JSON when the first byte that is not white space opens an object; protobuf otherwise. */
function otlpFormatOfBytes(bytes: Uint8Array): OtlpFormat {
  for (const byte of bytes) {
    if (byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09) continue;
    // A UTF-8 byte order mark before the JSON.
    if (byte === 0xef) continue;
    return byte === 0x7b ? 'json' : 'protobuf';
  }
  return 'protobuf';
}

/**
 * The input a reject holds, rebuilt exactly as its source made it and converted by the source's own
 * code: a NATS event (its stream and sequence give it the event_id its first delivery had), an OTLP
 * request (each span's event_id comes from its ids), an HTTP item; for `write_failed`, the record the
 * store refused (its payload). Not rebuilt: truncated payloads (over 64 KiB), `unstorable` ones, a
 * message no longer in its stream when the server gave up on it, and single spans (their request is
 * not kept).
 */
export function rebuildReject(row: RejectToReplay, topology: ReplayTopology): Rebuilt {
  if (row.reason === 'unstorable') return { skipped: 'unstorable' };
  if (row.payload_bytes > LIMITS.rejectPayloadBytes) return { skipped: 'truncated' };
  const bytes = Buffer.from(row.payload, row.payload_encoding === 'base64' ? 'base64' : 'utf8');
  const replayKey = `replay:${row.id}`;
  if (row.reason === 'write_failed') {
    // The payload is the canonical event (or dead-letter entry) the store refused, JSON.
    const item = lineItem(bytes, 'the payload');
    if (item.parsed.ok && isDlqEntry(item.parsed.value)) return { skipped: 'dlq_entry' };
    const input: RecordInput = { origin: row.origin, subject: row.subject, key: null };
    const ctx = {
      origin: row.origin,
      ...(row.subject === null ? {} : { subject: row.subject }),
      defaultTimeMillis: row.time_millis,
      eventIdKey: `reject:${row.id}`,
    };
    return { records: [itemRecord(item, ctx, input, replayKey)] };
  }
  if (row.origin === 'http') {
    const input: RecordInput = { origin: 'http', subject: null, key: null };
    const ctx = {
      origin: 'http' as const,
      defaultTimeMillis: row.time_millis,
      eventIdKey: `reject:${row.id}`,
    };
    return { records: [itemRecord(lineItem(bytes, 'the item'), ctx, input, replayKey)] };
  }
  if (row.origin === 'otlp') {
    // Only a whole body is kept by its reject; a span's reject holds the span alone.
    if (row.reason !== 'invalid_otlp' && row.reason !== 'invalid_utf8') return { skipped: 'span' };
    const input: RecordInput = { origin: 'otlp', subject: null, key: replayKey };
    return { records: otlpMessageOffers(bytes, otlpFormatOfBytes(bytes), input).map((o) => o.record) };
  }
  const key = STREAM_KEY.exec(row.reject_key ?? '');
  if (key === null) return { skipped: 'no_stream_position' };
  const [, stream, seq, part] = key;
  if (part !== undefined) return { skipped: 'span' };
  if (row.subject === null || row.subject.startsWith('$JS.')) {
    // The server gave up on a message its stream no longer held: only the advisory was kept.
    return { skipped: 'message_gone' };
  }
  const input: RecordInput = { origin: 'nats', subject: row.subject, key: `nats:${stream!}:${seq!}` };
  if (stream === namespacedStream(topology.namespace, topology.otlpStream)) {
    // Older rows hold a protobuf body as base64 without saying so: it is never `{`.
    const data =
      row.payload_encoding === 'utf8' && otlpFormatOfBytes(bytes) === 'protobuf'
        ? Buffer.from(row.payload, 'base64')
        : bytes;
    return { records: otlpMessageOffers(data, otlpFormatOfBytes(data), input).map((o) => o.record) };
  }
  const kind = row.subject.startsWith('dlq.') ? 'dlq' : 'events';
  try {
    return {
      records: [
        streamMessageRecord(
          kind,
          { subject: row.subject, stream: stream!, seq: Number(seq), timeMillis: row.time_millis },
          bytes,
        ),
      ],
    };
  } catch (err) {
    // As the source records it: a payload that breaks normalization itself.
    return { records: [rejectRecord(input, 'invalid_event', (err as Error).message)] };
  }
}

function isDlqEntry(value: unknown): boolean {
  return value !== null && typeof value === 'object' && 'dlq_id' in value && !('event_type' in value);
}

function rejectRecord(input: RecordInput, reason: string, detail: string): WriteRecord {
  return {
    kind: 'reject',
    input,
    reject: {
      origin: input.origin,
      subject: input.subject,
      reason,
      detail,
      payload: '',
      payloadBytes: 0,
      rejectKey: null,
    },
  };
}

/** The outcome of one reject: what goes in replay_result and the report. */
type RowOutcome =
  | { status: 'stored' | 'duplicate' }
  | { status: 'invalid'; reason: string }
  | { status: 'skipped'; reason: string };

function resultText(o: RowOutcome): string {
  return o.status === 'invalid' || o.status === 'skipped' ? `${o.status}: ${o.reason}` : o.status;
}

/** A reject's outcome from its records': stored if any stored, else duplicate if any was, else invalid. */
function combine(statuses: readonly ('stored' | 'duplicate' | { invalid: string })[]): RowOutcome {
  if (statuses.includes('stored')) return { status: 'stored' };
  if (statuses.includes('duplicate')) return { status: 'duplicate' };
  const invalid = statuses.find((s): s is { invalid: string } => typeof s === 'object');
  return { status: 'invalid', reason: invalid?.invalid ?? 'nothing_to_store' };
}

/** What the writable records of a page would do, read from the store (a dry run writes nothing). */
async function dryRunStatuses(
  pool: pg.Pool,
  records: readonly WriteRecord[],
): Promise<('stored' | 'duplicate')[]> {
  const eventIds = records.flatMap((r) => (r.kind === 'event' ? [r.event.event_id] : []));
  const dlqIds = records.flatMap((r) => (r.kind === 'dlq' ? [r.entry.dlq_id] : []));
  const [events, dlq] = await Promise.all([
    pool.query<{ id: string }>(STORED_EVENTS_SQL, [eventIds]),
    pool.query<{ id: string }>(STORED_DLQ_SQL, [dlqIds]),
  ]);
  const seen = new Set([...events.rows.map((r) => `e:${r.id}`), ...dlq.rows.map((r) => `d:${r.id}`)]);
  return records.map((r) => {
    const id = r.kind === 'dlq' ? `d:${r.entry.dlq_id}` : r.kind === 'event' ? `e:${r.event.event_id}` : '';
    if (seen.has(id)) return 'duplicate';
    seen.add(id);
    return 'stored';
  });
}

/** Replays the rejects the options select; resolves to the report (writes nothing in a dry run). */
export async function replay(
  pool: pg.Pool,
  options: Omit<ReplayOptions, 'json'>,
  topology: ReplayTopology,
  writer = createEventWriter({ pool, logger: pino({ level: 'silent' }) }),
): Promise<ReplayReport> {
  const report: ReplayReport = {
    matched: 0,
    stored: 0,
    duplicates: 0,
    invalid: 0,
    skipped: 0,
    invalid_reasons: {},
    skipped_reasons: {},
    dry_run: options.dryRun,
  };
  let after = 0;
  while (report.matched < options.limit) {
    const { rows } = await pool.query<RejectToReplay>(PAGE_SQL, [
      options.reasons,
      options.origin ?? null,
      options.since ?? null,
      options.until ?? null,
      after,
      Math.min(PAGE_ROWS, options.limit - report.matched),
    ]);
    if (rows.length === 0) break;
    after = rows.at(-1)!.id;
    report.matched += rows.length;

    const rebuilt = rows.map((row) => rebuildReject(row, topology));
    // The records to write, and which reject each belongs to.
    const writable: WriteRecord[] = [];
    const owner: number[] = [];
    const statuses = rows.map((): ('stored' | 'duplicate' | { invalid: string })[] => []);
    rebuilt.forEach((r, i) => {
      if ('skipped' in r) return;
      for (const record of r.records) {
        if (record.kind === 'reject') statuses[i]!.push({ invalid: record.reject.reason });
        else {
          writable.push(record);
          owner.push(i);
        }
      }
    });
    if (writable.length > 0) {
      const written = options.dryRun
        ? await dryRunStatuses(pool, writable)
        : (await writer.write(writable)).results.map((r) =>
            r.status === 'rejected' ? { invalid: r.reason } : r.status,
          );
      written.forEach((status, j) => statuses[owner[j]!]!.push(status));
    }
    const outcomes = rebuilt.map((r, i): RowOutcome =>
      'skipped' in r ? { status: 'skipped', reason: r.skipped } : combine(statuses[i]!),
    );
    for (const o of outcomes) {
      if (o.status === 'stored') report.stored++;
      else if (o.status === 'duplicate') report.duplicates++;
      else if (o.status === 'invalid') {
        report.invalid++;
        report.invalid_reasons[o.reason] = (report.invalid_reasons[o.reason] ?? 0) + 1;
      } else if (o.status === 'skipped') {
        report.skipped++;
        report.skipped_reasons[o.reason] = (report.skipped_reasons[o.reason] ?? 0) + 1;
      }
    }
    if (!options.dryRun) {
      await pool.query(MARK_SQL, [rows.map((r) => r.id), outcomes.map(resultText)]);
    }
  }
  return report;
}

function byReason(counts: Record<string, number>): string {
  const parts = Object.entries(counts)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([reason, n]) => `${reason} ${n}`);
  return parts.length === 0 ? '' : `  (${parts.join(', ')})`;
}

/** The report as a short table. */
export function formatReport(report: ReplayReport, options: Pick<ReplayOptions, 'reasons'>): string {
  const width = String(report.matched).length;
  const row = (label: string, n: number, extra = ''): string =>
    `  ${label.padEnd(11)}${String(n).padStart(width)}${extra}\n`;
  return (
    `chronicle replay-rejects${report.dry_run ? ' (dry run: nothing written)' : ''}: ` +
    `${report.matched} reject${report.matched === 1 ? '' : 's'} matched (reasons ${options.reasons.join(', ')})\n` +
    row(report.dry_run ? 'would store' : 'stored', report.stored) +
    row('duplicates', report.duplicates) +
    row('invalid', report.invalid, byReason(report.invalid_reasons)) +
    row('skipped', report.skipped, byReason(report.skipped_reasons))
  );
}

/** The command: opens the database (beside a running embedded serve: its server), replays, reports. */
export async function replayRejectsCommand(baseConfig: Config, options: ReplayOptions): Promise<number> {
  // Logs on stderr: stdout holds the report alone (one JSON line with --json).
  const logger = createLogger(
    { level: baseConfig.logLevel, secrets: baseConfig.secrets ?? [] },
    pino.destination({ dest: 2, sync: true }),
  );
  const database = await openDatabaseForCommand(baseConfig, logger, { share: true, create: false });
  const pool = createPool({ connectionString: database.config.databaseUrl, maxConnections: 2 });
  try {
    const topology: ReplayTopology = {
      namespace: baseConfig.natsNamespace,
      otlpStream: baseConfig.otlpNats?.stream ?? DEFAULT_OTLP_NATS_STREAM,
    };
    let report: ReplayReport;
    try {
      report = await replay(pool, options, topology, createEventWriter({ pool, logger }));
    } catch (err) {
      if ((err as { code?: unknown }).code === '42703') {
        throw new Error('the database predates replay (migration 0010): run chronicle migrate first', {
          cause: err,
        });
      }
      throw err;
    }
    // A reason no reject has is most likely a typo (max_delivery): say which reasons there are.
    const { rows } = await pool.query<{ reason: string }>(
      'SELECT DISTINCT reason FROM chronicle_rejects WHERE reason = ANY($1)',
      [options.reasons],
    );
    const unknown = options.reasons.filter((r) => !rows.some((row) => row.reason === r));
    if (unknown.length > 0) {
      const { rows: present } = await pool.query<{ reason: string }>(
        'SELECT DISTINCT reason FROM chronicle_rejects ORDER BY reason',
      );
      process.stderr.write(
        `chronicle replay-rejects: no reject has reason ${unknown.join(', ')}` +
          ` (stored reasons: ${present.map((r) => r.reason).join(', ') || 'none'})\n`,
      );
    }
    process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatReport(report, options));
    return 0;
  } finally {
    await endPool(pool);
    await database.stop();
  }
}
