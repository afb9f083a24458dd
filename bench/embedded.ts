/**
 * `npm run bench:embedded`: Chronicle's embedded PostgreSQL default against the machine's PostgreSQL
 * (a benchmark, not a test). Every figure is the median of BENCH_RUNS runs (default 3), runs listed.
 *
 * 1. Ready time of the embedded server alone (startEmbeddedPostgres until it resolves): first start on
 *    an empty directory (initdb and CREATE DATABASE included), migrations timed apart, then a restart.
 * 2. Ready time of `chronicle serve` (a child process) from spawn until GET /ready answers 200: on the
 *    embedded default cold (empty CHRONICLE_DATA_DIR) and warm (restart), and with DATABASE_URL on a
 *    fresh database of the machine's server.
 * 3. Raw insert rows/s: bench/drain.ts's raw ceiling (multi-row INSERTs of 1,000 rows on 2 connections
 *    into an empty copy of swarm_events with a unique event_id) in a freshly migrated database of each
 *    server. The first run on the new embedded cluster is reported apart (it also creates the WAL
 *    segments an older cluster recycles); the ratio compares the next one, run beside the machine's.
 * 4. HTTP ingest events/s of `chronicle serve` (no NATS) on each server, requests of 1,000 events,
 *    2 in flight, until every distinct event is in swarm_events.
 * 5. Idle memory 5 s after a cold start: Chronicle's RSS, and the RSS and PSS of the embedded postmaster
 *    and its children. PSS splits shared pages (shared_buffers, the binary) among the processes that
 *    map them, so it is the sum that does not count them once per process.
 *
 * Needs a build (dist/) and the machine's PostgreSQL: DATABASE_URL (default as in the tests) names a
 * database to connect to while creating and dropping throwaway ones. BENCH_INSERT_EVENTS (200,000) and
 * BENCH_HTTP_EVENTS (100,000) set the sizes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {
  type EmbeddedPostgres,
  freeLoopbackPort,
  startEmbeddedPostgres,
} from '../src/embedded-postgres/embedded-postgres.js';
import { migrate } from '../src/db/migrate.js';
import { createLogger, silentLogger } from '../src/telemetry/logger.js';
import { RAW_INSERT_SQL } from './raw-insert.js';
import { generateTraffic } from './traffic.js';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const INSERT_EVENTS = Number(process.env.BENCH_INSERT_EVENTS ?? 200_000);
const HTTP_EVENTS = Number(process.env.BENCH_HTTP_EVENTS ?? 100_000);
const BATCH_EVENTS = 1000;
/** Insert connections, and HTTP requests in flight. */
const CONCURRENCY = 2;
const IDLE_MILLIS = 5_000;
const READY_TIMEOUT_MILLIS = 120_000;
const STOP_TIMEOUT_MILLIS = 30_000;
const CHRONICLE_CLI = path.resolve('dist/cli/chronicle.js');
/** Settings that explain a throughput difference; a name the server lacks is left out. */
const SETTINGS = [
  'server_version',
  'fsync',
  'synchronous_commit',
  'full_page_writes',
  'wal_level',
  'wal_compression',
  'shared_buffers',
  'wal_buffers',
  'max_wal_size',
  'checkpoint_timeout',
  'data_checksums',
  'io_method',
];

// Only the embedded server's errors: its log is otherwise routed at debug and warn.
const logger = createLogger({ level: 'error', name: 'bench' });
const sleep = (millis: number): Promise<void> => new Promise((r) => setTimeout(r, millis));

/**
 * Undo steps still owed (stop a server, remove a directory, drop a database). Each runs once; it stays
 * owed until it has finished, so that settling up (newest first, on error or Ctrl-C) waits for a step
 * already under way before the older ones: a directory is removed only after its server stopped.
 */
const owed: { label: string; run: () => Promise<void> }[] = [];

/** Owes an undo step; the function returned runs it now (or joins the run under way). */
function owe(label: string, undo: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  const debt = {
    label,
    run: (): Promise<void> =>
      (running ??= undo().finally(() => {
        owed.splice(owed.indexOf(debt), 1);
      })),
  };
  owed.push(debt);
  return debt.run;
}

let settling: Promise<void> | undefined;

