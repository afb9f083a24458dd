import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { makeReject } from '../../events/normalize.js';
import type { PayloadEncoding } from '../../events/schema.js';
import type { Consumer, Source } from '../../pipeline/contracts.js';
import { createRequestIntake } from '../../pipeline/intake.js';
import type { RecordInput, WriteRecord } from '../../pipeline/records.js';
import type { Offer, Settlement } from '../../pipeline/settle.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import {
  type DecodedRequest,
  type OtlpFormat,
  type PartialSuccess,
  type RpcStatus,
  OtlpDecodeError,
  decodeRequest,
  encodeExportResponse,
  encodeRpcStatus,
} from '../../events/otlp/decode.js';
import { otlpFormatOf, spanInputs, undecodableInput } from '../../events/otlp/request-inputs.js';

/** Tunables of the receiver. */
export interface OtlpReceiverOptions {
  /** Largest request body accepted, counted after decompression (413 beyond). */
  maxBodyBytes: number;
  /** Seconds a client is told to wait (Retry-After) when the buffer is full or writes are failing. */
  retryAfterSeconds: number;
}

/** What the receiver works with. */
export interface OtlpReceiverDeps {
  /** Takes the request's records (the batcher) and settles each after its commit. */
  consumer: Consumer;
  logger: Logger;
  /** Counts received spans (inputs_received, origin otlp), refusals (backpressure, source otlp) and answers. */
  metrics: Metrics;
}

/** The receiver: its route. Its shutdown refuses new requests (503); accepted ones still get their answer. */
export interface OtlpReceiver extends Source {
  /** POST /v1/traces; mount it on the API app, on a dedicated OTLP port, or both. */
  readonly router: Router;
}

/** google.rpc.Code values of the error answers. */
const RPC_CODE = { invalidArgument: 3, resourceExhausted: 8, unavailable: 14 } as const;

/** The request's encoding from its Content-Type; undefined when unsupported. */
function formatOf(req: Request): OtlpFormat | undefined {
  return otlpFormatOf(req.headers['content-type'] ?? '');
}

/** `3 spans rejected: invalid_span_id ×2 (span id must be …); metadata_too_large ×1 (…)`: one reason each. */
function summarize(rejected: readonly { reason: string; detail: string }[]): string {
  const byReason = new Map<string, { count: number; detail: string }>();
  for (const r of rejected) {
    const entry = byReason.get(r.reason);
    if (entry) entry.count++;
    else byReason.set(r.reason, { count: 1, detail: r.detail });
  }
  const parts = [...byReason].map(([reason, { count, detail }]) => `${reason} ×${count} (${detail})`);
  return `${rejected.length} span${rejected.length === 1 ? '' : 's'} rejected: ${parts.join('; ')}`;
}

/**
 * POST /v1/traces, the OTLP/HTTP trace receiver: binary protobuf (application/x-protobuf) or OTLP/JSON
 * (application/json), plain or gzip-compressed. Every span becomes a canonical event (see
 * span-to-event.ts) written with the span itself to forward; a span that breaks an OTLP or canonical
 * rule is recorded in chronicle_rejects and counted in partial_success, and the others are kept.
 * The answer, in the request's encoding, comes after the commit: 200 with an
 * ExportTraceServiceResponse; 400 with a google.rpc.Status for a body that does not decode; 413 past
 * the body limit (after decompression) or the buffer size; 415 for another content type; 429 with
 * Retry-After when the buffer is full; 503 with Retry-After while writes fail or at shutdown.
 */
