import { type NatsConnection, connect } from 'nats';
import type { Component } from '../../pipeline/contracts.js';
import { sleep, untilAborted } from '../../pipeline/timing.js';
import type { Logger } from '../../telemetry/logger.js';

export type NatsState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/**
 * One NATS connection shared by the NATS sources and the write_failure alert. As a Component: start()
 * begins connecting in the background; shutdown() drains (sending the acks still queued) until the
 * deadline, then closes.
 */
export interface NatsLink extends Component {
  state(): NatsState;
  /** The connection once it has been established (it then reconnects on its own); undefined before. */
  connection(): NatsConnection | undefined;
  /** Resolves with the connection once the first connect succeeds, or undefined if closed first. */
  ready(): Promise<NatsConnection | undefined>;
  /** Publishes on core NATS when connected; returns false (and drops nothing that matters) otherwise. */
  publish(subject: string, payload: unknown): boolean;
  /** Drains subscriptions and pending publishes (acks), then closes. Idempotent. */
  drain(): Promise<void>;
  /** Closes at once, dropping whatever is still queued. Idempotent. */
  close(): Promise<void>;
}

export interface NatsLinkOptions {
  url: string;
  name: string;
  /** Delay between attempts while NATS is unreachable. */
  reconnectWaitMillis: number;
}

/*
 * States: idle → connecting (first connect, retried forever in the background, from start()) → connected ⇄ reconnecting
 * (the client reconnects on its own) → closed (after drain()). Chronicle keeps serving meanwhile.
 */
export function createNatsLink(options: NatsLinkOptions, deps: { logger: Logger }): NatsLink {
  const { logger } = deps;
  let state: NatsState = 'connecting';
  let nc: NatsConnection | undefined;
  let closing = false;
  let started = false;
  const stop = new AbortController();
  let resolveReady!: (nc: NatsConnection | undefined) => void;
  const readyPromise = new Promise<NatsConnection | undefined>((resolve) => (resolveReady = resolve));

  async function watch(conn: NatsConnection): Promise<void> {
    for await (const s of conn.status()) {
      const type = String(s.type);
      if (type === 'disconnect' || type === 'reconnecting') {
        if (state === 'connected') logger.warn({ server: s.data }, 'NATS disconnected; reconnecting');
        state = 'reconnecting';
      } else if (type === 'reconnect') {
        state = 'connected';
        logger.info({ server: s.data }, 'NATS reconnected');
      }
    }
  }

  async function connectLoop(): Promise<void> {
    let warned = false;
    while (!closing) {
      try {
        const conn = await connect({
          servers: options.url,
          name: options.name,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: options.reconnectWaitMillis,
          pingInterval: 10_000,
        });
        if (closing) {
          await conn.close();
          break;
        }
        nc = conn;
        state = 'connected';
        logger.info({ url: options.url }, 'NATS connected');
        void watch(conn).catch(() => undefined);
        void conn.closed().then((err) => {
          state = 'closed';
          if (err && !closing) logger.error({ err }, 'NATS connection closed');
        });
        resolveReady(conn);
        return;
      } catch (err) {
        if (!warned) logger.warn({ err, url: options.url }, 'NATS unreachable; retrying in the background');
        warned = true;
        await sleep(options.reconnectWaitMillis, stop.signal);
      }
    }
    resolveReady(undefined);
  }

  async function drain(): Promise<void> {
    if (closing) return;
    closing = true;
    stop.abort();
    resolveReady(undefined);
    if (nc && !nc.isClosed()) {
      await nc.drain().catch(async () => nc?.close());
    }
    state = 'closed';
  }

  async function close(): Promise<void> {
    closing = true;
    stop.abort();
    resolveReady(undefined);
    if (nc && !nc.isClosed()) await nc.close().catch(() => undefined);
    state = 'closed';
  }

  return {
    name: 'nats',
    start() {
      if (!started && !closing) {
        started = true;
        void connectLoop().catch((err: unknown) => logger.error({ err }, 'NATS connect loop failed'));
      }
      return Promise.resolve();
    },
    async shutdown(deadline) {
      // Draining sends the acks still queued; while NATS is down it would wait for a reconnect.
      await untilAborted(deadline, drain());
      await close();
    },
    state: () => state,
    connection: () => nc,
    ready: () => readyPromise,
    publish(subject, payload) {
      if (!nc || state !== 'connected') return false;
      try {
        nc.publish(subject, JSON.stringify(payload));
        return true;
      } catch {
        return false;
      }
    },
    close,
    drain,
  };
}
