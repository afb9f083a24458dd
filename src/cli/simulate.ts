import { parseArgs } from 'node:util';
import { type ConnectionOptions, type NatsConnection, connect } from 'nats';
import type { Config } from '../config.js';
import {
  type OptionNames,
  SimulationOptionsError,
  type TrafficOptions,
  resolveTrafficOptions,
} from '../simulate/options.js';
import { PublishError } from '../simulate/publish.js';
import { runSimulationRounds } from '../simulate/rounds.js';
import { type SimulateOptions, formatSimulationReport, runSimulation } from '../simulate/simulate.js';
import { httpUrlProblem, natsServerProblem } from '../simulate/target-urls.js';
import { VerifyError } from '../simulate/verify.js';
import { splitNatsUrl } from '../sources/nats/config.js';
import { type NatsConnectionSettings, natsConnectOptions } from '../sources/nats/nats-connect.js';
import { secretScrubber } from '../telemetry/redact.js';

export const SIMULATE_HELP = `Usage: chronicle simulate [flags]

Publishes realistic swarm traffic (a dispatcher, agents with their own speed and failure profiles,
retries, timeouts from every state, heartbeats, dead-letter entries, system errors) to NATS or to
Chronicle's HTTP ingest.

  --target <nats|http>      where to publish (default http)
  --url <url>               NATS server, nats://host:port or host:port (default NATS_URL), or
                            Chronicle's http(s) URL (default http://127.0.0.1:CHRONICLE_PORT)
  --subject-prefix <p>      prefix of NATS subjects (default CHRONICLE_NATS_NAMESPACE, lower-cased,
                            as Chronicle subscribes); a run fails at once if no stream stores them
  --count <n>               messages to send, duplicates included (default 1000)
  --duration <seconds>      or: run this long, with --rate
  --rate <n>                messages per second (default: as fast as the target takes them)
  --whole-tasks             every task the run starts runs to its end (completed, failed or timed
                            out, after its retries): after the count the run sends the rest of the
                            tasks already started, and heartbeats until their last event, so more
                            messages than asked for: a few dozen at a live --rate such as 10; a few
                            hundred when the simulated clock runs fast (no --rate, or a high one:
                            the last retries and timeouts take tens of simulated seconds of
                            heartbeats). The report says how many. Without it the run stops at the
                            count, and the tasks still running then stay open for good
  --agents <n>              agents in the swarm (default 5)
  --error-rate <p>          probability an attempt fails (default 0.05)
  --timeout-rate <p>        probability an attempt times out (default 0.03)
  --retry-rate <p>          probability a failed attempt is retried elsewhere (default 0.5)
  --duplicate-rate <p>      probability a message is sent twice (default 0.02)
  --out-of-order-rate <p>   probability a message is swapped with a later one (default 0.02)
  --seed <n>                PRNG seed (default 1)
  --start <time|now>        simulated time of the first event (default 2026-01-01T00:00:00Z)
  --verify                  then wait for Chronicle to catch up and compare what it recorded with what
                            was sent; print the differences; exit 3 if there are any (exit 1 if
                            Chronicle's API could not be read at all)
  --api-url <url>           Chronicle's API for --verify (default: --url for http, else
                            http://127.0.0.1:CHRONICLE_PORT)
  --verify-timeout <s>      how long --verify waits for Chronicle (default 60)
  --every <seconds>         keep going: a new run (next seed, starting now) every this many seconds,
                            one report per round, until Ctrl-C (a standing check, like a trace
                            backend's vulture). Needs --verify: each round is verified. A round that
                            cannot publish or verify (Chronicle down) is reported as failed and the
                            next one still runs. A round lasting longer than --every (a long
                            --duration) is followed at once by the next. Exit 3 if any round found
                            differences, else 1 if any round failed
  --rounds <n>              with --every: stop after n rounds (default: until stopped)
  --quiet                   no progress display

With access control on, set CHRONICLE_API_TOKEN to a token with the ingest scope (for --target http)
and the read scope (for --verify); it is sent as Authorization: Bearer.

The same seed and traffic flags give the same run (ids included) whatever the target, --url or
--verify, so a repeated run is deduplicated by Chronicle and still verifies.

Exit codes: 0 sent (and verified), 1 could not publish or read Chronicle's API, 2 bad flags,
3 --verify found differences.
`;

/** A simulate command line that cannot run. */
export class SimulateUsageError extends Error {
  override readonly name = 'SimulateUsageError';
}

/** The flag of each traffic option, so that option problems name what the user typed. */
const FLAG_NAMES: OptionNames = {
  seed: '--seed',
  agents: '--agents',
  errorRate: '--error-rate',
  timeoutRate: '--timeout-rate',
  retryRate: '--retry-rate',
  duplicateRate: '--duplicate-rate',
  outOfOrderRate: '--out-of-order-rate',
  count: '--count',
  durationSeconds: '--duration',
  ratePerSecond: '--rate',
  startTimeMillis: '--start',
  wholeTasks: '--whole-tasks',
};

