/**
 * The correctness check after a run: polls Chronicle's query API until what it recorded matches what
 * the run should have left, or a timeout passes, and returns the differences that remain. Differences
 * are only what Chronicle answered: an API that could not be read is a VerifyError, never a difference.
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { AgentDayExpectation, ExpectedState } from './expected.js';
import { type ObservedState, type ObservedTrace, compareState } from './compare.js';
import { fetchFailure, requestSignal, seconds } from './fetch-failure.js';

/** Where and how long to check. */
export interface VerifyOptions {
  /** Chronicle's base URL, e.g. http://127.0.0.1:8700. */
  apiUrl: string;
  /** Give up (and report what still differs) after this long. */
  timeoutMillis: number;
  pollIntervalMillis?: number | undefined;
  /** Lines reported at most; the rest are summarised in one line. */
  maxDifferences?: number | undefined;
  /** Time one read of the API may take (default 30 s). */
  requestTimeoutMillis?: number | undefined;
  /** An API token with the read scope, sent as `Authorization: Bearer`; none when undefined. */
  token?: string | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Chronicle's API could not be read, so nothing can be said about what it recorded: it did not answer
 * until the timeout (down, or a wrong URL), or answered something that is not its API.
 */
export class VerifyError extends Error {
  override readonly name = 'VerifyError';
}

/** A read of the API that failed; `retryable` when Chronicle may answer later (down, busy, starting). */
class ApiReadError extends Error {
  override readonly name = 'ApiReadError';
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: ErrorOptions & { unreachable?: boolean },
  ) {
    super(message, options);
    this.unreachable = options?.unreachable ?? false;
  }

  /** Nothing answered at that address (refused, timed out, unknown host). */
  readonly unreachable: boolean;
}

/** The outcome of a check. */
export interface VerifyResult {
  /** Human-readable differences; empty when Chronicle recorded exactly what was sent. */
  differences: string[];
  /** Times the API was read. */
  checks: number;
  elapsedMillis: number;
}

const PAGE_LIMIT = 1000;
/** Traces whose events are listed one by one to name the missing ones. */
const DETAILED_TRACES = 5;

/**
 * Polls until Chronicle matches `expected` or `timeoutMillis` passes; `fetch` is injectable. Throws a
 * VerifyError when the last check could not read the API (it kept failing until the timeout, or it
 * answered with a status that retrying will not change), so differences always come from Chronicle.
 */
