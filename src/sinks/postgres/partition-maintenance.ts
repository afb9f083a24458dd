import type pg from 'pg';
import { refreshPinned } from './archive.js';
import {
  type RetentionPolicy,
  addDays,
  eventsHorizon,
  startOfUtcDay,
  trimHorizon,
} from './retention-policy.js';
import { CLOSE_WRITE_GATE_SQL } from './write-gate.js';

/**
 * One maintenance pass over the store (docs/adr/0011-events-partitioned-by-day.md): day partitions of
 * swarm_events created ahead of time, rows of the default partition moved into their day's partition,
 * days past retention dropped by partition with their ledger entries, and the other tables trimmed in
 * small batches. Every step is its own short transaction; ingest is never held up by more than one.
 */

// Any constant works; it only has to be the same for every Chronicle process (migrate.ts uses "chro",
// write-gate.ts "gate").
export const MAINTENANCE_LOCK_KEY = 0x6d61696e; // "main"

export const DEFAULT_PARTITION = 'swarm_events_default';
const PARTITION_NAME = /^swarm_events_p(\d{4})(\d{2})(\d{2})$/;

/** The columns of swarm_events, in table order. */
const EVENT_COLUMNS = 'event_id, trace_id, source, event_type, "timestamp", metadata, created_at, txid, seq';

export interface MaintenanceOptions {
  policy: RetentionPolicy;
  /** Day partitions kept ready after today, so an insert at midnight never lands in the default. */
  daysAhead: number;
  /** Rows per trimming statement. */
  batchRows: number;
  /** Pause between two trimming statements, so ingest is never starved. */
  batchPauseMillis: number;
  /**
   * How long one try of a partition change waits for the write gate (src/sinks/postgres/write-gate.ts):
   * for Chronicle's flushes in flight, on every replica, to commit. New flushes queue behind it while
   * it waits, so this bounds how long a flush can stall besides lockTimeoutMillis and the change itself.
   * It must exceed the longest flush (up to about a second under saturating ingest), or the change
   * never gets the gate; a try that gets it waits only as long as those flushes take.
   */
  gateTimeoutMillis: number;
  /**
   * How long one try of a partition change waits for each of its table locks (lock_timeout), once it
   * holds the write gate: for sessions other than Chronicle's flushes (a reader, an outside writer).
   * While it waits, every insert into swarm_events queues behind it, so this bounds how long an open
   * reader can stall ingest.
   */
  lockTimeoutMillis: number;
  /** Tries of one partition change whose lock was not obtained in time, before the pass moves on. */
  lockAttempts: number;
  /** Pause between two tries (no lock held meanwhile: the reader in the way may finish). */
  lockRetryPauseMillis: number;
  /**
   * Whether spans are exported (OTEL_EXPORTER_OTLP_ENDPOINT set). On: only spans exported more than
   * spansDays ago are trimmed, a span waiting for export never is. Off: spans older than spansDays by
   * created_at are trimmed (nothing would ever export them).
   */
  spansExported: boolean;
}

export const DEFAULT_MAINTENANCE_OPTIONS: Omit<MaintenanceOptions, 'policy' | 'spansExported'> = {
  daysAhead: 7,
  batchRows: 2_000,
  batchPauseMillis: 20,
  gateTimeoutMillis: 3_000,
  lockTimeoutMillis: 250,
  lockAttempts: 10,
  lockRetryPauseMillis: 1_500,
};

/** The tables trimmed row by row, as named in reports and metrics. */
export const TRIMMED_TABLES = [
  'swarm_events',
  'swarm_event_ids',
  'swarm_traces',
  'otel_spans',
  'chronicle_rejects',
  'swarm_dlq',
] as const;
export type TrimmedTable = (typeof TRIMMED_TABLES)[number];

/** What one pass did. */
export interface MaintenanceReport {
  /** false: another process held the maintenance lock, so this one did nothing. */
  ran: boolean;
  /** Day partitions created (names). */
  partitionsCreated: string[];
  /** Rows moved from the default partition into the day partitions created. */
  rowsMoved: number;
  /** Day partitions dropped (names), with their rows and their ledger entries. */
  partitionsDropped: string[];
  /** Rows of each day partition dropped, and of their ledger entries. */
  rowsDropped: number;
  /**
   * Pinned tasks copied again before anything was dropped or trimmed, because their stored rows held
   * something their archive copy did not (src/sinks/postgres/archive.ts).
   */
  pinsRefreshed: number;
  /** Rows deleted in batches, by table (swarm_events: old rows of the default partition). */
  trimmed: Record<TrimmedTable, number>;
  /**
   * The longest time one try of a partition change held Chronicle's flushes back, on every replica:
   * from asking for the write gate to its commit or rollback. No flush waited longer for the gate.
   */
  flushesHeldMillis: number;
  /** Steps that failed (a lock not obtained in time, …): retried by the next pass. */
  errors: string[];
  durationMillis: number;
}