/** Runs every step still owed, newest first; the same promise for every caller. */
function settleDebts(): Promise<void> {
  settling ??= (async () => {
    for (let debt = owed.at(-1); debt; debt = owed.at(-1)) {
      try {
        await debt.run();
      } catch (err) {
        console.error(`cleanup: ${debt.label} failed: ${(err as Error).message}`);
      }
    }
  })();
  return settling;
}

async function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'chronicle-bench-'));
  return { dir, remove: owe(`remove ${dir}`, () => rm(dir, { recursive: true, force: true })) };
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  // A server stopped under it (cleanup after Ctrl-C) fails the query; not an uncaught 'error' too.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A throwaway database on the server of `adminUrl`. */
async function createDatabase(adminUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `chronicle_bench_${randomBytes(4).toString('hex')}`;
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const drop = owe(`drop database ${name}`, async () => {
    await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop };
}

async function settingsOf(url: string): Promise<Record<string, string>> {
  const { rows } = await withClient(url, (c) =>
    c.query<{ name: string; value: string }>(
      'SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1) ORDER BY name',
      [SETTINGS],
    ),
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.value]));
}

/** Starts the embedded server in this process; `millis` until startEmbeddedPostgres resolved. */
async function startEmbedded(
  dataDir: string,
): Promise<{ server: EmbeddedPostgres; millis: number; stop: () => Promise<void> }> {
  const port = await freeLoopbackPort();
  const started = performance.now();
  const server = await startEmbeddedPostgres({ dataDir, port, logger });
  const millis = performance.now() - started;
  return { server, millis, stop: owe(`stop embedded PostgreSQL in ${dataDir}`, () => server.stop()) };
}

// --- processes, from /proc ---

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat[stat.lastIndexOf(')') + 2] !== 'Z';
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(entry));
    } catch {
      // gone
    }
  }
  return children;
}

/** The embedded server Chronicle runs on `dataDir`, from its postmaster.pid (pid, data dir, start, port). */
function postmasterOf(dataDir: string): { pid: number; port: number } | undefined {
  try {
    const lines = readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
    // Ours only if it was started on this directory (a stale file's pid may have been reused).
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path.join(dataDir, 'postgres')))
      return undefined;
    return { pid, port: Number(lines[3]) };
  } catch {
    return undefined;
  }
}

/** A postmaster left running by a Chronicle that had to be killed: immediate shutdown (SIGQUIT). */
async function stopLeftoverPostmaster(dataDir: string): Promise<void> {
  const postmaster = postmasterOf(dataDir);
  if (!postmaster) return;
  console.error(`stopping PostgreSQL ${postmaster.pid} left running on ${dataDir}`);
  process.kill(postmaster.pid, 'SIGQUIT');
  for (let i = 0; i < 100 && isAlive(postmaster.pid); i++) await sleep(50);
}

interface Memory {
  rssKiB: number;
  pssKiB: number;
}

function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return {
    rssKiB: Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN),
    pssKiB: Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? NaN),
  };
}

/** Chronicle's process, and the sum over the embedded postmaster and its children. */
function idleMemory(chroniclePid: number, dataDir: string) {
  const postmaster = postmasterOf(dataDir);
  if (!postmaster) throw new Error(`no embedded PostgreSQL running on ${dataDir}`);
  const postgres = { rssKiB: 0, pssKiB: 0, processes: 0 };
  for (const pid of [postmaster.pid, ...childrenOf(postmaster.pid)]) {
    try {
      const m = memoryOf(pid);
      postgres.rssKiB += m.rssKiB;
      postgres.pssKiB += m.pssKiB;
      postgres.processes++;
    } catch {
      // exited meanwhile
    }
  }
  return { chronicle: memoryOf(chroniclePid), postgres };
}

// --- chronicle serve ---

interface Serve {
  url: string;
  /** performance.now() just before the spawn. */
  spawnedAt: number;
  pid: number;
  exited(): string | undefined;
  output(): string;
  /** SIGTERM (graceful: flush, stop the embedded server), SIGKILL after 30 s; then no postmaster is left. */
  stop(): Promise<void>;
}

