import { parseArgs } from 'node:util';
import type { Config } from '../config.js';
import { SimulationOptionsError, type TrafficOptions } from '../simulate/options.js';
import { runSimulationRounds } from '../simulate/rounds.js';
import { type SimulateOptions, formatSimulationReport, runSimulation } from '../simulate/simulate.js';

export const SIMULATE_HELP = `Usage: chronicle simulate [flags]

Publishes realistic swarm traffic (a dispatcher, agents with their own speed and failure profiles,
retries, timeouts from every state, heartbeats, dead-letter entries, system errors) to NATS or to
Chronicle's HTTP ingest. The same seed and flags give the same traffic.

  --target <nats|http>      where to publish (default http)
  --url <url>               NATS server (default NATS_URL) or Chronicle (default http://127.0.0.1:8700)
  --subject-prefix <p>      prefix of NATS subjects (CHRONICLE_NATS_NAMESPACE, lower-cased)
  --count <n>               messages to send, duplicates included (default 1000)
  --duration <seconds>      or: run this long, with --rate
  --rate <n>                messages per second (default: as fast as the target takes them)
  --agents <n>              agents in the swarm (default 5)
  --error-rate <p>          probability an attempt fails (default 0.05)
  --timeout-rate <p>        probability an attempt times out (default 0.03)
  --retry-rate <p>          probability a failed attempt is retried elsewhere (default 0.5)
  --duplicate-rate <p>      probability a message is sent twice (default 0.02)
  --out-of-order-rate <p>   probability a message is swapped with a later one (default 0.02)
  --seed <n>                PRNG seed (default 1)
  --start <time|now>        simulated time of the first event (default 2026-01-01T00:00:00Z)
  --verify                  then wait for Chronicle to catch up and compare what it recorded with what
                            was sent; print the differences; exit 3 if there are any
  --api-url <url>           Chronicle's API for --verify (default: --url for http, else http://127.0.0.1:8700)
  --verify-timeout <s>      how long --verify waits for Chronicle (default 60)
  --every <seconds>         keep going: a new run (next seed, starting now) every this many seconds,
                            each verified with --verify, one report per round, until Ctrl-C; exit 3
                            if any round found differences (a standing check, like a trace backend's
                            vulture)
  --rounds <n>              with --every: stop after n rounds (default: until stopped)
  --quiet                   no progress display
`;

