/**
 * A local OTLP/HTTP trace endpoint for tests: accepts every export (JSON) while `status` is 200 and counts
 * its spans; answers `status` otherwise (a backend outage).
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeRequest } from '../../src/events/otlp/decode.js';

export interface OtlpSink {
  server: Server;
  /** What the endpoint answers; 200 accepts. */
  status: number;
  /** Spans accepted. */
  spans: number;
  /** The endpoint, `http://127.0.0.1:<port>/v1/traces`. */
  url: string;
}

export async function startOtlpSink(): Promise<OtlpSink> {
  const sink: OtlpSink = {
    status: 200,
    spans: 0,
    url: '',
    server: createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (sink.status !== 200) {
          res.writeHead(sink.status).end();
          return;
        }
        sink.spans += decodeRequest(Buffer.concat(chunks), 'json').spans.length;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    }),
  };
  await new Promise<void>((resolve) => sink.server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(sink.server.address() as AddressInfo).port}/v1/traces`;
  return sink;
}
