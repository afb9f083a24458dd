/** Options of the simulated swarm traffic, their defaults, and their validation. */

/** What the simulated swarm does; the same values (seed included) always give the same traffic. */
export interface TrafficOptions {
  /** PRNG seed. */
  seed: number;
  /** Agents in the swarm (at least 1). */
  agents: number;
  /** Probability that an attempt fails (each agent's own rate is scattered around it). */
  errorRate: number;
  /** Probability that an attempt times out, from pending, assigned or in progress. */
  timeoutRate: number;
  /** Probability that a failed or timed-out attempt is retried on another agent. */
  retryRate: number;
  /** Probability that a message is published a second time (same event_id). */
  duplicateRate: number;
  /** Probability that a message is swapped with one of the next few. */
  outOfOrderRate: number;
  /** Probability that the dispatcher finds no agent for a task and dead-letters it. */
  unassignableRate: number;
  /** Messages to send, duplicates included; else durationSeconds × ratePerSecond. */
  count?: number | undefined;
  /** Length of the run in seconds, with ratePerSecond. */
  durationSeconds?: number | undefined;
  /** Publish rate in messages/s; also paces the simulated clock. Absent: as fast as possible. */
  ratePerSecond?: number | undefined;
  /** Simulated time of the first event, epoch ms (default 2026-01-01T00:00:00Z, so traffic repeats). */
  startTimeMillis: number;
  /**
   * Every task the run starts runs to its end (completed, failed or timed out): the run sends its
   * count, then the rest of the events of the tasks already started (and heartbeats until the last of
   * them), so more than the count (a few dozen more at a live rate). Absent or false: the run stops at the count, and the tasks
   * still running then stay open. A flag, not a number: resolved options carry it only when true.
   */
  wholeTasks?: boolean | undefined;
}

/** Defaults for every option but the size of the run. */
export const DEFAULT_TRAFFIC_OPTIONS: Readonly<
  Omit<TrafficOptions, 'count' | 'durationSeconds' | 'ratePerSecond' | 'wholeTasks'>
> = {
  seed: 1,
  agents: 5,
  errorRate: 0.05,
  timeoutRate: 0.03,
  retryRate: 0.5,
  duplicateRate: 0.02,
  outOfOrderRate: 0.02,
  unassignableRate: 0.01,
  startTimeMillis: Date.UTC(2026, 0, 1),
};

/** The options that are probabilities (0 to 1). */
const RATE_KEYS = [
  'errorRate',
  'timeoutRate',
  'retryRate',
  'duplicateRate',
  'outOfOrderRate',
  'unassignableRate',
] as const satisfies readonly (keyof TrafficOptions)[];

/**
 * The keys of TrafficOptions, in the order the run id is computed from (the order earlier versions
 * hashed a `count` run in, so such runs keep their ids; keys added later go at the end, and are left
 * out of the hash when absent, so runs without them keep their ids too).
 */
export const TRAFFIC_OPTION_KEYS = [
  'seed',
  'agents',
  ...RATE_KEYS,
  'startTimeMillis',
  'count',
  'durationSeconds',
  'ratePerSecond',
  'wholeTasks',
] as const satisfies readonly (keyof TrafficOptions)[];

// Every key of TrafficOptions is listed above (a key missing there would be ignored by the run).
type MissingKeys = Exclude<keyof TrafficOptions, (typeof TRAFFIC_OPTION_KEYS)[number]>;
const everyKeyListed: [MissingKeys] extends [never] ? true : MissingKeys = true;
void everyKeyListed;

/**
 * The traffic options of `input` and nothing else: a caller may pass a larger object (the whole
 * SimulateOptions, with its target, verification and callbacks), none of which may change the traffic.
 * Values are copied as given (resolveTrafficOptions checks them).
 */
export function pickTrafficOptions(input: Partial<TrafficOptions>): Partial<TrafficOptions> {
  const picked: Partial<TrafficOptions> = {};
  const copy = <K extends keyof TrafficOptions>(key: K): void => {
    if (input[key] !== undefined) picked[key] = input[key];
  };
  for (const key of TRAFFIC_OPTION_KEYS) copy(key);
  return picked;
}

/** Options the caller got wrong; `problems` lists every one. */
export class SimulationOptionsError extends Error {
  override readonly name = 'SimulationOptionsError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid simulation options: ${problems.join('; ')}`);
  }
}

/** How the problems name the options: a command line passes its flags (`{ errorRate: '--error-rate' }`). */
export type OptionNames = Partial<Record<keyof TrafficOptions, string>>;

/**
 * Fills in defaults, checks every option, and works out the message count. Only the TrafficOptions
 * keys of `input` are read. Problems name options by `names` when given, else by their keys. The
 * result has `wholeTasks` only when it is true (false and absent are the same run).
 */
export function resolveTrafficOptions(
  input: Partial<TrafficOptions>,
  names: OptionNames = {},
): TrafficOptions & { count: number } {
  const { wholeTasks, ...given } = pickTrafficOptions(input);
  const o = { ...DEFAULT_TRAFFIC_OPTIONS, ...given };
  const n = (key: keyof TrafficOptions): string => names[key] ?? key;
  const problems: string[] = [];
  for (const name of RATE_KEYS) {
    const v = o[name];
    if (!Number.isFinite(v) || v < 0 || v > 1) problems.push(`${n(name)} must be between 0 and 1`);
  }
  if (!Number.isInteger(o.seed)) problems.push(`${n('seed')} must be an integer`);
  if (!Number.isInteger(o.agents) || o.agents < 1 || o.agents > 10_000) {
    problems.push(`${n('agents')} must be an integer from 1 to 10000`);
  }
  if (!Number.isFinite(o.startTimeMillis)) problems.push(`${n('startTimeMillis')} must be a number`);
  if (o.ratePerSecond !== undefined && (!Number.isFinite(o.ratePerSecond) || o.ratePerSecond <= 0)) {
    problems.push(`${n('ratePerSecond')} must be greater than 0`);
  }
  let count = o.count;
  if (count !== undefined) {
    if (o.durationSeconds !== undefined) {
      problems.push(`give ${n('count')} or ${n('durationSeconds')}, not both`);
    }
    if (!Number.isInteger(count) || count < 1) problems.push(`${n('count')} must be a positive whole number`);
  } else if (o.durationSeconds !== undefined) {
    if (!Number.isFinite(o.durationSeconds) || o.durationSeconds <= 0) {
      problems.push(`${n('durationSeconds')} must be greater than 0`);
    } else if (o.ratePerSecond === undefined) {
      problems.push(`${n('durationSeconds')} needs ${n('ratePerSecond')}`);
    } else {
      count = Math.max(1, Math.round(o.durationSeconds * o.ratePerSecond));
    }
  } else {
    problems.push(`give ${n('count')}, or ${n('durationSeconds')} with ${n('ratePerSecond')}`);
  }
  // A flag: true, or absent (false is its default, and must name the same run as leaving it out).
  if (wholeTasks !== undefined && typeof wholeTasks !== 'boolean') {
    problems.push(`${n('wholeTasks')} must be true or false`);
  }
  if (problems.length > 0 || count === undefined) throw new SimulationOptionsError(problems);
  return { ...o, count, ...(wholeTasks === true ? { wholeTasks } : {}) };
}
