import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Builds dist/ (tsconfig.build.json) for tests that run the CLI as a process; throws with tsc's output. */
export function buildDist(): void {
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeout: 60_000, stdio: 'pipe' });
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`build failed:\n${stdout?.toString() ?? ''}${stderr?.toString() ?? ''}`, { cause: err });
  }
}