/** `node dist/cli/chronicle.js serve` without NATS; without DATABASE_URL in `env`, on the embedded default. */
async function spawnServe(env: { CHRONICLE_DATA_DIR: string } | { DATABASE_URL: string }): Promise<Serve> {
  const port = await freeLoopbackPort();
  const inherited = { ...process.env };
  delete inherited.DATABASE_URL;
  delete inherited.NATS_URL;
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [CHRONICLE_CLI, 'serve'], {
    env: {
      ...inherited,
      CHRONICLE_PORT: String(port),
      CHRONICLE_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const keep = (chunk: Buffer): void => {
    tail.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 30));
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let how: string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      how = signal ? `signal ${signal}` : `code ${code}`;
      resolve();
    }),
  );
  const dataDir = 'CHRONICLE_DATA_DIR' in env ? env.CHRONICLE_DATA_DIR : undefined;
  const stop = owe(`stop chronicle serve ${child.pid}`, async () => {
    if (how === undefined) {
      child.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MILLIS).then(() => false)]))) {
        console.error(`chronicle serve ${child.pid} did not stop in time: SIGKILL`);
        child.kill('SIGKILL');
        await exited;
      }
    }
    if (dataDir !== undefined) await stopLeftoverPostmaster(dataDir);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    spawnedAt,
    pid: child.pid!,
    exited: () => how,
    output: () => tail.join('\n'),
    stop,
  };
}

/** Seconds from the spawn until GET /ready answered 200. */
async function readySeconds(serve: Serve): Promise<number> {
  for (;;) {
    const how = serve.exited();
    if (how !== undefined)
      throw new Error(`chronicle serve exited (${how}) before ready:\n${serve.output()}`);
    if (performance.now() - serve.spawnedAt > READY_TIMEOUT_MILLIS) {
      throw new Error(`chronicle serve not ready after ${READY_TIMEOUT_MILLIS} ms:\n${serve.output()}`);
    }
    try {
      const res = await fetch(`${serve.url}/ready`);
      await res.arrayBuffer();
      if (res.ok) return (performance.now() - serve.spawnedAt) / 1000;
    } catch {
      // not listening yet
    }
    await sleep(10);
  }
}

/** The database the embedded server of a running `chronicle serve` on `dataDir` holds. */
function embeddedDatabaseUrl(dataDir: string): string {
  const postmaster = postmasterOf(dataDir);
  if (!postmaster) throw new Error(`no embedded PostgreSQL running on ${dataDir}`);
  const password = readFileSync(path.join(dataDir, 'postgres-password'), 'utf8').trim();
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${postmaster.port}/chronicle`;
}

/** Posts every body (CONCURRENCY in flight) and waits until `distinct` rows are in swarm_events. */
async function httpIngest(serve: Serve, bodies: string[], databaseUrl: string, distinct: number) {
  let next = 0;
  let retries = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < bodies.length) {
      const body = bodies[next++]!;
      for (;;) {
        const res = await fetch(`${serve.url}/api/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        const text = await res.text();
        if (res.status === 200) break;
        if (res.status !== 429 && res.status !== 503) {
          throw new Error(`POST /api/v1/events answered ${res.status}: ${text.slice(0, 300)}`);
        }
        retries++;
        await sleep(50);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  // A 200 comes after the commit, so the rows should all be there; counted to be sure.
  const stored = await withClient(databaseUrl, async (c) => {
    for (;;) {
      const { rows } = await c.query<{ n: string }>('SELECT count(*) AS n FROM swarm_events');
      const n = Number(rows[0]!.n);
      if (n >= distinct || performance.now() - started > 120_000) return n;
      await sleep(20);
    }
  });
  if (stored !== distinct) throw new Error(`stored ${stored} events, expected ${distinct}`);
  return { seconds: (performance.now() - started) / 1000, retries };
}

// --- raw inserts ---

/** JSON arrays of BATCH_EVENTS canonical events each. */
function batchesOf(messages: { payload: string }[]): string[] {
  const batches: string[] = [];
  for (let i = 0; i < messages.length; i += BATCH_EVENTS) {
    batches.push(
      `[${messages
        .slice(i, i + BATCH_EVENTS)
        .map((m) => m.payload)
        .join(',')}]`,
    );
  }
  return batches;
}

/** bench/drain.ts's raw ceiling, in the (fresh) database at `url`: migrated first, not timed. */
async function rawInsert(url: string, batches: string[]): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: CONCURRENCY });
  pool.on('error', () => undefined); // an idle connection lost: the next query fails instead
  try {
    await migrate(pool, silentLogger());
    await pool.query(`CREATE TABLE raw_events (LIKE swarm_events INCLUDING ALL)`);
    await pool.query(`ALTER TABLE raw_events ADD PRIMARY KEY (event_id)`);
    // Every connection open before the clock starts.
    await Promise.all(Array.from({ length: CONCURRENCY }, () => pool.query('SELECT 1')));
    let next = 0;
    const started = performance.now();
    const worker = async (): Promise<void> => {
      while (next < batches.length) {
        await pool.query(RAW_INSERT_SQL, [batches[next++]!]);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - started) / 1000;
    const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM raw_events');
    return Number(rows[0]!.n) / seconds;
  } finally {
    await pool.end();
  }
}

