/**
 * PromQL as the dashboards and alert rules write it: collected with where it comes from, its Grafana
 * variables replaced by values Prometheus accepts, checked by the real `promtool`, and read for the
 * metric and label names it uses.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Variable } from './dashboard-walk.js';
import { isObject, replaceRefs, variableRefs } from './dashboard-walk.js';

/** A PromQL expression and where it was found. */
export interface PromExpression {
  readonly where: string;
  readonly expr: string;
  /** Grafana's legend template (`{{route}}`), for panel targets. */
  readonly legendFormat?: string;
}

/** Values for Grafana's interval variables, as Grafana would put them in a query. */
const BUILTIN_VALUES: Record<string, string> = {
  __rate_interval: '1m',
  __interval: '30s',
  __interval_ms: '30000',
  __range: '1h',
  __range_s: '3600',
  __range_ms: '3600000',
};

/** Whether a variable can hold several values (then only a regex matcher can use it). */
export const isMultiValue = (v: Variable): boolean => v.json.multi === true || v.json.includeAll === true;

/** A value Grafana could substitute for the variable: a regex for multi-value ones, else its current value. */
function sampleValue(v: Variable): string {
  if (isMultiValue(v) || v.type === 'query') return '.*';
  const current = v.json.current;
  const value = isObject(current) ? current.value : undefined;
  if (typeof value === 'string' && value !== '') return value;
  return typeof v.json.query === 'string' && v.json.query !== '' ? v.json.query : 'x';
}

/**
 * The expression Prometheus would receive: dashboard variables replaced by a value of theirs, Grafana's
 * interval variables by an interval. A reference to anything else stays, so promtool rejects it.
 */
export function expandPromQL(expr: string, variables: readonly Variable[]): string {
  const byName = new Map(variables.map((v) => [v.name, v]));
  return replaceRefs(expr, (ref) => {
    const v = byName.get(ref.name);
    if (v) return sampleValue(v);
    return BUILTIN_VALUES[ref.name] ?? ref.raw;
  });
}

/** `label_values(expr, label)` and `query_result(expr)` hold PromQL; `label_values(label)` holds none. */
export function variableQueryPromQL(query: string): { expr: string; label?: string } | undefined {
  const values = /^\s*label_values\(\s*(.+),\s*(\w+)\s*\)\s*$/s.exec(query);
  if (values) return { expr: values[1]!, label: values[2]! };
  const result = /^\s*query_result\((.+)\)\s*$/s.exec(query);
  if (result) return { expr: result[1]! };
  return undefined;
}

/** The expression with the contents of its string literals removed (so `"5.."` cannot look like a name). */
function withoutStrings(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
}

/** Every `chronicle_*` metric name the expression names. */
export function chronicleMetricNames(expr: string): string[] {
  return [...new Set([...withoutStrings(expr).matchAll(/\bchronicle_[A-Za-z0-9_:]*/g)].map((m) => m[0]))];
}

/** Labels named in `by`/`without`/`on`/`ignoring`/`group_left`/`group_right` clauses. */
export function groupingLabels(
  expr: string,
  clauses = 'by|without|on|ignoring|group_left|group_right',
): string[] {
  const out: string[] = [];
  for (const m of withoutStrings(expr).matchAll(new RegExp(`\\b(?:${clauses})\\s*\\(([^)]*)\\)`, 'g')))
    out.push(
      ...m[1]!
        .split(',')
        .map((l) => l.trim())
        .filter((l) => l !== ''),
    );
  return out;
}

/** Every label the expression names: in grouping clauses and in selector matchers. */
export function labelsUsed(expr: string): string[] {
  const out = new Set(groupingLabels(expr));
  for (const selector of withoutStrings(expr).matchAll(/\{([^}]*)\}/g))
    for (const m of selector[1]!.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)) out.add(m[1]!);
  return [...out];
}

/** Whether the expression aggregates (then only the labels it groups by survive). */
export function aggregates(expr: string): boolean {
  return /\b(sum|avg|min|max|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\s*(\(|by\b|without\b)/.test(
    withoutStrings(expr),
  );
}

/** The labels a legend template names (`{{route}} {{method}}`). */
export function legendLabels(legendFormat: string): string[] {
  return [...legendFormat.matchAll(/\{\{\s*([A-Za-z_]\w*)\s*\}\}/g)].map((m) => m[1]!);
}

/**
 * References to multi-value variables outside a regex matcher: Grafana substitutes `(a|b)` or `.*`,
 * which only `=~`/`!~` read as intended.
 */
export function multiValueMisuse(expr: string, variables: readonly Variable[]): string[] {
  const multi = new Set(variables.filter(isMultiValue).map((v) => v.name));
  const out: string[] = [];
  let rest = expr;
  for (const ref of variableRefs(expr)) {
    const at = rest.indexOf(ref.raw);
    const before = expr.slice(0, expr.length - rest.length + at);
    rest = rest.slice(at + ref.raw.length);
    if (multi.has(ref.name) && !/(=~|!~)\s*"[^"]*$/.test(before)) out.push(ref.raw);
  }
  return out;
}

export interface PromtoolResult {
  readonly ok: boolean;
  readonly output: string;
  /** The record name given to each expression, in order. */
  readonly records: string[];
}

/**
 * Runs `promtool check rules` on the expressions written as recording rules (one group; JSON is YAML),
 * so promtool parses each with Prometheus's own parser.
 */
export function promtoolCheck(promtool: string, exprs: readonly string[]): PromtoolResult {
  const dir = mkdtempSync(join(tmpdir(), 'chronicle-promql-'));
  try {
    const records = exprs.map((_, i) => `dashboard_check:expr_${i}`);
    const file = join(dir, 'rules.yml');
    const rules = exprs.map((expr, i) => ({ record: records[i], expr }));
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'chronicle-dashboards', rules }] }, null, 2));
    const run = spawnSync(promtool, ['check', 'rules', file], { encoding: 'utf8' });
    return { ok: run.status === 0, output: `${run.stdout}${run.stderr}`, records };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
