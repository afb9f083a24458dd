import type pg from 'pg';
import type { Component } from '../../pipeline/contracts.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';

/** The tables Chronicle rewrites or empties all day: a new version of a trace's row per event, a queue. */
export const CHURN_TABLES = ['swarm_traces', 'otel_pending', 'otel_spans', 'agent_metrics'] as const;

/**
 * The tables that only grow between retention passes, checked beside the churn tables with the server's
 * thresholds: the ledger, and every partition of swarm_events (the default and each day's, found at each
 * check). Never analyzed, a day partition has no statistics, and the planner takes its matching rows for
 * a handful: the events list by type read all of a day's matching events and sorted them (up to 153 ms
 * at 5,000,000 events) instead of stopping at its page (0.3 ms once analyzed).
 */
export const GROWING_TABLES = ['swarm_event_ids'] as const;
const PARTITIONED = 'swarm_events';

export interface VacuumLoopOptions {
  /** Pause between two checks; 0: never (the server's autovacuum, or nothing, keeps the tables). */
  intervalMillis: number;
}

export interface VacuumLoopDeps {
  pool: pg.Pool;
  logger: Logger;
  metrics: Metrics;
}

/** What one check found to do, per table: vacuum (with analyze when due) or analyze alone. */
export interface VacuumRound {
  /** False when the server's autovacuum is on: it keeps the tables, and the round did nothing. */
  autovacuumOff: boolean;
  vacuumed: string[];
  analyzed: string[];
}

export interface VacuumLoop extends Component {
  /** One check now (tests); the tables past their thresholds are vacuumed or analyzed. */
  runOnce(): Promise<VacuumRound>;
}

// autovacuum's own rule (the Postgres manual, "The Autovacuum Daemon") with each table's settings
// (migrations/0011_churn_tables_vacuum.sql) or the server's: vacuum when the dead rows, or the rows
// inserted since the last vacuum, pass threshold + scale factor × rows; analyze when the rows changed
// since the last analyze do.
const DUE_SQL = `
WITH t AS (
  SELECT c.oid AS table_oid, c.relname::text AS relname, greatest(c.reltuples, 0) AS reltuples,
    s.n_dead_tup, s.n_ins_since_vacuum, s.n_mod_since_analyze,
    (SELECT jsonb_object_agg(split_part(o, '=', 1), split_part(o, '=', 2)) FROM unnest(c.reloptions) o) AS opt
  FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
  WHERE c.oid = ANY (SELECT to_regclass(n) FROM unnest($1::text[]) n)
    OR c.oid IN (SELECT relid FROM pg_partition_tree(to_regclass($2)) WHERE isleaf)
),
setting AS (
  SELECT t.*,
    coalesce(opt ->> 'autovacuum_vacuum_threshold', current_setting('autovacuum_vacuum_threshold'))::float8
      + coalesce(opt ->> 'autovacuum_vacuum_scale_factor', current_setting('autovacuum_vacuum_scale_factor'))::float8
        * reltuples AS vacuum_at,
    coalesce(opt ->> 'autovacuum_vacuum_insert_threshold', current_setting('autovacuum_vacuum_insert_threshold'))::float8
      + coalesce(opt ->> 'autovacuum_vacuum_insert_scale_factor',
          current_setting('autovacuum_vacuum_insert_scale_factor'))::float8 * reltuples AS insert_vacuum_at,
    coalesce(opt ->> 'autovacuum_analyze_threshold', current_setting('autovacuum_analyze_threshold'))::float8
      + coalesce(opt ->> 'autovacuum_analyze_scale_factor', current_setting('autovacuum_analyze_scale_factor'))::float8
        * reltuples AS analyze_at
  FROM t
)
SELECT current_setting('autovacuum') = 'off' AS autovacuum_off, relname,
  -- A partition counts in the metrics under its table: day partitions come and go.
  coalesce((SELECT r.relname::text FROM pg_class r WHERE r.oid = pg_partition_root(table_oid)), relname) AS family,
  n_dead_tup > vacuum_at OR n_ins_since_vacuum > insert_vacuum_at AS vacuum,
  n_mod_since_analyze > analyze_at AS analyze
FROM setting
-- The churn tables first, in the order given: within a round, a long vacuum of a big partition comes after them.
ORDER BY array_position($1::text[], relname) NULLS LAST, relname`;

