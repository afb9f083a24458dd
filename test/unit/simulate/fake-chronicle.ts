/**
 * Fakes of what the simulator talks to, for unit tests: Chronicle's HTTP ingest and query API (serving
 * what a given set of messages leaves, as computeExpected says), and a NATS connection whose JetStream
 * stores only the subjects it is told to.
 */
import type { NatsConnection } from 'nats';
import {
  type AgentDayExpectation,
  type ExpectedState,
  computeExpected,
} from '../../../src/simulate/expected.js';
import { storedEventOf } from '../../../src/simulate/stored-event.js';
import type { SimMessage } from '../../../src/simulate/traffic.js';

/** The JSON body of a request the publisher sent (always a string). */
export function jsonBody<T>(init: RequestInit | undefined): T {
  return JSON.parse(init?.body as string) as T;
}

/** The URL of a request, whatever form fetch was given it in. */
export function urlOf(input: string | URL | Request): URL {
  return new URL(input instanceof Request ? input.url : input);
}

/** A network failure as fetch reports it (`TypeError: fetch failed`, the cause carrying the code). */
export function networkError(code = 'ECONNREFUSED'): TypeError {
  return new TypeError('fetch failed', {
    cause: Object.assign(new Error(`connect ${code} 127.0.0.1:9`), { code }),
  });
}

/** A fetch that records every request and answers like Chronicle would after receiving `messages`. */
export function fakeChronicle(messages: readonly SimMessage[], prefix: string) {
  const recorded: ExpectedState = computeExpected(messages, { prefix, target: 'http' });
  const events = [
    ...new Map(
      messages.flatMap((m) => {
        const e = storedEventOf(m);
        return e === null ? [] : [[e.event_id, e] as const];
      }),
    ).values(),
  ];
  const posts: Record<string, unknown>[][] = [];
  const gets: string[] = [];
  const page = (items: unknown[]) => Response.json({ items, next_cursor: null });
  const fetchFn = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = urlOf(input);
    if (init?.method === 'POST') {
      const batch = jsonBody<Record<string, unknown>[]>(init);
      posts.push(batch);
      return Promise.resolve(Response.json({ accepted: batch.length, duplicates: 0, rejected: [] }));
    }
    gets.push(url.pathname);
    switch (url.pathname) {
      case '/api/v1/traces':
        return Promise.resolve(
          page(
            [...recorded.traces.values()].map((t) => {
              const times = events
                .filter((e) => e.trace_id === t.trace_id)
                .map((e) => e.timestamp)
                .sort();
              return { ...t, first_event_at: times[0], last_event_at: times.at(-1) };
            }),
          ),
        );
      case '/api/v1/events': {
        const traceId = url.searchParams.get('trace_id');
        return Promise.resolve(page(events.filter((e) => traceId === null || e.trace_id === traceId)));
      }
      case '/api/v1/metrics/summary': {
        const rows =
          recorded.agentDays.get(url.searchParams.get('date') ?? '') ??
          new Map<string, AgentDayExpectation>();
        return Promise.resolve(
          Response.json({ agents: [...rows].map(([agent_id, r]) => ({ agent_id, ...r })) }),
        );
      }
      case '/api/v1/dlq':
        return Promise.resolve(page([]));
      default:
        return Promise.resolve(Response.json({ error: 'not found' }, { status: 404 }));
    }
  };
  return { fetch: fetchFn satisfies typeof fetch, posts, gets };
}

/** One message as the fake NATS server got it. */
export interface NatsReceived {
  subject: string;
  id: string | undefined;
  acked: boolean;
}

/** A NATS connection whose JetStream stores the subjects `stores` accepts (no responders otherwise). */
export function fakeNats(stores: (subject: string) => boolean = () => true) {
  const received: NatsReceived[] = [];
  const nc = {
    publish(subject: string, _data: Uint8Array, opts?: { headers?: { get(k: string): string } }) {
      // A core publish no stream captures is dropped by the server without a word.
      if (stores(subject)) received.push({ subject, id: opts?.headers?.get('Nats-Msg-Id'), acked: false });
    },
    jetstream() {
      return {
        publish(subject: string, _data: Uint8Array, opts?: { msgID?: string }) {
          if (!stores(subject)) return Promise.reject(Object.assign(new Error('503'), { code: '503' }));
          received.push({ subject, id: opts?.msgID, acked: true });
          return Promise.resolve({ stream: 'S', seq: received.length, duplicate: false });
        },
      };
    },
    flush: () => Promise.resolve(),
    drain: () => Promise.resolve(),
  } as unknown as NatsConnection;
  return { nc, received, connect: () => Promise.resolve(nc) };
}
