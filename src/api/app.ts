import express from 'express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { classify } from '../pipeline/errors.js';
import { InvalidCursorError, type QueryStore } from '../sinks/postgres/queries.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { clientOf, requireToken } from './auth/require-token.js';
import type { ApiClient } from './auth/tokens.js';
import { createConsoleRoutes } from './console.js';
import type { HealthCheck } from './health.js';
import { BadParameterError, parseParams, querySchemas } from './params.js';
import { createPipelineRoutes } from './pipeline.js';
import { type PinRouteOptions, createPinRoutes } from './pins.js';
import type { PinStore } from '../sinks/postgres/archive.js';
import { createQueryRoutes, notFound } from './routes.js';
import type { TraceLinkOptions } from './trace-detail.js';

export interface ApiDeps {
  /** The reads behind /api/v1. */
  store: QueryStore;
  /** Computes /ready and /api/v1/health. */
  health: HealthCheck;
  /** Served as Prometheus text on /metrics. */
  metrics: Metrics;
  logger: Logger;
  /** Routes that take data in (POST /api/v1/events, POST /v1/traces); mounted before every other route. */
  ingest?: express.Router;
  /** Trace backend UIs linked from GET /api/v1/traces/:id; none when omitted. */
  links?: TraceLinkOptions;
  /** GET /api/v1/stream (src/api/stream/event-stream.ts); not served when omitted. */
  stream?: express.Router;
  /** The clients API tokens allow (src/api/auth); omitted or empty: no access control. */
  clients?: readonly ApiClient[] | undefined;
  /** Pin and unpin traces (src/api/pins.ts); not served when omitted. */
  pins?: PinStore;
  pinRoutes?: PinRouteOptions;
  /** GET /api/v1/retention, POST /api/v1/retention/run (src/api/retention.ts); not served when omitted. */
  retention?: express.Router;
}

/** Error body of every non-2xx answer. */
interface ErrorBody {
  error: string;
  message: string;
  parameter?: string;
}

/**
 * Status and body for an error; client mistakes are 4xx, a database that cannot be reached right now is
 * a 503 (classify: unavailable), and a 500 never says why.
 */
export function describeError(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof BadParameterError) {
    return { status: 400, body: { error: 'bad_request', message: err.message, parameter: err.parameter } };
  }
  if (err instanceof InvalidCursorError) {
    const message = `invalid parameter cursor: ${err.message}`;
    return { status: 400, body: { error: 'bad_request', message, parameter: 'cursor' } };
  }
  // body-parser and router errors (http-errors): a status, a `type`, and `expose` for client errors.
  const e = err as { type?: unknown; status?: unknown; expose?: unknown; message?: unknown; limit?: unknown };
  if (e.type === 'entity.too.large') {
    const limit = typeof e.limit === 'number' ? ` of ${e.limit} bytes` : '';
    return {
      status: 413,
      body: { error: 'payload_too_large', message: `request body is over the limit${limit}` },
    };
  }
  if (e.type === 'entity.parse.failed') {
    return { status: 400, body: { error: 'bad_request', message: 'request body is not valid JSON' } };
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    const message = e.expose === true && typeof e.message === 'string' ? e.message : 'bad request';
    return { status: e.status, body: { error: e.status === 400 ? 'bad_request' : 'client_error', message } };
  }
  if (classify(err) === 'unavailable') {
    return {
      status: 503,
      body: { error: 'unavailable', message: 'the database is unavailable; retry later' },
    };
  }
  return { status: 500, body: { error: 'internal_error', message: 'internal server error' } };
}

const METRIC_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The route template that answered a request (`/api/v1/traces/:id`, never the raw path): the matched
 * route's path after its router's mount path; `unmatched` when no route took the request (404s of no
 * route, Express's automatic OPTIONS answers). Chronicle's routes are all string paths.
 */
export function routeTemplate(req: Request): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof path !== 'string') return 'unmatched';
  return `${req.baseUrl}${path}`;
}

