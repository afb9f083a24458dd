/**
 * The structural checks of the dashboards, each returning the problems it finds (an empty list when all
 * is well), so the tests can also prove a check catches what it should on a deliberately broken copy.
 */
import type { Json, Query, Variable, VariableRef } from './dashboard-walk.js';
import { isObject, linksOf, panelsOf, replaceRefs, variableRefs, variablesOf } from './dashboard-walk.js';
import { selectColumns } from './sql-columns.js';

/** Provisioned data sources: uid → type. */
export type Provisioned = ReadonlyMap<string, string>;

/** Grafana's built-in data sources, named by these uids. */
export const BUILTIN_DATASOURCES = new Set(['-- Grafana --', '-- Dashboard --', '-- Mixed --']);

/** Variables Grafana defines everywhere. */
const GLOBAL_VARIABLES = new Set([
  '__interval',
  '__interval_ms',
  '__rate_interval',
  '__rate_interval_ms',
  '__range',
  '__range_s',
  '__range_ms',
  '__from',
  '__to',
  '__dashboard',
  '__org',
  '__user',
  '__timezone',
  '__name',
]);

/** Macros of Grafana's SQL data sources (PostgreSQL). */
const SQL_MACROS = new Set([
  '__time',
  '__timeEpoch',
  '__timeFilter',
  '__timeFrom',
  '__timeTo',
  '__timeGroup',
  '__timeGroupAlias',
  '__unixEpochFilter',
  '__unixEpochFrom',
  '__unixEpochTo',
  '__unixEpochNanoFilter',
  '__unixEpochNanoFrom',
  '__unixEpochNanoTo',
  '__unixEpochGroup',
  '__unixEpochGroupAlias',
  '__schema',
  '__table',
  '__column',
]);