/** `chronicle simulate`: 0 when sent (and verified), 1 when it failed, 3 when --verify found differences. */
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
      'whole-tasks': { type: 'boolean' },
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
  // Every problem of the command line is collected, and all are reported together.
  const problems: string[] = [];
  const notNumbers = new Set<string>();
  const number = (flag: keyof typeof values): number | undefined => {
    const value = values[flag];
    if (typeof value !== 'string') return undefined;
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) {
      problems.push(`--${flag} must be a number, got ${JSON.stringify(value)}`);
      notNumbers.add(`--${flag}`);
      return undefined;
    }
    return n;
  };

  const kind = values.target ?? 'http';
  if (kind !== 'http' && kind !== 'nats') {
    problems.push(`--target must be nats or http, got ${JSON.stringify(kind)}`);
  }
  const chronicleUrl = `http://127.0.0.1:${config.port || 8700}`;
  // NATS credentials: those of --url (nats://user:password@host), else the NATS_* variables'. Taken
  // out of the URL here, so that no message the simulator writes can hold them.
  const given = kind === 'nats' && values.url !== undefined ? splitNatsUrl(values.url) : undefined;
  const natsConnection: Omit<NatsConnectionSettings, 'url'> = {
    ...config.natsConnection,
    ...(given?.user === undefined
      ? {}
      : {
          auth:
            given.password === undefined
              ? { kind: 'token', token: given.user }
              : { kind: 'user', user: given.user, password: given.password },
        }),
  };
  const url = given?.url ?? values.url ?? (kind === 'nats' ? config.natsUrl : chronicleUrl);
  if (url === undefined) problems.push('--target nats needs --url or NATS_URL');
  else if (kind === 'nats' || kind === 'http') {
    const problem = kind === 'nats' ? natsServerProblem(url) : httpUrlProblem(url);
    const from = values.url === undefined && kind === 'nats' ? 'NATS_URL (the default of --url)' : '--url';
    if (problem !== undefined) problems.push(`${from} ${problem}`);
  }
  const subjectPrefix = values['subject-prefix'];
  if (subjectPrefix !== undefined) {
    if (kind !== 'nats') problems.push('--subject-prefix is for --target nats');
    if (/[\s*>]/.test(subjectPrefix)) {
      problems.push(`--subject-prefix may not contain spaces, * or >, got ${JSON.stringify(subjectPrefix)}`);
    }
  }

  let start: number | undefined;
  if (values.start !== undefined) {
    start = values.start === 'now' ? Date.now() : Date.parse(values.start);
    if (!Number.isFinite(start)) {
      problems.push(`--start must be RFC 3339 or now, got ${JSON.stringify(values.start)}`);
      start = undefined;
    }
  }

  const verify = values.verify === true;
  const apiUrl = values['api-url'] ?? (kind === 'http' && url !== undefined ? url : chronicleUrl);
  if (values['api-url'] !== undefined) {
    if (!verify) problems.push('--api-url needs --verify');
    const problem = httpUrlProblem(values['api-url']);
    if (problem !== undefined) problems.push(`--api-url ${problem}`);
  }
  const verifyTimeout = number('verify-timeout');
  if (verifyTimeout !== undefined) {
    if (!verify) problems.push('--verify-timeout needs --verify');
    if (!(verifyTimeout > 0)) problems.push('--verify-timeout must be greater than 0');
  }

  const every = number('every');
  const rounds = number('rounds');
  if (every !== undefined && !(every > 0)) problems.push('--every must be greater than 0');
  if (every !== undefined && !verify) problems.push('--every needs --verify (each round is verified)');
  if (rounds !== undefined && (!Number.isInteger(rounds) || rounds < 1)) {
    problems.push('--rounds must be a whole number of at least 1');
  }
  if (values.rounds !== undefined && values.every === undefined) problems.push('--rounds needs --every');
  if (values.every !== undefined && values.start !== undefined) {
    problems.push('--start cannot be combined with --every (each round starts now)');
  }

  const traffic: Partial<TrafficOptions> = {
    count:
      number('count') ?? (values.duration === undefined && values.count === undefined ? 1000 : undefined),
    durationSeconds: number('duration'),
    ratePerSecond: number('rate'),
    agents: number('agents'),
    errorRate: number('error-rate'),
    timeoutRate: number('timeout-rate'),
    retryRate: number('retry-rate'),
    duplicateRate: number('duplicate-rate'),
    outOfOrderRate: number('out-of-order-rate'),
    seed: number('seed'),
    ...(start !== undefined ? { startTimeMillis: start } : {}),
    ...(values['whole-tasks'] === true ? { wholeTasks: true } : {}),
  };
  for (const key of Object.keys(traffic) as (keyof TrafficOptions)[])
    if (traffic[key] === undefined) delete traffic[key];
  try {
    resolveTrafficOptions(traffic, FLAG_NAMES);
  } catch (err) {
    if (!(err instanceof SimulationOptionsError)) throw err;
    // A flag already reported as not a number is not reported again as missing.
    const mentions = (problem: string, flag: string): boolean =>
      new RegExp(`(^|\\s)${flag}(?![\\w-])`).test(problem);
    problems.push(...err.problems.filter((p) => ![...notNumbers].some((flag) => mentions(p, flag))));
  }
  if (problems.length > 0 || url === undefined || (kind !== 'http' && kind !== 'nats')) {
    throw new SimulateUsageError(problems.join('; '));
  }

  const quiet = values.quiet === true;
  const progress = { shown: false };
  const options: SimulateOptions = {
    ...traffic,
    target:
      kind === 'nats'
        ? { kind, url, subjectPrefix: subjectPrefix ?? config.natsNamespace.toLowerCase() }
        : { kind, url, token: config.apiToken },
    ...(verify
      ? { verify: { apiUrl, timeoutMillis: (verifyTimeout ?? 60) * 1000, token: config.apiToken } }
      : {}),
    ...(quiet
      ? {}
      : {
          onProgress: ({ sent, total, elapsedMillis }) => {
            progress.shown = true;
            process.stderr.write(
              `\rsent ${sent}/${total} (${Math.round((sent / Math.max(elapsedMillis, 1)) * 1000)}/s)   `,
            );
          },
        }),
  };
  /** Ends the progress line, if one is open, so that what follows starts on a line of its own. */
  const endProgress = (): void => {
    if (progress.shown) process.stderr.write('\n');
    progress.shown = false;
  };

  try {
    if (every !== undefined) {
      return await simulateRounds(options, every, rounds ?? 0, endProgress, natsConnector(natsConnection));
    }
    const result = await runSimulation(
      options,
      kind === 'nats' ? { connectNats: natsConnector(natsConnection) } : {},
    );
    endProgress();
    process.stdout.write(`${formatSimulationReport(result)}\n`);
    return result.differences !== undefined && result.differences.length > 0 ? 3 : 0;
  } catch (err) {
    endProgress();
    if (err instanceof SimulationOptionsError) throw new SimulateUsageError(err.problems.join('; '));
    if (!isRunFailure(err)) throw err;
    process.stderr.write(
      secretScrubber(config.secrets ?? [])(`chronicle simulate: ${oneLine(err.message)}\n`),
    );
    return 1;
  }
}

