/**
 * What the Prometheus and Tempo dashboards (Chronicle pipeline, Traces) need beyond panels.ts: Prometheus
 * targets, graphs and stats over them with thresholds and value texts, TraceQL search tables, Tempo's
 * service graph as a node graph, `label_values` variables, and the header link to the other Chronicle
 * dashboards.
 */
import type { DataSourceRef } from './model.js';
import { DATASOURCES } from './model.js';
import type { PanelSpec, Target } from './panels.js';
import { panel, queryVariable, stat, table, timeseries } from './panels.js';

/** A Prometheus query of a panel. */
export interface PromQuery {
  readonly expr: string;
  /** Legend template, e.g. `{{origin}} {{stream}}`; Grafana's automatic legend when absent. */
  readonly legend?: string;
  /** One value at the end of the range (stat panels) instead of a series. */
  readonly instant?: boolean;
}

/** Prometheus targets A, B, … in code mode. */
export function promTargets(
  queries: readonly PromQuery[],
  datasource: DataSourceRef = DATASOURCES.prometheus,
): Target[] {
  return queries.map((q, i) => ({
    refId: String.fromCharCode(65 + i),
    datasource,
    editorMode: 'code',
    expr: q.expr,
    legendFormat: q.legend ?? '__auto',
    range: q.instant !== true,
    instant: q.instant === true,
  }));
}

/** A graph or stat over Prometheus queries: what it answers, its unit, and how values read. */
export interface MetricPanel {
  readonly title: string;
  readonly description: string;
  /** A Grafana unit id (`s`, `bytes`, `percent`) or a custom one (`count:inputs/s`). */
  readonly unit: string;
  readonly queries: readonly PromQuery[];
  readonly w?: number;
  readonly h?: number;
  readonly min?: number;
  readonly max?: number;
  readonly decimals?: number;
  /** Threshold steps above the base colour (green): from this value on, this colour. */
  readonly thresholds?: readonly { value: number; color: string }[];
  /** Value → text and colour, e.g. 0 → "ok". */
  readonly valueText?: readonly { value: number; text: string; color: string }[];
}

function defaults(p: MetricPanel): Record<string, unknown> {
  const mappings = (p.valueText ?? []).length
    ? [
        {
          type: 'value',
          options: Object.fromEntries(
            (p.valueText ?? []).map((v, index) => [String(v.value), { text: v.text, color: v.color, index }]),
          ),
        },
      ]
    : [];
  return {
    ...(p.min !== undefined ? { min: p.min } : {}),
    ...(p.max !== undefined ? { max: p.max } : {}),
    ...(p.decimals !== undefined ? { decimals: p.decimals } : {}),
    thresholds: {
      mode: 'absolute',
      steps: [
        { color: 'green', value: null },
        ...(p.thresholds ?? []).map((s) => ({ color: s.color, value: s.value })),
      ],
    },
    mappings,
  };
}

/** A time series graph of Prometheus queries; `steps` for 0/1 state gauges. */
export function promGraph(p: MetricPanel & { stacked?: boolean; steps?: boolean }): PanelSpec {
  const spec = timeseries({
    title: p.title,
    description: p.description,
    datasource: DATASOURCES.prometheus,
    targets: promTargets(p.queries),
    unit: p.unit,
    w: p.w,
    h: p.h,
    stacked: p.stacked,
    defaults: defaults(p),
  });
  if (!p.steps) return spec;
  const fieldConfig = spec.panel.fieldConfig as { defaults: { custom: Record<string, unknown> } };
  fieldConfig.defaults.custom.lineInterpolation = 'stepAfter';
  return spec;
}

/** A big number per series of Prometheus queries, coloured by thresholds or value texts. */
export function promStat(p: MetricPanel & { sparkline?: boolean }): PanelSpec {
  return stat({
    title: p.title,
    description: p.description,
    datasource: DATASOURCES.prometheus,
    targets: promTargets(p.queries),
    unit: p.unit,
    w: p.w ?? 4,
    h: p.h ?? 4,
    defaults: { color: { mode: 'thresholds' }, ...defaults(p) },
    options: { graphMode: p.sparkline ? 'area' : 'none', textMode: 'auto' },
  });
}

/** A TraceQL search in Tempo as a table: one row per trace (nested matching spans), or per matching span. */
export function traceSearch(p: {
  title: string;
  description: string;
  query: string;
  tableType: 'traces' | 'spans';
  limit: number;
  /** Spans shown per trace (TraceQL `spss`). */
  spansPerTrace: number;
  w?: number;
  h?: number;
}): PanelSpec {
  return table({
    title: p.title,
    description: p.description,
    datasource: DATASOURCES.tempo,
    targets: [
      {
        refId: 'A',
        datasource: DATASOURCES.tempo,
        queryType: 'traceql',
        query: p.query,
        tableType: p.tableType,
        limit: p.limit,
        spss: p.spansPerTrace,
        filters: [],
      },
    ],
    w: p.w,
    h: p.h,
  });
}

/**
 * Tempo's service graph as a node graph. The Tempo data source builds it from the
 * `traces_service_graph_*` series in the Prometheus data source its provisioning names.
 */
export function serviceGraph(p: { title: string; description: string; w?: number; h?: number }): PanelSpec {
  return panel('nodeGraph', {
    title: p.title,
    description: p.description,
    datasource: DATASOURCES.tempo,
    targets: [{ refId: 'A', datasource: DATASOURCES.tempo, queryType: 'serviceMap', filters: [] }],
    w: p.w ?? 24,
    h: p.h ?? 12,
    options: { nodes: { mainStatUnit: 'ms/r', secondaryStatUnit: 'r/sec' }, edges: { mainStatUnit: 'ms/r' } },
  });
}

/** A multi-value variable (with All = any) over a label's values: `label_values(selector, label)`. */
export function labelValuesVariable(p: {
  name: string;
  label: string;
  selector: string;
  description: string;
}): Record<string, unknown> {
  return queryVariable({
    name: p.name,
    label: p.label,
    description: p.description,
    datasource: DATASOURCES.prometheus,
    query: `label_values(${p.selector}, ${p.label})`,
    multi: true,
    includeAll: true,
    allValue: '.*',
  });
}

/** The header dropdown listing every dashboard tagged `chronicle`, keeping the time range. */
export function chronicleDashboardsLink(): Record<string, unknown> {
  return {
    type: 'dashboards',
    title: 'Chronicle',
    tags: ['chronicle'],
    asDropdown: true,
    includeVars: false,
    keepTime: true,
    targetBlank: false,
    icon: 'external link',
    tooltip: '',
    url: '',
  };
}
