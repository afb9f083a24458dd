/**
 * The reliability project's global setup: starts a fresh results file for the run, builds dist/ once
 * (the scenarios run Chronicle as a real process), and renders the report at the end.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { buildDist } from '../support/build.js';
import { OUT_DIR, PROFILE, REPORT_FILE, RESULTS_FILE } from './profile.js';
import { renderFile } from './render.js';

export default function setup(): () => void {
  const started = Date.now();
  mkdirSync(OUT_DIR, { recursive: true });
  rmSync(RESULTS_FILE, { force: true });
  buildDist();
  return () => {
    renderFile(RESULTS_FILE, REPORT_FILE, Math.round((Date.now() - started) / 1000));
    console.log(`reliability (${PROFILE}): figures in ${RESULTS_FILE}, report in ${REPORT_FILE}`);
  };
}
