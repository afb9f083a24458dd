import { describe, expect, it } from 'vitest';
import { requiredScope } from '../../../../src/api/auth/scopes.js';

describe('api scopes', () => {
  it('scopes - each route needs the scope of the table in README "Access control"', () => {
    const table: [string, string, string][] = [
      ['GET', '/live', 'open'],
      ['GET', '/ready', 'open'],
      ['HEAD', '/ready', 'open'],
      ['GET', '/metrics', 'metrics'],
      ['POST', '/api/v1/events', 'ingest'],
      ['POST', '/v1/traces', 'ingest'],
      ['GET', '/api/v1/events', 'read'],
      ['HEAD', '/api/v1/events', 'read'],
      ['GET', '/api/v1/traces/t-1', 'read'],
      ['GET', '/api/v1/stream', 'read'],
      ['GET', '/api/v1/health', 'read'],
      ['GET', '/api/v1/pipeline', 'read'],
      ['GET', '/api', 'read'],
      // Any other method under /api: routes added later (pins, retention, replay) need admin.
      ['POST', '/api/v1/traces/t-1/pin', 'admin'],
      ['DELETE', '/api/v1/traces/t-1/pin', 'admin'],
      ['POST', '/api/v1/pins', 'admin'],
      ['POST', '/api/v1/retention/run', 'admin'],
      ['PUT', '/api/v1/events', 'admin'],
      ['DELETE', '/api/v1/events', 'admin'],
      ['OPTIONS', '/api/v1/events', 'admin'],
      // The console's pages and files are open; they fetch their data from /api.
      ['GET', '/', 'open'],
      ['GET', '/tasks', 'open'],
      ['GET', '/tasks/t-1', 'open'],
      ['GET', '/agents/a-1', 'open'],
      ['GET', '/pipeline', 'open'],
      ['GET', '/tail', 'open'],
      ['HEAD', '/console/app.js', 'open'],
      ['GET', '/console/vendor/preact.mjs', 'open'],
      // Anything else needs read, so an unauthenticated client cannot map the routes.
      ['POST', '/tasks', 'read'],
      ['GET', '/tasks/t-1/x', 'read'],
      ['GET', '/nowhere', 'read'],
      ['GET', '/v1/traces', 'read'],
      ['POST', '/v1/metrics', 'read'],
      ['DELETE', '/metrics', 'metrics'],
    ];
    for (const [method, path, scope] of table)
      expect(requiredScope(method, path), `${method} ${path}`).toBe(scope);
  });

  it('scopes - case and a trailing slash, which Express routes alike, change nothing', () => {
    expect(requiredScope('POST', '/API/V1/Events/')).toBe('ingest');
    expect(requiredScope('POST', '/V1/TRACES')).toBe('ingest');
    expect(requiredScope('GET', '/Metrics/')).toBe('metrics');
    expect(requiredScope('GET', '/Api/v1/events')).toBe('read');
    expect(requiredScope('POST', '/API/v1/pins/')).toBe('admin');
    expect(requiredScope('GET', '/Live/')).toBe('open');
  });
});