// --- the runs ---

interface Figures {
  embeddedFirstStartSeconds: number[];
  embeddedMigrateSeconds: number[];
  embeddedRestartSeconds: number[];
  serveColdSeconds: number[];
  serveWarmSeconds: number[];
  serveMachineSeconds: number[];
  insertEmbeddedFirstRowsPerSecond: number[];
  insertEmbeddedRowsPerSecond: number[];
  insertMachineRowsPerSecond: number[];
  httpEmbeddedEventsPerSecond: number[];
  httpMachineEventsPerSecond: number[];
  httpRetries: number[];
  idleChronicleRssMiB: number[];
  idleChroniclePssMiB: number[];
  idlePostgresRssMiB: number[];
  idlePostgresPssMiB: number[];
  idlePostgresProcesses: number[];
}

/** Ready times of the embedded server alone, and the raw inserts on it and on the machine's server. */
async function serverRun(run: number, batches: string[], figures: Figures): Promise<Record<string, string>> {
  const { dir, remove } = await tempDir();
  const first = await startEmbedded(dir);
  const pool = new pg.Pool({ connectionString: first.server.url, max: 1 });
  pool.on('error', () => undefined);
  const migrateStarted = performance.now();
  try {
    await migrate(pool, silentLogger());
  } finally {
    await pool.end();
  }
  figures.embeddedMigrateSeconds.push((performance.now() - migrateStarted) / 1000);
  figures.embeddedFirstStartSeconds.push(first.millis / 1000);
  const settings = await settingsOf(first.server.url);
  await first.stop();

  const restart = await startEmbedded(dir);
  figures.embeddedRestartSeconds.push(restart.millis / 1000);
  const onEmbedded = async (): Promise<number> => {
    const db = await createDatabase(restart.server.url);
    const rowsPerSecond = await rawInsert(db.url, batches);
    await db.drop();
    return rowsPerSecond;
  };
  const onMachine = async (): Promise<number> => {
    const db = await createDatabase(ADMIN_URL);
    const rowsPerSecond = await rawInsert(db.url, batches);
    await db.drop();
    return rowsPerSecond;
  };
  // The first writes of a new cluster also create its WAL segments (an old one recycles them): apart.
  figures.insertEmbeddedFirstRowsPerSecond.push(await onEmbedded());
  // Alternating which server goes first, so that neither always follows the other's checkpoint.
  if (run % 2 === 1) {
    figures.insertEmbeddedRowsPerSecond.push(await onEmbedded());
    figures.insertMachineRowsPerSecond.push(await onMachine());
  } else {
    figures.insertMachineRowsPerSecond.push(await onMachine());
    figures.insertEmbeddedRowsPerSecond.push(await onEmbedded());
  }
  await restart.stop();
  await remove();
  console.log(
    `server run ${run}: embedded first start ${f2(first.millis / 1000)} s (+ migrations ${f2(figures.embeddedMigrateSeconds.at(-1)!)} s), ` +
      `restart ${f2(restart.millis / 1000)} s; raw insert rows/s embedded ${f0(figures.insertEmbeddedFirstRowsPerSecond.at(-1)!)} (first), ` +
      `${f0(figures.insertEmbeddedRowsPerSecond.at(-1)!)}, machine ${f0(figures.insertMachineRowsPerSecond.at(-1)!)}`,
  );
  return settings;
}

