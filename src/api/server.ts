import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';
import type { Component } from '../pipeline/contracts.js';
import { untilAborted } from '../pipeline/timing.js';

export interface HttpServerOptions {
  /** Names the component (`api`, `otlp-port`). */
  name: string;
  host: string;
  /** 0: any free port. */
  port: number;
}

/** An HTTP listener as a Component: start() listens (and fails when it cannot); shutdown() closes. */
export interface HttpServer extends Component {
  /** `http://host:port` once listening; undefined before. */
  url(): string | undefined;
}

/*
 * States: created → listening (start) → closed (shutdown: idle keep-alive connections closed at once,
 * requests in flight answered until the deadline, then every connection closed).
 */
export function createHttpServer(options: HttpServerOptions, app: RequestListener): HttpServer {
  const server = http.createServer(app);
  let listening = false;
  let closed: Promise<void> | undefined;
  return {
    name: options.name,
    url() {
      const address = server.address() as AddressInfo | null;
      if (!address) return undefined;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
    },
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      listening = true;
    },
    shutdown(deadline) {
      closed ??= (async () => {
        if (!listening) return;
        server.closeIdleConnections();
        await untilAborted(deadline, new Promise<void>((resolve) => server.close(() => resolve())));
        server.closeAllConnections();
      })();
      return closed;
    },
  };
}