/** A day partition of swarm_events and its range [from, to). */
export interface DayPartition {
  name: string;
  from: Date;
  to: Date;
}

/** `swarm_events_p20261206` for the day starting at `day`. */
export function partitionName(day: Date): string {
  return `swarm_events_p${day.toISOString().slice(0, 10).replaceAll('-', '')}`;
}

/** The day partitions of swarm_events (not the default), oldest first, from their names. */
export async function listDayPartitions(client: pg.ClientBase): Promise<DayPartition[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'swarm_events'::regclass ORDER BY 1`,
  );
  const parts: DayPartition[] = [];
  for (const { name } of rows) {
    const m = PARTITION_NAME.exec(name);
    if (m === null) continue;
    const from = new Date(`${m[1]}-${m[2]}-${m[3]}T00:00:00Z`);
    parts.push({ name, from, to: addDays(from, 1) });
  }
  return parts;
}

const sleep = (millis: number): Promise<void> => new Promise((r) => setTimeout(r, millis));

/** lock_not_available: lock_timeout expired (or NOWAIT). */
const LOCK_NOT_AVAILABLE = '55P03';

function isLockTimeout(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === LOCK_NOT_AVAILABLE;
}

const millis = (value: number): number => Math.max(1, Math.floor(value));

/**
 * Runs a partition change: a transaction that first closes the write gate, waiting at most
 * gateTimeoutMillis for Chronicle's flushes in flight (new ones queue behind it), then runs `work`,
 * whose locks wait at most lockTimeoutMillis each (for other sessions). When the gate or a lock is not
 * obtained in time, the transaction is rolled back (nothing held, the gate open) and tried again after
 * a pause, up to lockAttempts tries. A flush thus waits at most about gateTimeoutMillis +
 * lockTimeoutMillis + the change itself; an insert of another session, about lockTimeoutMillis. While
 * the gate is held, the server ends the session if this process stops answering for gateTimeoutMillis,
 * so a hung process cannot hold ingest. Records how long each try held the flushes in `held`.
 */
async function withLockRetries<T>(
  client: pg.ClientBase,
  options: MaintenanceOptions,
  held: Pick<MaintenanceReport, 'flushesHeldMillis'>,
  work: () => Promise<T>,
): Promise<T> {
  const attempts = Math.max(1, Math.floor(options.lockAttempts));
  const timedOut = { gate: 0, table: 0 };
  for (let attempt = 1; ; attempt++) {
    let waitingFor: keyof typeof timedOut = 'gate';
    const started = Date.now();
    try {
      return await inTransaction(
        client,
        options.gateTimeoutMillis,
        async () => {
          await client.query(CLOSE_WRITE_GATE_SQL);
          waitingFor = 'table';
          await client.query(`SET LOCAL lock_timeout = ${millis(options.lockTimeoutMillis)}`);
          return work();
        },
        'BEGIN',
        [`SET LOCAL idle_in_transaction_session_timeout = ${millis(options.gateTimeoutMillis)}`],
      );
    } catch (err) {
      if (!isLockTimeout(err)) throw err;
      timedOut[waitingFor]++;
      if (attempt >= attempts) {
        throw new Error(
          `${describe(err)} (${attempt} tries: ${timedOut.table} timed out on a table lock after ` +
            `${options.lockTimeoutMillis} ms, ${timedOut.gate} on the write gate after ` +
            `${options.gateTimeoutMillis} ms; retried next pass)`,
          { cause: err },
        );
      }
    } finally {
      held.flushesHeldMillis = Math.max(held.flushesHeldMillis, Date.now() - started);
    }
    await sleep(options.lockRetryPauseMillis);
  }
}

async function inTransaction<T>(
  client: pg.ClientBase,
  lockTimeoutMillis: number,
  work: () => Promise<T>,
  begin = 'BEGIN',
  settings: string[] = [],
): Promise<T> {
  await client.query(begin);
  try {
    await client.query([`SET LOCAL lock_timeout = ${millis(lockTimeoutMillis)}`, ...settings].join('; '));
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/**
 * Days in [from, to) that hold rows in the default partition: one index probe per such day (a loose
 * scan of its time index), so a large default (an upgraded store) is not read.
 */
const DEFAULT_DAYS_SQL = `
WITH RECURSIVE d AS (
  SELECT date_trunc('day', (SELECT min("timestamp") FROM ${DEFAULT_PARTITION} WHERE "timestamp" >= $1), 'UTC') AS day
  UNION ALL
  SELECT date_trunc('day', (SELECT min("timestamp") FROM ${DEFAULT_PARTITION} WHERE "timestamp" >= d.day + interval '1 day'), 'UTC')
  FROM d WHERE d.day < $2
)
SELECT day FROM d WHERE day IS NOT NULL AND day < $2`;

/**
 * Creates the partition of one day, moving that day's rows out of the default partition (Postgres
 * refuses a partition while the default holds rows of its range). The table is built apart and filled
 * with a copy of the day's rows first, with no lock that stops anyone; then one short transaction stops
 * writers (readers go on until the attach), copies the rows that arrived since, deletes the day's rows
 * from the default and attaches the table. Returns the rows moved.
 */
async function createDayPartition(
  client: pg.ClientBase,
  day: Date,
  options: MaintenanceOptions,
  held: Pick<MaintenanceReport, 'flushesHeldMillis'>,
): Promise<number> {
  const name = partitionName(day);
  const from = day.toISOString();
  const to = addDays(day, 1).toISOString();
  const inRange = `"timestamp" >= '${from}' AND "timestamp" < '${to}'`;
  // A table left by a pass that failed before attaching it (never a partition).
  const { rows: left } = await client.query<{ partition: boolean }>(
    `SELECT relispartition AS partition FROM pg_class WHERE relname = $1 AND relnamespace = 'public'::regnamespace`,
    [name],
  );
  if (left[0]?.partition === true) throw new Error(`${name} is already a partition`);
  if (left[0] !== undefined) await client.query(`DROP TABLE ${name}`);
  await client.query(`CREATE TABLE ${name} (LIKE swarm_events INCLUDING DEFAULTS INCLUDING INDEXES)`);
  // Proves the rows are in range, so attaching does not scan the new table.
  await client.query(`ALTER TABLE ${name} ADD CONSTRAINT ${name}_range CHECK (${inRange})`);
  // The copy's snapshot: the rows it did not see are those of transactions it does not see as ended.
  const snapshot = await inTransaction(
    client,
    options.lockTimeoutMillis,
    async () => {
      await client.query(
        `INSERT INTO ${name} (${EVENT_COLUMNS}) SELECT ${EVENT_COLUMNS} FROM ${DEFAULT_PARTITION} WHERE ${inRange}`,
      );
      const { rows } = await client.query<{ snapshot: string }>(
        'SELECT pg_current_snapshot()::text AS snapshot',
      );
      return rows[0]!.snapshot;
    },
    'BEGIN ISOLATION LEVEL REPEATABLE READ',
  );
  return withLockRetries(client, options, held, async () => {
    // Writers wait until the commit, before their rows are routed (a row routed to the default before
    // the attach would fail its partition check after it): Chronicle's at the write gate, others here.
    await client.query(`LOCK TABLE swarm_events IN SHARE ROW EXCLUSIVE MODE`);
    await client.query(
      `INSERT INTO ${name} (${EVENT_COLUMNS}) SELECT ${EVENT_COLUMNS} FROM ${DEFAULT_PARTITION} d
       WHERE ${inRange} AND d.txid >= pg_snapshot_xmin($1::pg_snapshot)
         AND NOT pg_visible_in_snapshot(d.txid, $1::pg_snapshot)`,
      [snapshot],
    );
    const moved = await client.query(`DELETE FROM ${DEFAULT_PARTITION} WHERE ${inRange}`);
    await client.query(
      `ALTER TABLE swarm_events ATTACH PARTITION ${name} FOR VALUES FROM ('${from}') TO ('${to}')`,
    );
    await client.query(`ALTER TABLE ${name} DROP CONSTRAINT ${name}_range`);
    return moved.rowCount ?? 0;
  });
}

/**
 * Drops a day partition with its ledger entries: first the entries in batches (no lock on
 * swarm_events), then, in one short transaction, the entries of rows stored since and the table.
 * Returns the rows the partition held.
 */
async function dropDayPartition(
  client: pg.ClientBase,
  part: DayPartition,
  options: MaintenanceOptions,
  held: Pick<MaintenanceReport, 'flushesHeldMillis'>,
): Promise<{ rows: number; ledger: number }> {
  let ledger = 0;
  let after: [string, string] = ['-infinity', '00000000-0000-0000-0000-000000000000'];
  for (;;) {
    const { rows } = await client.query<{ ts: string; event_id: string; deleted: number }>(
      `WITH page AS (
         SELECT "timestamp", event_id FROM ${part.name}
         WHERE ("timestamp", event_id) > ($1::timestamptz, $2::uuid) ORDER BY "timestamp", event_id LIMIT $3),
       gone AS (DELETE FROM swarm_event_ids WHERE event_id IN (SELECT event_id FROM page) RETURNING 1)
       SELECT (SELECT "timestamp" FROM page ORDER BY "timestamp" DESC, event_id DESC LIMIT 1)::text AS ts,
         (SELECT event_id FROM page ORDER BY "timestamp" DESC, event_id DESC LIMIT 1)::text AS event_id,
         (SELECT count(*) FROM gone)::int AS deleted`,
      [after[0], after[1], options.batchRows],
    );
    const row = rows[0]!;
    ledger += row.deleted;
    if (row.ts === null) break;
    after = [row.ts, row.event_id];
    await sleep(options.batchPauseMillis);
  }
  // DROP TABLE takes ACCESS EXCLUSIVE on swarm_events, which every flush's insert and recompute also
  // need: behind the write gate, it waits for outside readers (and their inserts queue behind it) at
  // most lockTimeoutMillis per try.
  return withLockRetries(client, options, held, async () => {
    // No new row (a replay of an id whose entry is gone) can reach the partition from here on.
    await client.query(`LOCK TABLE ${part.name} IN SHARE MODE`);
    const late = await client.query(
      `DELETE FROM swarm_event_ids l USING ${part.name} p WHERE l.event_id = p.event_id`,
    );
    const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${part.name}`);
    await client.query(`DROP TABLE ${part.name}`);
    return { rows: rows[0]!.n, ledger: ledger + (late.rowCount ?? 0) };
  });
}

