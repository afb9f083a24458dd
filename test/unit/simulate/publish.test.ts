import { describe, expect, it } from 'vitest';
import { createHttpPublisher, retryAfterMillis } from '../../../src/simulate/publish.js';
import { generateTraffic } from '../../../src/simulate/traffic.js';

interface Call {
  url: string;
  events: Record<string, unknown>[];
}

/** A fake ingest answering with `statuses` in turn, then 200. */
function fakeIngest(statuses: number[] = []) {
  const calls: Call[] = [];
  const fetchFn = (input: string, init: { body: string }): Promise<Response> => {
    const events = JSON.parse(init.body) as Record<string, unknown>[];
    calls.push({ url: input, events });
    const status = statuses.shift() ?? 200;
    if (status !== 200) {
      return Promise.resolve(
        new Response(JSON.stringify({ error: 'busy' }), { status, headers: { 'retry-after': '0' } }),
      );
    }
    const answer = { accepted: events.length, duplicates: 0, rejected: [] };
    return Promise.resolve(Response.json(answer));
  };
  return { calls, fetch: fetchFn as unknown as typeof fetch };
}

describe('publishers', () => {
  it('http publisher - sends arrays of at most 500 canonical events; dead-letter entries as dlq.entry', async () => {
    const traffic = generateTraffic({ seed: 8, count: 1_200, unassignableRate: 0.05 });
    const ingest = fakeIngest();
    const progress: number[] = [];
    const result = await createHttpPublisher(
      { url: 'http://chronicle:8700/' },
      { fetch: ingest.fetch },
    ).publish(traffic.messages, { onProgress: (p) => progress.push(p.sent), progressIntervalMillis: 0 });
    expect(result.sent).toBe(1_200);
    expect(ingest.calls.map((c) => c.events.length)).toEqual([500, 500, 200]);
    expect(new Set(ingest.calls.map((c) => c.url))).toEqual(new Set(['http://chronicle:8700/api/v1/events']));
    const sent = ingest.calls.flatMap((c) => c.events);
    const dlq = traffic.messages.filter((m) => m.subject === 'dlq.task').length;
    expect(dlq).toBeGreaterThan(0);
    expect(sent.filter((e) => e.event_type === 'dlq.entry')).toHaveLength(dlq);
    expect(sent.every((e) => typeof e.trace_id === 'string' && typeof e.event_id === 'string')).toBe(true);
    expect(progress).toEqual([500, 1_000, 1_200]);
  });

  it('http publisher - retries 429 and 503 after Retry-After, then gives up on other errors', async () => {
    const traffic = generateTraffic({ seed: 8, count: 10 });
    const ingest = fakeIngest([429, 503]);
    await createHttpPublisher({ url: 'http://c' }, { fetch: ingest.fetch }).publish(traffic.messages);
    expect(ingest.calls).toHaveLength(3);

    const failing = fakeIngest([500]);
    await expect(
      createHttpPublisher({ url: 'http://c' }, { fetch: failing.fetch }).publish(traffic.messages),
    ).rejects.toThrow(/answered 500/);
  });

  it('publishers - pace themselves to ratePerSecond', async () => {
    const traffic = generateTraffic({ seed: 8, count: 200 });
    const started = Date.now();
    const result = await createHttpPublisher({ url: 'http://c' }, { fetch: fakeIngest().fetch }).publish(
      traffic.messages,
      { ratePerSecond: 1_000 },
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(195);
    expect(result.elapsedMillis).toBeLessThan(1_000);
  });

  it('retryAfterMillis - seconds, an HTTP date, or a backoff', () => {
    expect(retryAfterMillis('2')).toBe(2_000);
    expect(retryAfterMillis(new Date(Date.now() + 3_000).toUTCString())).toBeGreaterThan(1_000);
    expect(retryAfterMillis(null, 0)).toBe(100);
    expect(retryAfterMillis('soon', 3)).toBe(800);
  });
});
