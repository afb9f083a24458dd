import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../../src/simulate/simulate.js';
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
});
