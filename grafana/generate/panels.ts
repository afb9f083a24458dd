/**
 * Small builders for the parts of Grafana's dashboard JSON model the generated dashboards use: panels
 * and their targets (Postgres, Prometheus, Tempo), field overrides and links, template variables,
 * annotations, dashboard links, and a flow layout that gives every panel its id and grid position.
 * Generic: no dashboard's content here.
 */
import { DATASOURCES, type Dashboard, type DataSourceRef } from './model.js';

/** The dashboard schema version written (Grafana 11 to 13 read it without migrating). */
export const SCHEMA_VERSION = 41;

/** A query of a panel, variable or annotation, as Grafana stores it. */
export type Target = Record<string, unknown> & { refId: string };

/** A Postgres query in code mode (`format` tells Grafana to build a table or time series). */
export function postgresTarget(
  datasource: DataSourceRef,
  rawSql: string,
  format: 'table' | 'time_series',
  refId = 'A',
): Target {
  return { refId, datasource, editorMode: 'code', rawQuery: true, format, rawSql: sql(rawSql) };
}

/** A TraceQL query (a trace id looks the trace up). */
export function tempoTarget(datasource: DataSourceRef, query: string, refId = 'A'): Target {
  return { refId, datasource, queryType: 'traceql', query, limit: 20 };
}

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

/**
 * SQL as written in the TypeScript, without the indentation of the template literal. As a tag
 * (sql`…${fragment}…`), a multi-line fragment is indented where it is inserted, so fragments may be
 * written flush left.
 */
export function sql(strings: TemplateStringsArray | string, ...values: readonly (string | number)[]): string {
  if (typeof strings === 'string') return dedent(strings);
  let text = '';
  strings.forEach((part, i) => {
    text += part;
    if (i >= values.length) return;
    const indent = /^ */.exec(text.slice(text.lastIndexOf('\n') + 1))![0];
    text += String(values[i]).split('\n').join(`\n${indent}`);
  });
  return dedent(text);
}

