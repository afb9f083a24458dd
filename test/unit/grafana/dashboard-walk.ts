/**
 * Reading Grafana dashboard JSON the way the structural tests need it: every panel (rows' nested panels
 * included), every query (panel targets, template variables, annotations), every link, every data source
 * reference and every `$variable` reference, each with a place ("dashboard › panel › target A") that a
 * failure message can name.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DATASOURCES } from '../../../grafana/generate/model.js';

export type Json = Record<string, unknown>;

export const DASHBOARD_DIR = fileURLToPath(new URL('../../../grafana/dashboards/', import.meta.url));
export const DATASOURCES_YAML = fileURLToPath(
  new URL('../../../grafana/provisioning/datasources/datasources.yaml', import.meta.url),
);

export interface DashboardFileJson {
  /** File name under grafana/dashboards/. */
  readonly file: string;
  readonly text: string;
  readonly json: Json;
}

/** Every grafana/dashboards/*.json, parsed. */
export function readDashboardFiles(): DashboardFileJson[] {
  return readdirSync(DASHBOARD_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const text = readFileSync(DASHBOARD_DIR + file, 'utf8');
      return { file, text, json: JSON.parse(text) as Json };
    });
}

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const objects = (v: unknown): Json[] => (Array.isArray(v) ? v.filter(isObject) : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export interface Panel {
  readonly json: Json;
  readonly where: string;
}

/** Every panel, top-level and inside rows (collapsed rows keep theirs under `panels`). */
export function panelsOf(dashboard: Json): Panel[] {
  const name = str(dashboard.uid) ?? '?';
  const out: Panel[] = [];
  const visit = (list: unknown): void => {
    for (const p of objects(list)) {
      out.push({ json: p, where: `${name} › ${str(p.title) ?? `panel ${String(p.id)}`}` });
      if (p.type === 'row') visit(p.panels);
    }
  };
  visit(dashboard.panels);
  return out;
}

export interface Variable {
  readonly name: string;
  readonly type: string;
  readonly json: Json;
}

export function variablesOf(dashboard: Json): Variable[] {
  const templating = isObject(dashboard.templating) ? dashboard.templating : {};
  return objects(templating.list).map((v) => ({ name: str(v.name) ?? '', type: str(v.type) ?? '', json: v }));
}

export function annotationsOf(dashboard: Json): Json[] {
  const annotations = isObject(dashboard.annotations) ? dashboard.annotations : {};
  return objects(annotations.list);
}

export interface DataSourceRef {
  readonly type?: string;
  readonly uid?: string;
}

function refOf(v: unknown): DataSourceRef | undefined {
  if (typeof v === 'string') return { uid: v };
  if (isObject(v)) return { type: str(v.type), uid: str(v.uid) };
  return undefined;
}

export type QueryLanguage = 'sql' | 'promql' | 'traceql' | 'other';

const MODEL_TYPES = new Map<string, string>(Object.values(DATASOURCES).map((d) => [d.uid, d.type]));

/** The type of a data source the generator's model names by this uid (grafana/generate/model.ts). */
export function modelTypeOfUid(uid: string): string | undefined {
  return MODEL_TYPES.get(uid);
}

/** One query a dashboard runs, with the data source it runs on. */
export interface Query {
  readonly where: string;
  readonly datasource: DataSourceRef | undefined;
  readonly language: QueryLanguage;
  /** The query text (rawSql, expr, TraceQL); '' when the query has none (e.g. a Tempo service map). */
  readonly text: string;
  /** The panel that runs it, for panel queries. */
  readonly panel?: Json;
  /** The variable that runs it, for variable queries. */
  readonly variable?: Variable;
  readonly json: Json;
}

function languageOf(type: string | undefined): QueryLanguage {
  if (type === 'grafana-postgresql-datasource' || type === 'postgres') return 'sql';
  if (type === 'prometheus') return 'promql';
  if (type === 'tempo') return 'traceql';
  return 'other';
}

/** The text of a target or annotation query, whatever the data source calls it. */
function queryText(q: Json): string {
  return str(q.rawSql) ?? str(q.rawQuery) ?? str(q.expr) ?? str(q.query) ?? '';
}

/**
 * Every query: panel targets (data source from the target, else the panel), query variables (their
 * `query` is a string or an object holding one) and annotations (their own fields or a `target`).
 * `typeOfUid` resolves a reference that names only a uid.
 */
export function queriesOf(dashboard: Json, typeOfUid: (uid: string) => string | undefined): Query[] {
  const name = str(dashboard.uid) ?? '?';
  const resolve = (ref: DataSourceRef | undefined): DataSourceRef | undefined =>
    ref && ref.type === undefined && ref.uid !== undefined ? { ...ref, type: typeOfUid(ref.uid) } : ref;
  const out: Query[] = [];
  for (const panel of panelsOf(dashboard)) {
    const panelDs = refOf(panel.json.datasource);
    for (const target of objects(panel.json.targets)) {
      const ds = resolve(refOf(target.datasource) ?? panelDs);
      out.push({
        where: `${panel.where} › target ${str(target.refId) ?? '?'}`,
        datasource: ds,
        language: languageOf(ds?.type),
        text: queryText(target),
        panel: panel.json,
        json: target,
      });
    }
  }
  for (const variable of variablesOf(dashboard)) {
    if (variable.type !== 'query') continue;
    const ds = resolve(refOf(variable.json.datasource));
    const q = variable.json.query;
    const text = typeof q === 'string' ? q : isObject(q) ? queryText(q) : '';
    out.push({
      where: `${name} › variable ${variable.name}`,
      datasource: ds,
      language: languageOf(ds?.type),
      text,
      variable,
      json: variable.json,
    });
  }
  for (const annotation of annotationsOf(dashboard)) {
    const ds = resolve(refOf(annotation.datasource));
    const target = isObject(annotation.target) ? annotation.target : annotation;
    const text = queryText(target);
    // Grafana's built-in annotation query (dashboard annotations and alerts) has no query text.
    if (text === '' && (ds?.uid === '-- Grafana --' || ds?.type === 'grafana')) continue;
    out.push({
      where: `${name} › annotation ${str(annotation.name) ?? '?'}`,
      datasource: ds,
      language: languageOf(ds?.type),
      text,
      json: annotation,
    });
  }
  return out;
}

/** Where a data source is named: `datasource` (object or uid string) and `datasourceUid` keys anywhere. */
export function datasourceRefsOf(dashboard: Json): { where: string; ref: DataSourceRef }[] {
  const name = str(dashboard.uid) ?? '?';
  const out: { where: string; ref: DataSourceRef }[] = [];
  const walk = (v: unknown, path: string): void => {
    if (Array.isArray(v)) v.forEach((item, i) => walk(item, `${path}[${i}]`));
    if (!isObject(v)) return;
    for (const [key, value] of Object.entries(v)) {
      const here = `${path}.${key}`;
      if (key === 'datasource' && value !== null) {
        const ref = refOf(value);
        if (ref) out.push({ where: here, ref });
      } else if (key === 'datasourceUid' && typeof value === 'string') {
        out.push({ where: here, ref: { uid: value } });
      }
      walk(value, here);
    }
  };
  walk(dashboard, name);
  return out;
}

export interface Link {
  readonly where: string;
  readonly url: string;
  readonly title: string;
  /** The panel the link belongs to (panel links, data links, override links); none for dashboard links. */
  readonly panel?: Json;
}

/**
 * Every link with a URL: dashboard links, and in each panel anything holding a `url` (panel links, field
 * data links in defaults and overrides, table cell links), rows' nested panels as their own panels.
 */
export function linksOf(dashboard: Json): Link[] {
  const name = str(dashboard.uid) ?? '?';
  const out: Link[] = [];
  const walk = (v: unknown, path: string, panel: Json | undefined): void => {
    if (Array.isArray(v)) v.forEach((item, i) => walk(item, `${path}[${i}]`, panel));
    if (!isObject(v)) return;
    const url = str(v.url);
    if (url !== undefined) out.push({ where: path, url, title: str(v.title) ?? '', panel });
    for (const [key, value] of Object.entries(v)) {
      if (key === 'panels' && v.type === 'row') continue; // visited as panels of their own
      walk(value, `${path}.${key}`, panel);
    }
  };
  for (const link of objects(dashboard.links)) {
    const url = str(link.url);
    if (url !== undefined && url !== '')
      out.push({ where: `${name} › dashboard link`, url, title: str(link.title) ?? '' });
  }
  for (const panel of panelsOf(dashboard)) walk(panel.json, panel.where, panel.json);
  return out;
}

/** A `$name`, `${name}`, `${name.path:format}` or `[[name]]` reference, as Grafana's template service reads them. */
export interface VariableRef {
  readonly raw: string;
  readonly name: string;
  /** What follows the name after a dot, e.g. `fields.trace_id` in `${__data.fields.trace_id}`. */
  readonly path?: string;
  readonly format?: string;
}

const REF = /\$\{(\w+)(?:\.([^:}]+))?(?::([^}]+))?\}|\[\[(\w+?)(?::(\w+))?\]\]|\$(\w+)/g;

export function variableRefs(text: string): VariableRef[] {
  const out: VariableRef[] = [];
  for (const m of text.matchAll(REF)) {
    const name = m[1] ?? m[4] ?? m[6]!;
    out.push({ raw: m[0], name, path: m[2], format: m[3] ?? m[5] });
  }
  return out;
}

/** Replaces every variable reference with `value(ref)`. */
export function replaceRefs(text: string, value: (ref: VariableRef) => string): string {
  return text.replace(REF, (...m: string[]) => {
    const name = m[1] ?? m[4] ?? m[6]!;
    return value({ raw: m[0]!, name, path: m[2], format: m[3] ?? m[5] });
  });
}
