/**
 * The console: a read-only web UI served on the API port (docs/adr/0008). Its page paths all answer the
 * same index.html (the page routes itself with the history API); `/console/...` answers the files of the
 * top-level `console/` folder as they are (plain ES modules, no build step) and Preact, its hooks and htm
 * from node_modules. The console reads Chronicle's HTTP API like any other client.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import express from 'express';
import type { Request, Response } from 'express';
import { notFound } from './routes.js';

/** The page paths of the console (client-side routes); each answers index.html. */
export const CONSOLE_PAGES = [
  '/',
  '/tasks',
  '/tasks/:trace_id',
  '/agents',
  '/agents/:agent_id',
  '/pipeline',
  '/tail',
] as const;

/** Content type of each file type the console serves; any other file is not served. */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** One file the console serves. */
export interface ConsoleAsset {
  /** Where it is served: `/console/app.js`, `/console/vendor/preact.mjs`. */
  urlPath: string;
  /** The file on disk. */
  filePath: string;
}

export interface ConsoleOptions {
  /** The console's folder; the package's `console/` when omitted. */
  root?: string;
}

// src/api/console.ts and dist/api/console.js are both two levels below the package root.
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEFAULT_ROOT = path.join(PACKAGE_ROOT, 'console');

/**
 * The vendored modules, resolved the way Node resolves them for this package (their `import` export
 * conditions: ES modules), so an upgrade of preact or htm in package.json is what the browser gets.
 */
function vendorAssets(): ConsoleAsset[] {
  const vendor = (name: string, specifier: string): ConsoleAsset => ({
    urlPath: `/console/vendor/${name}`,
    filePath: fileURLToPath(import.meta.resolve(specifier)),
  });
  return [vendor('preact.mjs', 'preact'), vendor('hooks.mjs', 'preact/hooks'), vendor('htm.mjs', 'htm')];
}

/** Every file the console serves: the servable files under its folder and the vendored modules. */
export function consoleAssets(options: ConsoleOptions = {}): ConsoleAsset[] {
  const root = options.root ?? DEFAULT_ROOT;
  const walk = (dir: string): ConsoleAsset[] =>
    readdirSync(dir, { withFileTypes: true })
      .filter((e) => !e.name.startsWith('.'))
      .flatMap((e) => {
        const full = path.join(dir, e.name);
        if (e.isDirectory()) return walk(full);
        if (!(path.extname(e.name) in CONTENT_TYPES)) return [];
        const rel = path.relative(root, full).split(path.sep).join('/');
        return [{ urlPath: `/console/${rel}`, filePath: full }];
      });
  return [...walk(root), ...vendorAssets()];
}

/** A file read once (and gzipped once) and kept while its size and modification time stay the same. */
interface CachedFile {
  mtimeMs: number;
  size: number;
  body: Buffer;
  etag: string;
  gzipped: Buffer;
}

/**
 * The Content-Security-Policy of the console: everything from Chronicle itself, nothing inline but the
 * import map (allowed by its hash: browsers have no external import maps).
 */
function contentSecurityPolicy(indexHtml: string): string {
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(indexHtml)?.[1];
  const hash =
    importMap === undefined ? '' : ` 'sha256-${createHash('sha256').update(importMap).digest('base64')}'`;
  return [
    "default-src 'self'",
    `script-src 'self'${hash}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * The console's routes: its page paths answer index.html, `/console/*` its files; GET and HEAD only.
 * Everything is revalidated on each load (`no-cache` with a strong ETag, 304 when unchanged): the files
 * have no fingerprinted names, and a 304 costs one small round trip.
 */
export function createConsoleRoutes(options: ConsoleOptions = {}): express.Router {
  const root = options.root ?? DEFAULT_ROOT;
  const indexPath = path.join(root, 'index.html');
  const vendor = new Map(vendorAssets().map((a) => [a.urlPath, a.filePath]));
  const cache = new Map<string, CachedFile>();
  let csp: { etag: string; value: string } | undefined;

  // Fails fast at startup when the console or a vendored module is missing (e.g. a partial install).
  for (const file of [indexPath, ...vendor.values()]) statSync(file);

  const read = (filePath: string): CachedFile => {
    const stat = statSync(filePath);
    const cached = cache.get(filePath);
    if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached;
    const body = readFileSync(filePath);
    const etag = `"${createHash('sha1').update(body).digest('base64url')}"`;
    const file = {
      mtimeMs: stat.mtimeMs,
      size: stat.size,
      body,
      etag,
      gzipped: gzipSync(body, { level: 9 }),
    };
    cache.set(filePath, file);
    return file;
  };

  const send = (req: Request, res: Response, filePath: string, type: string): void => {
    const file = read(filePath);
    // Served gzipped to clients that take it (every browser): the size budget is of these bytes.
    // (Only when asked: a client that sends no Accept-Encoding, such as plain curl, gets the file as is.)
    const gzip =
      req.get('accept-encoding') !== undefined && req.acceptsEncodings('gzip', 'identity') === 'gzip';
    res.set({
      'Content-Type': type,
      'Cache-Control': 'no-cache',
      Vary: 'Accept-Encoding',
      // Each encoding is its own representation, with its own strong ETag.
      ETag: gzip ? `${file.etag.slice(0, -1)}-gz"` : file.etag,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    });
    if (gzip) res.set('Content-Encoding', 'gzip');
    if (filePath === indexPath) {
      if (csp?.etag !== file.etag)
        csp = { etag: file.etag, value: contentSecurityPolicy(file.body.toString()) };
      res.set('Content-Security-Policy', csp.value);
    }
    // res.send answers 304 to a matching If-None-Match and leaves the body out for HEAD.
    res.send(gzip ? file.gzipped : file.body);
  };

  const router = express.Router();
  for (const page of CONSOLE_PAGES) {
    router.get(page, (req, res) => send(req, res, indexPath, CONTENT_TYPES['.html']!));
  }

  router.get('/console/*path', (req, res) => {
    const segments = req.params.path;
    const urlPath = `/console/${segments.join('/')}`;
    const fromVendor = vendor.get(urlPath);
    // Only plain names: no `..`, no hidden files, no separators smuggled in one segment.
    const plain = segments.every((s) => s !== '' && !s.startsWith('.') && !/[\\/\0]/.test(s));
    const type = CONTENT_TYPES[path.extname(urlPath)];
    const filePath = fromVendor ?? (plain ? path.join(root, ...segments) : undefined);
    if (filePath === undefined || type === undefined || !isFile(filePath)) {
      return notFound(res, `no console file ${urlPath}`);
    }
    send(req, res, filePath, type);
  });

  return router;
}

function isFile(filePath: string): boolean {
  try {
    return statSync(filePath).isFile();
  } catch {
    return false;
  }
}
