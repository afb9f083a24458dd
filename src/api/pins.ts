import express from 'express';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { MAX_BULK_PINS, type PinFilter, type PinStore } from '../sinks/postgres/archive.js';
import { BadParameterError, parseParams, pathId, querySchemas } from './params.js';
import { notFound } from './routes.js';

/** Options of the pin routes. */
export interface PinRouteOptions {
  /** Who makes a request (the API token's name), recorded as pinned_by; none when omitted. */
  actorOf?: (req: Request, res: Response) => string | null | undefined;
}

const traceParams = z.object({ id: pathId });

const MAX_NOTE_CHARS = 1024;
const note = z.string().max(MAX_NOTE_CHARS, `must be at most ${MAX_NOTE_CHARS} characters`);

const bulkLimit = z
  .string()
  .regex(/^\d+$/, 'must be an integer')
  .transform(Number)
  .refine((n) => n >= 1 && n <= MAX_BULK_PINS, `must be between 1 and ${MAX_BULK_PINS}`);

// The traces list's parameters of the same names, with the same meaning (created_at window, literal prefix).
const { trace_prefix, since, until } = querySchemas.traceCounts.shape;
const pinOne = z.object({ note: note.optional() });
const bulk = z.object({ trace_prefix, since, until, limit: bulkLimit.optional(), note: note.optional() });
const bulkUnpin = bulk.omit({ note: true });

/**
 * A JSON body (absent: `{}`) as the flat string values parseParams checks: numbers and booleans as
 * their text, so `"limit": 500` and `"limit": "500"` are the same; a null value as absent.
 */
function bodyParams(req: Request): Record<string, unknown> {
  const body: unknown = req.body;
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new BadParameterError('body', 'must be a JSON object');
  }
  return Object.fromEntries(
    Object.entries(body)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, typeof v === 'number' || typeof v === 'boolean' ? String(v) : v]),
  );
}

function bulkFilter(q: z.output<typeof bulkUnpin>): PinFilter {
  if (q.trace_prefix === undefined && q.since === undefined && q.until === undefined) {
    throw new BadParameterError('trace_prefix', 'a bulk pin needs trace_prefix, since or until');
  }
  return { trace_prefix: q.trace_prefix, since: q.since, until: q.until, limit: q.limit ?? MAX_BULK_PINS };
}

/**
 * The pin routes (README, "Pinning"): pin and unpin one trace, pin and unpin many by filter. Every one
 * changes data, so the API's auth asks the admin scope for them.
 */
export function createPinRoutes(pins: PinStore, options: PinRouteOptions = {}): express.Router {
  const router = express.Router();
  const json = express.json({ limit: '16kb' });
  const actor = (req: Request, res: Response) => options.actorOf?.(req, res) ?? null;

  router.post('/api/v1/traces/:id/pin', json, async (req, res) => {
    parseParams(querySchemas.none, req.query);
    const { id } = parseParams(traceParams, req.params);
    const body = parseParams(pinOne, bodyParams(req));
    const pin = await pins.pin(id, { pinnedBy: actor(req, res), note: body.note });
    if (pin === null) return notFound(res, `no trace ${JSON.stringify(id)}`);
    res.status(pin.created ? 201 : 200).json({ pinned: true, ...pin });
  });

  router.delete('/api/v1/traces/:id/pin', async (req, res) => {
    parseParams(querySchemas.none, req.query);
    const { id } = parseParams(traceParams, req.params);
    if (!(await pins.unpin(id))) return notFound(res, `trace ${JSON.stringify(id)} is not pinned`);
    res.json({ trace_id: id, pinned: false });
  });

  router.post('/api/v1/pins', json, async (req, res) => {
    parseParams(querySchemas.none, req.query);
    const q = parseParams(bulk, bodyParams(req));
    res.json(await pins.pinMatching(bulkFilter(q), { pinnedBy: actor(req, res), note: q.note }));
  });

  router.delete('/api/v1/pins', json, async (req, res) => {
    parseParams(querySchemas.none, req.query);
    res.json(await pins.unpinMatching(bulkFilter(parseParams(bulkUnpin, bodyParams(req)))));
  });

  return router;
}
