import { type ChildProcess, spawn } from 'node:child_process';
import { chown, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EmbeddedPostgres,
  freeLoopbackPort,
  startEmbeddedPostgres,
} from '../../src/embedded-postgres/embedded-postgres.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import type { Logger } from '../../src/telemetry/logger.js';

// Needs no machine Postgres: runs wherever the embedded binaries for this platform are installed.
const platform = process.platform === 'win32' ? 'windows' : process.platform;
const binariesPresent = ((): boolean => {
  try {
    createRequire(import.meta.url).resolve(`@embedded-postgres/${platform}-${process.arch}`);
    return true;
  } catch {
    return false;
  }
})();

const CHILD = fileURLToPath(new URL('../support/embedded-postgres-child.ts', import.meta.url));
const isRoot = process.getuid?.() === 0;

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A logger whose JSON lines the test can read. */
function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; millis: number }> {
  const startedAt = performance.now();
  const value = await work();
  return { value, millis: Math.round(performance.now() - startedAt) };
}

async function query<T>(url: string, sql: string): Promise<T[]> {
  const pool = createPool({ connectionString: url, maxConnections: 1 });
  try {
    return (await pool.query(sql)).rows as T[];
  } finally {
    await pool.end();
  }
}

async function postmasterPid(dataDir: string): Promise<number> {
  return Number((await readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

/** Running, not a zombie waiting for its new parent (the reaper of orphans) to collect it. */
async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** Starts the child script; resolves with its JSON lines as they come and its exit. */
function startChild(
  dataDir: string,
  port: number,
  mode: 'hold' | 'graceful',
): {
  child: ChildProcess;
  next(event: string): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
} {
  // Its own process group, like a terminal's foreground job: a signal to the group reaches every
  // process in it unless, like the postmaster, it left.
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dataDir, String(port), mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const events: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let stderr = '';
  let partial = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  child.stdout?.on('data', (c: Buffer) => {
    const lines = (partial + c.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) events.push(JSON.parse(line) as Record<string, unknown>);
    waiters.splice(0).forEach((w) => w());
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const next = async (event: string): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const found = events.find((e) => e.event === event);
      if (found) return found;
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`child never said ${event}; exit ${child.exitCode}; stderr: ${stderr}`);
      }
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
  };
  return { child, next, exited };
}

describe.skipIf(!binariesPresent)('embedded postgres', () => {
  let dataDir: string;
  let port: number;
  let db: EmbeddedPostgres | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'chronicle-embedded-'));
    port = await freeLoopbackPort();
  });
  afterAll(async () => {
    await db?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('embedded postgres - first start initialises the cluster, runs the migrations and answers queries', async () => {
    const { logger, lines } = capturingLogger();
    const signalListeners = process.listenerCount('SIGTERM') + process.listenerCount('SIGINT');
    const { value, millis } = await timed(() => startEmbeddedPostgres({ dataDir, port, logger }));
    db = value;
    console.log(`embedded postgres: first start (initdb + createdb) ready in ${millis} ms`);

    expect(db.url).toMatch(new RegExp(`^postgres://postgres:[^@]+@127\\.0\\.0\\.1:${port}/chronicle$`));
    // The package's own exit hook is gone: only our stop() stops the server.
    expect(process.listenerCount('SIGTERM') + process.listenerCount('SIGINT')).toBe(signalListeners);
    expect(process.listenerCount('beforeExit')).toBe(0);

    const pool = createPool({ connectionString: db.url, maxConnections: 2 });
    try {
      const applied = await migrate(pool, logger);
      expect(applied.length).toBeGreaterThan(0);
      const { rows } = await pool.query<{ server_version_num: string; listen: string; encoding: string }>(
        `SELECT current_setting('server_version_num') AS server_version_num,
                current_setting('listen_addresses') AS listen, current_setting('server_encoding') AS encoding`,
      );
      expect(Number(rows[0]?.server_version_num)).toBeGreaterThanOrEqual(180_000);
      expect(rows[0]?.listen).toBe('127.0.0.1');
      expect(rows[0]?.encoding).toBe('UTF8');
      await pool.query(`CREATE TABLE restart_probe (v text); INSERT INTO restart_probe VALUES ('kept')`);
    } finally {
      await pool.end();
    }
    // Postgres' own log reached the logger.
    expect(
      lines.some((l) => l.postgres === 'postgres' && l.msg.includes('ready to accept connections')),
    ).toBe(true);
    expect(lines.some((l) => l.postgres === 'initdb')).toBe(true);
    if (isRoot) {
      const owner = await stat(path.join(dataDir, 'postgres', 'PG_VERSION'));
      expect(owner.uid).not.toBe(0);
    }
  });

  it('embedded postgres - a restart on the same directory is fast and keeps the data', async () => {
    await db?.stop();
    await db?.stop(); // idempotent
    db = undefined;
    const { value, millis } = await timed(() =>
      startEmbeddedPostgres({ dataDir, port, logger: capturingLogger().logger }),
    );
    db = value;
    console.log(`embedded postgres: restart ready in ${millis} ms`);
    expect(await query<{ v: string }>(db.url, 'SELECT v FROM restart_probe')).toEqual([{ v: 'kept' }]);
    expect(millis).toBeLessThan(5_000);
  });

  it.runIf(isRoot)(
    'embedded postgres - as root, a data directory handed back to root is given to the postgres user again',
    async () => {
      await db?.stop();
      db = undefined;
      const pgdata = path.join(dataDir, 'postgres');
      await chown(pgdata, 0, 0);
      await chown(path.join(pgdata, 'PG_VERSION'), 0, 0);
      const { logger, lines } = capturingLogger();
      db = await startEmbeddedPostgres({ dataDir, port, logger });
      expect((await stat(pgdata)).uid).not.toBe(0);
      expect((await stat(path.join(pgdata, 'PG_VERSION'))).uid).not.toBe(0);
      expect(
        lines.some((l) => l.msg === 'gave the data directory to the PostgreSQL user' && l.files === 2),
      ).toBe(true);
      expect(await query<{ v: string }>(db.url, 'SELECT v FROM restart_probe')).toEqual([{ v: 'kept' }]);
    },
  );

  it('embedded postgres - a failed start rejects with the server log, not undefined', async () => {
    await db?.stop();
    db = undefined;
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()));
    const { logger, lines } = capturingLogger();
    try {
      await expect(startEmbeddedPostgres({ dataDir, port, logger })).rejects.toThrow(
        /failed to start[\s\S]*could not/,
      );
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    expect(lines.some((l) => l.level >= 50 && l.postgres === 'postgres')).toBe(true);
  });

  it('embedded postgres - after a kill -9 of its owner, the next start stops the leftover postmaster and recovers', async () => {
    const owner = startChild(dataDir, port, 'hold');
    const { url } = (await owner.next('ready')) as { url: string };
    const leftover = await postmasterPid(dataDir);
    owner.child.kill('SIGKILL');
    await owner.exited;
    // The postmaster outlives its owner and still serves.
    expect(await alive(leftover)).toBe(true);
    expect(await query<{ v: string }>(url, 'SELECT v FROM restart_probe')).toEqual([{ v: 'kept' }]);

    const { logger, lines } = capturingLogger();
    const { value, millis } = await timed(() => startEmbeddedPostgres({ dataDir, port, logger }));
    db = value;
    console.log(`embedded postgres: start after kill -9 (stop leftover + start) ready in ${millis} ms`);
    expect(await alive(leftover)).toBe(false);
    expect(await postmasterPid(dataDir)).not.toBe(leftover);
    expect(
      lines.some((l) => l.level === 40 && l.postmasterPid === leftover && /left running/.test(l.msg)),
    ).toBe(true);
    expect(await query<{ v: string }>(db.url, 'SELECT v FROM restart_probe')).toEqual([{ v: 'kept' }]);
  });

  it('embedded postgres - a second start on a directory in use by a running process is refused', async () => {
    // db (this process) holds the directory.
    await expect(
      startEmbeddedPostgres({ dataDir, port: await freeLoopbackPort(), logger: capturingLogger().logger }),
    ).rejects.toThrow(/already running in this process/);
  });

  for (const [signal, target] of [
    ['SIGTERM', 'the process'],
    ['SIGINT', 'its process group (Ctrl-C)'],
  ] as const) {
    it(`embedded postgres - ${signal} to ${target} leaves the server up until the owner stops it`, async () => {
      await db?.stop();
      db = undefined;
      const owner = startChild(dataDir, port, 'graceful');
      await owner.next('ready');
      const pid = owner.child.pid ?? 0;
      process.kill(signal === 'SIGINT' ? -pid : pid, signal);
      expect(await owner.next('queried-after-signal')).toMatchObject({ signal });
      await owner.next('stopped');
      expect(await owner.exited).toBe(0);
      await expect(stat(path.join(dataDir, 'postgres', 'postmaster.pid'))).rejects.toThrow();
    });
  }
});
