import { setFlagsFromString } from 'node:v8';

/**
 * Sets how far V8 lets the heap grow past what its last full collection kept, in percent, unless a
 * `--heap-growing-percent` flag on the command line already did (it wins). 0 leaves V8's own factor.
 * Returns whether it set it.
 *
 * Why: a batch's events live long enough to be promoted to the old generation and die there, so the
 * old generation fills with garbage between full collections; on a machine with plenty of memory V8's
 * own factor lets it reach ~4x the live heap (a drain: ~50 MiB live, a 220 MiB heap, 400 MiB RSS). At
 * 100 % the heap stays under ~2x, at the default 75 % under ~1.75x (docs/benchmarks.md). V8 reads the
 * flag at every collection, so it takes effect when set at start, before the heap has grown.
 */
export function limitHeapGrowth(percent: number, execArgv: readonly string[] = process.execArgv): boolean {
  if (percent <= 0 || execArgv.some((a) => a.startsWith('--heap-growing-percent'))) return false;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  return true;
}
