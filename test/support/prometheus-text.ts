/**
 * Reading Chronicle's GET /metrics as Prometheus does: the samples of the text exposition format
 * (promtool.ts runs the real `promtool check metrics` on it).
 */

/** Samples keyed `name{a="x",b="y"}` (labels sorted by name; `name{}` without labels). */
export type Samples = ReadonlyMap<string, number>;

function sampleKey(name: string, labels: Readonly<Record<string, string>>): string {
  const parts = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return `${name}{${parts.join(',')}}`;
}

/** Parses the text exposition format; throws on a line that is neither a comment nor a sample. */
export function parseSamples(text: string): Samples {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[k!] = v!;
    }
    samples.set(sampleKey(m[1]!, labels), Number(m[3]));
  }
  return samples;
}

/** The value of one series; undefined when the exposition has no such series. */
export function sampleValue(
  samples: Samples,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  return samples.get(sampleKey(name, labels));
}

/** Every value one label takes among the series of a metric. */
export function labelValues(samples: Samples, name: string, label: string): Set<string> {
  const values = new Set<string>();
  const pattern = new RegExp(`[{,]${label}="((?:[^"\\\\]|\\\\.)*)"`);
  for (const key of samples.keys()) {
    if (!key.startsWith(`${name}{`)) continue;
    const m = pattern.exec(key);
    if (m) values.add(m[1]!);
  }
  return values;
}
