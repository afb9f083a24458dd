import { describe, expect, it } from 'vitest';
import { SimulationOptionsError } from '../../../src/simulate/options.js';
import { type RoundOutcome, runSimulationRounds } from '../../../src/simulate/rounds.js';
import { jsonBody, networkError, urlOf } from './fake-chronicle.js';

/** Takes every POST; answers API reads with empty pages (a run always differs), but fails in `downRound`. */
function ingestWithOutage(downRound: number) {
  let round = 0;
  const fetchFn: typeof fetch = (input, init) => {
    if (init?.method === 'POST') {
      const events = jsonBody<unknown[]>(init);
      return Promise.resolve(Response.json({ accepted: events.length, duplicates: 0, rejected: [] }));
    }
    if (round === downRound) return Promise.reject(networkError('ECONNREFUSED'));
    const path = urlOf(input).pathname;
    return Promise.resolve(
      Response.json(path === '/api/v1/metrics/summary' ? { agents: [] } : { items: [], next_cursor: null }),
    );
  };
  return { fetch: fetchFn, nextRound: () => round++ };
}

describe('simulation rounds', () => {
  it('rounds - a round that cannot verify is a failed round with its error, and the loop goes on', async () => {
    const ingest = ingestWithOutage(2);
    const outcomes: [number, RoundOutcome][] = [];
    ingest.nextRound();
    const result = await runSimulationRounds(
      {
        rounds: 3,
        everyMillis: 0,
        base: {
          count: 50,
          target: { kind: 'http', url: 'http://c' },
          verify: { apiUrl: 'http://c', timeoutMillis: 100, pollIntervalMillis: 20 },
        },
        onRound: (round, outcome) => {
          outcomes.push([round, outcome]);
          ingest.nextRound();
        },
      },
      { fetch: ingest.fetch },
    );
    expect(result).toEqual({ rounds: 3, roundsWithDifferences: 2, failedRounds: 1 });
    expect(outcomes.map(([round]) => round)).toEqual([1, 2, 3]);
    expect(outcomes[0]![1].result?.differences?.length).toBeGreaterThan(0);
    expect(outcomes[1]![1].result).toBeUndefined();
    expect(outcomes[1]![1].error?.message).toMatch(/^could not read Chronicle's API: .*connection refused/);
    expect(outcomes[2]![1].result?.differences?.length).toBeGreaterThan(0);
  });

  it('rounds - bad options end the loop at once', async () => {
    let rounds = 0;
    await expect(
      runSimulationRounds({
        rounds: 3,
        everyMillis: 0,
        base: { count: 50, errorRate: 2, target: { kind: 'http', url: 'http://c' } },
        onRound: () => rounds++,
      }),
    ).rejects.toBeInstanceOf(SimulationOptionsError);
    expect(rounds).toBe(0);
  });
});