const UNDEFINED_TABLE = '42P01';

/** A table's name, quoted for a VACUUM statement (no parameters there). */
const quoted = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/**
 * Vacuums and analyzes Chronicle's tables when the server's autovacuum is off (a setting some clusters,
 * this project's test machines among them, run with): without it a million-task swarm_traces carries
 * every dead row version and its index entries for good, the otel_pending queue never shrinks back to its
 * backlog (docs/adr/0015-performance-on-live-traffic.md), and the partitions of swarm_events are planned
 * without statistics. With autovacuum on, it checks and does nothing.
 * Replicas each run it: SKIP_LOCKED leaves a table another vacuum holds. Off the ingest connections.
 *
 * States: idle → running (a timer; one check at a time) → stopped (shutdown clears the timer and waits
 * for the check in flight until the deadline; a vacuum interrupted by the process ending loses nothing).
 */
export function createVacuumLoop(options: VacuumLoopOptions, deps: VacuumLoopDeps): VacuumLoop {
  const { pool, logger, metrics } = deps;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let round: Promise<VacuumRound> | undefined;
  let announced = false;

  async function check(): Promise<VacuumRound> {
    const { rows } = await pool.query<{
      autovacuum_off: boolean;
      relname: string;
      family: string;
      vacuum: boolean;
      analyze: boolean;
    }>(DUE_SQL, [[...CHURN_TABLES, ...GROWING_TABLES], PARTITIONED]);
    const autovacuumOff = rows[0]?.autovacuum_off ?? false;
    const result: VacuumRound = { autovacuumOff, vacuumed: [], analyzed: [] };
    if (!autovacuumOff) return result;
    if (!announced) {
      announced = true;
      logger.info(
        { tables: [...CHURN_TABLES, ...GROWING_TABLES, `${PARTITIONED} (each partition)`] },
        "the server's autovacuum is off: Chronicle vacuums and analyzes its tables",
      );
    }
    for (const row of rows) {
      if (stopped) break;
      if (!row.vacuum && !row.analyze) continue;
      const action = row.vacuum ? (row.analyze ? 'vacuum_analyze' : 'vacuum') : 'analyze';
      try {
        await pool.query(
          row.vacuum
            ? `VACUUM (SKIP_LOCKED${row.analyze ? ', ANALYZE' : ''}) ${quoted(row.relname)}`
            : `ANALYZE (SKIP_LOCKED) ${quoted(row.relname)}`,
        );
      } catch (err) {
        // Retention dropped the day partition since the check read it: nothing left to keep.
        if ((err as { code?: string }).code === UNDEFINED_TABLE) continue;
        throw err;
      }
      metrics.vacuumRuns.inc({ table: row.family, action });
      if (row.vacuum) result.vacuumed.push(row.relname);
      if (row.analyze) result.analyzed.push(row.relname);
    }
    if (result.vacuumed.length + result.analyzed.length > 0) logger.debug(result, 'tables vacuumed');
    return result;
  }

  const runOnce = (): Promise<VacuumRound> => {
    round ??= check().finally(() => {
      round = undefined;
    });
    return round;
  };

  function schedule(): void {
    if (stopped || options.intervalMillis === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      runOnce()
        .catch((err: unknown) => logger.warn({ err }, 'vacuuming the churn tables failed; tried again later'))
        .finally(schedule);
    }, options.intervalMillis);
    timer.unref();
  }

  return {
    name: 'vacuum',
    runOnce,
    start() {
      if (timer === undefined) schedule();
      return Promise.resolve();
    },
    async shutdown(deadline) {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      const inFlight = round;
      if (inFlight === undefined || deadline.aborted) return;
      await new Promise<void>((resolve) => {
        deadline.addEventListener('abort', () => resolve(), { once: true });
        void inFlight.then(
          () => resolve(),
          () => resolve(),
        );
      });
    },
  };
}
