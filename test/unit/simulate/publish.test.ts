import net from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  PublishError,
  createHttpPublisher,
  createNatsPublisher,
  retryAfterMillis,
} from '../../../src/simulate/publish.js';
import { generateTraffic, messageIdOf } from '../../../src/simulate/traffic.js';
import { fakeNats, jsonBody, networkError } from './fake-chronicle.js';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

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

  it('http publisher - an invalid URL fails at once, without retries', async () => {
    const traffic = generateTraffic({ seed: 8, count: 10 });
    for (const [url, reason] of [
      ['http//chronicle:8700', /^POST http\/\/chronicle:8700\/api\/v1\/events: invalid URL$/],
      ['chronicle:8700', /^POST chronicle:8700\/api\/v1\/events: fetch failed: unknown scheme$/],
    ] as const) {
      let calls = 0;
      const counting: typeof fetch = (input, init) => {
        calls++;
        return fetch(input, init);
      };
      const started = Date.now();
      const error = await createHttpPublisher({ url }, { fetch: counting })
        .publish(traffic.messages)
        .catch((err: unknown) => err);
      expect(error).toBeInstanceOf(PublishError);
      expect((error as Error).message).toMatch(reason);
      expect(calls).toBe(1);
      expect(Date.now() - started).toBeLessThan(1_000);
    }
  });

  it('http publisher - other errors than network errors are not retried', async () => {
    const traffic = generateTraffic({ seed: 8, count: 10 });
    let calls = 0;
    const failing: typeof fetch = () => {
      calls++;
      return Promise.reject(
        new TypeError('fetch failed', { cause: new Error('unable to verify the first certificate') }),
      );
    };
    await expect(
      createHttpPublisher({ url: 'https://c' }, { fetch: failing }).publish(traffic.messages),
    ).rejects.toThrow(/unable to verify the first certificate/);
    expect(calls).toBe(1);
  });

  it('http publisher - network errors are retried, then it gives up within maxRetryMillis saying what it tried', async () => {
    const traffic = generateTraffic({ seed: 8, count: 10 });
    let calls = 0;
    const flaky: typeof fetch = () => {
      calls++;
      return Promise.reject(networkError(calls === 1 ? 'ECONNRESET' : 'ECONNREFUSED'));
    };
    const started = Date.now();
    await expect(
      createHttpPublisher({ url: 'http://c', maxRetryMillis: 1_000 }, { fetch: flaky }).publish(
        traffic.messages,
      ),
    ).rejects.toThrow(
      /^POST http:\/\/c\/api\/v1\/events: connection refused after \d+ attempts over [\d.]+ s; is Chronicle running\?$/,
    );
    expect(calls).toBeGreaterThan(3);
    expect(Date.now() - started).toBeLessThan(1_500);

    // Against a real closed port: the same, from fetch's own error.
    const url = `http://127.0.0.1:${await closedPort()}`;
    await expect(createHttpPublisher({ url, maxRetryMillis: 300 }).publish(traffic.messages)).rejects.toThrow(
      `POST ${url}/api/v1/events: connection refused after`,
    );
  });

  it('http publisher - a network error that clears is retried and the run goes on', async () => {
    const traffic = generateTraffic({ seed: 8, count: 10 });
    let calls = 0;
    const recovering: typeof fetch = (_input, init) => {
      calls++;
      if (calls <= 2) return Promise.reject(networkError('ECONNREFUSED'));
      const events = jsonBody<unknown[]>(init);
      return Promise.resolve(Response.json({ accepted: events.length, duplicates: 0, rejected: [] }));
    };
    const result = await createHttpPublisher({ url: 'http://c' }, { fetch: recovering }).publish(
      traffic.messages,
    );
    expect(result.sent).toBe(10);
    expect(calls).toBe(3);
  });

  it('nats publisher - the first message of each subject and of each chunk is acknowledged by JetStream, the rest are plain publishes', async () => {
    const traffic = generateTraffic({ seed: 8, count: 2_500, unassignableRate: 0.05 });
    const nats = fakeNats();
    const publisher = await createNatsPublisher(
      { url: 'nats://n:4222', subjectPrefix: 'ns_' },
      { connect: nats.connect },
    );
    await publisher.publish(traffic.messages);
    await publisher.close();
    expect(nats.received.map((m) => [m.subject, m.id])).toEqual(
      traffic.messages.map((m) => [`ns_${m.subject}`, messageIdOf(m)]),
    );
    const acked = nats.received.filter((m) => m.acked);
    const subjects = new Set(traffic.messages.map((m) => m.subject));
    expect(subjects.has('dlq.task')).toBe(true);
    expect(new Set(acked.map((m) => m.subject))).toEqual(new Set([...subjects].map((s) => `ns_${s}`)));
    expect(nats.received[0]!.acked && nats.received[1_000]!.acked && nats.received[2_000]!.acked).toBe(true);
    expect(acked.length).toBeLessThan(subjects.size + 3);
  });

  it('nats publisher - no stream storing the subjects is an error naming the subject and the prefix, not "sent"', async () => {
    const traffic = generateTraffic({ seed: 8, count: 200 });
    const nats = fakeNats(() => false);
    const publisher = await createNatsPublisher(
      { url: 'nats://n:4222', subjectPrefix: 'wrong_' },
      { connect: nats.connect },
    );
    const error = await publisher.publish(traffic.messages).catch((err: unknown) => err);
    await publisher.close();
    expect(error).toBeInstanceOf(PublishError);
    expect((error as Error).message).toBe(
      `no JetStream stream stores subject "wrong_${traffic.messages[0]!.subject}" (is Chronicle running with NATS, and is its CHRONICLE_NATS_NAMESPACE, lower-cased, "wrong_"? set --subject-prefix)`,
    );
  });

  it('nats publisher - a stream for the events but none for dead-letter entries fails on the first entry', async () => {
    const traffic = generateTraffic({ seed: 8, count: 2_000, unassignableRate: 0.05 });
    const nats = fakeNats((subject) => subject.startsWith('swarm.'));
    const publisher = await createNatsPublisher({ url: 'nats://n:4222' }, { connect: nats.connect });
    await expect(publisher.publish(traffic.messages)).rejects.toThrow(
      'no JetStream stream stores subject "dlq.task"',
    );
    await publisher.close();
  });

  it('nats publisher - a server it cannot connect to is a PublishError naming it', async () => {
    const refused = () =>
      Promise.reject(Object.assign(new Error('CONNECTION_REFUSED'), { code: 'CONNECTION_REFUSED' }));
    await expect(createNatsPublisher({ url: 'nats://n:4222' }, { connect: refused })).rejects.toThrow(
      'could not connect to NATS at nats://n:4222: CONNECTION_REFUSED',
    );
  });
});
