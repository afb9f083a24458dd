/**
 * A recording OTLP/HTTP trace backend for fault tests: decodes every export it accepts (JSON or
 * protobuf) and keeps the spans; can refuse a share of requests with 503, as the OpenTelemetry
 * Collector's testbed does with its "random failure" mock backend.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeRequest } from '../../src/events/otlp/decode.js';
import type { SpanRecord } from '../../src/events/span-record.js';

export interface OtlpBackend {
  server: Server;
  /** Share of requests answered 503 (0: none, 1: all), decided by a seeded sequence. */
  failRatio: number;
  received: SpanRecord[];
  requests: number;
  refused: number;
  /** `http://127.0.0.1:<port>/v1/traces`. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startOtlpBackend(seed = 1): Promise<OtlpBackend> {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 4_294_967_296;
  };
  const backend: OtlpBackend = {
    failRatio: 0,
    received: [],
    requests: 0,
    refused: 0,
    url: '',
    server: createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        backend.requests++;
        if (backend.failRatio > 0 && next() < backend.failRatio) {
          backend.refused++;
          res.writeHead(503, { 'retry-after': '1' }).end();
          return;
        }
        const type = req.headers['content-type'] ?? '';
        const protobuf = type.includes('protobuf');
        backend.received.push(...decodeRequest(Buffer.concat(chunks), protobuf ? 'protobuf' : 'json').spans);
        res.writeHead(200, { 'content-type': type }).end(protobuf ? Buffer.alloc(0) : '{}');
      });
    }),
    async close() {
      backend.server.closeAllConnections();
      await new Promise<void>((resolve) => backend.server.close(() => resolve()));
    },
  };
  await new Promise<void>((resolve) => backend.server.listen(0, '127.0.0.1', resolve));
  (backend as { url: string }).url =
    `http://127.0.0.1:${(backend.server.address() as AddressInfo).port}/v1/traces`;
  return backend;
}