/**
 * Counts every answered request in chronicle_http_requests_total and times it in
 * chronicle_http_request_duration_seconds, by route template, method (others: OTHER) and status.
 * Mounted first, so ingest, OTLP and error answers are all counted.
 */
export function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    // 'close', not 'finish': a response the client hung up on (a stream it closed) counts too.
    res.once('close', () => {
      const route = routeTemplate(req);
      const method = METRIC_METHODS.has(req.method) ? req.method : 'OTHER';
      metrics.httpRequests.inc({ route, method, status: String(res.statusCode) });
      metrics.httpRequestSeconds.observe({ route, method }, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  };
}

/**
 * A port that serves only `router` (the dedicated OTLP/HTTP port): counted and access-controlled like
 * the API, 404 for the rest.
 */
export function createRouterApp(
  router: express.Router,
  metrics: Metrics,
  access?: { clients: readonly ApiClient[] | undefined; logger: Logger },
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(httpMetrics(metrics));
  if (access) app.use(requireToken(access.clients, { metrics, logger: access.logger }));
  app.use(router);
  app.use((req, res) => notFound(res, `no route for ${req.method} ${req.path}`));
  return app;
}

/** The HTTP API: health, Prometheus metrics, the /api/v1 reads, and (when given) ingest. */
export function createApiApp(deps: ApiDeps): express.Express {
  const { store, health, metrics, logger } = deps;
  const app = express();
  app.disable('x-powered-by');
  // Flat string values only (no nested objects from `a[b]=c`); repeated names arrive as arrays and are refused.
  app.set('query parser', 'simple');
  app.use(httpMetrics(metrics));
  // Before every route: nothing is read or written for a request without the token its route needs.
  app.use(requireToken(deps.clients, { metrics, logger }));

  if (deps.ingest) app.use(deps.ingest);

  // Probes take no parameters and ignore any they are given.
  app.get('/live', (_req, res) => {
    res.json({ status: 'live' });
  });

  app.get('/ready', async (_req, res) => {
    const report = await health().catch((err: unknown) => {
      logger.error({ err }, 'health check failed');
      return null;
    });
    // With access control, an open probe says ready and no more: the report is /api/v1/health's (read).
    const locked = (deps.clients?.length ?? 0) > 0;
    if (report?.ready) res.json(locked ? { status: 'ready' } : report);
    else res.status(503).json({ status: 'not_ready', reasons: report?.reasons ?? ['health check failed'] });
  });

  app.get('/api/v1/health', async (req, res) => {
    parseParams(querySchemas.none, req.query);
    res.json(await health());
  });

  app.use(createPipelineRoutes({ health, metrics, store, logger }));

  app.get('/metrics', async (_req, res) => {
    const text = await metrics.registry.metrics();
    res.type(metrics.registry.contentType).send(text);
  });

  if (deps.stream) app.use(deps.stream);
  if (deps.retention) app.use(deps.retention);

  if (deps.pins) app.use(createPinRoutes(deps.pins, deps.pinRoutes));

  app.use(
    createQueryRoutes(
      store,
      deps.links ?? { jaegerUiUrl: undefined, grafanaUrl: undefined, tempoDatasourceUid: 'tempo' },
    ),
  );

  app.use(createConsoleRoutes());

  app.use((req, res) => notFound(res, `no route for ${req.method} ${req.path}`));

  app.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    // Headers already sent: only Express's own handler can end the response (it closes the socket).
    if (res.headersSent) return next(err);
    const { status, body } = describeError(err);
    if (status >= 500) {
      logger[status === 503 ? 'warn' : 'error'](
        { err, method: req.method, path: req.path, client: clientOf(res) },
        'request failed',
      );
    }
    if (status === 503) res.set('Retry-After', '1');
    res.status(status).json(body);
  });

  return app;
}
