import { CONSOLE_PAGES } from '../console.js';

/**
 * The scopes an API token can carry, and the one place that decides which scope a request needs
 * (README "Access control"). Routes added later under /api fall under read (GET, HEAD) or admin (any
 * other method) without touching this file.
 */
export const SCOPES = ['ingest', 'read', 'admin', 'metrics'] as const;

export type Scope = (typeof SCOPES)[number];

/** What a request needs: no token (`open`), or a token with that scope. */
export type Requirement = 'open' | Scope;

/** The console's page paths as patterns: `/tasks/:trace_id` → one path segment. */
const PAGE_PATTERNS = CONSOLE_PAGES.map(
  (page) => new RegExp(`^${page.replace(/:[a-z_]+/g, '[^/]+').replace(/\/$/, '')}$`),
);

/**
 * The scope a request needs, by method and path. Express routes without regard to case or a trailing
 * slash, so neither changes the answer here. Any path Chronicle does not serve needs read: an
 * unauthenticated client learns nothing about which routes exist.
 */
export function requiredScope(method: string, rawPath: string): Requirement {
  const path = rawPath.toLowerCase().replace(/\/+$/, '');
  const reads = method === 'GET' || method === 'HEAD';
  if (path === '/live' || path === '/ready') return 'open';
  if (path === '/metrics') return 'metrics';
  if (method === 'POST' && (path === '/api/v1/events' || path === '/v1/traces')) return 'ingest';
  if (path === '/api' || path.startsWith('/api/')) return reads ? 'read' : 'admin';
  // The console's pages and files hold no data; everything they show comes from /api.
  if (reads && (path.startsWith('/console/') || PAGE_PATTERNS.some((p) => p.test(path)))) return 'open';
  return 'read';
}