export async function verifyChronicle(
  expected: ExpectedState,
  options: VerifyOptions,
  deps: { fetch?: typeof fetch } = {},
): Promise<VerifyResult> {
  const api = createApiReader(
    options.apiUrl,
    deps.fetch ?? fetch,
    options.requestTimeoutMillis ?? 30_000,
    options.signal,
    options.token,
  );
  const started = Date.now();
  const deadline = started + options.timeoutMillis;
  const interval = options.pollIntervalMillis ?? 500;
  for (let checks = 1; ; checks++) {
    let observed: ObservedState | undefined;
    let failure: ApiReadError | undefined;
    try {
      observed = await observe(api, expected);
    } catch (err) {
      options.signal?.throwIfAborted();
      if (!(err instanceof ApiReadError)) {
        // Pages or rows not shaped like Chronicle's: something else answers at apiUrl.
        throw new VerifyError(`unexpected answer from Chronicle's API: ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (!err.retryable)
        throw new VerifyError(`could not read Chronicle's API: ${err.message}`, { cause: err });
      failure = err;
    }
    const differences = observed === undefined ? undefined : compareState(expected, observed);
    const last = Date.now() + interval > deadline;
    if (failure !== undefined && last) {
      throw new VerifyError(
        `could not read Chronicle's API: ${failure.message} (${checks} attempt${checks === 1 ? '' : 's'} ` +
          `over ${seconds(Date.now() - started)}${failure.unreachable ? '; is Chronicle running there?' : ''})`,
        { cause: failure },
      );
    }
    if (differences !== undefined && (differences.length === 0 || last)) {
      if (differences.length > 0) differences.push(...(await eventDetail(api, expected, differences)));
      return {
        differences: capped(unique(differences), options.maxDifferences ?? 100),
        checks,
        elapsedMillis: Date.now() - started,
      };
    }
    await sleepFor(interval, undefined, { signal: options.signal });
  }
}

interface ApiReader {
  get<T>(path: string, query: Record<string, string | undefined>): Promise<T>;
}

/** Reads the API; failures are ApiReadErrors, retryable for network errors, 429 and 5xx. */
function createApiReader(
  baseUrl: string,
  doFetch: typeof fetch,
  requestTimeoutMillis: number,
  signal?: AbortSignal,
  token?: string,
): ApiReader {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const base = baseUrl.replace(/\/+$/, '');
  return {
    async get<T>(path: string, query: Record<string, string | undefined>): Promise<T> {
      let url: URL;
      try {
        url = new URL(base + path);
      } catch (err) {
        throw new ApiReadError(`invalid URL ${JSON.stringify(baseUrl)}`, false, { cause: err });
      }
      for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
      const what = `GET ${url.origin}${url.pathname}`;
      try {
        const res = await doFetch(url, { headers, signal: requestSignal(signal, requestTimeoutMillis) });
        if (!res.ok) {
          await res.body?.cancel();
          const retryable = res.status === 429 || res.status >= 500;
          throw new ApiReadError(
            `${what}${url.search} answered ${res.status}${retryable ? '' : res.status === 401 || res.status === 403 ? ' (set CHRONICLE_API_TOKEN to a token with the read scope)' : ' (is this Chronicle?)'}`,
            retryable,
          );
        }
        return (await res.json()) as T;
      } catch (err) {
        if (err instanceof ApiReadError) throw err;
        signal?.throwIfAborted();
        const f = fetchFailure(err);
        throw new ApiReadError(`${what}: ${f.reason}`, f.retryable, {
          cause: err,
          unreachable: f.unreachable,
        });
      }
    },
  };
}

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

async function* pages<T>(api: ApiReader, path: string, query: Record<string, string | undefined>) {
  let cursor: string | undefined;
  do {
    const page = await api.get<Page<T>>(path, { ...query, limit: String(PAGE_LIMIT), cursor });
    yield page.items;
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
}

/** Reads the run's traces, its agents' rows on the expected days, and its dead-letter entries. */
async function observe(api: ApiReader, expected: ExpectedState): Promise<ObservedState> {
  const traces = new Map<string, ObservedTrace>();
  const window = expected.createdWindow;
  if (window !== null) {
    // Only the run's traces cross the wire (every trace id of a run carries its prefix).
    const query = {
      trace_prefix: expected.prefix,
      since: new Date(window.sinceMillis).toISOString(),
      until: new Date(window.untilMillis).toISOString(),
    };
    for await (const items of pages<ObservedTrace>(api, '/api/v1/traces', query)) {
      for (const t of items) {
        if (expected.traces.has(t.trace_id) || t.trace_id.startsWith(expected.prefix))
          traces.set(t.trace_id, t);
      }
    }
  }

  const agentDays = new Map<string, Map<string, AgentDayExpectation>>();
  for (const day of expected.agentDays.keys()) {
    const summary = await api.get<{ agents: (AgentDayExpectation & { agent_id: string })[] }>(
      '/api/v1/metrics/summary',
      { date: day },
    );
    const rows = new Map<string, AgentDayExpectation>();
    for (const row of summary.agents) {
      if (row.agent_id.startsWith(expected.prefix) || expected.agentDays.get(day)!.has(row.agent_id)) {
        rows.set(row.agent_id, row);
      }
    }
    agentDays.set(day, rows);
  }

  let dlqIds: Set<string> | undefined;
  if (expected.dlqIds.size > 0) {
    dlqIds = new Set();
    // Newest first: a fresh run's entries are on the first pages.
    for await (const items of pages<{ dlq_id: string }>(api, '/api/v1/dlq', { source: 'dispatcher' })) {
      for (const d of items) if (expected.dlqIds.has(d.dlq_id)) dlqIds.add(d.dlq_id);
      if (dlqIds.size === expected.dlqIds.size) break;
    }
  }
  // The raw log, counted per trace over the time the run's traces span (one paged read).
  const logEvents = new Map<string, number>();
  const firsts = [...traces.values()].flatMap((t) =>
    t.first_event_at ? [Date.parse(t.first_event_at)] : [],
  );
  const lasts = [...traces.values()].flatMap((t) => (t.last_event_at ? [Date.parse(t.last_event_at)] : []));
  if (firsts.length > 0 && lasts.length > 0) {
    const query = {
      trace_prefix: expected.prefix,
      since: new Date(Math.min(...firsts)).toISOString(),
      until: new Date(Math.max(...lasts) + 1).toISOString(),
    };
    for await (const items of pages<{ trace_id: string }>(api, '/api/v1/events', query)) {
      for (const e of items) {
        if (expected.traces.has(e.trace_id) || e.trace_id.startsWith(expected.prefix)) {
          logEvents.set(e.trace_id, (logEvents.get(e.trace_id) ?? 0) + 1);
        }
      }
    }
  }
  return { traces, agentDays, dlqIds, logEvents };
}

/** Names the missing and unexpected events of the first few traces whose event counts differ. */
async function eventDetail(
  api: ApiReader,
  expected: ExpectedState,
  differences: string[],
): Promise<string[]> {
  // A trace whose count differs has a line for its row and one for the log: list its events once.
  const traceIds = unique(
    differences
      .map((d) => /^trace (\S+): (?:missing|expected \d+ events)/.exec(d)?.[1])
      .filter((id): id is string => id !== undefined),
  ).slice(0, DETAILED_TRACES);
  const out: string[] = [];
  for (const traceId of traceIds) {
    try {
      const recorded = new Set<string>();
      for await (const items of pages<{ event_id: string }>(api, '/api/v1/events', { trace_id: traceId })) {
        for (const e of items) recorded.add(e.event_id);
      }
      const want = expected.eventIds.get(traceId) ?? [];
      const missing = want.filter((id) => !recorded.has(id));
      const extra = [...recorded].filter((id) => !want.includes(id));
      if (missing.length > 0) out.push(`trace ${traceId}: events not recorded: ${missing.join(', ')}`);
      if (extra.length > 0) out.push(`trace ${traceId}: events recorded but not sent: ${extra.join(', ')}`);
    } catch {
      // The detail is a help for the reader; the differences above already fail the check.
    }
  }
  return out;
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

function capped(lines: string[], max: number): string[] {
  return lines.length <= max ? lines : [...lines.slice(0, max), `... and ${lines.length - max} more`];
}
