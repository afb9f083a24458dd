import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createMetrics } from '../../../src/telemetry/metrics.js';
import { PROMTOOL, PROMTOOL_REQUIRED } from '../../support/promtool.js';
import type { Variable } from './dashboard-walk.js';
import { modelTypeOfUid, queriesOf, readDashboardFiles, variablesOf } from './dashboard-walk.js';
import type { PromExpression } from './promql.js';
import {
  aggregates,
  chronicleMetricNames,
  expandPromQL,
  groupingLabels,
  labelsUsed,
  legendLabels,
  multiValueMisuse,
  promtoolCheck,
  variableQueryPromQL,
} from './promql.js';

const ALERTS_YML = fileURLToPath(new URL('../../../otel/alerts.yml', import.meta.url));

/** An expression, where it is, and the variables in scope (the dashboard's; none for alert rules). */
interface Found extends PromExpression {
  readonly variables: readonly Variable[];
  /** The label a `label_values(expr, label)` variable lists. */
  readonly listsLabel?: string;
}

function dashboardExpressions(): Found[] {
  const out: Found[] = [];
  for (const { json } of readDashboardFiles()) {
    const variables = variablesOf(json);
    for (const q of queriesOf(json, modelTypeOfUid)) {
      if (q.language !== 'promql') continue;
      if (q.variable) {
        const inner = variableQueryPromQL(q.text);
        if (inner) out.push({ where: q.where, expr: inner.expr, variables, listsLabel: inner.label });
        continue;
      }
      const legend = typeof q.json.legendFormat === 'string' ? q.json.legendFormat : undefined;
      out.push({ where: q.where, expr: q.text, legendFormat: legend, variables });
    }
  }
  return out;
}

/** The alert and recording rules of otel/alerts.yml, when that file exists. */
function alertExpressions(): Found[] {
  if (!existsSync(ALERTS_YML)) return [];
  const doc = parse(readFileSync(ALERTS_YML, 'utf8')) as {
    groups?: { name?: string; rules?: { alert?: string; record?: string; expr?: unknown }[] }[];
  };
  return (doc.groups ?? []).flatMap((g) =>
    (g.rules ?? []).map((r) => ({
      where: `alerts.yml › ${g.name ?? '?'} › ${r.alert ?? r.record ?? '?'}`,
      expr: String(r.expr),
      variables: [],
    })),
  );
}

const found = [...dashboardExpressions(), ...alertExpressions()];
const expanded = found.map((f) => ({ ...f, promql: expandPromQL(f.expr, f.variables) }));

const metrics = createMetrics();
const registered = new Map((await metrics.registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));

/** The registered metric an exposed series name belongs to (`…_bucket`/`_sum`/`_count` of a histogram). */
function registeredMetric(series: string): string | undefined {
  if (registered.has(series)) return series;
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  if (!m) return undefined;
  const type = registered.get(m[1]!);
  if (type === 'histogram' || (type === 'summary' && m[2] !== 'bucket')) return m[1];
  return undefined;
}

/**
 * Whether Chronicle's metric declares that label: prom-client's `remove()` validates the label names it is
 * given against the declared ones (and removing a series that was never set changes nothing).
 */
function hasLabel(metric: string, label: string): boolean {
  const m = metrics.registry.getSingleMetric(metric);
  if (!m) return false;
  try {
    m.remove({ [label]: 'probe' });
    return true;
  } catch {
    return false;
  }
}

/** Labels Prometheus adds to every scraped series, or that belong to histograms and summaries. */
const TARGET_LABELS = new Set(['instance', 'job', 'le', 'quantile', '__name__']);

describe('PromQL - parsed by the real promtool', () => {
  it('there are expressions to check, from the dashboards (and the alert rules when present)', () => {
    expect(found.length).toBeGreaterThan(20);
  });

  if (!PROMTOOL && !PROMTOOL_REQUIRED) {
    it.skip('promtool is not on PATH (install Debian package prometheus): PromQL left unchecked', () => {});
    return;
  }

  it('promtool finds the check meaningful: it rejects a broken expression', () => {
    expect(PROMTOOL, 'promtool on PATH (CHRONICLE_TEST_REQUIRE_SERVICES=1)').toBeDefined();
    expect(promtoolCheck(PROMTOOL!, ['sum(rate(chronicle_flushes_total[5m])']).ok).toBe(false);
    expect(promtoolCheck(PROMTOOL!, ['sum(rate(chronicle_flushes_total[$__rate_interval]))']).ok).toBe(false);
  });

  it('every expression of every dashboard and alert rule passes `promtool check rules`', () => {
    const result = promtoolCheck(
      PROMTOOL!,
      expanded.map((e) => e.promql),
    );
    const legend = expanded.map((e, i) => `${result.records[i]} = ${e.where}: ${e.promql}`).join('\n');
    expect(result.ok, `${result.output}\n${legend}`).toBe(true);
    expect(result.output).toContain(`SUCCESS: ${expanded.length} rules found`);
  });
});

