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