/** Variables only data links have: the clicked row, value, series or field. */
const LINK_VARIABLES: Record<string, RegExp> = {
  __data: /^(fields(\.[^.[\]]+|\[("[^"]+"|\d+)\])(\.text|\.raw|\.numeric)?|name|refId)$/,
  __value: /^(raw|numeric|text|time|calc)$/,
  __series: /^name$/,
  __field: /^(name|displayName|labels\.\w+|labels)$/,
  __url_time_range: /^$/,
  __all_variables: /^$/,
  __url: /^(path|params)$/,
};

function definedNames(dashboard: Json): Set<string> {
  return new Set(variablesOf(dashboard).map((v) => v.name));
}

/** Where a reference points to nothing: neither a dashboard variable nor a Grafana one allowed here. */
function unknownRef(ref: VariableRef, defined: Set<string>, extra: (ref: VariableRef) => boolean): boolean {
  if (defined.has(ref.name)) return ref.path !== undefined; // `${var.x}` has no meaning for a variable
  if (GLOBAL_VARIABLES.has(ref.name))
    return (
      ref.path !== undefined && ref.name !== '__dashboard' && ref.name !== '__user' && ref.name !== '__org'
    );
  return !extra(ref);
}

/** Queries that use a variable the dashboard does not define (SQL macros and Grafana's own count as defined). */
export function undefinedVariableProblems(dashboard: Json, queries: readonly Query[]): string[] {
  const defined = definedNames(dashboard);
  const problems: string[] = [];
  for (const q of queries) {
    const texts = [q.text, typeof q.json.legendFormat === 'string' ? q.json.legendFormat : ''];
    for (const text of texts)
      for (const ref of variableRefs(text)) {
        if (q.variable && ref.name === q.variable.name)
          problems.push(`${q.where}: refers to itself (${ref.raw})`);
        else if (unknownRef(ref, defined, (r) => q.language === 'sql' && SQL_MACROS.has(r.name)))
          problems.push(
            `${q.where}: ${ref.raw} is not a variable of the dashboard nor a Grafana variable or macro`,
          );
      }
  }
  return problems;
}

const TIME_MACRO =
  /\$__(timeFilter|unixEpochFilter|unixEpochNanoFilter)\s*\(|\$__(timeFrom|timeTo|unixEpochFrom|unixEpochTo|unixEpochNanoFrom|unixEpochNanoTo)\s*\(\s*\)/g;
const TRACE_FILTER = /\btrace_id\s*=\s*'\$\{?trace_id(?::\w+)?\}?'/g;
/** Functions whose argument syntax has a FROM that reads no table. */
const FROM_IN_FUNCTION = /\b(extract|substring|trim|overlay)\s*\((?:[^()]|\([^()]*\))*\)/gi;

/** Whether some occurrence of `re` sits in a condition (a WHERE, ON, AND or HAVING comes before it). */
function inCondition(sql: string, re: RegExp): boolean {
  for (const m of sql.matchAll(re)) if (/\b(WHERE|ON|AND|HAVING)\b/i.test(sql.slice(0, m.index))) return true;
  return false;
}

/**
 * Postgres queries that read a table yet neither filter on the dashboard time range (a time macro in a
 * WHERE, ON or HAVING condition) nor on the task's trace id (`trace_id = '${trace_id}'`).
 */
export function timeFilterProblems(queries: readonly Query[]): string[] {
  const problems: string[] = [];
  for (const q of queries) {
    if (q.language !== 'sql') continue;
    const sql = q.text;
    const readsTable = /\bFROM\b/i.test(sql.replace(FROM_IN_FUNCTION, ''));
    if (readsTable && !inCondition(sql, TIME_MACRO) && !inCondition(sql, TRACE_FILTER))
      problems.push(
        `${q.where}: neither filtered by the time range ($__timeFilter, $__timeFrom()…) nor by trace_id`,
      );
  }
  return problems;
}

/** The columns each panel's queries return, by panel; undefined when some query's columns are unknown. */
function panelColumns(panel: Json, queries: readonly Query[]): Set<string> | undefined {
  const mine = queries.filter((q) => q.panel === panel);
  if (mine.length === 0 || mine.some((q) => q.language !== 'sql')) return undefined;
  const names = new Set<string>();
  for (const q of mine) {
    const cols = selectColumns(q.text);
    if (cols.wildcard) return undefined;
    cols.names.forEach((n) => names.add(n));
  }
  // Columns a transformation renames or adds keep their new name available too.
  for (const t of Array.isArray(panel.transformations) ? panel.transformations.filter(isObject) : []) {
    const options = isObject(t.options) ? t.options : {};
    if (t.id === 'organize' && isObject(options.renameByName))
      for (const to of Object.values(options.renameByName))
        if (typeof to === 'string' && to !== '') names.add(to);
    if (t.id === 'calculateField' && typeof options.alias === 'string') names.add(options.alias);
  }
  return names;
}

/** The column a `${__data.fields…}` reference names, or undefined for an index. */
function fieldName(ref: VariableRef): string | undefined {
  const m = /^fields(?:\.([^.[\]]+)|\["([^"]+)"\])/.exec(ref.path ?? '');
  return m ? (m[1] ?? m[2]) : undefined;
}

/** Fills in every reference as Grafana would: a variable by its current value, anything else by a placeholder. */
function filled(url: string, variables: readonly Variable[]): string {
  return replaceRefs(url, (ref) => {
    const current = variables.find((v) => v.name === ref.name)?.json.current;
    const value = isObject(current) ? current.value : undefined;
    return typeof value === 'string' && value !== '' && !value.startsWith('$__') ? value : 'x';
  });
}

/**
 * Links: `/d/<uid>` names an existing dashboard and only its variables (`var-<name>`), an absolute URL
 * parses once variables are filled in, every `${…}` is a variable or a Grafana link variable, and every
 * `${__data.fields.<name>}` is a column the panel's SQL returns.
 */
export function linkProblems(
  dashboard: Json,
  all: ReadonlyMap<string, Json>,
  queries: readonly Query[],
): string[] {
  const defined = definedNames(dashboard);
  const problems: string[] = [];
  for (const link of linksOf(dashboard)) {
    const where = `${link.where} (${link.title || link.url})`;
    for (const text of [link.url, link.title])
      for (const ref of variableRefs(text))
        if (unknownRef(ref, defined, (r) => LINK_VARIABLES[r.name]?.test(r.path ?? '') === true))
          problems.push(
            `${where}: ${ref.raw} is neither a variable of the dashboard nor a Grafana link variable`,
          );

    for (const ref of variableRefs(link.url)) {
      if (ref.name !== '__data') continue;
      const name = fieldName(ref);
      if (name === undefined) continue;
      const columns = link.panel ? panelColumns(link.panel, queries) : undefined;
      if (!link.panel) problems.push(`${where}: ${ref.raw} outside a panel has no row to read`);
      else if (columns && !columns.has(name))
        problems.push(`${where}: ${ref.raw} but the panel's query returns only ${[...columns].join(', ')}`);
    }

    const url = filled(link.url, variablesOf(dashboard));
    if (url.startsWith('/')) {
      let parsed: URL;
      try {
        parsed = new URL(url, 'http://grafana.invalid');
      } catch {
        problems.push(`${where}: not a valid relative URL`);
        continue;
      }
      const d = /^\/d\/([^/]+)/.exec(parsed.pathname);
      if (!d) continue;
      const uid = decodeURIComponent(d[1]!);
      const target = all.get(uid);
      if (!target) {
        problems.push(`${where}: no dashboard has uid ${uid}`);
        continue;
      }
      const targetVariables = definedNames(target);
      for (const key of parsed.searchParams.keys())
        if (key.startsWith('var-') && !targetVariables.has(key.slice(4)))
          problems.push(`${where}: dashboard ${uid} has no variable ${key.slice(4)}`);
    } else {
      try {
        const parsed = new URL(url);
        if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
          problems.push(`${where}: ${parsed.protocol} is not a web link`);
      } catch {
        problems.push(`${where}: neither a relative link nor a URL`);
      }
    }
  }
  return problems;
}

/** Data source uids that are neither provisioned (with the type named) nor Grafana built-ins. */
export function datasourceProblems(
  refs: readonly { where: string; ref: { type?: string; uid?: string } }[],
  provisioned: Provisioned,
  variables: readonly Variable[],
): string[] {
  const problems: string[] = [];
  for (const { where, ref } of refs) {
    const uid = ref.uid;
    if (uid === undefined) {
      problems.push(`${where}: a data source without a uid`);
      continue;
    }
    if (BUILTIN_DATASOURCES.has(uid)) continue;
    const variable = /^\$\{?(\w+)\}?$/.exec(uid);
    if (variable) {
      if (!variables.some((v) => v.name === variable[1] && v.type === 'datasource'))
        problems.push(`${where}: ${uid} is not a data source variable`);
      continue;
    }
    const type = provisioned.get(uid);
    if (type === undefined) problems.push(`${where}: data source uid ${uid} is not provisioned`);
    else if (ref.type !== undefined && ref.type !== type)
      problems.push(`${where}: data source ${uid} is a ${type}, named here as a ${ref.type}`);
  }
  return problems;
}

/** Panel ids: present, numeric and unique within the dashboard (rows' nested panels included). */
export function panelIdProblems(dashboard: Json): string[] {
  const seen = new Map<number, string>();
  const problems: string[] = [];
  for (const panel of panelsOf(dashboard)) {
    const id = panel.json.id;
    if (typeof id !== 'number') problems.push(`${panel.where}: no numeric id`);
    else if (seen.has(id)) problems.push(`${panel.where}: id ${id} is also ${seen.get(id)}`);
    else seen.set(id, panel.where);
  }
  return problems;
}

const GRAPH_TYPES = new Set(['timeseries', 'stat', 'gauge', 'bargauge', 'barchart', 'histogram']);

/** Every panel says what it is (title, description), where it reads (datasource) and where it sits; graphs state a unit. */
export function panelProblems(dashboard: Json): string[] {
  const problems: string[] = [];
  for (const { json: p, where } of panelsOf(dashboard)) {
    if (typeof p.title !== 'string' || p.title.trim() === '') problems.push(`${where}: no title`);
    const grid = isObject(p.gridPos) ? p.gridPos : {};
    const [x, w, h] = [grid.x, grid.w, grid.h].map(Number);
    if (!(w! > 0 && h! > 0 && x! >= 0 && x! + w! <= 24))
      problems.push(`${where}: bad gridPos ${JSON.stringify(p.gridPos)}`);
    if (p.type === 'row') continue;
    if (typeof p.description !== 'string' || p.description.trim() === '')
      problems.push(`${where}: no description`);
    if (p.type !== 'text' && !p.datasource) problems.push(`${where}: no datasource`);
    const targets = Array.isArray(p.targets) ? p.targets.filter(isObject) : [];
    if (p.type !== 'text' && targets.length === 0) problems.push(`${where}: no query`);
    const refIds = targets.map((t) => t.refId);
    if (new Set(refIds).size !== refIds.length)
      problems.push(`${where}: duplicate refIds ${refIds.join(',')}`);
    if (GRAPH_TYPES.has(String(p.type))) {
      const defaults =
        isObject(p.fieldConfig) && isObject(p.fieldConfig.defaults) ? p.fieldConfig.defaults : {};
      if (typeof defaults.unit !== 'string' || defaults.unit === '') problems.push(`${where}: no unit`);
    }
  }
  return problems;
}

/**
 * Stat panels that leave their colour to Grafana's default thresholds (green, red from 80, which paints
 * any count from 80 on red): each must set a colour mode (fixed, or thresholds with its own steps).
 */
export function statColorProblems(dashboard: Json): string[] {
  const problems: string[] = [];
  for (const { json: p, where } of panelsOf(dashboard)) {
    if (p.type !== 'stat') continue;
    const defaults =
      isObject(p.fieldConfig) && isObject(p.fieldConfig.defaults) ? p.fieldConfig.defaults : {};
    const color = isObject(defaults.color) ? defaults.color : undefined;
    const steps =
      isObject(defaults.thresholds) && Array.isArray(defaults.thresholds.steps)
        ? defaults.thresholds.steps
        : [];
    if (color === undefined) problems.push(`${where}: no colour: Grafana's default thresholds colour it`);
    else if (color.mode === 'fixed' && typeof color.fixedColor !== 'string')
      problems.push(`${where}: a fixed colour without fixedColor`);
    else if (color.mode === 'thresholds' && steps.length === 0)
      problems.push(`${where}: coloured by thresholds it does not set (Grafana's default ones)`);
  }
  return problems;
}

/** macros.go's `$name(args)`: the time group macros and their arguments. */
const TIME_GROUP = /\$(__timeGroup|__timeGroupAlias|__unixEpochGroup|__unixEpochGroupAlias)\(([^)]*)\)/g;

/**
 * Postgres time_series queries grouping by interval without a fill argument: Grafana then draws a line
 * straight across the intervals that have no row, as if the values went on. And lines filled with NULL
 * whose points are never shown: a value alone between two gaps is then drawn nowhere (Grafana marks such
 * a value with a point only when point visibility is automatic).
 */
export function fillProblems(queries: readonly Query[]): string[] {
  const problems: string[] = [];
  for (const q of queries) {
    if (q.language !== 'sql' || !q.panel || q.json.format !== 'time_series') continue;
    const fieldConfig = isObject(q.panel.fieldConfig) ? q.panel.fieldConfig : {};
    const defaults = isObject(fieldConfig.defaults) ? fieldConfig.defaults : {};
    const custom = isObject(defaults.custom) ? defaults.custom : {};
    for (const m of q.text.matchAll(TIME_GROUP)) {
      const args = m[2]!.split(',').map((a) => a.trim());
      if (args.length !== 3)
        problems.push(
          `${q.where}: $${m[1]}(${m[2]}) has no fill (0 for counts, NULL for rates and percentiles)`,
        );
      else if (args[2] === 'NULL' && custom.drawStyle !== 'bars' && custom.showPoints === 'never')
        problems.push(
          `${q.where}: filled with NULL but points never shown: a value between two gaps is invisible`,
        );
    }
  }
  return problems;
}
