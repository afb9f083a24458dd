import { randomUUID } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import { type InputContext, mayNeedCleaning } from '../../events/normalize.js';
import type { Consumer, Source } from '../../pipeline/contracts.js';
import { createRequestIntake } from '../../pipeline/intake.js';
import type { RecordInput } from '../../pipeline/records.js';
import type { Offer } from '../../pipeline/settle.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import { type BodyItem, itemRecord, splitBody } from './body-items.js';

export interface HttpIngestOptions {
  /** Largest request body accepted (413 beyond). */
  maxBodyBytes: number;
  /** Seconds a client is told to wait (Retry-After) when the buffer is full or writes are failing. */
  retryAfterSeconds: number;
}

export interface HttpIngestDeps {
  /** Where a request's events are offered (the batcher); each is settled after its commit. */
  consumer: Consumer;
  logger: Logger;
  metrics: Metrics;
}

/** The source: its route, to mount on the API app. Its shutdown refuses new requests (503). */
export interface HttpIngest extends Source {
  readonly router: Router;
}

/**
 * POST /api/v1/events: one event, a JSON array, or NDJSON. The answer comes after the commit:
 * 200 with counts of accepted (newly stored) and duplicate events and each rejected item's index and
 * reason; 429 with Retry-After when the buffer is full; 503 while writes are failing or at shutdown.
 */
export function createHttpIngest(options: HttpIngestOptions, deps: HttpIngestDeps): HttpIngest {
  const { logger, metrics } = deps;
  const intake = createRequestIntake({
    consumer: deps.consumer,
    onBufferFull: () => metrics.backpressure.inc({ source: 'http' }),
  });
  const router = express.Router();

  function unavailable(res: Response, status: 429 | 503, error: string, message: string): void {
    res.setHeader('Retry-After', String(options.retryAfterSeconds));
    res.status(status).json({ error, message });
  }

  function tooMany(res: Response, count: number): void {
    res.status(413).json({
      error: 'too_many_events',
      message: `a request may carry at most ${intake.maxRecords} events; got ${count}`,
    });
  }

  async function ingest(req: Request, res: Response): Promise<void> {
    const refusal = intake.refusal();
    if (refusal === 'shutting_down') {
      return unavailable(res, 503, 'shutting_down', 'Chronicle is shutting down');
    }
    if (refusal === 'store_unavailable') {
      return unavailable(res, 503, 'store_unavailable', 'writes to Postgres are failing; retry later');
    }
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (body.toString('utf8').trim() === '') {
      res.status(400).json({ error: 'bad_request', message: 'request body is empty' });
      return;
    }
    const receivedAt = Date.now();
    const split = splitBody(body, req.headers['content-type'] ?? '');
    const input: RecordInput = { origin: 'http', subject: null, key: null };
    const items: BodyItem[] =
      'refused' in split
        ? [
            {
              raw: split.refused.raw,
              encoding: split.refused.encoding,
              parsed: { ok: false, reason: split.refused.reason, detail: split.refused.detail },
            },
          ]
        : split;
    if (items.length > intake.maxRecords) return tooMany(res, items.length);
    const ctx: InputContext = {
      origin: 'http',
      defaultTimeMillis: receivedAt,
      cleanText: !items.some((item) => item.encoding === 'utf8' && mayNeedCleaning(item.raw)),
    };
    const offers = items.map((item): Offer => ({
      // A unique key per record, so a retried write after a partial commit records it once.
      record: itemRecord(item, ctx, input, `http:${randomUUID()}`),
      sizeBytes: item.raw.length * 2 + 512,
    }));

    const submitted = intake.submit(offers);
    if (submitted.refused === 'too_many') return tooMany(res, items.length);
    metrics.received.inc({ origin: 'http', stream: 'none' }, items.length);
    if (submitted.refused === 'buffer_full') {
      return unavailable(res, 429, 'buffer_full', 'the ingest buffer is full; retry later');
    }
    const settled = await submitted.settled;

    if ('refused' in split) {
      const { reason, detail } = split.refused;
      const message = reason === 'invalid_json' ? `body is not JSON: ${detail}` : 'body is not valid UTF-8';
      res.status(400).json({ error: reason, message });
      return;
    }
    if (settled.some((o) => o.status === 'returned')) {
      // Shutdown reached its deadline before these were written; event_ids make a retry safe.
      return unavailable(res, 503, 'shutting_down', 'not every event was written before shutdown; retry');
    }
    let accepted = 0;
    let duplicates = 0;
    const rejected: { index: number; reason: string; detail: string }[] = [];
    settled.forEach((o, index) => {
      if (o.status === 'stored') accepted++;
      else if (o.status === 'duplicate') duplicates++;
      else if (o.status === 'rejected') rejected.push({ index, reason: o.reason, detail: o.detail });
    });
    if (rejected.length > 0) logger.debug({ rejected: rejected.length }, 'HTTP ingest rejected items');
    res.status(200).json({ accepted, duplicates, rejected });
  }

  router.post(
    '/api/v1/events',
    express.raw({ type: () => true, limit: options.maxBodyBytes }),
    (req, res, next) => {
      ingest(req, res).catch(next);
    },
  );

  return {
    name: 'http-ingest',
    origin: 'http',
    router,
    start: () => Promise.resolve(),
    shutdown() {
      intake.stop();
      return Promise.resolve();
    },
  };
}