/** `chronicle serve`: cold start, idle memory, HTTP ingest and warm restart on the embedded default; then the machine's server. */
async function serveRun(
  run: number,
  bodies: string[],
  traffic: { posted: number; distinct: number },
  figures: Figures,
): Promise<void> {
  const { dir, remove } = await tempDir();
  const cold = await spawnServe({ CHRONICLE_DATA_DIR: dir });
  figures.serveColdSeconds.push(await readySeconds(cold));
  await sleep(IDLE_MILLIS);
  const idle = idleMemory(cold.pid, dir);
  figures.idleChronicleRssMiB.push(idle.chronicle.rssKiB / 1024);
  figures.idleChroniclePssMiB.push(idle.chronicle.pssKiB / 1024);
  figures.idlePostgresRssMiB.push(idle.postgres.rssKiB / 1024);
  figures.idlePostgresPssMiB.push(idle.postgres.pssKiB / 1024);
  figures.idlePostgresProcesses.push(idle.postgres.processes);
  const embedded = await httpIngest(cold, bodies, embeddedDatabaseUrl(dir), traffic.distinct);
  figures.httpEmbeddedEventsPerSecond.push(traffic.posted / embedded.seconds);
  await cold.stop();

  const warm = await spawnServe({ CHRONICLE_DATA_DIR: dir });
  figures.serveWarmSeconds.push(await readySeconds(warm));
  await warm.stop();
  await remove();

  const machineDb = await createDatabase(ADMIN_URL);
  const machine = await spawnServe({ DATABASE_URL: machineDb.url });
  figures.serveMachineSeconds.push(await readySeconds(machine));
  const onMachine = await httpIngest(machine, bodies, machineDb.url, traffic.distinct);
  figures.httpMachineEventsPerSecond.push(traffic.posted / onMachine.seconds);
  figures.httpRetries.push(embedded.retries + onMachine.retries);
  await machine.stop();
  await machineDb.drop();
  console.log(
    `serve run ${run}: ready cold ${f2(figures.serveColdSeconds.at(-1)!)} s, warm ${f2(figures.serveWarmSeconds.at(-1)!)} s, ` +
      `on the machine's server ${f2(figures.serveMachineSeconds.at(-1)!)} s; idle RSS Chronicle ${f1(idle.chronicle.rssKiB / 1024)} MiB, ` +
      `PostgreSQL ${f1(idle.postgres.rssKiB / 1024)} MiB RSS / ${f1(idle.postgres.pssKiB / 1024)} MiB PSS (${idle.postgres.processes} processes); ` +
      `HTTP events/s embedded ${f0(traffic.posted / embedded.seconds)}, machine ${f0(traffic.posted / onMachine.seconds)}`,
  );
}

// --- report ---

