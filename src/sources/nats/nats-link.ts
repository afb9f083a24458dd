import { type NatsConnection, connect } from 'nats';
import type { Component } from '../../pipeline/contracts.js';
import { sleep, untilAborted } from '../../pipeline/timing.js';
import type { Logger } from '../../telemetry/logger.js';
import { redactUrl } from '../../telemetry/redact.js';
import { type NatsAuth, type NatsTls, natsConnectOptions } from './nats-connect.js';

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
  /**
   * Why the last connect attempt was turned away (refused credentials, TLS), while not connected; never
   * holds a secret. Absent on links that do not tell.
   */
  problem?(): string | undefined;
}

export interface NatsLinkOptions {
  /** The server, without credentials (they are in `auth`); logged with any password masked. */
  url: string;
  /** Credentials and TLS (src/sources/nats/config.ts); absent: none. */
  auth?: NatsAuth | undefined;
  tls?: NatsTls | undefined;
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
  let problem: string | undefined;
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
    const server = redactUrl(options.url);
    while (!closing) {
      try {
        const conn = await connect({
          ...natsConnectOptions({
            url: options.url,
            ...(options.auth ? { auth: options.auth } : {}),
            ...(options.tls ? { tls: options.tls } : {}),
          }),
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
        problem = undefined;
        logger.info({ url: server }, 'NATS connected');
        void watch(conn).catch(() => undefined);
        void conn.closed().then((err) => {
          state = 'closed';
          if (err && !closing) logger.error({ err }, 'NATS connection closed');
        });
        resolveReady(conn);
        return;
      } catch (err) {
        // A refused login or TLS handshake is a configuration problem, not an outage: said as such.
        const refused = natsRefusal(err);
        problem = refused === undefined ? undefined : `refused: ${refused}`;
        if (!warned) {
          if (refused)
            logger.error(
              { err, url: server },
              `NATS refused the connection (${refused}); retrying in the background`,
            );
          else logger.warn({ err, url: server }, 'NATS unreachable; retrying in the background');
        }
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
    problem: () => (state === 'connected' ? undefined : problem),
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

/** What kind of refusal `err` is, when NATS (or its TLS) turned Chronicle away rather than being down. */
function natsRefusal(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message.toLowerCase() : '';
  if (code === 'AUTHORIZATION_VIOLATION' || message.includes('authorization'))
    return 'check the NATS credentials';
  if (code === 'AUTHENTICATION_EXPIRED' || message.includes('expired')) return 'the NATS credentials expired';
  if (
    /tls|certificate|self.signed|ssl/.test(message) ||
    (typeof code === 'string' && code.startsWith('ERR_TLS'))
  ) {
    return 'TLS: check NATS_CA, NATS_CERT and NATS_KEY';
  }
  return undefined;
}
