import { describe, expect, it } from 'vitest';
import { computeExpected } from '../../../src/simulate/expected.js';
import { generateTraffic, runPrefix } from '../../../src/simulate/traffic.js';
import { VerifyError, verifyChronicle } from '../../../src/simulate/verify.js';
import { fakeChronicle, networkError } from './fake-chronicle.js';

const traffic = generateTraffic({ seed: 12, count: 400, agents: 3, unassignableRate: 0 });
const prefix = runPrefix(traffic.runId);
const expected = computeExpected(traffic.messages, { prefix, target: 'http' });

describe('verify', () => {
  it('verify - a Chronicle that recorded everything passes', async () => {
    const api = fakeChronicle(traffic.messages, prefix);
    const result = await verifyChronicle(expected, { apiUrl: 'http://c', timeoutMillis: 0 }, api);
    expect(result.differences).toEqual([]);
  });

  it('verify - a lost event is named once, though both its trace row and the log count it short', async () => {
    const lost = traffic.messages.find((m) => m.payload.event_type === 'task.completed')!;
    const api = fakeChronicle(
      traffic.messages.filter((m) => m.payload !== lost.payload),
      prefix,
    );
    const { differences } = await verifyChronicle(expected, { apiUrl: 'http://c', timeoutMillis: 0 }, api);
    const traceId = String(lost.payload.trace_id);
    // Both counts differ for that trace ...
    expect(differences).toContain(
      `trace ${traceId}: expected ${expected.traces.get(traceId)!.span_count} events, Chronicle recorded ${expected.traces.get(traceId)!.span_count - 1}`,
    );
    expect(
      differences.some((d) => d.startsWith(`trace ${traceId}: expected `) && d.includes('in the log')),
    ).toBe(true);
    // ... and the event is listed once.
    const line = `trace ${traceId}: events not recorded: ${String(lost.payload.event_id)}`;
    expect(differences.filter((d) => d === line)).toHaveLength(1);
    expect(new Set(differences).size).toBe(differences.length);
  });

  it('verify - an API that never answers is a VerifyError after the timeout, not a difference', async () => {
    let calls = 0;
    const down: typeof fetch = () => {
      calls++;
      return Promise.reject(networkError('ECONNREFUSED'));
    };
    const started = Date.now();
    const error = await verifyChronicle(
      expected,
      { apiUrl: 'http://chronicle:8700', timeoutMillis: 300, pollIntervalMillis: 50 },
      { fetch: down },
    ).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(VerifyError);
    expect((error as Error).message).toMatch(
      /^could not read Chronicle's API: GET http:\/\/chronicle:8700\/api\/v1\/traces: connection refused \(\d+ attempts over [\d.]+ s; is Chronicle running there\?\)$/,
    );
    expect(calls).toBeGreaterThan(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('verify - an API that answers 404 (not Chronicle) is a VerifyError at once', async () => {
    const notChronicle: typeof fetch = () => Promise.resolve(new Response('nope', { status: 404 }));
    await expect(
      verifyChronicle(
        expected,
        { apiUrl: 'http://other:80', timeoutMillis: 60_000 },
        { fetch: notChronicle },
      ),
    ).rejects.toThrow(/could not read Chronicle's API: GET http:\/\/other\/api\/v1\/traces\?.* answered 404/);
  });

  it('verify - an API that is down for a while and then answers is verified as usual', async () => {
    const api = fakeChronicle(traffic.messages, prefix);
    let calls = 0;
    const recovering: typeof fetch = (input, init) =>
      ++calls <= 3 ? Promise.reject(networkError('ECONNRESET')) : api.fetch(input, init);
    const result = await verifyChronicle(
      expected,
      { apiUrl: 'http://c', timeoutMillis: 5_000, pollIntervalMillis: 10 },
      { fetch: recovering },
    );
    expect(result.differences).toEqual([]);
    expect(result.checks).toBe(4);
  });
});