/** Runs a batched DELETE until it deletes fewer rows than a batch; returns the rows deleted. */
async function trimInBatches(
  client: pg.ClientBase,
  sql: string,
  params: unknown[],
  options: MaintenanceOptions,
): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await client.query<{ n: number }>(sql, [...params, options.batchRows]);
    const n = rows[0]?.n ?? 0;
    total += n;
    if (n < options.batchRows) return total;
    await sleep(options.batchPauseMillis);
  }
}

// Old rows of the default partition with their ledger entries, oldest first (time index).
const TRIM_DEFAULT_SQL = `
WITH gone AS (
  DELETE FROM ${DEFAULT_PARTITION} WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM ${DEFAULT_PARTITION} WHERE "timestamp" < $1 ORDER BY "timestamp" LIMIT $2))
  RETURNING event_id),
ledger AS (DELETE FROM swarm_event_ids WHERE event_id IN (SELECT event_id FROM gone) RETURNING 1)
SELECT (SELECT count(*) FROM gone)::int AS n, (SELECT count(*) FROM ledger)::int AS ledger`;

// Traces whose last event is older than the horizon, walked by the created_at index (keyset), so each
// statement reads one page of it. Deleted as rows: agent_metrics keeps its totals (ADR 0003).
const TRIM_TRACES_SQL = `
WITH page AS (
  SELECT trace_id, created_at FROM swarm_traces
  WHERE created_at < $1 AND (created_at, trace_id) > ($2::timestamptz, $3::text)
  ORDER BY created_at, trace_id LIMIT $4),
gone AS (
  DELETE FROM swarm_traces t USING page p WHERE t.trace_id = p.trace_id AND t.last_event_at < $1 RETURNING 1)
SELECT (SELECT count(*) FROM page)::int AS scanned, (SELECT count(*) FROM gone)::int AS n,
  (SELECT created_at FROM page ORDER BY created_at DESC, trace_id DESC LIMIT 1)::text AS created_at,
  (SELECT trace_id FROM page ORDER BY created_at DESC, trace_id DESC LIMIT 1) AS trace_id`;

