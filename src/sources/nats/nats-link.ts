import { type NatsConnection, connect } from 'nats';
import type { Logger } from '../../telemetry/logger.js';

export type NatsState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** One NATS connection shared by the JetStream source and the write_failure alert. */
export interface NatsLink {
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
 * States: connecting (first connect, retried forever in the background) → connected ⇄ reconnecting
 * (the client reconnects on its own) → closed (after drain()). Chronicle keeps serving meanwhile.
 */
export function createNatsLink(options: NatsLinkOptions, deps: { logger: Logger }): NatsLink {
  const { logger } = deps;
  let state: NatsState = 'connecting';
  let nc: NatsConnection | undefined;
  let closing = false;
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
        await new Promise((r) => setTimeout(r, options.reconnectWaitMillis));
      }
    }
    resolveReady(undefined);
  }

  void connectLoop().catch((err: unknown) => logger.error({ err }, 'NATS connect loop failed'));

  return {
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
    async close() {
      closing = true;
      resolveReady(undefined);
      if (nc && !nc.isClosed()) await nc.close().catch(() => undefined);
      state = 'closed';
    },
    async drain() {
      if (closing) return;
      closing = true;
      resolveReady(undefined);
      if (nc && !nc.isClosed()) {
        await nc.drain().catch(async () => nc?.close());
      }
      state = 'closed';
    },
  };
}
