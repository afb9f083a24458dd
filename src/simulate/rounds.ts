/**
 * `chronicle simulate --every`: the simulator as a standing correctness check, in the manner of the
 * trace backends' "vulture" checkers. Round after round it sends a fresh run (its own seed and start
 * time, so no round deduplicates against another), verifies it when asked, and reports each round. A
 * round that cannot publish or verify (Chronicle or NATS down for a while) is a failed round, and the
 * loop goes on: a standing check outlives outages. Bad options end the loop at once.
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import { SimulationOptionsError } from './options.js';
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
  /** Called after each finished round, failed ones included. */
  onRound?: ((round: number, outcome: RoundOutcome) => void) | undefined;
  /** The simulated time of a round's first event; default: the wall clock at its start. */
  now?: () => number;
}

/** How one round ended: with a result (differences included, if verified), or with the error that ended it. */
export type RoundOutcome =
  { result: SimulationResult; error?: undefined } | { result?: undefined; error: Error };

export interface RoundsResult {
  /** Rounds that finished, failed ones included (an abandoned round is not counted). */
  rounds: number;
  /** Of which rounds whose verification found differences. */
  roundsWithDifferences: number;
  /** Of which rounds that could not publish or verify (their error went to onRound). */
  failedRounds: number;
}

/** Runs rounds until `rounds` are done or `signal` aborts; rejects only on SimulationOptionsError. */
export async function runSimulationRounds(
  options: RoundsOptions,
  deps: SimulateDeps = {},
): Promise<RoundsResult> {
  const now = options.now ?? Date.now;
  const baseSeed = options.base.seed ?? 1;
  let rounds = 0;
  let roundsWithDifferences = 0;
  let failedRounds = 0;
  while (options.rounds === 0 || rounds < options.rounds) {
    const startedAt = Date.now();
    let outcome: RoundOutcome;
    try {
      const result = await runSimulation(
        { ...options.base, seed: baseSeed + rounds, startTimeMillis: now(), signal: options.signal },
        deps,
      );
      outcome = { result };
    } catch (err) {
      if (options.signal?.aborted === true) break;
      if (err instanceof SimulationOptionsError) throw err;
      outcome = { error: err instanceof Error ? err : new Error(String(err)) };
    }
    rounds += 1;
    if (outcome.error !== undefined) failedRounds += 1;
    else if (outcome.result.differences !== undefined && outcome.result.differences.length > 0) {
      roundsWithDifferences += 1;
    }
    options.onRound?.(rounds, outcome);
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
  return { rounds, roundsWithDifferences, failedRounds };
}