// Spans walked by primary key (keyset). With export on, exported spans (by exported_at; spans waiting
// for export are never touched); with export off, spans by created_at.
const trimSpansSql = (column: 'exported_at' | 'created_at'): string => `
WITH page AS (
  SELECT otel_trace_id, span_id, exported_at FROM otel_spans
  WHERE (otel_trace_id, span_id) > ($2, $3) ORDER BY otel_trace_id, span_id LIMIT $4),
gone AS (
  DELETE FROM otel_spans s USING page p
  WHERE s.otel_trace_id = p.otel_trace_id AND s.span_id = p.span_id AND s.${column} < $1 RETURNING 1)
SELECT (SELECT count(*) FROM page)::int AS scanned, (SELECT count(*) FROM gone)::int AS n,
  (SELECT otel_trace_id FROM page ORDER BY otel_trace_id DESC, span_id DESC LIMIT 1) AS k1,
  (SELECT span_id FROM page ORDER BY otel_trace_id DESC, span_id DESC LIMIT 1) AS k2`;

const TRIM_REJECTS_SQL = `
WITH gone AS (
  DELETE FROM chronicle_rejects WHERE id = ANY (ARRAY(
    SELECT id FROM chronicle_rejects WHERE rejected_at < $1 ORDER BY rejected_at LIMIT $2))
  RETURNING 1)
SELECT count(*)::int AS n FROM gone`;

