/**
 * `npm run demo`: simulated swarm traffic into Chronicle, verified, then a live trickle until Ctrl-C, and
 * where to look. Feeds the Chronicle already answering on CHRONICLE_PORT (a `npm start` in another
 * terminal) when there is one; else starts Chronicle on the embedded default and stops it (and its
 * embedded PostgreSQL) cleanly on Ctrl-C.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sleep } from '../pipeline/timing.js';
import { formatSimulationReport, runSimulation } from '../simulate/simulate.js';

const port = process.env.CHRONICLE_PORT ?? '8700';
// With access control on: a token with the ingest and read scopes (README "Access control").
const token = process.env.CHRONICLE_API_TOKEN?.trim() || undefined;
const authorization: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
const url = `http://127.0.0.1:${port}`;
const cli = fileURLToPath(new URL('./chronicle.js', import.meta.url));
/** Events per second of the live traffic after the verified burst: enough to watch the live tail move. */
const LIVE_RATE_PER_SECOND = 20;

async function answers(path: string): Promise<boolean> {
  try {
    return (await fetch(`${url}${path}`)).status === 200;
  } catch {
    return false; // not listening
  }
}

const interrupted = new AbortController();
let chronicle: ChildProcess | undefined;
let exited: Promise<number> = Promise.resolve(0);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    interrupted.abort(new Error(`demo stopped by ${signal}`));
    chronicle?.kill('SIGTERM');
  });
}

if (await answers('/live')) {
  process.stderr.write(`demo: feeding the Chronicle already running at ${url}\n`);
} else {
  const child = spawn(process.execPath, [cli, 'serve'], {
    env: { ...process.env, CHRONICLE_PORT: port, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
    // Its own process group: Ctrl-C reaches the demo only, which asks Chronicle to stop once.
    detached: true,
  });
  chronicle = child;
  exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
}

async function ready(): Promise<boolean> {
  for (let i = 0; i < 120; i++) {
    if (chronicle?.exitCode != null) return false;
    if (await answers('/ready')) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** Stops what the demo started, and exits with `code` (Chronicle's own when the demo started it). */
async function finish(code: number): Promise<never> {
  chronicle?.kill('SIGTERM');
  const chronicleCode = await exited;
  process.exit(chronicle ? chronicleCode || code : code);
}

if (!(await ready())) {
  process.stderr.write('demo: Chronicle did not become ready\n');
  await finish(1);
}
process.stderr.write('\ndemo: simulating a swarm over HTTP (2,000 events/s for 5 s), then verifying...\n');
try {
  const result = await runSimulation({
    count: 10_000,
    ratePerSecond: 2_000,
    // Every task it starts ends (completed, failed or timed out): nothing stays in progress for ever.
    wholeTasks: true,
    startTimeMillis: Date.now() - 10_000,
    target: { kind: 'http', url, token },
    verify: { apiUrl: url, timeoutMillis: 60_000, token },
    signal: interrupted.signal,
  });
  process.stderr.write(`${formatSimulationReport(result)}\n`);
} catch (err) {
  // Ctrl-C while simulating: Chronicle is already stopping; wait for it, and say nothing more.
  if (!interrupted.signal.aborted)
    process.stderr.write(`demo: the simulation failed: ${(err as Error).message}\n`);
  await finish(interrupted.signal.aborted ? 130 : 1);
}

// A task that failed in this run, as Chronicle serves it: the first thing an operator looks at.
let example = '';
try {
  const failed = (await (
    await fetch(`${url}/api/v1/traces?status=failed&limit=1`, { headers: authorization })
  ).json()) as {
    items?: { trace_id: string }[];
  };
  example = failed.items?.[0]?.trace_id ?? '';
} catch {
  // the list link will do
}
const places: [string, string][] = [
  ['the console: tasks, agents, pipeline, live tail', `${url}/`],
  ['the failed tasks', `${url}/tasks?status=failed`],
  ...(example
    ? [
        [
          'one of them: why it failed, its waterfall, its events',
          `${url}/tasks/${encodeURIComponent(example)}`,
        ] as [string, string],
      ]
    : []),
  ['events as they commit (the demo keeps traffic going)', `${url}/tail`],
  ['the same over the API', `${url}/api/v1/traces?status=failed`],
  ["Chronicle's own Prometheus metrics", `${url}/metrics`],
];
process.stderr.write(`
Where to look:
${places.map(([what, where]) => `  ${what}\n      ${where}`).join('\n')}
Live traffic: ${LIVE_RATE_PER_SECOND} events/s until Ctrl-C${chronicle ? ', which stops Chronicle and its embedded PostgreSQL' : ''}.
`);

// Live traffic: rounds of whole tasks stamped with the current time, each round a new run (its seed).
// A Chronicle the demo started that exits ends the demo too, with its exit code.
const stopped = new AbortController();
void exited.then(() => {
  if (chronicle) stopped.abort(new Error('Chronicle exited'));
});
const live = AbortSignal.any([interrupted.signal, stopped.signal]);
for (let round = 1; !live.aborted; round++) {
  try {
    await runSimulation({
      seed: 1_000 + round,
      durationSeconds: 30,
      ratePerSecond: LIVE_RATE_PER_SECOND,
      wholeTasks: true,
      startTimeMillis: Date.now(),
      target: { kind: 'http', url, token },
      signal: live,
    });
  } catch (err) {
    if (live.aborted) break;
    process.stderr.write(`demo: live traffic failed: ${(err as Error).message}; retrying in 5 s\n`);
    await sleep(5_000, live).catch(() => undefined);
  }
}
if (stopped.signal.aborted && !interrupted.signal.aborted) {
  process.stderr.write('demo: Chronicle exited; stopping\n');
  await finish(1);
}
await finish(130);