interface Checked {
  readonly where: string;
  readonly promql: string;
  readonly legendFormat?: string;
  readonly listsLabel?: string;
}

function missingMetrics(list: readonly Checked[]): string[] {
  return list.flatMap((e) =>
    chronicleMetricNames(e.promql)
      .filter((name) => registeredMetric(name) === undefined)
      .map((name) => `${e.where}: ${name} is not in createMetrics()`),
  );
}

function labelProblems(list: readonly Checked[]): string[] {
  const problems: string[] = [];
  for (const e of list) {
    const names = chronicleMetricNames(e.promql)
      .map(registeredMetric)
      .filter((m) => m !== undefined);
    if (names.length === 0) continue;
    const labels = [...labelsUsed(e.promql), ...(e.listsLabel ? [e.listsLabel] : [])];
    for (const label of labels)
      if (!TARGET_LABELS.has(label) && !names.some((m) => hasLabel(m, label)))
        problems.push(`${e.where}: label ${label} is not a label of ${names.join(', ')}`);
  }
  return problems;
}

function legendProblems(list: readonly Checked[]): string[] {
  const problems: string[] = [];
  for (const e of list) {
    if (!e.legendFormat || e.legendFormat === '__auto') continue;
    const kept = aggregates(e.promql) ? new Set(groupingLabels(e.promql, 'by')) : undefined;
    const names = chronicleMetricNames(e.promql).map(registeredMetric);
    for (const label of legendLabels(e.legendFormat)) {
      const ok = kept
        ? kept.has(label)
        : TARGET_LABELS.has(label) || names.some((m) => m !== undefined && hasLabel(m, label));
      if (!ok)
        problems.push(
          `${e.where}: legend {{${label}}} but the query keeps ${kept ? [...kept].join(', ') : 'other labels'}`,
        );
    }
  }
  return problems;
}

describe("PromQL - Chronicle's metrics as its registry declares them", () => {
  it('every chronicle_* metric named exists in createMetrics() (histograms by their _bucket/_sum/_count)', () => {
    expect(missingMetrics(expanded)).toEqual([]);
  });

  it('every label an expression on chronicle_* metrics uses is declared by one of those metrics', () => {
    expect(labelProblems(expanded)).toEqual([]);
  });

  it('legends name labels the query keeps', () => {
    expect(legendProblems(expanded)).toEqual([]);
  });

  it('multi-value variables are only used in regex matchers', () => {
    const problems = found.flatMap((f) =>
      multiValueMisuse(f.expr, f.variables).map((raw) => `${f.where}: ${raw}`),
    );
    expect(problems).toEqual([]);
  });

  it('the checks catch a wrong metric, label, legend or matcher', () => {
    const probe = (promql: string, legendFormat?: string): Checked[] => [
      { where: 'probe', promql, legendFormat },
    ];
    expect(missingMetrics(probe('rate(chronicle_inputs_recieved_total[1m])'))).toHaveLength(1);
    expect(missingMetrics(probe('chronicle_buffer_events_bucket'))).toHaveLength(1); // a gauge has no buckets
    expect(
      missingMetrics(probe('histogram_quantile(0.9, rate(chronicle_flush_duration_seconds_bucket[1m]))')),
    ).toEqual([]);
    expect(labelProblems(probe('sum by (source) (rate(chronicle_inputs_received_total[1m]))'))).toEqual([
      'probe: label source is not a label of chronicle_inputs_received_total',
    ]);
    expect(
      labelProblems(probe('sum by (origin, stream) (rate(chronicle_inputs_received_total{job=~".*"}[1m]))')),
    ).toEqual([]);
    expect(
      legendProblems(probe('sum by (origin) (rate(chronicle_inputs_received_total[1m]))', '{{stream}}')),
    ).toHaveLength(1);
    expect(legendProblems(probe('chronicle_buffer_events', '{{instance}} {{origin}}'))).toEqual([
      'probe: legend {{origin}} but the query keeps other labels',
    ]);
    const instance: Variable = { name: 'instance', type: 'query', json: { multi: true, includeAll: true } };
    expect(multiValueMisuse('chronicle_ready{instance="$instance"}', [instance])).toEqual(['$instance']);
    expect(multiValueMisuse('chronicle_ready{instance=~"$instance"}', [instance])).toEqual([]);
  });
});