const TRIM_DLQ_SQL = `
WITH gone AS (
  DELETE FROM swarm_dlq WHERE dlq_id = ANY (ARRAY(
    SELECT dlq_id FROM swarm_dlq WHERE received_at < $1 ORDER BY received_at LIMIT $2))
  RETURNING 1)
SELECT count(*)::int AS n FROM gone`;

/** Walks a table by keyset pages; returns the rows deleted. */
async function trimByKeyset(
  client: pg.ClientBase,
  sql: string,
  horizon: Date,
  start: [string, string],
  keys: (row: Record<string, unknown>) => [string, string],
  options: MaintenanceOptions,
): Promise<number> {
  let total = 0;
  let after = start;
  for (;;) {
    const { rows } = await client.query<{ scanned: number; n: number } & Record<string, unknown>>(sql, [
      horizon,
      after[0],
      after[1],
      options.batchRows,
    ]);
    const row = rows[0]!;
    total += row.n;
    if (row.scanned < options.batchRows) return total;
    after = keys(row);
    await sleep(options.batchPauseMillis);
  }
}

/** The policy of a pass that may only create partitions and move rows into them. */
const KEEP_EVERYTHING: RetentionPolicy = {
  eventsDays: 0,
  tracesDays: 0,
  spansDays: 0,
  rejectsDays: 0,
  dlqDays: 0,
};

function emptyReport(): MaintenanceReport {
  return {
    ran: false,
    partitionsCreated: [],
    rowsMoved: 0,
    partitionsDropped: [],
    rowsDropped: 0,
    pinsRefreshed: 0,
    flushesHeldMillis: 0,
    trimmed: {
      swarm_events: 0,
      swarm_event_ids: 0,
      swarm_traces: 0,
      otel_spans: 0,
      chronicle_rejects: 0,
      swarm_dlq: 0,
    },
    errors: [],
    durationMillis: 0,
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One maintenance pass on a connection of its own, under a session advisory lock: when another process
 * holds it, returns at once with `ran: false`. A step that fails (a lock not obtained within
 * lockTimeoutMillis in any of its lockAttempts tries) is recorded in `errors` and the pass goes on; the
 * next pass retries it.
 */
export async function runMaintenancePass(
  pool: pg.Pool,
  options: MaintenanceOptions,
  now: Date = new Date(),
): Promise<MaintenanceReport> {
  const started = Date.now();
  const report = emptyReport();
  const client = await pool.connect();
  let broken = false;
  const onError = (): void => {
    broken = true;
  };
  client.on('error', onError);
  try {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
      MAINTENANCE_LOCK_KEY,
    ]);
    if (!rows[0]!.locked) return report;
    report.ran = true;
    try {
      await client.query(`SET TimeZone = 'UTC'`);
      // What reached a pinned task since its latest copy is copied before its originals can go; when
      // that fails, nothing is dropped or trimmed this pass (the next pass tries again).
      let pinsCopied = true;
      if (Object.values(options.policy).some((days) => days > 0)) {
        try {
          report.pinsRefreshed = (await refreshPinned(pool)).refreshed;
        } catch (err) {
          pinsCopied = false;
          report.errors.push(`refresh pinned copies (nothing dropped or trimmed): ${describe(err)}`);
        }
      }
      await pass(client, pinsCopied ? options : { ...options, policy: KEEP_EVERYTHING }, now, report);
    } finally {
      // The connection goes back to the pool: it leaves with the session's own time zone.
      await client.query('RESET TimeZone');
      await client.query('SELECT pg_advisory_unlock($1)', [MAINTENANCE_LOCK_KEY]);
    }
    return report;
  } catch (err) {
    broken = true;
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
    report.durationMillis = Date.now() - started;
  }
}

