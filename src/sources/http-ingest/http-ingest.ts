import { randomUUID } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { Batcher } from '../../batch/batcher.js';
import {
  type InputContext,
  makeReject,
  mayNeedCleaning,
  normalizeEvent,
  parseJson,
} from '../../events/normalize.js';
import type { Delivery } from '../../pipeline/contracts.js';
import type { RecordInput, WriteRecord } from '../../pipeline/records.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';

export interface HttpIngestOptions {
  /** Largest request body accepted (413 beyond). */
  maxBodyBytes: number;
  /** Seconds a client is told to wait (Retry-After) when the buffer is full or writes are failing. */
  retryAfterSeconds: number;
}

export interface HttpIngestDeps {
  batcher: Batcher;
  logger: Logger;
  metrics: Metrics;
}

export interface HttpIngest {
  router: Router;
  /** Refuse new requests (503); requests already accepted still get their answer. */
  stopIntake(): void;
}

/** One settled item of a request. */
type ItemOutcome =
  | { status: 'stored' | 'duplicate' }
  | { status: 'rejected'; reason: string; detail: string }
  | { status: 'returned' };

interface Item {
  raw: string;
  parsed: { ok: true; value: unknown } | { ok: false; reason: string; detail: string };
}

function rawOf(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return '(not serializable: nested too deeply)';
  }
}

const NDJSON_TYPES = [
  'application/x-ndjson',
  'application/ndjson',
  'application/jsonl',
  'application/x-jsonlines',
];

/** normalizeEvent, with a payload that breaks normalization itself (e.g. nested too deeply) as a reject. */
function normalizeSafely(value: unknown, ctx: InputContext): ReturnType<typeof normalizeEvent> {
  try {
    return normalizeEvent(value, ctx);
  } catch (err) {
    return {
      ok: false,
      reason: 'invalid_event',
      detail: `payload cannot be normalized: ${(err as Error).message}`,
    };
  }
}

/** Splits a body into items: one JSON object, a JSON array, or NDJSON (one JSON value per line). */
function splitBody(body: string, contentType: string): Item[] | { error: string } {
  const ndjson = NDJSON_TYPES.some((t) => contentType.includes(t));
  if (!ndjson) {
    const whole = parseJson(body);
    if (whole.ok) {
      const values: unknown[] = Array.isArray(whole.value) ? whole.value : [whole.value];
      return values.map((value) => ({ raw: rawOf(value), parsed: { ok: true, value } }));
    }
    if (!body.includes('\n')) return { error: whole.detail };
  }
  return body
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => ({ raw: line, parsed: parseJson(line) }));
}

/**
 * POST /api/v1/events: one event, a JSON array, or NDJSON. The answer comes after the commit:
 * 200 with counts of accepted (newly stored) and duplicate events and each rejected item's index and
 * reason; 429 with Retry-After when the buffer is full; 503 while writes are failing or at shutdown.
 */
export function createHttpIngest(options: HttpIngestOptions, deps: HttpIngestDeps): HttpIngest {
  const { batcher, logger, metrics } = deps;
  let accepting = true;
  const router = express.Router();

  function unavailable(res: Response, status: 429 | 503, error: string, message: string): void {
    res.setHeader('Retry-After', String(options.retryAfterSeconds));
    res.status(status).json({ error, message });
  }

  async function ingest(req: Request, res: Response): Promise<void> {
    if (!accepting) return unavailable(res, 503, 'shutting_down', 'Chronicle is shutting down');
    const state = batcher.state();
    if (state.failing) {
      return unavailable(res, 503, 'store_unavailable', 'writes to Postgres are failing; retry later');
    }
    const body = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
    if (body.trim() === '') {
      res.status(400).json({ error: 'bad_request', message: 'request body is empty' });
      return;
    }
    const receivedAt = Date.now();
    const split = splitBody(body, req.headers['content-type'] ?? '');
    const input: RecordInput = { origin: 'http', subject: null, key: null };
    const items: Item[] =
      'error' in split
        ? [{ raw: body, parsed: { ok: false, reason: 'invalid_json', detail: split.error } }]
        : split;
    if (items.length > batcher.maxBufferEvents) {
      res.status(413).json({
        error: 'too_many_events',
        message: `a request may carry at most ${batcher.maxBufferEvents} events; got ${items.length}`,
      });
      return;
    }
    metrics.received.inc({ origin: 'http', stream: 'none' }, items.length);

    const ctx: InputContext = {
      origin: 'http',
      defaultTimeMillis: receivedAt,
      cleanText: !mayNeedCleaning(body),
    };
    const outcomes: Promise<ItemOutcome>[] = [];
    const deliveries: Delivery<WriteRecord>[] = items.map((item) => {
      let record: WriteRecord;
      const normalized = item.parsed.ok ? normalizeSafely(item.parsed.value, ctx) : item.parsed;
      if (normalized.ok) {
        record = { kind: 'event', input, event: normalized.value };
      } else {
        record = {
          kind: 'reject',
          input,
          // A unique key per record, so a retried write after a partial commit records it once.
          reject: makeReject(
            item.raw,
            { origin: 'http' },
            normalized.reason,
            normalized.detail,
            `http:${randomUUID()}`,
          ),
        };
      }
      let settle!: (o: ItemOutcome) => void;
      outcomes.push(new Promise<ItemOutcome>((resolve) => (settle = resolve)));
      return {
        value: record,
        sizeBytes: item.raw.length * 2 + 512,
        ack: (status) => settle({ status }),
        retry: () => settle({ status: 'returned' }),
        reject: (reason, detail) => settle({ status: 'rejected', reason, detail }),
      };
    });

    if (!batcher.offer(deliveries, { urgent: true })) {
      metrics.backpressure.inc({ source: 'http' });
      return unavailable(res, 429, 'buffer_full', 'the ingest buffer is full; retry later');
    }
    const settled = await Promise.all(outcomes);

    if ('error' in split) {
      res.status(400).json({ error: 'invalid_json', message: `body is not JSON: ${split.error}` });
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
    router,
    stopIntake() {
      accepting = false;
    },
  };
}