export function createOtlpReceiver(options: OtlpReceiverOptions, deps: OtlpReceiverDeps): OtlpReceiver {
  const { logger, metrics } = deps;
  const input: RecordInput = { origin: 'otlp', subject: null, key: null };
  const intake = createRequestIntake({
    consumer: deps.consumer,
    onBufferFull: () => metrics.backpressure.inc({ source: 'otlp' }),
  });
  const router = express.Router();

  function send(res: Response, status: number, body: Buffer, format: OtlpFormat): void {
    res.status(status);
    res.type(format === 'json' ? 'application/json' : 'application/x-protobuf');
    res.send(body);
  }

  function fail(res: Response, status: number, rpc: RpcStatus, format: OtlpFormat = 'json'): void {
    if (status === 429 || status === 503) res.setHeader('Retry-After', String(options.retryAfterSeconds));
    send(res, status, encodeRpcStatus(rpc, format), format);
  }

  /** A reject to offer, with its buffer size. */
  function rejectOffer(raw: string, reason: string, detail: string, encoding?: PayloadEncoding): Offer {
    // A unique key per record, so a retried write after a partial commit records it once.
    const reject = makeReject(raw, input, reason, detail, `otlp:${randomUUID()}`, { encoding });
    return { record: { kind: 'reject', input, reject }, sizeBytes: raw.length * 2 + 512 };
  }

  function tooMany(res: Response, total: number, format: OtlpFormat): void {
    const message = `a request may carry at most ${intake.maxRecords} spans; got ${total}`;
    fail(res, 413, { code: RPC_CODE.resourceExhausted, message }, format);
  }

  function bufferFull(res: Response, format: OtlpFormat): void {
    fail(
      res,
      429,
      { code: RPC_CODE.resourceExhausted, message: 'the ingest buffer is full; retry later' },
      format,
    );
  }

  /** Refuses before the body is read: unsupported content type, shutdown, failing writes. */
  function admit(req: Request, res: Response, next: NextFunction): void {
    const format = formatOf(req);
    if (format === undefined) {
      const message = `Content-Type must be application/x-protobuf or application/json, got ${JSON.stringify(req.headers['content-type'] ?? '')}`;
      return fail(res, 415, { code: RPC_CODE.invalidArgument, message });
    }
    res.locals.otlpFormat = format;
    const refusal = intake.refusal();
    if (refusal === 'shutting_down') {
      return fail(res, 503, { code: RPC_CODE.unavailable, message: 'Chronicle is shutting down' }, format);
    }
    if (refusal === 'store_unavailable') {
      const message = 'writes to Postgres are failing; retry later';
      return fail(res, 503, { code: RPC_CODE.unavailable, message }, format);
    }
    next();
  }

  async function receive(req: Request, res: Response): Promise<void> {
    const format = res.locals.otlpFormat as OtlpFormat;
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (body.length === 0) return send(res, 200, encodeExportResponse(undefined, format), format);

    let decoded: DecodedRequest;
    try {
      decoded = decodeRequest(body, format);
    } catch (err) {
      if (!(err instanceof OtlpDecodeError)) throw err;
      metrics.received.inc({ origin: 'otlp', stream: 'none' });
      // Recorded like any bad input; a protobuf body as base64, since the reject payload is text.
      const bad = undecodableInput(body, format, err);
      const submitted = intake.submit([rejectOffer(bad.raw, bad.reason, bad.detail, bad.encoding)]);
      if (submitted.refused !== undefined) return bufferFull(res, format);
      await submitted.settled;
      return fail(res, 400, { code: RPC_CODE.invalidArgument, message: err.message }, format);
    }

    const total = decoded.spans.length + decoded.rejected.length;
    if (total === 0) return send(res, 200, encodeExportResponse(undefined, format), format);
    if (total > intake.maxRecords) return tooMany(res, total, format);

    const records = spanInputs(decoded).map((span): Offer => {
      if (!span.ok) return rejectOffer(span.raw, span.reason, span.detail);
      const record: WriteRecord = { kind: 'event', input, event: span.event, forward: span.forward };
      // The event's metadata and the forwarded span each hold about the span's JSON.
      return { record, sizeBytes: span.raw.length * 4 + 512 };
    });

    const submitted = intake.submit(records);
    if (submitted.refused === 'too_many') return tooMany(res, total, format);
    metrics.received.inc({ origin: 'otlp', stream: 'none' }, total);
    if (submitted.refused === 'buffer_full') return bufferFull(res, format);
    const outcomes: Settlement[] = await submitted.settled;
    if (outcomes.some((o) => o.status === 'returned')) {
      // Shutdown reached its deadline before these were written; the span ids make a retry safe.
      const message = 'not every span was written before shutdown; retry';
      return fail(res, 503, { code: RPC_CODE.unavailable, message }, format);
    }
    const rejected = outcomes.filter((o) => o.status === 'rejected');
    let partialSuccess: PartialSuccess | undefined;
    if (rejected.length > 0) {
      logger.debug({ rejected: rejected.length, spans: total }, 'OTLP receiver rejected spans');
      partialSuccess = { rejectedSpans: rejected.length, errorMessage: summarize(rejected) };
    }
    send(res, 200, encodeExportResponse(partialSuccess, format), format);
  }

  /** Errors of the body parser (and of decoding), answered as OTLP answers are. */
  function answerError(err: unknown, req: Request, res: Response, next: NextFunction): void {
    const e = err as { type?: unknown; status?: unknown; message?: unknown; limit?: unknown };
    const format = (res.locals.otlpFormat as OtlpFormat | undefined) ?? 'json';
    if (res.headersSent) return next(err);
    if (e.type === 'entity.too.large') {
      const message = `request body is over the limit of ${options.maxBodyBytes} bytes (after decompression)`;
      return fail(res, 413, { code: RPC_CODE.resourceExhausted, message }, format);
    }
    if (e.type === 'encoding.unsupported') {
      const message = `Content-Encoding ${JSON.stringify(req.headers['content-encoding'] ?? '')} is not supported; use gzip or none`;
      return fail(res, 415, { code: RPC_CODE.invalidArgument, message }, format);
    }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      // A body that cannot be read or inflated (corrupt gzip, aborted upload).
      const message = `request body cannot be read: ${typeof e.message === 'string' ? e.message : 'bad request'}`;
      return fail(res, 400, { code: RPC_CODE.invalidArgument, message }, format);
    }
    next(err);
  }

  /** Counts every answer to an export request, whatever produced it (this receiver or the app's error handler). */
  function countAnswer(_req: Request, res: Response, next: NextFunction): void {
    res.once('finish', () => metrics.otlpRequests.inc({ status: String(res.statusCode) }));
    next();
  }

  router.post(
    '/v1/traces',
    countAnswer,
    admit,
    express.raw({ type: () => true, limit: options.maxBodyBytes }),
    (req, res, next) => {
      receive(req, res).catch(next);
    },
  );
  router.use('/v1/traces', answerError);

  return {
    name: 'otlp-http',
    origin: 'otlp',
    router,
    start: () => Promise.resolve(),
    shutdown() {
      intake.stop();
      return Promise.resolve();
    },
  };
}