async function pass(
  client: pg.ClientBase,
  options: MaintenanceOptions,
  now: Date,
  report: MaintenanceReport,
): Promise<void> {
  const { policy } = options;
  const today = startOfUtcDay(now);
  const horizon = eventsHorizon(policy, now);
  const existing = new Set((await listDayPartitions(client)).map((p) => p.name));

  const create = async (day: Date): Promise<void> => {
    const name = partitionName(day);
    if (existing.has(name)) return;
    try {
      report.rowsMoved += await createDayPartition(client, day, options, report);
      report.partitionsCreated.push(name);
      existing.add(name);
    } catch (err) {
      report.errors.push(`create ${name}: ${describe(err)}`);
    }
  };

  // 1. Today's partition and the days ahead: where new events go.
  for (let d = 0; d <= options.daysAhead; d++) await create(addDays(today, d));

  if (horizon !== undefined) {
    // 2. Days past retention: dropped whole, with their ledger entries.
    for (const part of await listDayPartitions(client)) {
      if (part.to > horizon) continue;
      try {
        const { rows, ledger } = await dropDayPartition(client, part, options, report);
        report.partitionsDropped.push(part.name);
        report.rowsDropped += rows;
        report.trimmed.swarm_event_ids += ledger;
      } catch (err) {
        report.errors.push(`drop ${part.name}: ${describe(err)}`);
      }
    }
    // 3. Rows of the default partition past retention (days that never had a partition).
    let events = 0;
    for (;;) {
      const { rows } = await client.query<{ n: number; ledger: number }>(TRIM_DEFAULT_SQL, [
        horizon,
        options.batchRows,
      ]);
      events += rows[0]!.n;
      report.trimmed.swarm_event_ids += rows[0]!.ledger;
      if (rows[0]!.n < options.batchRows) break;
      await sleep(options.batchPauseMillis);
    }
    report.trimmed.swarm_events += events;
  }

  // 4. Days within retention (all, when kept forever) that still have rows in the default partition:
  // an upgraded store, late events, events before the partitions ahead existed. Newest first. Days
  // after the partitions ahead (far-future timestamps) stay in the default until their time comes.
  const { rows: defaultDays } = await client.query<{ day: Date }>(DEFAULT_DAYS_SQL, [
    horizon ?? '-infinity',
    addDays(today, options.daysAhead + 1),
  ]);
  for (const { day } of defaultDays.sort((a, b) => b.day.getTime() - a.day.getTime())) await create(day);

  // 5. The other tables, each by its own setting.
  const traces = trimHorizon(policy.tracesDays, now);
  if (traces !== undefined) {
    report.trimmed.swarm_traces = await trimByKeyset(
      client,
      TRIM_TRACES_SQL,
      traces,
      ['-infinity', ''],
      (r) => [r.created_at as string, r.trace_id as string],
      options,
    );
  }
  const spans = trimHorizon(policy.spansDays, now);
  if (spans !== undefined) {
    report.trimmed.otel_spans = await trimByKeyset(
      client,
      trimSpansSql(options.spansExported ? 'exported_at' : 'created_at'),
      spans,
      ['', ''],
      (r) => [r.k1 as string, r.k2 as string],
      options,
    );
  }
  const rejects = trimHorizon(policy.rejectsDays, now);
  if (rejects !== undefined) {
    report.trimmed.chronicle_rejects = await trimInBatches(client, TRIM_REJECTS_SQL, [rejects], options);
  }
  const dlq = trimHorizon(policy.dlqDays, now);
  if (dlq !== undefined) {
    report.trimmed.swarm_dlq = await trimInBatches(client, TRIM_DLQ_SQL, [dlq], options);
  }
}
