/**
 * The real promtool (Debian's prometheus package; .ci/run installs it), for every test that runs it:
 * config, rules and alert-test checks of otel/, PromQL parsing, and `check metrics` on /metrics.
 */
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ROOT } from './build.js';

/** Set by .ci/run: a missing promtool then fails the tests that need it instead of skipping them. */
export const PROMTOOL_REQUIRED = process.env.CHRONICLE_TEST_REQUIRE_SERVICES === '1';

/** $PROMTOOL, else the executable promtool on PATH; undefined when there is none. */
export const PROMTOOL = process.env.PROMTOOL ?? findOnPath('promtool');

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function installed(): string {
  if (PROMTOOL === undefined) {
    throw new Error("promtool is not installed: install Debian's prometheus package (.ci/run does)");
  }
  return PROMTOOL;
}

/** Runs promtool from the repository root; returns its output, throws with it when it fails. */
export function promtool(args: string[]): string {
  try {
    return execFileSync(installed(), args, { cwd: ROOT, encoding: 'utf8', stdio: 'pipe', timeout: 30_000 });
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${stdout ?? ''}${stderr ?? ''}`, { cause: err });
  }
}

/** Runs `promtool check metrics` on the text (its stdin); resolves with its exit code and output. */
export function promtoolCheckMetrics(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(installed(), ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}
