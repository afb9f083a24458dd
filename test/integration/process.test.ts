/**
 * Chronicle as operators run it: the built dist/ started as a real process, configured through the
 * environment, stopped with signals.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, buildDist } from '../support/build.js';
import { sleep, waitFor } from '../support/chronicle.js';
import { type TestDatabase, createTestDatabase } from '../support/db.js';
import { type Exit, exitWithin, freePort } from '../support/process.js';
import { DATABASE_URL, describeWithPostgres } from '../support/services.js';

const MAIN = 'dist/main.js';
const CLI = 'dist/cli/chronicle.js';

interface ChronicleProcess {
  readonly child: ChildProcess;
  /** Leads a process group of its own (see startProcess). */
  readonly group: boolean;
  stdout(): string;
  stderr(): string;
  /** Both, labelled (for failure messages). */
  output(): string;
  /** Settles when the process has exited and its output streams are closed. */
  readonly exited: Promise<Exit>;
  /** The JSON log lines written to stdout so far (every line must parse). */
  logs(): Record<string, unknown>[];
}

const running = new Set<ChronicleProcess>();
const cleanups: (() => Promise<void>)[] = [];

/** Starts `node <script>` from the repository root with only PATH and `env` in its environment. */
function startNode(script: string, env: Record<string, string>, args: string[] = []): ChronicleProcess {
  return startProcess(process.execPath, [script, ...args], env);
}

/**
 * Starts `command` from the repository root with only PATH, HOME and `env` in its environment;
 * `group` puts it in a process group of its own, as a terminal does, so `signalGroup` reaches it and
 * everything it started (Ctrl-C).
 */
function startProcess(
  command: string,
  args: string[],
  env: Record<string, string>,
  { group = false } = {},
): ChronicleProcess {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: group,
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const proc: ChronicleProcess = {
    child,
    group,
    stdout: () => out,
    stderr: () => err,
    output: () => `stdout:\n${out}\nstderr:\n${err}`,
    exited: new Promise<Exit>((resolve) => child.once('close', (code, signal) => resolve({ code, signal }))),
    logs: () =>
      out
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
  running.add(proc);
  void proc.exited.then(() => running.delete(proc));
  return proc;
}

/** Sends `signal` to the process group `proc` leads, as a terminal's Ctrl-C (SIGINT) does. */
function signalGroup(proc: ChronicleProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.child.pid!, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** A failed test must not leave its postmaster behind (Chronicle starts it in a group of its own). */
function stopLeftoverPostmaster(postmasterPid: string): void {
  if (!existsSync(postmasterPid)) return;
  try {
    process.kill(Number(readFileSync(postmasterPid, 'utf8').split('\n')[0]), 'SIGQUIT');
  } catch {
    // already gone
  }
}

/** Starts dist/main.js on a free local port, HTTP ingest only, and waits until GET /ready answers 200. */
async function startChronicle(
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<{ proc: ChronicleProcess; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = startNode(MAIN, {
    DATABASE_URL: databaseUrl,
    NATS_URL: 'none',
    CHRONICLE_HOST: '127.0.0.1',
    CHRONICLE_PORT: String(port),
    LOG_LEVEL: 'info',
    ...env,
  });
  let exit: Exit | undefined;
  void proc.exited.then((e) => (exit = e));
  await waitFor(
    async () => {
      if (exit)
        throw new Error(`Chronicle exited (${JSON.stringify(exit)}): ${proc.stderr()}${proc.stdout()}`);
      return (await fetch(`${url}/ready`)).status === 200;
    },
    15_000,
    `${url}/ready to answer 200`,
  );
  return { proc, url };
}

async function adminQuery<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrate: false });
  cleanups.push(() => db.drop());
  return db;
}

async function tablesOf(db: TestDatabase): Promise<string[]> {
  const { rows } = await db.pool.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
  );
  return rows.map((r) => r.table_name);
}

const event = (traceId: string) => ({
  event_id: randomUUID(),
  trace_id: traceId,
  source: 'dispatch',
  event_type: 'task.created',
  timestamp: '2026-03-01T12:00:00.000Z',
  metadata: { title: 'Summarise' },
});

beforeAll(() => {
  buildDist();
}, 60_000);

