import { afterAll, beforeAll, expect, it } from 'vitest';
import { computeExpected } from '../../src/simulate/expected.js';
import { PublishError, createHttpPublisher } from '../../src/simulate/publish.js';
import { runSimulationRounds } from '../../src/simulate/rounds.js';
import { type SimulationReport, runSimulation } from '../../src/simulate/simulate.js';
import { generateTraffic, runPrefix } from '../../src/simulate/traffic.js';
import { verifyChronicle } from '../../src/simulate/verify.js';
import { type ChronicleTestEnv, type TestChronicle, createChronicleTestEnv } from '../support/chronicle.js';
import { loseOneEvent } from '../support/db.js';
import { NATS_URL, describeWithServices } from '../support/services.js';

const TRAFFIC = {
  agents: 4,
  errorRate: 0.1,
  timeoutRate: 0.08,
  retryRate: 0.5,
  duplicateRate: 0.05,
  outOfOrderRate: 0.05,
  unassignableRate: 0.03,
};

describeWithServices('simulate - chronicle simulate --verify', () => {
  let env: ChronicleTestEnv;
  let chronicle: TestChronicle;
  let natsRun: SimulationReport | undefined;

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    chronicle = await env.start();
  });

  afterAll(async () => {
    await env?.cleanup();
  });

  it('simulate - over HTTP, verify finds Chronicle recorded every event, trace and agent count', async () => {
    const progress: number[] = [];
    const result = await runSimulation({
      ...TRAFFIC,
      seed: 1,
      count: 3_000,
      target: { kind: 'http', url: chronicle.url },
      verify: { apiUrl: chronicle.url, timeoutMillis: 10_000, pollIntervalMillis: 200 },
      onProgress: (p) => progress.push(p.sent),
    });
    expect(result.differences).toEqual([]);
    expect(result.sent).toBe(3_000);
    expect(result.duplicates).toBeGreaterThan(0);
    expect(result.report.expected.dlqEntries).toBe(0);
    expect(result.report.traffic.byType['dlq.task']).toBeGreaterThan(0);
    expect(progress.at(-1)).toBe(3_000);
  });

  it('simulate - over NATS with namespaced subjects, verify finds everything, dead-letter entries included', async () => {
    const result = await runSimulation({
      ...TRAFFIC,
      seed: 2,
      count: 3_000,
      ratePerSecond: 5_000,
      target: { kind: 'nats', url: NATS_URL, subjectPrefix: env.subject('') },
      verify: { apiUrl: chronicle.url, timeoutMillis: 15_000, pollIntervalMillis: 200 },
    });
    expect(result.differences).toEqual([]);
    expect(result.report.expected.dlqEntries).toBeGreaterThan(0);
    expect(result.report.publish.elapsedMillis).toBeGreaterThanOrEqual(500);
    natsRun = result.report;
  });

  it('simulate - over NATS, subjects no stream stores fail the run at once, naming the subject', async () => {
    const prefix = `${env.namespace.toLowerCase()}nostream_`;
    const error = await runSimulation({
      ...TRAFFIC,
      seed: 2,
      count: 500,
      target: { kind: 'nats', url: NATS_URL, subjectPrefix: prefix },
    }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(PublishError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^no JetStream stream stores subject "${prefix}(swarm|dlq)\\.[a-z.]+" \\(.*"${prefix}"\\? set --subject-prefix\\)$`,
      ),
    );
  });

  it('simulate - the same traffic options give the same run over NATS and HTTP, with or without verification', async () => {
    const options = { ...TRAFFIC, seed: 2, count: 3_000, ratePerSecond: 5_000 };
    const overHttp = await runSimulation({
      ...options,
      target: { kind: 'http', url: chronicle.url },
      verify: { apiUrl: chronicle.url, timeoutMillis: 10_000, pollIntervalMillis: 200 },
    });
    expect(overHttp.report.runId).toBe(generateTraffic(options).runId);
    expect(overHttp.differences).toEqual([]);
    // The same run as the NATS test's (seed 2): every event was a duplicate of one already stored.
    expect(natsRun).toBeDefined();
    expect(overHttp.report.runId).toBe(natsRun!.runId);
    expect(overHttp.report.expected.events).toBe(natsRun!.expected.events);
    expect(overHttp.report.traffic).toEqual(natsRun!.traffic);
  });

  it('simulate - the same run sent again changes nothing, and still verifies', async () => {
    const again = await runSimulation({
      ...TRAFFIC,
      seed: 1,
      count: 3_000,
      target: { kind: 'http', url: chronicle.url },
      verify: { apiUrl: chronicle.url, timeoutMillis: 5_000 },
    });
    expect(again.differences).toEqual([]);
  });

  it('simulate - verify fails, naming the event, when Chronicle lacks one that was sent', async () => {
    const traffic = generateTraffic({ ...TRAFFIC, seed: 3, count: 500 });
    const prefix = runPrefix(traffic.runId);
    const expected = computeExpected(traffic.messages, { prefix, target: 'http' });
    const lost = traffic.messages.find((m) => m.payload.event_type === 'task.completed')!;
    const publisher = createHttpPublisher({ url: chronicle.url });
    await publisher.publish(traffic.messages.filter((m) => m.payload !== lost.payload));

    const { differences } = await verifyChronicle(expected, {
      apiUrl: chronicle.url,
      timeoutMillis: 1_500,
      pollIntervalMillis: 200,
    });
    const traceId = String(lost.payload.trace_id);
    expect(differences).toContain(
      `events: expected ${expected.events} distinct events, Chronicle recorded ${expected.events - 1}`,
    );
    expect(differences.some((d) => d.startsWith(`trace ${traceId}: status expected "completed"`))).toBe(true);
    // Listed once, though the trace's row and its log count both differ.
    const line = `trace ${traceId}: events not recorded: ${String(lost.payload.event_id)}`;
    expect(differences.filter((d) => d === line)).toHaveLength(1);
    expect(new Set(differences).size).toBe(differences.length);
    expect(differences.some((d) => /^agent \S+ on \d{4}-\d{2}-\d{2}: tasks_completed expected/.test(d))).toBe(
      true,
    );
  });

  it('simulate - verify fails when an event Chronicle had recorded is lost from the log, although the trace rows still count it', async () => {
    const traffic = generateTraffic({ ...TRAFFIC, seed: 11, count: 600 });
    const prefix = runPrefix(traffic.runId);
    const expected = computeExpected(traffic.messages, { prefix, target: 'http' });
    await createHttpPublisher({ url: chronicle.url }).publish(traffic.messages);
    const verify = () =>
      verifyChronicle(expected, {
        apiUrl: chronicle.url,
        timeoutMillis: 5_000,
        pollIntervalMillis: 200,
        maxDifferences: 1000,
      });
    expect((await verify()).differences).toEqual([]);

    // Chronicle "loses" a stored event: gone from the raw log, while the derived rows are left as they were.
    const lost = await loseOneEvent(env.db.pool, prefix);
    const { differences } = await verify();
    expect(differences).toContain(
      `events: expected ${expected.events} distinct events in the log, found ${expected.events - 1}`,
    );
    expect(
      differences.some(
        (d) =>
          d.startsWith(`trace ${lost.trace_id}: expected `) &&
          d.endsWith('in the log, found ' + String(expected.traces.get(lost.trace_id)!.span_count - 1)),
      ),
    ).toBe(true);
    expect(differences).toContain(`trace ${lost.trace_id}: events not recorded: ${lost.event_id}`);
  });

  it('simulate rounds - every round is a new run, verified; a round in which Chronicle loses an event is counted, the others pass', async () => {
    const runIds: string[] = [];
    const verdicts: number[] = [];
    let posts = 0;
    // Round 2's first request never reaches Chronicle, though the publisher is told it was taken.
    const losingFetch: typeof fetch = (input, init) => {
      if (init?.method === 'POST' && runIds.length === 1 && posts++ === 0) {
        return Promise.resolve(Response.json({ accepted: 1, duplicates: 0, rejected: [] }));
      }
      return fetch(input, init);
    };
    const result = await runSimulationRounds(
      {
        rounds: 3,
        everyMillis: 100,
        base: {
          ...TRAFFIC,
          seed: 21,
          count: 400,
          target: { kind: 'http', url: chronicle.url },
          verify: { apiUrl: chronicle.url, timeoutMillis: 2_000, pollIntervalMillis: 200 },
        },
        onRound: (_, { result: r }) => {
          runIds.push(r!.report.runId);
          verdicts.push(r!.differences!.length);
        },
      },
      { fetch: losingFetch },
    );
    expect(result).toEqual({ rounds: 3, roundsWithDifferences: 1, failedRounds: 0 });
    expect(new Set(runIds).size).toBe(3);
    expect(verdicts[0]).toBe(0);
    expect(verdicts[1]).toBeGreaterThan(0);
    expect(verdicts[2]).toBe(0);
  });

  it('simulate rounds - until stopped: an abort ends the loop between rounds and keeps the finished ones', async () => {
    const stop = new AbortController();
    const result = await runSimulationRounds({
      rounds: 0,
      everyMillis: 60_000,
      base: {
        ...TRAFFIC,
        seed: 31,
        count: 200,
        target: { kind: 'http', url: chronicle.url },
        verify: { apiUrl: chronicle.url, timeoutMillis: 5_000, pollIntervalMillis: 100 },
      },
      signal: stop.signal,
      onRound: () => stop.abort(new Error('stopped')),
    });
    expect(result).toEqual({ rounds: 1, roundsWithDifferences: 0, failedRounds: 0 });
  });
});
