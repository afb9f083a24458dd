/**
 * Chronicle (the built dist/) as a real process on a test's database and NATS namespace, for tests that
 * kill it (-9) and start it again, and the `chronicle` CLI run to completion.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { ROOT } from './build.js';
import { waitFor } from './chronicle.js';
import { type Exit, exitWithin, freePort } from './process.js';
import { NATS_URL } from './services.js';

export interface ChronicleChild {
  readonly child: ChildProcess;
  readonly url: string;
  /** Both output streams, labelled (for failure messages). */
  output(): string;
  readonly exited: Promise<Exit>;
  /** kill -9, and waits until it is gone. */
  kill(): Promise<void>;
  /** SIGTERM, and waits for the exit (graceful stop). */
  stop(): Promise<Exit>;
}

const children = new Set<ChronicleChild>();

/** The environment of a Chronicle on `databaseUrl` and NATS with `namespace`, plus `env`. */
export function chronicleEnv(databaseUrl: string, namespace: string, env: Record<string, string> = {}) {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    DATABASE_URL: databaseUrl,
    NATS_URL,
    CHRONICLE_NATS_NAMESPACE: namespace,
    CHRONICLE_HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ...env,
  };
}

/** Starts dist/main.js; `ready` waits for GET /ready to answer 200 (else only for /live). */
export async function startChronicleProcess(
  databaseUrl: string,
  namespace: string,
  env: Record<string, string> = {},
  { ready = true } = {},
): Promise<ChronicleChild> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['dist/main.js'], {
    cwd: ROOT,
    env: chronicleEnv(databaseUrl, namespace, { CHRONICLE_PORT: String(port), ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => resolve((exit = { code, signal }))),
  );
  const proc: ChronicleChild = {
    child,
    url,
    output: () => `stdout:\n${out}\nstderr:\n${err}`,
    exited,
    async kill() {
      if (exit === undefined) child.kill('SIGKILL');
      await exitWithin(proc, 10_000);
    },
    async stop() {
      if (exit === undefined) child.kill('SIGTERM');
      return exitWithin(proc, 20_000);
    },
  };
  children.add(proc);
  void exited.then(() => children.delete(proc));
  await waitFor(
    async () => {
      if (exit) throw new Error(`Chronicle exited (${JSON.stringify(exit)}):\n${proc.output()}`);
      try {
        return (await fetch(`${url}/${ready ? 'ready' : 'live'}`)).status === 200;
      } catch {
        return false;
      }
    },
    30_000,
    `${url} to be ${ready ? 'ready' : 'up'}`,
  );
  return proc;
}

/** Kills every Chronicle process a test left running. */
export async function killChronicleProcesses(): Promise<void> {
  await Promise.all([...children].map((c) => c.kill()));
}

/** Runs `chronicle <args>` to completion: its exit code and output. */
export async function runCliProcess(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['dist/cli/chronicle.js', ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}
