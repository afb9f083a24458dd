import express from 'express';
import type { Request, Response } from 'express';
import { z } from 'zod';
import type { QueryStore } from '../sinks/postgres/queries.js';
import { otelTraceId } from '../spans/ids.js';
import { type TraceLinkOptions, spanTree, traceLinks } from './trace-detail.js';
import { DEFAULT_LIMIT, dailyRange, parseParams, pathId, querySchemas, todayUtc } from './params.js';

/** Answers 404 with the JSON error shape every route uses. */
export function notFound(res: Response, message: string): void {
  res.status(404).json({ error: 'not_found', message });
}

const traceParams = z.object({ id: pathId });
const agentParams = z.object({ agent_id: pathId });

/** The read routes under /api/v1: validate parameters, ask the store, answer JSON. */
export function createQueryRoutes(store: QueryStore, links: TraceLinkOptions): express.Router {
  const router = express.Router();
  const query = <S extends z.ZodObject>(schema: S, req: Request) => parseParams(schema, req.query);

  router.get('/api/v1/events', async (req, res) => {
    const q = query(querySchemas.events, req);
    res.json(await store.listEvents({ ...q, limit: q.limit ?? DEFAULT_LIMIT }));
  });

  router.get('/api/v1/traces', async (req, res) => {
    const q = query(querySchemas.traces, req);
    res.json(await store.listTraces({ ...q, limit: q.limit ?? DEFAULT_LIMIT }));
  });

  router.get('/api/v1/trace-counts', async (req, res) => {
    res.json(await store.countTraces(query(querySchemas.traceCounts, req)));
  });

  router.get('/api/v1/traces/:id', async (req, res) => {
    query(querySchemas.none, req);
    const { id } = parseParams(traceParams, req.params);
    const found = await store.getTrace(id);
    if (found === null) return notFound(res, `no trace ${JSON.stringify(id)}`);
    const { trace, events, spans, pin } = found;
    // The trace's own OTel id; for a trace made only of spans received over OTLP (which keep their ids),
    // the id they carry.
    const own = otelTraceId(trace.trace_id);
    const carried = new Set(spans.map((s) => s.span.traceId));
    const otelId = carried.size === 0 || carried.has(own) ? own : [...carried][0]!;
    res.json({
      trace,
      events,
      otel_trace_id: otelId,
      spans: spanTree(spans),
      links: traceLinks(otelId, { from: trace.first_event_at, to: trace.last_event_at }, links),
      // A pinned trace (README, "Pinning"): the pin, whether the archive serves what retention dropped,
      // and its dead-letter entries (the DLQ list reads the stored entries only).
      ...(pin && { pinned: true, ...pin }),
    });
  });

  router.get('/api/v1/metrics/summary', async (req, res) => {
    const date = query(querySchemas.metricsSummary, req).date ?? todayUtc();
    res.json({ date, agents: await store.metricsSummary(date) });
  });

  router.get('/api/v1/metrics/daily', async (req, res) => {
    const q = query(querySchemas.metricsDaily, req);
    const { from, to } = dailyRange(q, todayUtc());
    res.json({ from, to, agents: await store.metricsDaily({ from, to, agent: q.agent }) });
  });

  router.get('/api/v1/metrics/:agent_id/latest', async (req, res) => {
    query(querySchemas.none, req);
    const { agent_id } = parseParams(agentParams, req.params);
    const row = await store.latestMetrics(agent_id);
    if (row === null) return notFound(res, `no metrics for agent ${JSON.stringify(agent_id)}`);
    res.json(row);
  });

  router.get('/api/v1/dlq', async (req, res) => {
    const q = query(querySchemas.dlq, req);
    res.json(await store.listDlq({ ...q, limit: q.limit ?? DEFAULT_LIMIT }));
  });

  router.get('/api/v1/rejects', async (req, res) => {
    const q = query(querySchemas.rejects, req);
    res.json(await store.listRejects({ ...q, limit: q.limit ?? DEFAULT_LIMIT }));
  });

  return router;
}