function number(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n))
    throw new SimulateUsageError(`--${flag} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

/** A simulate command line that cannot run. */
export class SimulateUsageError extends Error {
  override readonly name = 'SimulateUsageError';
}

/** `chronicle simulate`: 0 when sent (and verified), 3 when --verify found differences. */
export async function simulateCommand(args: string[], config: Config): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      target: { type: 'string' },
      url: { type: 'string' },
      'subject-prefix': { type: 'string' },
      count: { type: 'string' },
      duration: { type: 'string' },
      rate: { type: 'string' },
      agents: { type: 'string' },
      'error-rate': { type: 'string' },
      'timeout-rate': { type: 'string' },
      'retry-rate': { type: 'string' },
      'duplicate-rate': { type: 'string' },
      'out-of-order-rate': { type: 'string' },
      seed: { type: 'string' },
      start: { type: 'string' },
      verify: { type: 'boolean' },
      'api-url': { type: 'string' },
      'verify-timeout': { type: 'string' },
      every: { type: 'string' },
      rounds: { type: 'string' },
      quiet: { type: 'boolean' },
    },
  });
  const kind = values.target ?? 'http';
  if (kind !== 'http' && kind !== 'nats')
    throw new SimulateUsageError(`--target must be nats or http, got ${JSON.stringify(kind)}`);
  const chronicleUrl = `http://127.0.0.1:${config.port || 8700}`;
  const url = values.url ?? (kind === 'nats' ? config.natsUrl : chronicleUrl);
  if (url === undefined) throw new SimulateUsageError('--target nats needs --url or NATS_URL');
  let start: number | undefined;
  if (values.start !== undefined) {
    start = values.start === 'now' ? Date.now() : Date.parse(values.start);
    if (!Number.isFinite(start))
      throw new SimulateUsageError(`--start must be RFC 3339 or now, got ${JSON.stringify(values.start)}`);
  }
  const every = number('every', values.every);
  const rounds = number('rounds', values.rounds);
  if (every !== undefined && !(every > 0)) throw new SimulateUsageError('--every must be greater than 0');
  if (rounds !== undefined && (!Number.isInteger(rounds) || rounds < 1))
    throw new SimulateUsageError('--rounds must be a whole number of at least 1');
  if (rounds !== undefined && every === undefined) throw new SimulateUsageError('--rounds needs --every');
  if (every !== undefined && start !== undefined)
    throw new SimulateUsageError('--start cannot be combined with --every (each round starts now)');
  const traffic: Partial<TrafficOptions> = {
    count: number('count', values.count) ?? (values.duration === undefined ? 1000 : undefined),
    durationSeconds: number('duration', values.duration),
    ratePerSecond: number('rate', values.rate),
    agents: number('agents', values.agents),
    errorRate: number('error-rate', values['error-rate']),
    timeoutRate: number('timeout-rate', values['timeout-rate']),
    retryRate: number('retry-rate', values['retry-rate']),
    duplicateRate: number('duplicate-rate', values['duplicate-rate']),
    outOfOrderRate: number('out-of-order-rate', values['out-of-order-rate']),
    seed: number('seed', values.seed),
    ...(start !== undefined ? { startTimeMillis: start } : {}),
  };
  for (const key of Object.keys(traffic) as (keyof TrafficOptions)[])
    if (traffic[key] === undefined) delete traffic[key];
  const options: SimulateOptions = {
    ...traffic,
    target:
      kind === 'nats'
        ? { kind, url, ...(values['subject-prefix'] ? { subjectPrefix: values['subject-prefix'] } : {}) }
        : { kind, url },
    ...(values.verify
      ? {
          verify: {
            apiUrl: values['api-url'] ?? (kind === 'http' ? url : chronicleUrl),
            timeoutMillis: (number('verify-timeout', values['verify-timeout']) ?? 60) * 1000,
          },
        }
      : {}),
    ...(values.quiet
      ? {}
      : {
          onProgress: ({ sent, total, elapsedMillis }) =>
            process.stderr.write(
              `\rsent ${sent}/${total} (${Math.round((sent / Math.max(elapsedMillis, 1)) * 1000)}/s)   `,
            ),
        }),
  };
  if (every !== undefined) return await simulateRounds(options, every, rounds ?? 0, values.quiet === true);
  let result;
  try {
    result = await runSimulation(options);
  } catch (err) {
    if (err instanceof SimulationOptionsError) throw new SimulateUsageError(err.problems.join('; '));
    throw err;
  }
  if (!values.quiet) process.stderr.write('\n');
  process.stdout.write(`${formatSimulationReport(result)}\n`);
  return result.differences !== undefined && result.differences.length > 0 ? 3 : 0;
}

/** `--every`: rounds until `rounds` are done (0: until SIGINT/SIGTERM); 3 if any round had differences. */
async function simulateRounds(
  options: SimulateOptions,
  everySeconds: number,
  rounds: number,
  quiet: boolean,
): Promise<number> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort(new Error('stopped'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await runSimulationRounds({
      rounds,
      everyMillis: everySeconds * 1000,
      base: options,
      signal: stop.signal,
      onRound: (round, r) => {
        if (!quiet) process.stderr.write('\n');
        process.stdout.write(`round ${round} (${new Date().toISOString()}): ${formatSimulationReport(r)}\n`);
      },
    });
    process.stdout.write(
      `${result.rounds} round(s), ${result.failedRounds} with differences${stop.signal.aborted ? ' (stopped)' : ''}\n`,
    );
    return result.failedRounds > 0 ? 3 : 0;
  } catch (err) {
    if (err instanceof SimulationOptionsError) throw new SimulateUsageError(err.problems.join('; '));
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
