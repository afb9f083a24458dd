/**
 * What the benchmarks share: a scratch database each, Chronicle as a child process (`node dist/main.js`)
 * on a random port, and per-process CPU and memory read from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR, migrate } from '../src/db/migrate.js';
import { silentLogger } from '../src/telemetry/logger.js';

export const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
export const PORT = 18700 + Math.floor(Math.random() * 1000);

/** Nearest rank over sorted values: the p99 of 100 runs is the 99th fastest. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function createDatabase(): Promise<string> {
  const name = `chronicle_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * A scratch database of a fixed name (kept between runs, or made anew with `fresh`) with Chronicle's
 * migrations applied; its URL.
 */
export async function migratedDatabase(name: string, { fresh }: { fresh: boolean }): Promise<string> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  if (fresh) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount! > 0;
  if (!exists) await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 1 });
  await migrate(pool, silentLogger());
  await pool.end();
  return url.toString();
}

export async function dropDatabase(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`);
  await admin.end();
}

export function startChronicle(databaseUrl: string, namespace: string): ChildProcess {
  const profile = process.env.BENCH_NODE_FLAGS
    ? process.env.BENCH_NODE_FLAGS.split(' ')
    : process.env.BENCH_CPU_PROFILE
      ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROFILE]
      : [];
  const child = spawn(process.execPath, [...profile, 'dist/main.js'], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      NATS_URL,
      CHRONICLE_NATS_NAMESPACE: namespace,
      CHRONICLE_PORT: String(PORT),
      CHRONICLE_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return child;
}

/** POST /api/v1/events to the Chronicle started here: the answer's status, 0 when the request failed. */
export async function postEvents(body: string): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${PORT}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    await res.arrayBuffer();
    return res.status;
  } catch (err) {
    console.error(`a request failed: ${(err as Error).message}`);
    return 0;
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ')
    .map(Number);
  return (fields[11]! + fields[12]!) / 100;
}

export function pidOf(pattern: RegExp): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (pattern.test(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

export async function waitReady(): Promise<void> {
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${PORT}/ready`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
}

/** Clock ticks per second in /proc/<pid>/stat and /proc/uptime's unit once scaled (USER_HZ). */
const TICKS_PER_SECOND = 100;

/** A process's CPU so far (user + system) and when it started, in clock ticks since boot. */
export function procTimes(pid: number): { cpuTicks: number; startTicks: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone
  }
  // Fields after the command name (which may hold spaces), numbered from 3 (state).
  const fields = stat.replace(/^.*\) /, '').split(' ');
  return { cpuTicks: Number(fields[11]) + Number(fields[12]), startTicks: Number(fields[19]) };
}

function uptimeTicks(): number {
  return Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * TICKS_PER_SECOND);
}

/** CPU seconds of the processes a CpuMeter watched, from its start (or theirs) to its last sample. */
export interface CpuBreakdown {
  /** Named processes given to the meter (Chronicle, nats-server). */
  processes: Record<string, number>;
  /** Chronicle's backends on the bench's database (application_name chronicle%), by application_name. */
  backends: Record<string, number>;
  /**
   * The cluster's background processes that write and flush for every database, ours included:
   * walwriter, checkpointer, background writer; autovacuum workers only while on the bench's database.
   */
  background: Record<string, number>;
  wallSeconds: number;
}

/** Sums of a CpuBreakdown: Postgres's backends, its background processes, and the whole. */
export function cpuTotals(cpu: CpuBreakdown): {
  backends: number;
  background: number;
  postgres: number;
  total: number;
} {
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  const backends = sum(cpu.backends);
  const background = sum(cpu.background);
  return {
    backends,
    background,
    postgres: backends + background,
    total: sum(cpu.processes) + backends + background,
  };
}

export interface CpuMeter {
  /** Watch one more process under a name; CPU it used before the meter started is not counted. */
  addProcess(name: string, pid: number): void;
  /** Samples now and returns the totals so far (the meter keeps running). */
  read(): Promise<CpuBreakdown>;
  /** Samples a last time, stops and returns the totals (idempotent). */
  stop(): Promise<CpuBreakdown>;
}

const BACKGROUND_TYPES = new Set(['walwriter', 'checkpointer', 'background writer']);

/**
 * Per-process CPU from /proc, sampled every `intervalMillis` (and on read/stop), summing each
 * process's deltas: Postgres's processes come and go (a pool's connections, autovacuum workers), so
 * totals read only at the end would miss the ones that left. A process first seen after the meter
 * started is counted from its own start when it started later, else from that first sample. A process
 * that exits loses its last interval (at most `intervalMillis` of CPU).
 * Which Postgres processes count comes from pg_stat_activity, read over the meter's own connection to
 * `databaseUrl` (application_name bench-cpu-meter, not counted): client backends on that database whose
 * application_name starts with `applicationPrefix`, and the background types above.
 * States: sampling (a sample every interval) → stopped.
 */
