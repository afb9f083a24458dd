/**
 * `chronicle simulate`: generates a run of swarm traffic, publishes it to NATS or to the HTTP ingest,
 * and optionally verifies that Chronicle recorded exactly what the run should have left.
 */
import type { ConnectionOptions, NatsConnection } from 'nats';
import { type ExpectedState, computeExpected } from './expected.js';
import { SimulationOptionsError, type TrafficOptions, pickTrafficOptions } from './options.js';
import {
  type PublishProgress,
  type PublishResult,
  type TrafficPublisher,
  createHttpPublisher,
  createNatsPublisher,
} from './publish.js';
import { httpUrlProblem, natsServerProblem } from './target-urls.js';
import { type TrafficStats, generateTraffic, runPrefix } from './traffic.js';
import { verifyChronicle } from './verify.js';

/** Where the traffic goes. */
export type SimulationTarget =
  | {
      kind: 'nats';
      /** NATS server, e.g. nats://127.0.0.1:4222 or 127.0.0.1:4222. */
      url: string;
      /** Prepended to subjects: Chronicle's CHRONICLE_NATS_NAMESPACE lower-cased; '' by default. */
      subjectPrefix?: string | undefined;
    }
  | {
      kind: 'http';
      /** Chronicle's base URL; events go to `{url}/api/v1/events`. */
      url: string;
      /** An API token with the ingest scope, sent as `Authorization: Bearer` (CHRONICLE_API_TOKEN). */
      token?: string | undefined;
      /** Events per request (at most 500, the default). */
      maxBatchEvents?: number | undefined;
    };

/**
 * Everything `chronicle simulate` takes; traffic options left out get DEFAULT_TRAFFIC_OPTIONS. Only the
 * traffic options decide the run (its id and messages): the target, verification and callbacks do not.
 */
export interface SimulateOptions extends Partial<TrafficOptions> {
  target: SimulationTarget;
  /** Check Chronicle's API after the run; absent: no check. */
  verify?:
    | {
        /** Chronicle's base URL (over HTTP, usually the target's). */
        apiUrl: string;
        /** How long Chronicle may take to catch up before the differences are reported. */
        timeoutMillis: number;
        pollIntervalMillis?: number | undefined;
        /** An API token with the read scope (CHRONICLE_API_TOKEN). */
        token?: string | undefined;
      }
    | undefined;
  /** Publishing progress, at most every progressIntervalMillis and once at the end. */
  onProgress?: ((progress: PublishProgress) => void) | undefined;
  progressIntervalMillis?: number | undefined;
  /** Aborts publishing and verification. */
  signal?: AbortSignal | undefined;
}

/** Injected dependencies (tests replace them). */
export interface SimulateDeps {
  fetch?: typeof fetch;
  connectNats?: (options: ConnectionOptions) => Promise<NatsConnection>;
}

/** What the run sent and what Chronicle should now hold. */
export interface SimulationReport {
  runId: string;
  /** Prefix of every trace id and agent name of the run. */
  prefix: string;
  target: SimulationTarget['kind'];
  /**
   * Messages the options asked for (count, or duration × rate). A run sends exactly that many, but
   * with wholeTasks more: the rest of the tasks it started (traffic.messages says how many).
   */
  requested: number;
  /** Whether every task the run started was run to its end (TrafficOptions.wholeTasks). */
  wholeTasks: boolean;
  traffic: TrafficStats;
  publish: PublishResult;
  /** Messages per second actually achieved. */
  ratePerSecond: number;
  expected: {
    events: number;
    traces: number;
    /** Task traces per final status. */
    statuses: Record<string, number>;
    /** Agent-day rows of agent_metrics. */
    agentDays: number;
    /** Rows of swarm_dlq (0 over HTTP: entries arrive as `dlq.entry` events only). */
    dlqEntries: number;
  };
  /** Milliseconds verification took; absent without verification. */
  verifyMillis?: number | undefined;
}

/** The outcome of `runSimulation`. */
export interface SimulationResult {
  /** Messages published, duplicates included. */
  sent: number;
  /** Of which re-publications of an earlier message. */
  duplicates: number;
  report: SimulationReport;
  /** Present when verification was asked for: empty when Chronicle matched the run exactly. */
  differences?: string[] | undefined;
}

/**
 * Generates, publishes and (optionally) verifies one run. Throws SimulationOptionsError for bad options
 * (before connecting to anything), PublishError when the target did not take the messages, and
 * VerifyError when Chronicle's API could not be read.
 */
