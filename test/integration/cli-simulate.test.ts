/**
 * `chronicle simulate` as operators run it: the built CLI as a child process, against an in-process
 * Chronicle, judged by its exit status and what it prints.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT, buildDist } from '../support/build.js';
import { type ChronicleTestEnv, type TestChronicle, createChronicleTestEnv } from '../support/chronicle.js';
import { loseOneEvent } from '../support/db.js';
import { NATS_URL, describeWithServices } from '../support/services.js';

const CLI = 'dist/cli/chronicle.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli/chronicle.js simulate <args>` with only PATH, HOME and `env` in its environment. */
function simulate(args: string[], env: Record<string, string> = {}, timeoutMillis = 60_000): Promise<Run> {
  const child = spawn(process.execPath, [CLI, 'simulate', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMillis);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A loopback URL nothing listens on. */
async function closedUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

/** The run's prefix, from the report's `traces and agents are named sim-…-*` line. */
function prefixOf(stdout: string): string {
  const prefix = /traces and agents are named (sim-[0-9a-f]+-)\*/.exec(stdout)?.[1];
  if (prefix === undefined) throw new Error(`no run prefix in:\n${stdout}`);
  return prefix;
}

describeWithServices('chronicle simulate - the CLI end to end', () => {
  let env: ChronicleTestEnv;
  let chronicle: TestChronicle;

  beforeAll(async () => {
    buildDist();
    env = await createChronicleTestEnv();
    chronicle = await env.start();
  }, 120_000);

  afterAll(async () => {
    await env?.cleanup();
  });

  it('cli simulate - exit 0 when everything is recorded; the same command exits 3 naming the event once Chronicle lost it', async () => {
    const args = ['--url', chronicle.url, '--count', '400', '--seed', '41', '--verify'];
    const first = await simulate([...args, '--verify-timeout', '10', '--quiet']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^verify: Chronicle recorded everything/m);
    const prefix = prefixOf(first.stdout);

    // Chronicle "loses" a stored event; its id stays known, so the re-sent event is deduplicated.
    const lost = await loseOneEvent(env.db.pool, prefix);

    // The same seed and traffic flags (a shorter --verify-timeout, and a progress display, this time:
    // neither is part of the run) ...
    const again = await simulate([...args, '--verify-timeout', '2']);
    expect(again.code).toBe(3);
    // ... are the same run, sent again.
    expect(prefixOf(again.stdout)).toBe(prefix);
    expect(again.stdout).toMatch(/^verify: \d+ difference\(s\):$/m);
    const lines = again.stdout.split('\n');
    expect(
      lines.filter((l) => l === `  trace ${lost.trace_id}: events not recorded: ${lost.event_id}`),
    ).toHaveLength(1);
    const logLine = new RegExp(`^  trace ${lost.trace_id}: expected \\d+ events in the log, found \\d+$`);
    expect(lines.filter((l) => logLine.test(l))).toHaveLength(1);
    expect(again.stderr).toMatch(/^\rsent 400\/400/);
  });

  it('cli simulate - --whole-tasks --verify over NATS, as the demo runs it: each round verifies, and leaves no task pending, assigned or in progress', async () => {
    const run = await simulate(
      [
        '--target',
        'nats',
        '--api-url',
        chronicle.url,
        '--every',
        '0.1',
        '--rounds',
        '2',
        '--duration',
        '2',
        '--rate',
        '200',
        '--whole-tasks',
        '--verify',
        '--verify-timeout',
        '15',
        '--quiet',
      ],
      { NATS_URL, CHRONICLE_NATS_NAMESPACE: env.namespace },
    );
    expect(run.stderr).toBe('');
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toMatch(/^2 round\(s\), 0 with differences, 0 failed$/m);
    const rounds = run.stdout.split(/^round \d+ /m).slice(1);
    expect(rounds).toHaveLength(2);
    for (const round of rounds) {
      // The count (2 s × 200/s), then the rest of the tasks already started.
      const sent = /→ nats: sent (\d+) messages \(400 asked for \+ (\d+) to end the tasks started; /.exec(
        round,
      );
      expect(sent, round).not.toBeNull();
      expect(Number(sent![1])).toBe(400 + Number(sent![2]));
      expect(Number(sent![2])).toBeGreaterThan(0);
      expect(round).toMatch(/^verify: Chronicle recorded everything/m);
      // What the run expected: only ended tasks ...
      const statuses = Object.fromEntries(
        /^ {2}expected: \d+ events, \d+ traces \(([^)]*)\)/m
          .exec(round)![1]!
          .split(', ')
          .map((s) => s.split(' '))
          .map(([status, n]) => [status!, Number(n)]),
      );
      expect(statuses.completed).toBeGreaterThan(0);
      for (const status of Object.keys(statuses))
        expect(['completed', 'failed', 'timed_out']).toContain(status);
      // ... and what Chronicle holds for the run: no open task, and as many ended ones as expected.
      const prefix = prefixOf(round);
      for (const status of ['pending', 'assigned', 'in_progress', 'completed', 'failed', 'timed_out']) {
        const res = await fetch(
          `${chronicle.url}/api/v1/traces?${new URLSearchParams({ trace_prefix: prefix, status, limit: '1000' }).toString()}`,
        );
        expect(res.status).toBe(200);
        const page = (await res.json()) as { items: { trace_id: string }[]; next_cursor: string | null };
        expect(page.next_cursor).toBeNull();
        expect(page.items.length, `${prefix} ${status}`).toBe(statuses[status] ?? 0);
      }
    }
  });

  it('cli simulate - exit 2 and the flag named for a bad flag', async () => {
    const bad = await simulate(['--error-rate', '2', '--count', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toBe(
      'chronicle simulate: --error-rate must be between 0 and 1; --count must be a positive whole number',
    );
    expect(bad.stdout).toBe('');

    const url = await simulate(['--url', 'localhost:8700']);
    expect(url.code).toBe(2);
    expect(url.stderr).toMatch(/^chronicle simulate: --url must be an http\(s\) URL/);
  });

  it("cli simulate - exit 1 with a one-line message when Chronicle's API cannot be read", async () => {
    const apiUrl = await closedUrl();
    const started = Date.now();
    const run = await simulate([
      '--url',
      chronicle.url,
      '--count',
      '50',
      '--verify',
      '--api-url',
      apiUrl,
      '--verify-timeout',
      '1',
      '--quiet',
    ]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.endsWith('\n')).toBe(true);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(
      new RegExp(
        `^chronicle simulate: could not read Chronicle's API: GET ${apiUrl}/api/v1/traces: connection refused \\(\\d+ attempts over [\\d.]+ s; is Chronicle running there\\?\\)\\n$`,
      ),
    );
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('cli simulate - over NATS the subject prefix defaults to CHRONICLE_NATS_NAMESPACE, lower-cased, and verifies', async () => {
    const run = await simulate(
      [
        '--target',
        'nats',
        '--count',
        '500',
        '--seed',
        '43',
        '--verify',
        '--api-url',
        chronicle.url,
        '--quiet',
      ],
      { NATS_URL, CHRONICLE_NATS_NAMESPACE: env.namespace },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^run [0-9a-f]+ → nats: sent 500 messages/m);
    expect(run.stdout).toMatch(/^verify: Chronicle recorded everything/m);
  });

  it('cli simulate - over NATS, subjects no stream stores exit 1 naming the subject, instead of "sent"', async () => {
    const run = await simulate(
      ['--target', 'nats', '--url', NATS_URL, '--subject-prefix', 'nowhere_', '--count', '50'],
      {
        CHRONICLE_NATS_NAMESPACE: env.namespace,
      },
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      /^chronicle simulate: no JetStream stream stores subject "nowhere_[a-z.]+" \(.*"nowhere_"\? set --subject-prefix\)\n$/,
    );
  });

  it('cli simulate - --every: a round that cannot verify is reported as failed, the next still runs, exit 1', async () => {
    const apiUrl = await closedUrl();
    const run = await simulate([
      '--url',
      chronicle.url,
      '--count',
      '50',
      '--every',
      '0.1',
      '--rounds',
      '2',
      '--verify',
      '--api-url',
      apiUrl,
      '--verify-timeout',
      '0.5',
      '--quiet',
    ]);
    expect(run.code).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^round 1 \(\S+\): failed: could not read Chronicle's API: .*connection refused/),
      expect.stringMatching(/^round 2 \(\S+\): failed: could not read Chronicle's API: .*connection refused/),
      '2 round(s), 0 with differences, 2 failed',
    ]);
  });
});
