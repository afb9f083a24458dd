/**
 * The pipeline's shape, checked on the source: which part of src/ may import which (docs/adr/0006).
 * A new folder has to be placed in LAYERS before this passes, which is the point.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Each unit of src/ and the units it may import (telemetry and events are leaves everyone may use). */
const LAYERS: Record<string, readonly string[]> = {
  telemetry: [],
  events: [],
  pipeline: ['events', 'telemetry'],
  derive: ['events'],
  db: ['pipeline', 'telemetry'],
  'embedded-postgres': ['pipeline', 'telemetry'],
  batch: ['pipeline', 'telemetry'],
  // The NATS plumbing the NATS sources share; each source is one folder that imports no other source.
  'sources/nats': ['pipeline', 'events', 'telemetry'],
  'sources/*': ['pipeline', 'events', 'telemetry', 'sources/nats'],
  'sinks/postgres': ['pipeline', 'events', 'derive', 'db', 'telemetry'],
  spans: ['pipeline', 'events', 'db', 'telemetry'],
  api: ['pipeline', 'events', 'sinks/postgres', 'spans', 'telemetry'],
  sdk: ['events'],
  simulate: ['events', 'sdk'],
  // The top: configuration (sources' config slices), wiring, the command line, the entry point.
  // (and api: the access-control slice, src/api/auth/config.ts)
  'config.ts': ['pipeline', 'spans', 'sources/*', 'api'],
  'chronicle.ts': [
    'api',
    'batch',
    'config.ts',
    'db',
    'pipeline',
    'sinks/postgres',
    'sources/*',
    'spans',
    'telemetry',
  ],
  cli: ['*'],
  'main.ts': ['cli'],
};

/** The unit a file belongs to: a root file, a source or sink folder, or a top-level folder. */
function unitOf(file: string): string {
  const parts = path.relative(SRC, file).split(path.sep);
  if (parts.length === 1) return parts[0]!;
  if (parts[0] === 'sources' || parts[0] === 'sinks') return `${parts[0]}/${parts[1]}`;
  return parts[0]!;
}

/** The LAYERS entry that governs a unit (`sources/jetstream` → `sources/*` unless it has its own). */
function ruleOf(unit: string): string | undefined {
  if (unit in LAYERS) return unit;
  const wildcard = `${unit.split('/')[0]}/*`;
  return unit.includes('/') && wildcard in LAYERS ? wildcard : undefined;
}

function allows(from: string, to: string): boolean {
  const allowed = LAYERS[ruleOf(from)!]!;
  const wildcard = to.includes('/') ? `${to.split('/')[0]}/*` : to;
  return allowed.includes('*') || allowed.includes(to) || allowed.includes(wildcard);
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/** Every import between units: `from → to` with the importing file. */
function crossings(): { from: string; to: string; file: string }[] {
  const out: { from: string; to: string; file: string }[] = [];
  for (const file of files(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = path.resolve(path.dirname(file), m[1]!).replace(/\.js$/, '.ts');
      const from = unitOf(file);
      const to = unitOf(target);
      if (from !== to) out.push({ from, to, file: path.relative(SRC, file) });
    }
  }
  return out;
}

describe('layers', () => {
  const edges = crossings();

  it('layers - every unit of src/ has its place in the layering', () => {
    const units = new Set(files(SRC).map(unitOf));
    expect([...units].filter((u) => ruleOf(u) === undefined)).toEqual([]);
  });

  it('layers - no unit imports one it may not (sources → batch → sinks, contracts in pipeline)', () => {
    const forbidden = edges.filter((e) => !allows(e.from, e.to)).map((e) => `${e.file} imports ${e.to}`);
    expect(forbidden).toEqual([]);
  });

  it('layers - no two units import each other, directly or around a cycle', () => {
    const graph = new Map<string, Set<string>>();
    for (const e of edges) graph.set(e.from, (graph.get(e.from) ?? new Set()).add(e.to));
    const cycles = new Set<string>();
    const visit = (node: string, trail: string[]): void => {
      if (trail.includes(node)) {
        cycles.add([...trail.slice(trail.indexOf(node)), node].join(' → '));
        return;
      }
      for (const next of graph.get(node) ?? []) visit(next, [...trail, node]);
    };
    for (const node of graph.keys()) visit(node, []);
    expect([...cycles]).toEqual([]);
  });

  it('layers - a source imports no other source, the shared NATS plumbing aside', () => {
    const across = edges.filter(
      (e) => e.from.startsWith('sources/') && e.to.startsWith('sources/') && e.to !== 'sources/nats',
    );
    expect(across).toEqual([]);
  });
});