export async function startCpuMeter(options: {
  databaseUrl: string;
  processes?: Record<string, number | undefined>;
  applicationPrefix?: string;
  intervalMillis?: number;
}): Promise<CpuMeter> {
  const prefix = options.applicationPrefix ?? 'chronicle';
  const interval = options.intervalMillis ?? 250;
  const client = new pg.Client({
    connectionString: options.databaseUrl,
    application_name: 'bench-cpu-meter',
  });
  await client.connect();
  const startedAt = performance.now();
  const startTicks = uptimeTicks();
  type Watched = {
    group: 'processes' | 'backends' | 'background';
    key: string;
    startTicks: number;
    last: number;
  };
  const watched = new Map<number, Watched>();
  const totals: Pick<CpuBreakdown, 'processes' | 'backends' | 'background'> = {
    processes: {},
    backends: {},
    background: {},
  };
  const watch = (pid: number, group: Watched['group'], key: string): void => {
    if (watched.has(pid)) return;
    const times = procTimes(pid);
    if (!times) return;
    // Started after the meter: all its CPU is ours. Before: only what it uses from now on.
    const last = times.startTicks >= startTicks ? 0 : times.cpuTicks;
    watched.set(pid, { group, key, startTicks: times.startTicks, last });
    totals[group][key] ??= 0;
  };
  const sample = async (): Promise<void> => {
    const { rows } = await client.query<{
      pid: number;
      backend_type: string;
      ours: boolean;
      application_name: string;
    }>(
      `SELECT pid, backend_type, datname IS NOT DISTINCT FROM current_database() AS ours, application_name
       FROM pg_stat_activity`,
    );
    for (const r of rows) {
      if (r.backend_type === 'client backend' && r.ours && r.application_name.startsWith(prefix)) {
        watch(r.pid, 'backends', r.application_name);
      } else if (BACKGROUND_TYPES.has(r.backend_type)) watch(r.pid, 'background', r.backend_type);
      else if (r.backend_type === 'autovacuum worker' && r.ours) watch(r.pid, 'background', r.backend_type);
    }
    for (const [pid, w] of watched) {
      const times = procTimes(pid);
      if (!times || times.startTicks !== w.startTicks) {
        watched.delete(pid); // exited (its pid perhaps reused): its last interval is lost
        continue;
      }
      totals[w.group][w.key]! += (times.cpuTicks - w.last) / TICKS_PER_SECOND;
      w.last = times.cpuTicks;
    }
  };
  for (const [name, pid] of Object.entries(options.processes ?? {})) {
    if (pid !== undefined) watch(pid, 'processes', name);
  }
  await sample();
  let stopped = false;
  let stopping: Promise<CpuBreakdown> | undefined;
  let wake: (() => void) | undefined;
  let pending = Promise.resolve();
  const serial = (): Promise<void> => (pending = pending.then(sample));
  const loop = (async () => {
    while (!stopped) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, interval);
      });
      if (!stopped) await serial();
    }
  })();
  loop.catch(() => undefined); // rethrown by stop()
  const snapshot = (): CpuBreakdown => ({
    processes: { ...totals.processes },
    backends: { ...totals.backends },
    background: { ...totals.background },
    wallSeconds: (performance.now() - startedAt) / 1000,
  });
  return {
    addProcess(name, pid) {
      watch(pid, 'processes', name);
    },
    async read() {
      await serial();
      return snapshot();
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        wake?.();
        try {
          await loop;
          await serial();
        } finally {
          await client.end();
        }
        return snapshot();
      })();
      return stopping;
    },
  };
}

/** The pid of the nats-server process (its executable, not a command that mentions it), if local. */
export function natsServerPid(): number | undefined {
  return pidOf(/^[^\0]*nats-server\0/);
}

/**
 * The Postgres processes that serve no client: the postmaster, checkpointer, background writer, WAL
 * writer, autovacuum, archiver. They work for every database of the cluster (other users' too).
 */
export function postgresServerPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const postmaster = /^[^\0]*\/postgres\0-D\0/.test(cmdline);
      const auxiliary =
        /^postgres: (\S+: )?(checkpointer|background writer|walwriter|autovacuum|logical replication launcher|archiver|stats)/.test(
          cmdline,
        );
      if (postmaster || auxiliary) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** CPU seconds the given processes have used so far (a process that has exited counts as 0). */
export function totalCpuSeconds(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      sum += cpuSeconds(pid);
    } catch {
      // gone
    }
  }
  return sum;
}