/** Leading blank lines and trailing space removed, and the indentation all lines share. */
function dedent(text: string): string {
  const lines = text.replace(/^\s*\n|\s+$/g, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

/** A link from a panel, a table cell or the dashboard's header. */
export interface Link {
  title: string;
  url: string;
  targetBlank?: boolean;
}

/** A data link (on a field: `${__value.raw}`, `${__data.fields.<column>}` refer to the clicked row). */
export function dataLink(title: string, url: string, targetBlank = false): Record<string, unknown> {
  return { title, url, targetBlank };
}

/** A field override: these properties for the field (column or series) named `name`. */
export function override(name: string, properties: Record<string, unknown>): Record<string, unknown> {
  return {
    matcher: { id: 'byName', options: name },
    properties: Object.entries(properties).map(([id, value]) => ({ id, value })),
  };
}

/** Overrides hiding columns a table needs only for its links. */
export function hiddenColumns(...names: string[]): Record<string, unknown>[] {
  return names.map((n) => override(n, { 'custom.hidden': true }));
}

/** A fixed color for a series or column. */
export function fixedColor(name: string, color: string): Record<string, unknown> {
  return override(name, { color: { mode: 'fixed', fixedColor: color } });
}

/** A panel before layout: its size in grid units (24 wide) and its model without id and gridPos. */
export interface PanelSpec {
  readonly w: number;
  readonly h: number;
  readonly panel: Record<string, unknown>;
}

export interface PanelOptions {
  title: string;
  /** What the panel shows, shown in its header's (i). */
  description: string;
  datasource: DataSourceRef;
  targets: Target[];
  /** Grid width (of 24) and height; defaults 12 × 8. */
  w?: number;
  h?: number;
  unit?: string;
  /** More fieldConfig.defaults (merged over the unit). */
  defaults?: Record<string, unknown>;
  overrides?: Record<string, unknown>[];
  options?: Record<string, unknown>;
  /** Links in the panel's header. */
  links?: Link[];
  transformations?: Record<string, unknown>[];
}

/** Any panel type. */
export function panel(type: string, o: PanelOptions): PanelSpec {
  return {
    w: o.w ?? 12,
    h: o.h ?? 8,
    panel: {
      type,
      title: o.title,
      description: o.description,
      datasource: o.datasource,
      targets: o.targets,
      fieldConfig: {
        defaults: { ...(o.unit !== undefined ? { unit: o.unit } : {}), ...o.defaults },
        overrides: o.overrides ?? [],
      },
      options: o.options ?? {},
      ...(o.links ? { links: o.links } : {}),
      ...(o.transformations ? { transformations: o.transformations } : {}),
    },
  };
}

/**
 * Where a bar sits against its time: -1 ends at it, 0 is centred on it (Grafana's default), 1 starts
 * at it (a day stamped at its midnight covers its day).
 */
export type BarAlignment = -1 | 0 | 1;

/**
 * A legend that stays readable with many series: a table on the right with these calculations
 * (Grafana reducer ids, e.g. `mean`, `max`), sorted by one of them (its display name, e.g. `Max`),
 * largest first.
 */
export function tableLegend(calcs: readonly string[], sortBy: string): Record<string, unknown> {
  return { displayMode: 'table', placement: 'right', showLegend: true, calcs, sortBy, sortDesc: true };
}

/**
 * A time series graph; `bars` draws bars (per-interval counts) aligned by `barAlignment`, `stacked`
 * stacks the series, `points` marks every value (sparse series, e.g. one per day), `gaps` says the
 * series has gaps (null-filled intervals): Grafana then marks a value standing alone between two gaps
 * with a point, which it draws only with its automatic point visibility (no line has length there).
 */
export function timeseries(
  o: PanelOptions & {
    bars?: boolean;
    barAlignment?: BarAlignment;
    stacked?: boolean;
    points?: boolean;
    gaps?: boolean;
    axisLabel?: string;
  },
): PanelSpec {
  return panel('timeseries', {
    ...o,
    defaults: {
      custom: {
        drawStyle: o.bars ? 'bars' : 'line',
        ...(o.bars && o.barAlignment !== undefined ? { barAlignment: o.barAlignment } : {}),
        lineWidth: 1,
        fillOpacity: o.bars ? 80 : 10,
        showPoints: o.points ? 'always' : o.gaps ? 'auto' : 'never',
        ...(o.points ? { pointSize: 6 } : {}),
        spanNulls: false,
        stacking: { mode: o.stacked ? 'normal' : 'none', group: 'A' },
        ...(o.axisLabel ? { axisLabel: o.axisLabel } : {}),
      },
      min: 0,
      ...o.defaults,
    },
    options: {
      legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
      tooltip: { mode: 'multi', sort: 'desc' },
      ...o.options,
    },
  });
}

/**
 * The colour of a stat that sets neither thresholds nor a colour: a fixed neutral one. Grafana's
 * default would be its default thresholds (green, red from 80), which paint any count of 80 or more red
 * whatever it means.
 */
export const NEUTRAL_STAT_COLOR = { mode: 'fixed', fixedColor: 'text' } as const;

/**
 * One or more big numbers (one per numeric column of the query's single row). Coloured by the
 * panel's own thresholds or colour when it sets them (`defaults.thresholds`, `defaults.color`), else in
 * a fixed neutral colour (per-field overrides still apply).
 */
export function stat(o: PanelOptions): PanelSpec {
  const defaults = o.defaults ?? {};
  const colored = defaults.thresholds !== undefined || defaults.color !== undefined;
  return panel('stat', {
    w: 6,
    h: 4,
    ...o,
    defaults: colored ? defaults : { color: NEUTRAL_STAT_COLOR, ...defaults },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'none',
      justifyMode: 'auto',
      textMode: 'value_and_name',
      orientation: 'auto',
      ...o.options,
    },
  });
}

/** A table; `sortBy` sorts it initially. */
export function table(o: PanelOptions & { sortBy?: { displayName: string; desc: boolean }[] }): PanelSpec {
  return panel('table', {
    ...o,
    defaults: { custom: { align: 'auto', cellOptions: { type: 'auto' }, inspect: true }, ...o.defaults },
    options: {
      showHeader: true,
      cellHeight: 'sm',
      footer: { show: false, reducer: ['sum'], countRows: false, fields: '' },
      ...(o.sortBy ? { sortBy: o.sortBy } : {}),
      ...o.options,
    },
  });
}

/** Horizontal bars, one per row: `xField` names the category column. */
export function barchart(o: PanelOptions & { xField: string }): PanelSpec {
  return panel('barchart', {
    ...o,
    defaults: { custom: { fillOpacity: 80, lineWidth: 1 }, min: 0, ...o.defaults },
    options: {
      xField: o.xField,
      orientation: 'horizontal',
      showValue: 'auto',
      stacking: 'none',
      barWidth: 0.8,
      groupWidth: 0.7,
      legend: { displayMode: 'list', placement: 'bottom', showLegend: false },
      tooltip: { mode: 'single', sort: 'none' },
      ...o.options,
    },
  });
}

/** A trace view (Tempo or Jaeger data source). */
export function traces(o: PanelOptions): PanelSpec {
  return panel('traces', { w: 24, h: 14, ...o });
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

/** The field defaults of a metric panel: bounds, decimals, thresholds and value texts. */
function metricDefaults(p: MetricPanel): Record<string, unknown> {
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
    defaults: metricDefaults(p),
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
    defaults: { color: { mode: 'thresholds' }, ...metricDefaults(p) },
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

/** A full-width row header. */
export function row(title: string): PanelSpec {
  return { w: 24, h: 1, panel: { type: 'row', title, collapsed: false, panels: [] } };
}

/**
 * Lays panels out left to right, wrapping at the grid's 24 columns (a line is as tall as its tallest
 * panel), and numbers them from 1 in that order.
 */
export function layout(specs: readonly PanelSpec[]): Record<string, unknown>[] {
  let x = 0;
  let y = 0;
  let lineHeight = 0;
  return specs.map((s, i) => {
    if (x + s.w > 24) {
      y += lineHeight;
      x = 0;
      lineHeight = 0;
    }
    const placed = { id: i + 1, gridPos: { h: s.h, w: s.w, x, y }, ...s.panel };
    x += s.w;
    lineHeight = Math.max(lineHeight, s.h);
    return placed;
  });
}

/** A free-text variable. */
export function textboxVariable(
  name: string,
  label: string,
  value: string,
  description: string,
): Record<string, unknown> {
  return {
    type: 'textbox',
    name,
    label,
    description,
    query: value,
    current: { text: value, value },
    options: [{ selected: true, text: value, value }],
    hide: 0,
  };
}

/** A variable chosen from fixed values (a custom value may be typed too). */
export function customVariable(
  name: string,
  label: string,
  values: readonly string[],
  value: string,
  description: string,
): Record<string, unknown> {
  return {
    type: 'custom',
    name,
    label,
    description,
    query: values.join(','),
    current: { text: value, value },
    options: values.map((v) => ({ selected: v === value, text: v, value: v })),
    multi: false,
    includeAll: false,
    allowCustomValue: true,
    hide: 0,
  };
}

/** A variable whose values a query gives. */
export function queryVariable(o: {
  name: string;
  label?: string;
  description: string;
  datasource: DataSourceRef;
  query: string;
  multi?: boolean;
  includeAll?: boolean;
  /** The raw text "All" stands for (inserted as it is); absent: the list of every value. */
  allValue?: string;
  /** 0 shown, 2 hidden. */
  hide?: 0 | 2;
  /** 1 on dashboard load, 2 on time range change. */
  refresh?: 1 | 2;
}): Record<string, unknown> {
  const query = sql(o.query);
  const all = o.includeAll ? { text: ['All'], value: ['$__all'] } : { text: '', value: '' };
  return {
    type: 'query',
    name: o.name,
    ...(o.label ? { label: o.label } : {}),
    description: o.description,
    datasource: o.datasource,
    query,
    definition: query,
    refresh: o.refresh ?? 2,
    sort: 1,
    multi: o.multi ?? false,
    includeAll: o.includeAll ?? false,
    ...(o.allValue !== undefined ? { allValue: sql(o.allValue) } : {}),
    current: o.multi ? all : { text: '', value: '' },
    options: [],
    hide: o.hide ?? 0,
    regex: '',
  };
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

/** Grafana's own annotations (alerts and manual ones), present on every dashboard. */
export function builtInAnnotation(): Record<string, unknown> {
  return {
    builtIn: 1,
    datasource: { type: 'grafana', uid: '-- Grafana --' },
    enable: true,
    hide: true,
    iconColor: 'rgba(0, 211, 255, 1)',
    name: 'Annotations & Alerts',
    type: 'dashboard',
  };
}

/** Annotations from a query: it returns `time`, `text` and `tags` (comma-separated). */
export function queryAnnotation(o: {
  name: string;
  datasource: DataSourceRef;
  target: Target;
  iconColor: string;
  enable?: boolean;
}): Record<string, unknown> {
  return {
    name: o.name,
    datasource: o.datasource,
    enable: o.enable ?? true,
    hide: false,
    iconColor: o.iconColor,
    target: o.target,
  };
}

/** A link in the dashboard's header. */
export function dashboardLink(o: Link & { tooltip: string; keepTime?: boolean }): Record<string, unknown> {
  return {
    type: 'link',
    title: o.title,
    tooltip: o.tooltip,
    url: o.url,
    icon: 'external link',
    targetBlank: o.targetBlank ?? false,
    keepTime: o.keepTime ?? false,
    includeVars: false,
    asDropdown: false,
    tags: [],
  };
}

/**
 * Grafana Explore on a Tempo data source, showing one trace: the same pane state as the API's
 * `links.grafana` (src/api/trace-detail.ts). The arguments are inserted as they are, so they may be
 * variables (`${otel_trace_id}`, `${__data.fields.trace_from_ms}`).
 */
export function tempoExploreUrl(
  tempoUid: string,
  traceId: string,
  fromMillis: string,
  toMillis: string,
): string {
  // Placeholders that URL encoding leaves as they are, replaced after encoding.
  const panes = {
    trace: {
      datasource: tempoUid,
      queries: [
        { refId: 'A', datasource: { type: 'tempo', uid: tempoUid }, queryType: 'traceql', query: 'XTRACEX' },
      ],
      range: { from: 'XFROMX', to: 'XTOX' },
    },
  };
  const query = new URLSearchParams({
    schemaVersion: '1',
    panes: JSON.stringify(panes),
    orgId: '1',
  }).toString();
  return `/explore?${query}`
    .replace('XTRACEX', () => traceId)
    .replace('XFROMX', () => fromMillis)
    .replace('XTOX', () => toMillis);
}

/** A dashboard with the defaults every generated one shares. */
export function dashboard(o: {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  time: { from: string; to: string };
  refresh: string;
  timezone?: string;
  variables?: Record<string, unknown>[];
  annotations?: Record<string, unknown>[];
  links?: Record<string, unknown>[];
  panels: readonly PanelSpec[];
}): Dashboard {
  return {
    uid: o.uid,
    title: o.title,
    description: o.description,
    tags: o.tags,
    editable: true,
    graphTooltip: 1,
    timezone: o.timezone ?? 'browser',
    fiscalYearStartMonth: 0,
    liveNow: false,
    schemaVersion: SCHEMA_VERSION,
    version: 1,
    time: o.time,
    timepicker: {},
    refresh: o.refresh,
    templating: { list: o.variables ?? [] },
    annotations: { list: [builtInAnnotation(), ...(o.annotations ?? [])] },
    links: o.links ?? [],
    panels: layout(o.panels),
  };
}