afterEach(async () => {
  for (const proc of running) {
    if (proc.group) signalGroup(proc, 'SIGKILL');
    else proc.child.kill('SIGKILL');
    await proc.exited;
  }
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// The embedded default needs no service at all: these run wherever Node does.
describe('chronicle process - the embedded default, with no services', () => {
  it('npm start with no DATABASE_URL and no NATS_URL: an embedded PostgreSQL; ready, ingests and serves, simulate --verify passes, and Ctrl-C stops PostgreSQL last', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'chronicle-embedded-'));
    const postmasterPid = join(dataDir, 'postgres', 'postmaster.pid');
    try {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      // As a new user runs it: `npm start` (build, then `chronicle serve`) in a terminal's process group.
      const proc = startProcess(
        'npm',
        ['start'],
        { CHRONICLE_PORT: String(port), CHRONICLE_DATA_DIR: dataDir, LOG_LEVEL: 'info' },
        { group: true },
      );
      let exit: Exit | undefined;
      void proc.exited.then((e) => (exit = e));
      await waitFor(
        async () => {
          if (exit) throw new Error(`npm start exited (${JSON.stringify(exit)}): ${proc.stderr()}`);
          return (await fetch(`${url}/ready`)).status === 200;
        },
        60_000,
        'the embedded default to be ready',
      );
      expect(proc.stderr()).toContain(`embedded PostgreSQL in ${dataDir}/`);
      expect(proc.stderr()).toContain('NATS      off: HTTP and OTLP ingest only');

      const sent = event('embedded-trace-1');
      const posted = await fetch(`${url}/api/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(sent),
      });
      expect(posted.status).toBe(200);
      const got = (await (await fetch(`${url}/api/v1/traces/embedded-trace-1`)).json()) as {
        events: { event_id: string }[];
      };
      expect(got.events.map((e) => e.event_id)).toEqual([sent.event_id]);

      // The simulator's check against the embedded default: every event, trace status and agent count.
      const simulate = startNode(CLI, {}, [
        'simulate',
        '--url',
        url,
        '--count',
        '2000',
        '--seed',
        '7',
        '--error-rate',
        '0.1',
        '--timeout-rate',
        '0.08',
        '--duplicate-rate',
        '0.05',
        '--out-of-order-rate',
        '0.05',
        '--verify',
        '--verify-timeout',
        '30',
        '--quiet',
      ]);
      const simulated = await exitWithin(simulate, 60_000);
      expect({ ...simulated, stderr: simulate.stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
      expect(simulate.stdout()).toContain('verify: Chronicle recorded everything');

      // Ctrl-C: one graceful shutdown (npm and Chronicle both get the SIGINT), PostgreSQL stopped last.
      expect(existsSync(postmasterPid)).toBe(true);
      signalGroup(proc, 'SIGINT');
      await exitWithin(proc, 30_000);
      const out = proc.stdout();
      expect(out.match(/"msg":"shutting down: stopping intake and flushing"/g)).toHaveLength(1);
      expect(out.indexOf('"msg":"embedded PostgreSQL stopped"')).toBeGreaterThan(
        out.indexOf('"msg":"shutting down'),
      );
      expect(out).toContain('"msg":"Chronicle stopped"');
      expect(existsSync(postmasterPid)).toBe(false);
    } finally {
      stopLeftoverPostmaster(postmasterPid);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('beside a running serve, migrate and export use its embedded server; its loss stops serve with 1; SIGHUP stops it cleanly', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'chronicle-embedded-'));
    const postmasterPid = join(dataDir, 'postgres', 'postmaster.pid');
    try {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const env = { CHRONICLE_DATA_DIR: dataDir, LOG_LEVEL: 'info' };
      const serveEnv = { ...env, CHRONICLE_PORT: String(port), SPAN_SETTLE_MS: '0' };
      let serve = startNode(CLI, serveEnv, ['serve']);
      await waitFor(async () => (await fetch(`${url}/ready`)).status === 200, 30_000, 'serve to be ready');
      // A finished task: its spans are built (a task still pending has none yet).
      const lifecycle = ['task.created', 'task.assigned', 'task.started', 'task.completed'].map(
        (type, i) => ({
          ...event('shared-1'),
          event_type: type,
          timestamp: `2026-03-01T12:00:0${i}.000Z`,
          metadata: { title: 'Summarise', agent: 'scout' },
        }),
      );
      const posted = await fetch(`${url}/api/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(lifecycle),
      });
      expect(posted.status).toBe(200);
      await waitFor(
        async () => {
          const detail = (await (await fetch(`${url}/api/v1/traces/shared-1`)).json()) as {
            spans: unknown[];
          };
          return detail.spans.length > 0;
        },
        15_000,
        'the spans to be built',
      );

      const migrate = startNode(CLI, env, ['migrate']);
      expect(await exitWithin(migrate, 15_000)).toEqual({ code: 0, signal: null });
      expect(migrate.stdout()).toContain('using the embedded PostgreSQL of the Chronicle running');
      expect(migrate.stdout()).toContain('database already up to date');

      // Backfill: the stored spans, re-sent to an OTLP endpoint (here the same Chronicle's receiver).
      const exported = startNode(CLI, env, [
        'export',
        '--since',
        '2026-03-01T00:00:00Z',
        '--endpoint',
        `${url}/v1/traces`,
      ]);
      expect(await exitWithin(exported, 15_000)).toEqual({ code: 0, signal: null });
      expect(exported.stdout()).toMatch(/chronicle export: [1-9]\d* spans sent to /);

      // The embedded server dies under serve: it stops and exits 1 for its supervisor, saying why.
      process.kill(Number(readFileSync(postmasterPid, 'utf8').split('\n')[0]), 'SIGKILL');
      expect(await exitWithin(serve, 20_000)).toEqual({ code: 1, signal: null });
      expect(serve.stderr()).toContain('chronicle serve: the embedded PostgreSQL exited (signal SIGKILL)');

      // A restart recovers the server and the data; SIGHUP (a closed terminal) is a graceful stop.
      serve = startNode(CLI, serveEnv, ['serve']);
      await waitFor(async () => (await fetch(`${url}/ready`)).status === 200, 30_000, 'the restart');
      expect((await fetch(`${url}/api/v1/traces/shared-1`)).status).toBe(200);
      serve.child.kill('SIGHUP');
      expect(await exitWithin(serve, 20_000)).toEqual({ code: 0, signal: null });
      expect(serve.stdout()).toContain('"msg":"Chronicle stopped"');
      expect(existsSync(postmasterPid)).toBe(false);
    } finally {
      stopLeftoverPostmaster(postmasterPid);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('export on a data directory with no cluster fails in one line and creates nothing', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'chronicle-empty-'));
    try {
      const proc = startNode(CLI, { CHRONICLE_DATA_DIR: dataDir }, [
        'export',
        '--since',
        '2026-03-01T00:00:00Z',
        '--endpoint',
        'http://127.0.0.1:9/v1/traces',
      ]);
      expect(await exitWithin(proc, 10_000)).toEqual({ code: 1, signal: null });
      expect(proc.stderr()).toBe(
        `chronicle export: no Chronicle data in ${dataDir}/ (set CHRONICLE_DATA_DIR to the directory chronicle serve uses, or DATABASE_URL)\n`,
      );
      expect(existsSync(join(dataDir, 'postgres', 'PG_VERSION'))).toBe(false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describeWithPostgres('chronicle process - dist/main.js and the chronicle CLI', () => {
  it('an invalid configuration exits 2 and lists every problem on stderr', async () => {
    const proc = startNode(MAIN, { CHRONICLE_PORT: 'eighty', LOG_LEVEL: 'loud', NATS_URL: 'none' });
    const exit = await exitWithin(proc, 10_000);
    expect(exit.code).toBe(2);
    expect(proc.stderr()).toContain('invalid configuration');
    expect(proc.stderr()).toMatch(/CHRONICLE_PORT: must be a whole number/);
    expect(proc.stderr()).toMatch(/LOG_LEVEL: /);
    expect(proc.stdout()).toBe('');
  });

  it('migrates a fresh database, ingests and serves an event, and stops with exit 0 on SIGTERM', async () => {
    const db = await freshDatabase();
    const { proc, url } = await startChronicle(db.url);
    expect(await tablesOf(db)).toEqual(
      expect.arrayContaining(['swarm_events', 'swarm_traces', 'agent_metrics', 'chronicle_migrations']),
    );

    const sent = event('process-trace-1');
    const posted = await fetch(`${url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(sent),
    });
    expect(posted.status).toBe(200);
    expect(await posted.json()).toMatchObject({ accepted: 1, duplicates: 0, rejected: [] });

    const got = await fetch(`${url}/api/v1/traces/process-trace-1`);
    expect(got.status).toBe(200);
    const body = (await got.json()) as { trace: Record<string, unknown>; events: Record<string, unknown>[] };
    expect(body.trace).toMatchObject({
      trace_id: 'process-trace-1',
      status: 'pending',
      task_title: 'Summarise',
    });
    expect(body.events.map((e) => e.event_id)).toEqual([sent.event_id]);

    proc.child.kill('SIGTERM');
    const exit = await exitWithin(proc, 5_000);
    expect(exit).toEqual({ code: 0, signal: null });
    const logs = proc.logs();
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) {
      expect(typeof line.level).toBe('number');
      expect(typeof line.msg).toBe('string');
    }
    const messages = logs.map((l) => l.msg);
    expect(messages).toContain('Chronicle listening');
    expect(messages).toContain('shutting down: stopping intake and flushing');
    expect(messages).toContain('Chronicle stopped');
  });

  it('creates the database named in DATABASE_URL when the server does not have it', async () => {
    const name = `chronicle_t_new_${randomBytes(5).toString('hex')}`;
    cleanups.push(async () => {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    });
    const target = new URL(DATABASE_URL);
    target.pathname = `/${name}`;
    const exists = async () =>
      (await adminQuery('SELECT 1 FROM pg_database WHERE datname = $1', [name])).length;
    expect(await exists()).toBe(0);

    const { proc } = await startChronicle(target.toString());
    expect(await exists()).toBe(1);
    expect(proc.logs().map((l) => l.msg)).toContain('database created');

    proc.child.kill('SIGTERM');
    expect((await exitWithin(proc, 5_000)).code).toBe(0);
  });

  it('a second signal while a flush is blocked exits at once with 130', async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const { proc, url } = await startChronicle(db.url, { SHUTDOWN_TIMEOUT_MS: '60000' });

    // Hold swarm_events so that the flush of the next event waits on the lock.
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    cleanups.push(async () => {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    });
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE swarm_events IN ACCESS EXCLUSIVE MODE');

    const answer = fetch(`${url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event('process-blocked')),
    }).then(
      (res) => res.status,
      () => 'no answer',
    );
    await waitFor(
      async () =>
        (
          await locker.query(
            `SELECT 1 FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'chronicle' AND wait_event_type = 'Lock'`,
            [db.name],
          )
        ).rowCount,
      10_000,
      'the flush to wait on the swarm_events lock',
    );

    proc.child.kill('SIGTERM');
    await waitFor(
      () => proc.logs().some((l) => String(l.msg).startsWith('shutting down')),
      5_000,
      'the first signal to be handled',
    );
    // The same signal again within a second (a Ctrl-C under npm arrives twice) is the same request.
    proc.child.kill('SIGTERM');
    // The graceful shutdown cannot finish: its flush is blocked.
    await sleep(1_200);
    expect(proc.child.exitCode).toBeNull();

    proc.child.kill('SIGTERM');
    const exit = await exitWithin(proc, 3_000);
    expect(exit).toEqual({ code: 130, signal: null });
    expect(proc.logs().map((l) => l.msg)).not.toContain('Chronicle stopped');
    expect(await answer).toBe('no answer');
  });

  it('chronicle migrate applies the migrations to a fresh database, and a second run has nothing to do', async () => {
    const db = await freshDatabase();
    const env = { DATABASE_URL: db.url, LOG_LEVEL: 'info' };

    const first = startNode(CLI, env, ['migrate']);
    expect(await exitWithin(first, 15_000)).toEqual({ code: 0, signal: null });
    expect(first.logs().map((l) => l.msg)).toContain('migrations applied');
    expect(await tablesOf(db)).toEqual(
      expect.arrayContaining([
        'agent_metrics',
        'chronicle_migrations',
        'chronicle_rejects',
        'swarm_dlq',
        'swarm_events',
        'swarm_traces',
      ]),
    );
    const { rows } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM chronicle_migrations',
    );
    const applied = rows[0]!.n;
    expect(applied).toBeGreaterThan(0);

    const second = startNode(CLI, env, ['migrate']);
    expect(await exitWithin(second, 15_000)).toEqual({ code: 0, signal: null });
    const messages = second.logs().map((l) => l.msg);
    expect(messages).toContain('database already up to date');
    expect(messages).not.toContain('migration applied');
    const again = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM chronicle_migrations');
    expect(again.rows[0]!.n).toBe(applied);
  });
});
