/**
 * The console's budget and its offline promise, checked on the files it serves (docs/adr/0008): all of
 * them gzipped stay under 200 KB, none loads anything from another origin, and every module a page
 * imports is one of them.
 */
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { consoleAssets } from '../../../src/api/console.js';

/** The whole console, gzipped: the budget docs/adr/0008 states. */
const BUDGET_BYTES = 200 * 1024;

const assets = consoleAssets();
const text = (filePath: string) => readFileSync(filePath, 'utf8');
const own = assets.filter((a) => !a.urlPath.startsWith('/console/vendor/'));

/** The text without comments: JS and CSS block comments, HTML comments, and JS line comments. */
function withoutComments(source: string): string {
  return (
    source
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/<!--[\s\S]*?-->/g, '')
      // A `//` after a colon is a URL's, not a comment's.
      .replace(/(^|[^:])\/\/.*$/gm, '$1')
  );
}

// XML namespace names are identifiers, never fetched (SVG's xmlns, and Preact's createElementNS).
const NAMESPACE = /^https?:\/\/www\.w3\.org\/(?:2000\/svg|1999\/xhtml|1998\/Math\/MathML|1999\/xlink)$/;

describe('console size', () => {
  it('console size - the files it serves, Preact and htm included, are under 200 KB gzipped', () => {
    const sizes = assets.map((a) => ({
      url: a.urlPath,
      gzip: gzipSync(readFileSync(a.filePath), { level: 9 }).length,
    }));
    const total = sizes.reduce((sum, s) => sum + s.gzip, 0);
    expect(assets.map((a) => a.urlPath)).toEqual(
      expect.arrayContaining([
        '/console/index.html',
        '/console/app.js',
        '/console/style.css',
        '/console/vendor/preact.mjs',
        '/console/vendor/hooks.mjs',
        '/console/vendor/htm.mjs',
      ]),
    );
    expect(total, JSON.stringify(sizes)).toBeLessThan(BUDGET_BYTES);
  });

  it('console size - no file loads anything from another origin (no http(s):// outside comments)', () => {
    for (const asset of assets) {
      const urls = withoutComments(text(asset.filePath)).match(/https?:\/\/[^\s"'`)<>]*/g) ?? [];
      expect(
        urls.filter((u) => !NAMESPACE.test(u)),
        asset.urlPath,
      ).toEqual([]);
    }
    // index.html refers only to the console's own files.
    const html = text(own.find((a) => a.urlPath === '/console/index.html')!.filePath);
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) expect(ref, ref).toMatch(/^\/console\//);
  });

  it('console size - every module a page imports is served, bare names through the import map', () => {
    const served = new Set(assets.map((a) => a.urlPath));
    const html = text(own.find((a) => a.urlPath === '/console/index.html')!.filePath);
    const importMap = JSON.parse(/<script type="importmap">([\s\S]*?)<\/script>/.exec(html)![1]!) as {
      imports: Record<string, string>;
    };
    for (const target of Object.values(importMap.imports)) expect(served, target).toContain(target);
    for (const ref of html.matchAll(/\b(?:src|href)="([^"]*)"/g)) expect(served, ref[1]).toContain(ref[1]);

    const modules = assets.filter((a) => /\.m?js$/.test(a.urlPath));
    let imports = 0;
    for (const module of modules) {
      for (const m of text(module.filePath).matchAll(
        /\b(?:import|export)\b[^'"`;]*?\bfrom\s*["']([^"']+)["']/g,
      )) {
        const specifier = m[1]!;
        imports++;
        if (specifier.startsWith('.') || specifier.startsWith('/')) {
          const target = new URL(specifier, `http://console.invalid${module.urlPath}`).pathname;
          expect(served, `${module.urlPath} imports ${specifier}`).toContain(target);
        } else {
          expect(importMap.imports, `${module.urlPath} imports ${specifier}`).toHaveProperty([specifier]);
        }
      }
    }
    expect(imports).toBeGreaterThan(10);
  });
});
