import type { RequestHandler, Response } from 'express';
import { encodeRpcStatus } from '../../events/otlp/decode.js';
import { otlpFormatOf } from '../../events/otlp/request-inputs.js';
import type { Logger } from '../../telemetry/logger.js';
import type { AuthFailureReason, Metrics } from '../../telemetry/metrics.js';
import { requiredScope } from './scopes.js';
import { type ApiClient, findClient } from './tokens.js';

/** google.rpc.Code of the OTLP answers: 16 UNAUTHENTICATED, 7 PERMISSION_DENIED. */
const RPC_CODE = { unauthenticated: 16, permissionDenied: 7 } as const;

/** The name of the client a request authenticated as; undefined when no token was needed or configured. */
export function clientOf(res: Response): string | undefined {
  const client: unknown = res.locals.client;
  return typeof client === 'string' ? client : undefined;
}

/** `Authorization: Bearer <token>` (the scheme in any case); undefined without one. */
function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
  return m?.[1];
}

/**
 * Access control on every route (mounted first, before any route reads a body): the scope each request
 * needs is requiredScope()'s; a request without a valid token gets 401, one whose token lacks the scope
 * 403, both with a WWW-Authenticate challenge (RFC 6750) and nothing written. An authenticated request
 * carries its client's name in res.locals.client (clientOf()). Without clients, everything is open.
 */
export function requireToken(
  clients: readonly ApiClient[] | undefined,
  deps: { metrics: Metrics; logger: Logger },
): RequestHandler {
  const { metrics, logger } = deps;
  return (req, res, next) => {
    if (clients === undefined || clients.length === 0) return next();
    const needed = requiredScope(req.method, req.path);
    if (needed === 'open') return next();
    const token = bearerToken(req.get('authorization'));
    const client = token === undefined ? undefined : findClient(clients, token);
    if (client?.scopes.has(needed)) {
      res.locals.client = client.name;
      metrics.httpClientRequests.inc({ client: client.name, scope: needed });
      return next();
    }
    const reason: AuthFailureReason = token === undefined ? 'missing' : client ? 'scope' : 'invalid';
    metrics.httpAuthFailures.inc({ reason });
    logger.debug(
      { reason, client: client?.name, scope: needed, method: req.method, path: req.path },
      'request refused: no valid API token for its scope',
    );
    const status = reason === 'scope' ? 403 : 401;
    const message =
      reason === 'missing'
        ? `this route needs an API token with scope ${needed}: send Authorization: Bearer <token>`
        : reason === 'invalid'
          ? 'the API token is not valid'
          : `client ${client!.name} is not allowed this: it needs scope ${needed}`;
    const challenge =
      reason === 'missing'
        ? 'Bearer realm="chronicle"'
        : reason === 'invalid'
          ? 'Bearer realm="chronicle", error="invalid_token"'
          : `Bearer realm="chronicle", error="insufficient_scope", scope="${needed}"`;
    res.status(status).set('WWW-Authenticate', challenge);
    // An OTLP client sending protobuf reads a google.rpc.Status, as for the receiver's other errors.
    if (needed === 'ingest' && req.path.toLowerCase().startsWith('/v1/traces')) {
      metrics.otlpRequests.inc({ status: String(status) });
      if (otlpFormatOf(req.get('content-type') ?? '') === 'protobuf') {
        const code = status === 401 ? RPC_CODE.unauthenticated : RPC_CODE.permissionDenied;
        res.type('application/x-protobuf').send(encodeRpcStatus({ code, message }, 'protobuf'));
        return;
      }
    }
    res.json({ error: status === 401 ? 'unauthorized' : 'forbidden', message });
  };
}
