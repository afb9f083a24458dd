/**
 * What the benchmarks share: a scratch database each, Chronicle as a child process (`node dist/main.js`)
 * on a random port, and per-process CPU and memory read from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';

export const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
export const PORT = 18700 + Math.floor(Math.random() * 1000);

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

export async function dropDatabase(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`);
  await admin.end();
}

export function startChronicle(databaseUrl: string, namespace: string): ChildProcess {
  const profile = process.env.BENCH_CPU_PROFILE
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
