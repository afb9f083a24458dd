/**
 * `npm run demo`: Chronicle on the embedded default, fed by the simulator over HTTP, and where to look.
 * Runs until Ctrl-C (which stops Chronicle, and its embedded PostgreSQL, cleanly).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatSimulationReport, runSimulation } from '../simulate/simulate.js';

const port = process.env.CHRONICLE_PORT ?? '8700';
const url = `http://127.0.0.1:${port}`;
const cli = fileURLToPath(new URL('./chronicle.js', import.meta.url));

const chronicle = spawn(process.execPath, [cli, 'serve'], {
  env: { ...process.env, CHRONICLE_PORT: port, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
  stdio: ['ignore', 'inherit', 'inherit'],
  // Its own process group: Ctrl-C reaches the demo only, which asks Chronicle to stop once.
  detached: true,
});
const exited = new Promise<number>((resolve) => chronicle.once('exit', (code) => resolve(code ?? 1)));
const interrupted = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    interrupted.abort(new Error(`demo stopped by ${signal}`));
    chronicle.kill('SIGTERM');
  });
}

async function ready(): Promise<boolean> {
  for (let i = 0; i < 120; i++) {
    if (chronicle.exitCode !== null) return false;
    try {
      if ((await fetch(`${url}/ready`)).status === 200) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

if (!(await ready())) {
  process.stderr.write('demo: Chronicle did not become ready\n');
  chronicle.kill('SIGTERM');
  process.exit(await exited);
}
process.stderr.write('\ndemo: simulating a swarm over HTTP (2,000 events/s for 5 s), then verifying...\n');
let result;
try {
  result = await runSimulation({
    count: 10_000,
    ratePerSecond: 2_000,
    startTimeMillis: Date.now() - 10_000,
    target: { kind: 'http', url },
    verify: { apiUrl: url, timeoutMillis: 60_000 },
    signal: interrupted.signal,
  });
} catch (err) {
  // Ctrl-C while simulating: Chronicle is already stopping; wait for it, and say nothing more.
  if (!interrupted.signal.aborted) {
    process.stderr.write(`demo: the simulation failed: ${(err as Error).message}\n`);
    chronicle.kill('SIGTERM');
  }
  await exited;
  process.exit(interrupted.signal.aborted ? 130 : 1);
}
process.stderr.write(`${formatSimulationReport(result)}\n`);
// A task that failed in this run, as Chronicle serves it: the first thing an operator looks at.
let example = '<trace_id>';
try {
  const failed = (await (await fetch(`${url}/api/v1/traces?status=failed&limit=1`)).json()) as {
    items?: { trace_id: string }[];
  };
  example = failed.items?.[0]?.trace_id ?? example;
} catch {
  // the placeholder will do
}
process.stderr.write(`
Where to look:
  ${url}/api/v1/traces?status=failed          failed tasks, newest first
  ${url}/api/v1/traces/${example}
                                              one of them: its row, events in order, spans and links
  ${url}/api/v1/metrics/summary               every agent today
  ${url}/metrics                              Chronicle's own Prometheus metrics
  node dist/cli/chronicle.js simulate --help  more traffic
Ctrl-C stops Chronicle and its embedded PostgreSQL.
`);
process.exitCode = await exited;
