import { describe, expect, it } from 'vitest';
import { formatSimulationReport, runSimulation } from '../../../src/simulate/simulate.js';
import { generateTraffic, messageIdOf, runPrefix } from '../../../src/simulate/traffic.js';
import { fakeChronicle, fakeNats } from './fake-chronicle.js';

const TRAFFIC = { seed: 17, count: 400, agents: 3, unassignableRate: 0.05 };

describe('runSimulation', () => {
  it('simulate - the same traffic options give the same run whatever the target, URL, verification or callbacks', async () => {
    const traffic = generateTraffic(TRAFFIC);
    const prefix = runPrefix(traffic.runId);

    const plain = fakeChronicle(traffic.messages, prefix);
    const a = await runSimulation({ ...TRAFFIC, target: { kind: 'http', url: 'http://a:8700' } }, plain);

    const verified = fakeChronicle(traffic.messages, prefix);
    const b = await runSimulation(
      {
        ...TRAFFIC,
        target: { kind: 'http', url: 'https://elsewhere.example:9999/', maxBatchEvents: 70 },
        verify: { apiUrl: 'http://api.example:8700', timeoutMillis: 1_000, pollIntervalMillis: 10 },
        onProgress: () => undefined,
        progressIntervalMillis: 1,
      },
      verified,
    );

    const nats = fakeNats();
    const c = await runSimulation(
      { ...TRAFFIC, target: { kind: 'nats', url: 'nats://127.0.0.1:4222', subjectPrefix: 'x_' } },
      { connectNats: nats.connect },
    );

    expect(a.report.runId).toBe(traffic.runId);
    expect(b.report.runId).toBe(traffic.runId);
    expect(c.report.runId).toBe(traffic.runId);
    // Verification ran against the fake, which recorded exactly the run.
    expect(b.differences).toEqual([]);
    // Identical messages: the same events, in the same order, on both HTTP runs ...
    expect(verified.posts.flat()).toEqual(plain.posts.flat());
    expect(plain.posts.flat().map((e) => e.event_id)).toEqual(
      traffic.messages.filter((m) => !m.subject.startsWith('dlq.')).map(messageIdOf),
    );
    // ... and the same messages over NATS, in order, on the prefixed subjects.
    expect(nats.received.map((m) => [m.subject, m.id])).toEqual(
      traffic.messages.map((m) => [`x_${m.subject}`, messageIdOf(m)]),
    );
  });

  it('simulate - with wholeTasks the run publishes, expects and verifies every message it generated, more than the count', async () => {
    const options = { ...TRAFFIC, count: 300, wholeTasks: true };
    const traffic = generateTraffic(options);
    expect(traffic.messages.length).toBeGreaterThan(300);
    const chronicle = fakeChronicle(traffic.messages, runPrefix(traffic.runId));
    const result = await runSimulation(
      {
        ...options,
        target: { kind: 'http', url: 'http://c:8700' },
        verify: { apiUrl: 'http://c:8700', timeoutMillis: 1_000, pollIntervalMillis: 10 },
      },
      chronicle,
    );
    expect(result.differences).toEqual([]);
    expect(result.sent).toBe(traffic.messages.length);
    expect(result.report).toMatchObject({ runId: traffic.runId, requested: 300, wholeTasks: true });
    expect(result.report.traffic.messages).toBe(traffic.messages.length);
    expect(chronicle.posts.flat()).toHaveLength(traffic.messages.length);
    // Every task ended: no open status is expected.
    const statuses = Object.keys(result.report.expected.statuses);
    expect(statuses).toContain('completed');
    expect(statuses.filter((st) => !['completed', 'failed', 'timed_out'].includes(st))).toEqual([]);
    expect(formatSimulationReport(result).split('\n')[0]).toMatch(
      new RegExp(
        `^run ${traffic.runId} → http: sent ${traffic.messages.length} messages \\(300 asked for \\+ ${traffic.messages.length - 300} to end the tasks started; \\d+ duplicates, \\d+ reordered\\) in `,
      ),
    );

    // Without it the report's first line is as it was.
    const plain = generateTraffic(TRAFFIC);
    const cut = await runSimulation(
      { ...TRAFFIC, target: { kind: 'http', url: 'http://c:8700' } },
      fakeChronicle(plain.messages, runPrefix(plain.runId)),
    );
    expect(cut.report).toMatchObject({ requested: 400, wholeTasks: false });
    expect(formatSimulationReport(cut).split('\n')[0]).toMatch(
      /^run [0-9a-f]{8} → http: sent 400 messages \(\d+ duplicates, \d+ reordered\) in /,
    );
  });
});
