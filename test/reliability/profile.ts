/**
 * The reliability suite's profile and results. RELIABILITY_PROFILE=ci runs every scenario shorter (fewer
 * kills, shorter cuts) so CI can afford it; `full` (the default) runs the durations. Each scenario
 * appends one JSON line of figures to the results file; the suite's teardown renders them as Markdown.
 *
 * Where they go: `full` writes docs/reliability-results.jsonl and docs/reliability.md (committed);
 * `ci` writes them to a temporary directory (printed at the end) so a CI run never rewrites the docs.
 * RELIABILITY_OUT_DIR overrides either.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support/build.js';

export type Profile = 'ci' | 'full';

function readProfile(): Profile {
  const value = process.env.RELIABILITY_PROFILE ?? 'full';
  if (value !== 'ci' && value !== 'full')
    throw new Error(`RELIABILITY_PROFILE must be ci or full, not ${value}`);
  return value;
}

export const PROFILE: Profile = readProfile();

/** The value for the running profile. */
export function byProfile<T>(values: { ci: T; full: T }): T {
  return values[PROFILE];
}

export const OUT_DIR =
  process.env.RELIABILITY_OUT_DIR ??
  (PROFILE === 'full' ? join(ROOT, 'docs') : join(tmpdir(), 'chronicle-reliability-ci'));
export const RESULTS_FILE = join(OUT_DIR, 'reliability-results.jsonl');
export const REPORT_FILE = join(OUT_DIR, 'reliability.md');

/** Figures of one scenario: what it measured, by name with its unit in the name. */
export type Figures = Record<string, number | string | boolean>;

export interface ScenarioResult {
  /** File-and-test style title. */
  scenario: string;
  /** What the scenario asserted, in one or two sentences. */
  asserted: string;
  figures: Figures;
  profile: Profile;
  /** ISO time the scenario finished. */
  finishedAt: string;
  /** How long the scenario took, in seconds. */
  seconds: number;
}

/** Appends one scenario's figures to the results file (called only once its assertions passed). */
export function recordResult(
  result: Omit<ScenarioResult, 'profile' | 'finishedAt' | 'seconds'>,
  startedAtMillis: number,
): void {
  mkdirSync(OUT_DIR, { recursive: true });
  const line: ScenarioResult = {
    ...result,
    profile: PROFILE,
    finishedAt: new Date().toISOString(),
    seconds: Math.round((Date.now() - startedAtMillis) / 100) / 10,
  };
  appendFileSync(RESULTS_FILE, `${JSON.stringify(line)}\n`);
}

/** Milliseconds as seconds with one decimal, for figures. */
export function secondsOf(millis: number): number {
  return Math.round(millis / 100) / 10;
}

/** Bytes as MiB with one decimal, for figures. */
export function mib(bytes: number): number {
  return Math.round((bytes / 1024 / 1024) * 10) / 10;
}
