/**
 * `chronicle simulate --every`: the simulator as a standing correctness check, in the manner of the
 * trace backends' "vulture" checkers. Round after round it sends a fresh run (its own seed and start
 * time, so no round deduplicates against another), verifies it when asked, and reports each round.
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import { type SimulateDeps, type SimulateOptions, type SimulationResult, runSimulation } from './simulate.js';

export interface RoundsOptions {
  /** Rounds to run; 0 runs until `signal` aborts. */
  rounds: number;
  /** Milliseconds from the start of one round to the start of the next (at least the round's length). */
  everyMillis: number;
  /** Round k (from 1) runs with seed `base.seed + k - 1` and starts its simulated clock then. */
  base: SimulateOptions;
  /** Stops the loop: the round in progress is abandoned, finished rounds are kept. */
  signal?: AbortSignal | undefined;
  /** Called after each finished round. */
  onRound?: ((round: number, result: SimulationResult) => void) | undefined;
  /** The simulated time of a round's first event; default: the wall clock at its start. */
  now?: () => number;
}

export interface RoundsResult {
  /** Rounds that finished (an abandoned round is not counted). */
  rounds: number;
  /** Of which rounds whose verification found differences. */
  failedRounds: number;
}

export async function runSimulationRounds(
  options: RoundsOptions,
  deps: SimulateDeps = {},
): Promise<RoundsResult> {
  const now = options.now ?? Date.now;
  const baseSeed = options.base.seed ?? 1;
  let rounds = 0;
  let failedRounds = 0;
  while (options.rounds === 0 || rounds < options.rounds) {
    const startedAt = Date.now();
    let result: SimulationResult;
    try {
      result = await runSimulation(
        { ...options.base, seed: baseSeed + rounds, startTimeMillis: now(), signal: options.signal },
        deps,
      );
    } catch (err) {
      if (options.signal?.aborted === true) break;
      throw err;
    }
    rounds += 1;
    if (result.differences !== undefined && result.differences.length > 0) failedRounds += 1;
    options.onRound?.(rounds, result);
    if (options.rounds !== 0 && rounds >= options.rounds) break;
    const wait = options.everyMillis - (Date.now() - startedAt);
    try {
      if (wait > 0) await sleepFor(wait, undefined, { signal: options.signal });
      else options.signal?.throwIfAborted();
    } catch (err) {
      if (options.signal?.aborted === true) break;
      throw err;
    }
  }
  return { rounds, failedRounds };
}