export async function runSimulation(
  options: SimulateOptions,
  deps: SimulateDeps = {},
): Promise<SimulationResult> {
  const problems = targetProblems(options);
  if (problems.length > 0) throw new SimulationOptionsError(problems);
  const traffic = generateTraffic(pickTrafficOptions(options));
  const prefix = runPrefix(traffic.runId);
  const expected = computeExpected(traffic.messages, { prefix, target: options.target.kind });

  const publisher = await createPublisher(options.target, deps);
  let publish: PublishResult;
  try {
    publish = await publisher.publish(traffic.messages, {
      ratePerSecond: traffic.options.ratePerSecond,
      onProgress: options.onProgress,
      progressIntervalMillis: options.progressIntervalMillis,
      signal: options.signal,
    });
  } finally {
    await publisher.close();
  }

  const report: SimulationReport = {
    runId: traffic.runId,
    prefix,
    target: options.target.kind,
    requested: traffic.options.count,
    wholeTasks: traffic.options.wholeTasks === true,
    traffic: traffic.stats,
    publish,
    ratePerSecond: Math.round((publish.sent * 1000) / Math.max(1, publish.elapsedMillis)),
    expected: summarise(expected),
  };
  const result: SimulationResult = { sent: publish.sent, duplicates: traffic.stats.duplicates, report };
  if (options.verify !== undefined) {
    const verified = await verifyChronicle(
      expected,
      { ...options.verify, signal: options.signal },
      { ...(deps.fetch !== undefined ? { fetch: deps.fetch } : {}) },
    );
    report.verifyMillis = verified.elapsedMillis;
    // Events the ingest refused are a loss too, even if the check could not see them.
    result.differences = [
      ...new Set([
        ...publish.rejected.map((r) => `event ${r.event_id}: rejected by the ingest (${r.reason})`),
        ...verified.differences,
      ]),
    ];
  }
  return result;
}

/** The target's and the API's addresses, checked before anything is sent. */
function targetProblems(options: SimulateOptions): string[] {
  const problems: string[] = [];
  const target = options.target.kind === 'nats' ? natsServerProblem : httpUrlProblem;
  const url = target(options.target.url);
  if (url !== undefined) problems.push(`target.url ${url}`);
  const apiUrl = options.verify === undefined ? undefined : httpUrlProblem(options.verify.apiUrl);
  if (apiUrl !== undefined) problems.push(`verify.apiUrl ${apiUrl}`);
  return problems;
}

function createPublisher(target: SimulationTarget, deps: SimulateDeps): Promise<TrafficPublisher> {
  if (target.kind === 'nats') {
    return createNatsPublisher(
      { url: target.url, subjectPrefix: target.subjectPrefix },
      deps.connectNats !== undefined ? { connect: deps.connectNats } : {},
    );
  }
  return Promise.resolve(
    createHttpPublisher(
      { url: target.url, maxBatchEvents: target.maxBatchEvents, token: target.token },
      deps.fetch !== undefined ? { fetch: deps.fetch } : {},
    ),
  );
}

function summarise(expected: ExpectedState): SimulationReport['expected'] {
  const statuses: Record<string, number> = {};
  for (const t of expected.traces.values()) {
    if (t.status !== null) statuses[t.status] = (statuses[t.status] ?? 0) + 1;
  }
  let agentDays = 0;
  for (const agents of expected.agentDays.values()) agentDays += agents.size;
  return {
    events: expected.events,
    traces: expected.traces.size,
    statuses,
    agentDays,
    dlqEntries: expected.dlqIds.size,
  };
}

/** The report as a few lines for a terminal. */
export function formatSimulationReport(result: SimulationResult): string {
  const r = result.report;
  const types = Object.entries(r.traffic.byType)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, n]) => `${type} ${n}`)
    .join(', ');
  const statuses = Object.entries(r.expected.statuses)
    .map(([status, n]) => `${status} ${n}`)
    .join(', ');
  // With wholeTasks: how many of the messages ended the tasks still running at the count.
  const whole = r.wholeTasks
    ? `${r.requested} asked for + ${r.traffic.messages - r.requested} to end the tasks started; `
    : '';
  const lines = [
    `run ${r.runId} → ${r.target}: sent ${result.sent} messages (${whole}${result.duplicates} duplicates, ${r.traffic.reordered} reordered) in ${r.publish.elapsedMillis} ms, ${r.ratePerSecond}/s`,
    `  by type: ${types}`,
    `  expected: ${r.expected.events} events, ${r.expected.traces} traces (${statuses}), ${r.expected.agentDays} agent-day rows, ${r.expected.dlqEntries} dead-letter entries`,
    `  traces and agents are named ${r.prefix}*`,
  ];
  if (result.differences !== undefined) {
    lines.push(
      result.differences.length === 0
        ? `verify: Chronicle recorded everything (${r.verifyMillis} ms)`
        : `verify: ${result.differences.length} difference(s):`,
      ...result.differences.map((d) => `  ${d}`),
    );
  }
  return lines.join('\n');
}
