/**
 * Dockerfile and .dockerignore: a pinned Node LTS base, a build stage and a runtime stage with
 * production dependencies only, a non-root user, a HEALTHCHECK on /ready, and a build context that
 * holds every file the image copies.
 */
import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { repoPath } from './stack-files.js';

interface Instruction {
  keyword: string;
  args: string;
}

/** The Dockerfile's instructions (continuation lines joined, comments dropped), by stage. */
function stages(): Instruction[][] {
  const text = readFileSync(repoPath('Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const out: Instruction[][] = [[]];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [keyword, ...rest] = line.split(/\s+/);
    const instruction = { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    if (instruction.keyword === 'FROM') out.push([]);
    out[out.length - 1]!.push(instruction);
  }
  return out;
}

function dockerignore(): string[] {
  return readFileSync(repoPath('.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

const [preamble, ...buildStages] = stages();
const runtime = buildStages[buildStages.length - 1]!;
const args = (stage: Instruction[], keyword: string) =>
  stage.filter((i) => i.keyword === keyword).map((i) => i.args);

describe('Dockerfile', () => {
  it('dockerfile - the base is Node 24 LTS pinned to an exact version that package.json engines accept', () => {
    const arg = args(preamble!, 'ARG').find((a) => a.startsWith('NODE_IMAGE='));
    const match = /^NODE_IMAGE=node:(\d+)\.(\d+)\.(\d+)-(bookworm|trixie)-slim$/.exec(arg ?? '');
    expect(match, arg).not.toBeNull();
    const [major, minor] = [Number(match![1]), Number(match![2])];
    expect(major).toBe(24);
    const engines = (
      JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { engines: { node: string } }
    ).engines.node;
    const [, eMajor, eMinor] = /^>=(\d+)\.(\d+)$/.exec(engines)!;
    expect(major > Number(eMajor) || (major === Number(eMajor) && minor >= Number(eMinor))).toBe(true);
    for (const stage of buildStages) expect(stage[0]!.args).toMatch(/^\$\{NODE_IMAGE\} AS \w+$/);
  });

  it('dockerfile - builds with the dev dependencies, ships the production ones only (no embedded PostgreSQL)', () => {
    expect(buildStages).toHaveLength(2);
    const [build] = buildStages;
    expect(args(build!, 'RUN')).toEqual(expect.arrayContaining([expect.stringMatching(/^npm ci\b/)]));
    expect(args(build!, 'RUN').join('\n')).not.toContain('--omit=dev');
    expect(args(build!, 'RUN')).toContain('npm run build');
    const install = args(runtime, 'RUN').find((r) => r.startsWith('npm ci'));
    expect(install).toContain('--omit=dev');
    expect(install).toContain('--omit=optional');
    expect(args(runtime, 'RUN').join('\n')).not.toMatch(/npm run build|tsc/);
  });

  it('dockerfile - the runtime holds what Chronicle reads at run time, beside dist/ as in the repository', () => {
    const copies = args(runtime, 'COPY');
    expect(copies).toContain('--from=build /app/dist ./dist');
    // dist/sinks/postgres/migrate.js reads ../../../migrations; dist/sources/otlp/decode.js ../../../proto.
    expect(copies).toContain('migrations ./migrations');
    expect(copies).toContain('proto ./proto');
    // dist/api/console.js serves ../../console (and preact, htm from the production node_modules).
    expect(copies).toContain('console ./console');
    expect(copies).toContain('package.json package-lock.json ./');
    expect(args(runtime, 'WORKDIR')).toEqual(['/app']);
  });

  it('dockerfile - runs as the unprivileged node user, on port 8700, with a HEALTHCHECK on /ready', () => {
    const keywords = runtime.map((i) => i.keyword);
    expect(args(runtime, 'USER')).toEqual(['node']);
    expect(keywords.indexOf('USER')).toBeLessThan(keywords.indexOf('CMD'));
    expect(args(runtime, 'EXPOSE')).toEqual(['8700']);
    const healthcheck = args(runtime, 'HEALTHCHECK');
    expect(healthcheck).toHaveLength(1);
    expect(healthcheck[0]).toMatch(/CMD \["node", "-e", ".*\/ready.*"\]$/);
    expect(args(runtime, 'CMD')).toEqual(['["node", "dist/cli/chronicle.js", "serve"]']);
  });

  it('dockerfile - every file it copies exists and is in the build context', () => {
    const ignored = dockerignore();
    const sources = buildStages
      .flatMap((stage) => args(stage, 'COPY'))
      .filter((a) => !a.startsWith('--from='))
      .flatMap((a) => a.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(statSync(repoPath(source), { throwIfNoEntry: false }), `${source} does not exist`).toBeDefined();
      expect(ignored, `${source} is excluded by .dockerignore`).not.toContain(source.split('/')[0]);
    }
  });

  it('dockerignore - keeps local state and build output out of the context', () => {
    expect(dockerignore()).toEqual(
      expect.arrayContaining(['node_modules', 'dist', '.git', '.chronicle', 'coverage', '.env']),
    );
  });
});
