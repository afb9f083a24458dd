/**
 * The console's routes (src/api/console.ts) on a bare express app: page paths answer index.html with
 * its Content-Security-Policy, /console/* the console's files and the vendored modules, revalidated
 * by ETag and gzipped when asked; anything else the API's 404 JSON.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import http, { type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleAssets, createConsoleRoutes } from '../../../src/api/console.js';
import { notFound } from '../../../src/api/routes.js';

let server: Server;
let base: string;

beforeAll(async () => {
  const app = express();
  app.use(createConsoleRoutes());
  app.use((req, res) => notFound(res, `no route for ${req.method} ${req.path}`));
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text(): string;
  json(): unknown;
}

/**
 * A request as a browser's cache sends it: node:http, since fetch() marks conditional requests
 * `Cache-Control: no-cache` (which Express rightly never answers with a 304) and decodes gzip itself.
 */
function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${path}`,
      { method, headers: { 'accept-encoding': 'identity', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body,
            text: () => body.toString('utf8'),
            json: () => JSON.parse(body.toString('utf8')) as unknown,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const indexHtml = () => {
  const asset = consoleAssets().find((a) => a.urlPath === '/console/index.html')!;
  return readFileSync(asset.filePath, 'utf8');
};

describe('console routes', () => {
  it('console routes - every page path answers index.html, uncached, under a CSP allowing only the import map inline', async () => {
    const html = indexHtml();
    const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)![1]!;
    const hash = createHash('sha256').update(importMap).digest('base64');
    for (const path of [
      '/',
      '/tasks',
      '/tasks/a%2Fb%20c',
      '/agents',
      '/agents/scout',
      '/pipeline',
      '/tail',
      '/tasks?status=failed',
    ]) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers['cache-control']).toBe('no-cache');
      const csp = res.headers['content-security-policy'] as string;
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("connect-src 'self'");
      expect(csp).toContain(`script-src 'self' 'sha256-${hash}'`);
      expect(res.text()).toBe(html);
    }
  });

  it('console routes - files and vendored modules with their types; a matching ETag gets 304; HEAD has no body', async () => {
    const cases: [string, string][] = [
      ['/console/app.js', 'text/javascript; charset=utf-8'],
      ['/console/style.css', 'text/css; charset=utf-8'],
      ['/console/pages/tasks.js', 'text/javascript; charset=utf-8'],
      ['/console/favicon.svg', 'image/svg+xml'],
      ['/console/vendor/preact.mjs', 'text/javascript; charset=utf-8'],
      ['/console/vendor/hooks.mjs', 'text/javascript; charset=utf-8'],
      ['/console/vendor/htm.mjs', 'text/javascript; charset=utf-8'],
    ];
    const files = new Map(consoleAssets().map((a) => [a.urlPath, a.filePath]));
    for (const [path, type] of cases) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers['content-type'], path).toBe(type);
      expect(res.body.equals(readFileSync(files.get(path)!)), path).toBe(true);
      const etag = res.headers.etag as string;
      expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
      const again = await get(path, { 'if-none-match': etag });
      expect(again.status, path).toBe(304);
      const head = await get(path, {}, 'HEAD');
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
    }
    // The ES module build of htm, not its CommonJS one.
    expect((await get('/console/vendor/htm.mjs')).text()).toMatch(/\bexport default\b/);
  });

  it('console routes - gzip for clients that take it, its own ETag, Vary on Accept-Encoding', async () => {
    const plain = await get('/console/app.js');
    const zipped = await get('/console/app.js', { 'accept-encoding': 'gzip, deflate, br' });
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.headers.vary).toContain('Accept-Encoding');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(
      (await get('/console/app.js', { 'accept-encoding': 'gzip;q=0' })).headers['content-encoding'],
    ).toBeUndefined();
    expect(zipped.headers.etag).not.toBe(plain.headers.etag);
    expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
    expect(zipped.body.length).toBeLessThan(plain.body.length);
    const again = await get('/console/app.js', {
      'accept-encoding': 'gzip',
      'if-none-match': zipped.headers.etag as string,
    });
    expect(again.status).toBe(304);
  });

  it('console routes - unknown files, hidden files, escapes from the folder and other methods get the 404 JSON', async () => {
    for (const path of [
      '/console/nope.js',
      '/console/',
      '/console/lib',
      '/console/../package.json',
      '/console/%2e%2e/package.json',
      '/console/..%2fpackage.json',
      '/console/lib/..%2f..%2fpackage.json',
      '/console/.hidden.js',
      '/console/vendor/other.mjs',
      '/console/app.ts',
      '/tasks/a/b',
      '/live-tail',
    ]) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect((res.json() as { error: string }).error, path).toBe('not_found');
    }
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await get('/tasks', {}, method);
      expect(res.status, method).toBe(404);
    }
  });
});