const f0 = (n: number): string => Math.round(n).toLocaleString('en-US');
const f1 = (n: number): string => n.toFixed(1);
const f2 = (n: number): string => n.toFixed(2);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function report(
  figures: Figures,
  settings: { embedded: Record<string, string>; machine: Record<string, string> },
) {
  const major = (s: Record<string, string>): string => `PG ${s.server_version?.split('.')[0] ?? '?'}`;
  const embedded = `embedded ${major(settings.embedded)}`;
  const machine = `machine ${major(settings.machine)}`;
  const ratios = (a: number[], b: number[]): number[] => a.map((x, i) => x / b[i]!);
  const idleTotalPss = figures.idleChroniclePssMiB.map((x, i) => x + figures.idlePostgresPssMiB[i]!);
  const rows: [string, number[], (n: number) => string, string][] = [
    [`${embedded} ready, first start (initdb, CREATE DATABASE)`, figures.embeddedFirstStartSeconds, f2, ' s'],
    ['… then migrations on it', figures.embeddedMigrateSeconds, f2, ' s'],
    [`${embedded} ready, restart`, figures.embeddedRestartSeconds, f2, ' s'],
    [
      '`chronicle serve` spawn → /ready 200, embedded, cold (empty data dir)',
      figures.serveColdSeconds,
      f2,
      ' s',
    ],
    ['`chronicle serve` spawn → /ready 200, embedded, warm (restart)', figures.serveWarmSeconds, f2, ' s'],
    [
      `\`chronicle serve\` spawn → /ready 200, ${machine} (fresh database)`,
      figures.serveMachineSeconds,
      f2,
      ' s',
    ],
    [
      `raw insert rows/s, ${embedded}, first on the new cluster`,
      figures.insertEmbeddedFirstRowsPerSecond,
      f0,
      '',
    ],
    [`raw insert rows/s, ${embedded}, then`, figures.insertEmbeddedRowsPerSecond, f0, ''],
    [`raw insert rows/s, ${machine}`, figures.insertMachineRowsPerSecond, f0, ''],
    [
      'raw insert ratio embedded (then) / machine',
      ratios(figures.insertEmbeddedRowsPerSecond, figures.insertMachineRowsPerSecond),
      f2,
      '×',
    ],
    [`HTTP ingest events/s, ${embedded}`, figures.httpEmbeddedEventsPerSecond, f0, ''],
    [`HTTP ingest events/s, ${machine}`, figures.httpMachineEventsPerSecond, f0, ''],
    [
      'HTTP ingest ratio embedded / machine',
      ratios(figures.httpEmbeddedEventsPerSecond, figures.httpMachineEventsPerSecond),
      f2,
      '×',
    ],
    ['idle RSS, Chronicle (node)', figures.idleChronicleRssMiB, f1, ' MiB'],
    [
      `idle RSS, embedded PostgreSQL (sum of ${figures.idlePostgresProcesses.join('/')} processes; shared pages counted in each)`,
      figures.idlePostgresRssMiB,
      f1,
      ' MiB',
    ],
    ['idle PSS, embedded PostgreSQL (sum; shared pages split)', figures.idlePostgresPssMiB, f1, ' MiB'],
    ['idle PSS, Chronicle + embedded PostgreSQL', idleTotalPss, f1, ' MiB'],
  ];
  console.log('');
  console.log(
    `${RUNS} runs; raw insert: ${f0(INSERT_EVENTS)} events in INSERTs of ${f0(BATCH_EVENTS)} on ${CONCURRENCY} connections; ` +
      `HTTP: ${f0(HTTP_EVENTS)}+ events in requests of ${f0(BATCH_EVENTS)}, ${CONCURRENCY} in flight (${figures.httpRetries.reduce((a, b) => a + b, 0)} retries)`,
  );
  console.log('| measure | median | runs |');
  console.log('|---|---|---|');
  for (const [label, values, format, unit] of rows) {
    console.log(`| ${label} | ${format(median(values))}${unit} | ${values.map(format).join(', ')} |`);
  }
  console.log('');
  console.log('| setting | embedded | machine |');
  console.log('|---|---|---|');
  for (const name of SETTINGS) {
    console.log(`| ${name} | ${settings.embedded[name] ?? '–'} | ${settings.machine[name] ?? '–'} |`);
  }
  const medians = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, median(v as number[])]));
  console.log(
    JSON.stringify({
      benchmark: 'embedded',
      runs: RUNS,
      insertEvents: INSERT_EVENTS,
      httpEvents: HTTP_EVENTS,
      medians: {
        ...medians,
        insertRatio: median(ratios(figures.insertEmbeddedRowsPerSecond, figures.insertMachineRowsPerSecond)),
        httpRatio: median(ratios(figures.httpEmbeddedEventsPerSecond, figures.httpMachineEventsPerSecond)),
        idleTotalPssMiB: median(idleTotalPss),
      },
      figures,
      settings,
    }),
  );
}

async function main(): Promise<void> {
  console.log(
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, temp dirs in ${os.tmpdir()}`,
  );
  const inserts = batchesOf(generateTraffic(INSERT_EVENTS, 42).messages.slice(0, INSERT_EVENTS));
  const http = generateTraffic(HTTP_EVENTS, 7);
  const bodies = batchesOf(http.messages);
  const figures: Figures = {
    embeddedFirstStartSeconds: [],
    embeddedMigrateSeconds: [],
    embeddedRestartSeconds: [],
    serveColdSeconds: [],
    serveWarmSeconds: [],
    serveMachineSeconds: [],
    insertEmbeddedFirstRowsPerSecond: [],
    insertEmbeddedRowsPerSecond: [],
    insertMachineRowsPerSecond: [],
    httpEmbeddedEventsPerSecond: [],
    httpMachineEventsPerSecond: [],
    httpRetries: [],
    idleChronicleRssMiB: [],
    idleChroniclePssMiB: [],
    idlePostgresRssMiB: [],
    idlePostgresPssMiB: [],
    idlePostgresProcesses: [],
  };
  let embeddedSettings: Record<string, string> = {};
  for (let run = 1; run <= RUNS; run++) embeddedSettings = await serverRun(run, inserts, figures);
  for (let run = 1; run <= RUNS; run++) {
    await serveRun(run, bodies, { posted: http.messages.length, distinct: http.distinct }, figures);
  }
  report(figures, { embedded: embeddedSettings, machine: await settingsOf(ADMIN_URL) });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: cleaning up`);
    void settleDebts().finally(() => process.exit(130));
  });
}

try {
  await main();
} finally {
  await settleDebts();
}