/** Resident memory of a process now (VmRSS), MiB. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** The parent of a process (a Postgres backend's parent is the cluster's postmaster). */
export function parentPid(pid: number): number {
  return Number(
    readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ')[1],
  );
}

/**
 * CPU seconds used by a process and all its children (a Postgres cluster: the postmaster and every
 * backend and background process it started) since the first call of `sample`, read from /proc. A
 * process first seen after that counts from its start; one that exits between two samples loses what
 * it used since the last one, so sample often (every second or so).
 */
export function processTreeCpu(rootPid: number): { sample(): number } {
  const last = new Map<number, number>();
  let first = true;
  let total = 0;
  return {
    sample() {
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        const pid = Number(entry);
        let fields: number[];
        try {
          fields = readFileSync(`/proc/${entry}/stat`, 'utf8')
            .replace(/^.*\) /, '')
            .split(' ')
            .map(Number);
        } catch {
          continue; // gone
        }
        if (pid !== rootPid && fields[1] !== rootPid) continue;
        const cpu = (fields[11]! + fields[12]!) / 100;
        const before = last.get(pid) ?? (first ? cpu : 0);
        total += Math.max(0, cpu - before);
        last.set(pid, cpu);
      }
      first = false;
      return total;
    },
  };
}

/**
 * The correctness checks every benchmark run ends with: trace rows whose span_count is not their events in
 * the log (stale), the agent_metrics rows, and the metric rows unlike a full aggregation of the traces.
 */
export const CHECK_SQL = `
  WITH aggregated AS (
    SELECT assigned_agent AS agent_id, (completed_at AT TIME ZONE 'UTC')::date AS metric_date,
      count(*) FILTER (WHERE status = 'completed')::int AS tasks_completed,
      count(*) FILTER (WHERE status = 'failed')::int AS tasks_failed,
      count(*) FILTER (WHERE status = 'timed_out')::int AS tasks_timed_out,
      round(avg(duration_ms) FILTER (WHERE status = 'completed'))::bigint AS avg_duration_ms,
      round((percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
        FILTER (WHERE status = 'completed'))::numeric)::bigint AS p95_duration_ms,
      min(duration_ms) FILTER (WHERE status = 'completed') AS min_duration_ms,
      max(duration_ms) FILTER (WHERE status = 'completed') AS max_duration_ms,
      round(avg(time_to_pickup_ms))::bigint AS time_to_pickup_avg_ms
    FROM swarm_traces
    WHERE is_task AND status IN ('completed', 'failed', 'timed_out') AND assigned_agent IS NOT NULL
    GROUP BY 1, 2
  ),
  stored AS (
    SELECT agent_id, metric_date, tasks_completed, tasks_failed, tasks_timed_out, avg_duration_ms,
      p95_duration_ms, min_duration_ms, max_duration_ms, time_to_pickup_avg_ms
    FROM agent_metrics WHERE tasks_completed + tasks_failed + tasks_timed_out > 0
  )
  SELECT (SELECT count(*) FROM swarm_traces t WHERE t.span_count <>
           (SELECT count(*) FROM swarm_events e WHERE e.trace_id = t.trace_id)) AS stale,
         (SELECT count(*) FROM agent_metrics) AS metrics,
         (SELECT count(*) FROM ((TABLE aggregated EXCEPT TABLE stored)
           UNION ALL (TABLE stored EXCEPT TABLE aggregated)) d) AS wrong_metrics`;

/** Bytes on disk of swarm_events: its partitions (and the default) with their indexes; the parent holds none. */
export const EVENTS_ON_DISK_SQL = `((SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i
  WHERE i.inhparent = 'swarm_events'::regclass) + pg_total_relation_size('swarm_events'))`;

/**
 * The newest migration's file, the indexes it creates (name, statement) and, of those it drops and
 * creates again under the same name, the definition they had before (the last earlier migration's
 * CREATE INDEX of that name): comments left out.
 */
export function newestMigrationIndexes(): {
  file: string;
  indexes: { name: string; sql: string }[];
  replaced: { name: string; sql: string }[];
} {
  const files = readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort();
  const creates = (f: string) =>
    readFileSync(join(MIGRATIONS_DIR, f), 'utf8')
      .replace(/--[^\n]*\n/g, '')
      .split(';')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('CREATE INDEX'))
      .map((s) => ({ name: /CREATE INDEX (\w+)/.exec(s)![1]!, sql: s }));
  const file = files.at(-1)!;
  const indexes = creates(file);
  const earlier = new Map(
    files
      .slice(0, -1)
      .flatMap(creates)
      .map((i) => [i.name, i]),
  );
  const replaced = indexes.flatMap((i) => earlier.get(i.name) ?? []);
  return { file, indexes, replaced };
}
