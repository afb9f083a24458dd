/**
 * The Grafana dashboards' Postgres SQL (grafana/dashboards/*.json, or the files at a git revision), with
 * Grafana's macros replaced as its Postgres data source replaces them, for the benchmarks that time it
 * straight on Postgres (bench:scale, bench/finished-panels.ts).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** One query of a dashboard: a panel target or a query variable. */
export interface DashboardQuery {
  /** `<dashboard file without .json>: <panel title>` (with ` (<refId>)` past the first target), or `: variable $<name>`. */
  name: string;
  sql: string;
}

const DIR = 'grafana/dashboards';

/** The dashboard files, by name: the working tree's, or those committed at `rev`. */
export function readDashboards(rev?: string): { file: string; text: string }[] {
  if (rev === undefined) {
    return readdirSync(DIR)
      .sort()
      .map((file) => ({ file, text: readFileSync(join(DIR, file), 'utf8') }));
  }
  return execFileSync('git', ['ls-tree', '--name-only', `${rev}:${DIR}`], { encoding: 'utf8' })
    .split('\n')
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({
      file,
      text: execFileSync('git', ['show', `${rev}:${DIR}/${file}`], { encoding: 'utf8' }),
    }));
}

/** Every panel target's and query variable's SQL of the dashboards (the working tree's by default). */
export function dashboardQueries(files = readDashboards()): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const { file, text } of files) {
    const dashboard = JSON.parse(text) as {
      panels?: Panel[];
      templating?: { list?: { name: string; type: string; query?: unknown }[] };
    };
    interface Panel {
      title?: string;
      panels?: Panel[];
      targets?: { rawSql?: string; refId?: string }[];
    }
    const walk = (panels: Panel[]) => {
      for (const p of panels) {
        if (p.panels) walk(p.panels);
        for (const t of p.targets ?? []) {
          if (t.rawSql)
            out.push({
              name: `${file.replace('.json', '')}: ${p.title}${t.refId !== 'A' ? ` (${t.refId})` : ''}`,
              sql: t.rawSql,
            });
        }
      }
    };
    walk(dashboard.panels ?? []);
    for (const v of dashboard.templating?.list ?? []) {
      if (v.type === 'query' && typeof v.query === 'string' && /\bSELECT\b/i.test(v.query)) {
        out.push({ name: `${file.replace('.json', '')}: variable $${v.name}`, sql: v.query });
      }
    }
  }
  return out;
}

/**
 * `sql` with Grafana's macros replaced for the window [from, to] (epoch milliseconds) and a group
 * interval of `intervalSeconds`, and the dashboards' variables by `vars`; throws if a macro is left.
 */
export function expandMacros(
  sql: string,
  w: { from: number; to: number; intervalSeconds: number },
  vars: { agents: string[]; traceId: string },
): string {
  const from = `'${new Date(w.from).toISOString()}'`;
  const to = `'${new Date(w.to).toISOString()}'`;
  const s = w.intervalSeconds;
  const out = sql
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_, col: string) => `${col.trim()} BETWEEN ${from} AND ${to}`)
    .replace(/\$__timeFrom\(\)/g, from)
    .replace(/\$__timeTo\(\)/g, to)
    .replace(
      /\$__timeGroupAlias\(([^,]+),[^)]*\)/g,
      (_, col: string) => `floor(extract(epoch from ${col.trim()})/${s})*${s} AS "time"`,
    )
    .replace(/\$__interval_ms/g, String(s * 1000))
    .replace(/\$agent\b/g, vars.agents.map((a) => `'${a}'`).join(','))
    .replace(/\$stuck_after\b/g, '30')
    .replace(/\$\{trace_id\}/g, vars.traceId.replaceAll("'", "''"));
  if (/\$/.test(out.replace(/'[^']*'/g, ''))) throw new Error(`a macro is left in:\n${out}`);
  return out;
}