/** A run that failed for a reason outside the simulator: the target or Chronicle's API. */
function isRunFailure(err: unknown): err is Error {
  return err instanceof PublishError || err instanceof VerifyError;
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ');
}

/**
 * `--every`: rounds until `rounds` are done (0: until SIGINT/SIGTERM); 3 if any round had differences,
 * else 1 if any round failed, else 0.
 */
async function simulateRounds(
  options: SimulateOptions,
  everySeconds: number,
  rounds: number,
  endProgress: () => void,
  connectNats: (opts: ConnectionOptions) => Promise<NatsConnection>,
): Promise<number> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort(new Error('stopped'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await runSimulationRounds(
      {
        rounds,
        everyMillis: everySeconds * 1000,
        base: options,
        signal: stop.signal,
        onRound: (round, outcome) => {
          endProgress();
          const at = new Date().toISOString();
          process.stdout.write(
            outcome.error !== undefined
              ? `round ${round} (${at}): failed: ${oneLine(outcome.error.message)}\n`
              : `round ${round} (${at}): ${formatSimulationReport(outcome.result)}\n`,
          );
        },
      },
      { connectNats },
    );
    endProgress();
    process.stdout.write(
      `${result.rounds} round(s), ${result.roundsWithDifferences} with differences, ${result.failedRounds} failed` +
        `${stop.signal.aborted ? ' (stopped)' : ''}\n`,
    );
    if (result.roundsWithDifferences > 0) return 3;
    return result.failedRounds > 0 ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Connects the simulator with the NATS credentials and TLS; the server is the simulator's own URL. */
function natsConnector(
  settings: Omit<NatsConnectionSettings, 'url'>,
): (opts: ConnectionOptions) => Promise<NatsConnection> {
  return (opts) => {
    const servers = typeof opts.servers === 'string' ? opts.servers : (opts.servers ?? []).join(',');
    return connect({ ...opts, ...natsConnectOptions({ ...settings, url: servers }) });
  };
}
