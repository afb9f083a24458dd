/**
 * Chronicle's built dist/main.js as a real child process for fault tests: configured through the
 * environment like an operator's, killed with SIGKILL or stopped with SIGTERM, its peak RSS read from
 * /proc. Call buildDist() (test/support/build.ts) once before starting any.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ROOT } from '../support/build.js';
import { waitFor } from '../support/chronicle.js';
import { type Exit, exitWithin, freePort } from '../support/process.js';
import { parseSamples } from '../support/prometheus-text.js';

export interface ChronicleProcess {
  readonly child: ChildProcess;
  /** Base URL of its HTTP API. */
  readonly url: string;
  readonly exited: Promise<Exit>;
  /** Its stdout and stderr so far (for failure messages). */
  output(): string;
  /** True until the process has exited. */
  running(): boolean;
  /** Peak resident set size so far in bytes (VmHWM), 0 once it has exited. */
  peakRssBytes(): number;
  /** kill -9, and waits for the exit. */
  kill(): Promise<Exit>;
  /** SIGTERM (graceful shutdown), and waits for the exit. */
  stop(timeoutMillis?: number): Promise<Exit>;
}

/** Every process started here and still running (an afterAll kills them). */
const started = new Set<ChronicleProcess>();

/**
 * Starts `node dist/main.js` on a free port with only PATH, HOME and `env` in its environment
 * (LOG_LEVEL defaults to warn). Does not wait for readiness: see waitReady().
 */
export async function startChronicleProcess(env: Record<string, string>): Promise<ChronicleProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['dist/main.js'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/root',
      CHRONICLE_HOST: '127.0.0.1',
      CHRONICLE_PORT: String(port),
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Only the tail is kept: a long run at info level would otherwise hold megabytes.
  let out = '';
  const keep = (chunk: string) => {
    out = (out + chunk).slice(-20_000);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  let alive = true;
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      alive = false;
      resolve({ code, signal });
    }),
  );
  const proc: ChronicleProcess = {
    child,
    url: `http://127.0.0.1:${port}`,
    exited,
    output: () => out,
    running: () => alive,
    peakRssBytes() {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
        return kb === undefined ? 0 : Number(kb) * 1024;
      } catch {
        return 0;
      }
    },
    async kill() {
      if (alive) child.kill('SIGKILL');
      return exited;
    },
    async stop(timeoutMillis = 30_000) {
      if (alive) child.kill('SIGTERM');
      return exitWithin(proc, timeoutMillis);
    },
  };
  started.add(proc);
  void exited.then(() => started.delete(proc));
  return proc;
}

/** Waits until GET /ready answers 200; fails at once with its output if the process exits. */
export async function waitReady(proc: ChronicleProcess, timeoutMillis = 30_000): Promise<void> {
  await waitFor(
    async () => {
      if (!proc.running()) throw new Error(`Chronicle exited:\n${proc.output()}`);
      return (await fetch(`${proc.url}/ready`, { signal: AbortSignal.timeout(2_000) })).status === 200;
    },
    timeoutMillis,
    `${proc.url}/ready to answer 200`,
  );
}

/** Kills every Chronicle process still running (for afterAll). */
export async function killAllChronicleProcesses(): Promise<void> {
  await Promise.all([...started].map((p) => p.kill()));
}

/** The sum of the samples of metric `name` on its /metrics whose labels include `labels`. */
export async function metricValue(
  proc: ChronicleProcess,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const res = await fetch(`${proc.url}/metrics`, { signal: AbortSignal.timeout(5_000) });
  let sum = 0;
  for (const [key, value] of parseSamples(await res.text())) {
    if (!key.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}
