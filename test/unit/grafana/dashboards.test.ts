import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { allDashboards, dashboardJson } from '../../../grafana/generate/build.js';
import { DASHBOARD_UIDS, DATASOURCES } from '../../../grafana/generate/model.js';
import type { Provisioned } from './dashboard-checks.js';
import {
  datasourceProblems,
  fillProblems,
  linkProblems,
  panelIdProblems,
  panelProblems,
  statColorProblems,
  timeFilterProblems,
  undefinedVariableProblems,
} from './dashboard-checks.js';
import type { Json } from './dashboard-walk.js';
import {
  DATASOURCES_YAML,
  datasourceRefsOf,
  modelTypeOfUid,
  queriesOf,
  readDashboardFiles,
  variableRefs,
  variablesOf,
} from './dashboard-walk.js';
import { selectColumns } from './sql-columns.js';

const files = readDashboardFiles();
const dashboards = files.map((f) => f.json);
const byUid = new Map(dashboards.map((d) => [String(d.uid), d]));

/** The data sources grafana/provisioning/datasources/datasources.yaml provisions: uid → type. */
function provisionedDatasources(): Provisioned {
  const doc = parse(readFileSync(DATASOURCES_YAML, 'utf8')) as {
    datasources?: { uid?: string; type?: string }[];
  };
  return new Map((doc.datasources ?? []).map((d) => [String(d.uid), String(d.type)]));
}

/** A reference that names only a uid gets its type from the generator's model (the uids the dashboards use). */
const queriesOfDashboard = (d: Json) => queriesOf(d, modelTypeOfUid);

describe('dashboards - generated, not hand-edited', () => {
  it('grafana/dashboards holds exactly what `npm run dashboards` writes', () => {
    const generated = allDashboards();
    expect(files.map((f) => f.file)).toEqual(generated.map((g) => g.file).sort());
    for (const g of generated) {
      const committed = files.find((f) => f.file === g.file);
      expect(committed?.text, `${g.file} differs from the generator: run npm run dashboards`).toBe(
        dashboardJson(g),
      );
    }
  });

  it('dashboard uids are unique and every uid of the contract has its dashboard', () => {
    const uids = dashboards.map((d) => d.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const uid of Object.values(DASHBOARD_UIDS)) expect(uids, `dashboard ${uid}`).toContain(uid);
  });
});

describe('dashboards - panels', () => {
  it('panel ids are unique within each dashboard, rows included', () => {
    expect(dashboards.flatMap(panelIdProblems)).toEqual([]);
  });

  it('every panel has a title, a description, a data source, a query and a place; graphs have a unit', () => {
    expect(dashboards.flatMap(panelProblems)).toEqual([]);
  });

  it('every stat sets its colour: a fixed one, or thresholds of its own (not Grafana’s default red from 80)', () => {
    expect(dashboards.flatMap(statColorProblems)).toEqual([]);
  });

  it('graphs with many series (one per agent) have a table legend on the right, sorted', () => {
    const perAgent = dashboards
      .flatMap((d) => queriesOfDashboard(d))
      .filter((q) => q.language === 'sql' && q.json.format === 'time_series' && /\bAS metric\b/.test(q.text));
    expect(perAgent.length).toBeGreaterThan(0);
    for (const q of perAgent) {
      const legend = ((q.panel!.options as Json).legend ?? {}) as Json;
      expect(legend, q.where).toMatchObject({ displayMode: 'table', placement: 'right', sortDesc: true });
      expect(legend.calcs as string[], q.where).toEqual(expect.arrayContaining([expect.any(String)]));
      const calcNames = (legend.calcs as string[]).map((c) => c[0]!.toUpperCase() + c.slice(1));
      expect(calcNames, `${q.where}: sortBy names one of its calcs`).toContain(legend.sortBy);
    }
  });
});

describe('dashboards - data sources', () => {
  it('every data source uid (panels, targets, variables, annotations, links) is provisioned or built in', () => {
    const provisioned = provisionedDatasources();
    for (const uid of Object.values(DATASOURCES).map((d) => d.uid))
      expect([...provisioned.keys()]).toContain(uid);
    expect(
      dashboards.flatMap((d) => datasourceProblems(datasourceRefsOf(d), provisioned, variablesOf(d))),
    ).toEqual([]);
  });
});

describe('dashboards - links', () => {
  it('links name existing dashboards, variables, Grafana link variables and returned columns, and parse as URLs', () => {
    expect(dashboards.flatMap((d) => linkProblems(d, byUid, queriesOfDashboard(d)))).toEqual([]);
  });
});

describe('dashboards - queries', () => {
  it('every variable a query uses is defined (or is a Grafana variable or SQL macro)', () => {
    expect(dashboards.flatMap((d) => undefinedVariableProblems(d, queriesOfDashboard(d)))).toEqual([]);
  });

  it('every Postgres query is filtered by the time range or by the trace id', () => {
    const queries = dashboards.flatMap(queriesOfDashboard);
    expect(timeFilterProblems(queries)).toEqual([]);
  });

  it('every Postgres time series grouped by interval fills the intervals without rows (no line across a gap)', () => {
    expect(fillProblems(dashboards.flatMap(queriesOfDashboard))).toEqual([]);
  });

  it('every query names its language: Postgres, Prometheus or Tempo', () => {
    const unknown = dashboards.flatMap(queriesOfDashboard).filter((q) => q.language === 'other');
    expect(unknown.map((q) => `${q.where}: ${JSON.stringify(q.datasource)}`)).toEqual([]);
  });
});

// The checks above must fail when the dashboards break: each is run here on a broken copy.
describe('dashboards - the checks catch breakage', () => {
  const table = (rawSql: string, url: string): Json => ({
    uid: 'probe',
    title: 'probe',
    templating: { list: [{ type: 'textbox', name: 'trace_id', query: '' }] },
    panels: [
      {
        id: 1,
        type: 'table',
        title: 'Recent failures',
        description: 'd',
        gridPos: { x: 0, y: 0, w: 24, h: 8 },
        datasource: DATASOURCES.postgres,
        targets: [{ refId: 'A', datasource: DATASOURCES.postgres, rawSql, format: 'table' }],
        fieldConfig: {
          defaults: {},
          overrides: [
            {
              matcher: { id: 'byName', options: 'trace_id' },
              properties: [{ id: 'links', value: [{ title: 'trace', url }] }],
            },
          ],
        },
      },
    ],
  });
  const checkLinks = (d: Json): string[] =>
    linkProblems(d, new Map([...byUid, ['probe', d]]), queriesOfDashboard(d));

  it('select lists give the names PostgreSQL gives the columns', () => {
    expect(
      selectColumns(
        'SELECT t.trace_id, chronicle_otel_trace_id(t.trace_id) AS otel_trace_id, status, count(*) n, x::text, \'a, from b\' AS "Label" FROM swarm_traces t WHERE $__timeFilter(t.created_at)',
      ),
    ).toEqual({ names: ['trace_id', 'otel_trace_id', 'status', 'n', 'x', 'Label'], wildcard: false });
    expect(
      selectColumns(
        "WITH w AS (SELECT a, b FROM t WHERE $__timeFilter(c)) SELECT $__timeGroupAlias(c, '1m'), count(*) FILTER (WHERE b = 'failed') AS failed, max(b), CASE WHEN a THEN 1 ELSE 0 END FROM w GROUP BY 1",
      ),
    ).toEqual({ names: ['time', 'failed', 'max', '?column?'], wildcard: false });
    expect(
      selectColumns('SELECT DISTINCT ON (agent) agent AS __text, agent AS __value FROM x').names,
    ).toEqual(['__text', '__value']);
    expect(selectColumns('SELECT e.* FROM swarm_events e').wildcard).toBe(true);
  });

  it('a link to a column the query no longer returns (renamed) is caught', () => {
    const sql = (alias: string) =>
      `SELECT trace_id, chronicle_otel_trace_id(trace_id) AS ${alias} FROM swarm_traces WHERE $__timeFilter(created_at)`;
    const url = 'http://localhost:16686/trace/${__data.fields.otel_trace_id}';
    expect(checkLinks(table(sql('otel_trace_id'), url))).toEqual([]);
    expect(checkLinks(table(sql('otel_id'), url))).toEqual([
      expect.stringContaining(
        "${__data.fields.otel_trace_id} but the panel's query returns only trace_id, otel_id",
      ),
    ]);
  });

  it("every real link to a query's column is caught when the column or the link is renamed", () => {
    for (const d of dashboards)
      for (const q of queriesOfDashboard(d)) {
        if (q.language !== 'sql' || !q.panel) continue;
        const panelId = q.panel.id;
        const linked = new Set(JSON.stringify(q.panel).match(/\$\{__data\.fields\.(\w+)\}/g) ?? []);
        for (const ref of linked) {
          const column = /fields\.(\w+)/.exec(ref)![1]!;
          // The link renamed: it names a column the query does not return.
          const relinked = JSON.parse(
            JSON.stringify(d).replaceAll(ref, `\${__data.fields.${column}_renamed}`),
          ) as Json;
          expect(checkLinks(relinked).join('\n'), `${q.where}: link to ${column}_renamed`).toContain(
            `\${__data.fields.${column}_renamed}`,
          );
          // The query's alias renamed: the link names a column the query no longer returns.
          const alias = new RegExp(`\\bAS\\s+"?${column}"?(?=\\W|$)`, 'i');
          if (!alias.test(q.text)) continue;
          const broken = structuredClone(d);
          const target = queriesOfDashboard(broken).find(
            (b) => b.where === q.where && b.panel?.id === panelId,
          )!;
          target.json.rawSql = q.text.replace(alias, `AS ${column}_renamed`);
          expect(checkLinks(broken).join('\n'), `${q.where}: alias ${column} renamed`).toContain(ref);
        }
      }
  });

  it('links to unknown dashboards, variables or Grafana variables, and malformed URLs are caught', () => {
    const sql = 'SELECT trace_id FROM swarm_traces WHERE $__timeFilter(created_at)';
    const problems = (url: string) => checkLinks(table(sql, url));
    expect(problems('/d/chronicle-nope?var-trace_id=${__data.fields.trace_id}')).toEqual([
      expect.stringContaining('no dashboard has uid chronicle-nope'),
    ]);
    expect(problems('/d/probe?var-agent=${__data.fields.trace_id}')).toEqual([
      expect.stringContaining('dashboard probe has no variable agent'),
    ]);
    expect(problems('/d/probe?var-trace_id=${__data.fields.trace_id}&from=${__from}&x=${nosuch}')).toEqual([
      expect.stringContaining('${nosuch} is neither a variable'),
    ]);
    expect(problems('/d/probe?var-trace_id=${__value.rare}')).toEqual([
      expect.stringContaining('${__value.rare}'),
    ]);
    expect(problems('http://[jaeger:16686/trace/${__data.fields.trace_id}')).toEqual([
      expect.stringContaining('neither a relative link nor a URL'),
    ]);
    expect(problems('/d/probe?var-trace_id=${__data.fields.trace_id}&${__url_time_range}')).toEqual([]);
    // A variable is filled in with its current value, as Grafana does: a base URL in a variable works.
    const withBase = table(sql, '${jaeger_url:raw}/trace/${__data.fields.trace_id}');
    (withBase.templating as { list: Json[] }).list.push({
      type: 'textbox',
      name: 'jaeger_url',
      query: 'http://localhost:16686',
      current: { text: 'http://localhost:16686', value: 'http://localhost:16686' },
    });
    expect(checkLinks(withBase)).toEqual([]);
  });

  it('a Postgres query without a time or trace filter is caught, and an undefined variable too', () => {
    const queries = (rawSql: string) => queriesOfDashboard(table(rawSql, '/d/probe'));
    expect(timeFilterProblems(queries("SELECT * FROM swarm_events WHERE event_type = 'x'"))).toHaveLength(1);
    expect(timeFilterProblems(queries('SELECT $__timeFrom() AS t, * FROM swarm_events'))).toHaveLength(1);
    expect(
      timeFilterProblems(
        queries('SELECT extract(epoch FROM $__timeTo()) AS t, * FROM swarm_events WHERE $__timeFilter(x)'),
      ),
    ).toEqual([]);
    expect(
      timeFilterProblems(queries("SELECT chronicle_otel_trace_id('${trace_id}') AS otel_trace_id")),
    ).toEqual([]);
    expect(timeFilterProblems(queries("SELECT * FROM swarm_events WHERE trace_id = '${trace_id}'"))).toEqual(
      [],
    );
    expect(timeFilterProblems(queries('SELECT * FROM swarm_events WHERE $__timeFilter(timestamp)'))).toEqual(
      [],
    );
    expect(
      timeFilterProblems(
        queries(
          'SELECT * FROM agent_metrics WHERE metric_date BETWEEN $__timeFrom()::date AND $__timeTo()::date',
        ),
      ),
    ).toEqual([]);
    const probe = table(
      "SELECT * FROM t WHERE $__timeFilter(x) AND a = '$agent' AND $__timeFilte(y)",
      '/d/probe',
    );
    expect(undefinedVariableProblems(probe, queriesOfDashboard(probe))).toEqual([
      expect.stringContaining('$agent is not a variable'),
      expect.stringContaining('$__timeFilte is not a variable'),
    ]);
  });

  it('a stat left to Grafana’s default thresholds and an interval series without fill are caught', () => {
    const stats = (defaults: Json): Json => ({
      uid: 'probe',
      panels: [{ id: 1, type: 'stat', title: 's', fieldConfig: { defaults } }],
    });
    expect(statColorProblems(stats({ unit: 'short' }))).toEqual([expect.stringContaining('no colour')]);
    expect(statColorProblems(stats({ color: { mode: 'thresholds' } }))).toEqual([
      expect.stringContaining('thresholds it does not set'),
    ]);
    expect(statColorProblems(stats({ color: { mode: 'fixed', fixedColor: 'text' } }))).toEqual([]);
    const series = (rawSql: string, format = 'time_series', showPoints = 'auto') =>
      queriesOfDashboard({
        uid: 'probe',
        panels: [
          {
            id: 1,
            type: 'timeseries',
            title: 't',
            datasource: DATASOURCES.postgres,
            targets: [{ refId: 'A', rawSql, format }],
            fieldConfig: { defaults: { custom: { drawStyle: 'line', showPoints } } },
          },
        ],
      });
    const grouped = (args: string) =>
      `SELECT $__timeGroupAlias(${args}), count(*) FROM t GROUP BY 1 ORDER BY 1`;
    expect(fillProblems(series(grouped('c, $__interval')))).toEqual([expect.stringContaining('has no fill')]);
    expect(fillProblems(series(grouped('c, $__interval, 0')))).toEqual([]);
    expect(fillProblems(series(grouped('c, $__interval, NULL')))).toEqual([]);
    expect(fillProblems(series(grouped('c, $__interval'), 'table'))).toEqual([]);
    expect(fillProblems(series(grouped('c, $__interval, NULL'), 'time_series', 'never'))).toEqual([
      expect.stringContaining('points never shown'),
    ]);
    expect(fillProblems(series(grouped('c, $__interval, 0'), 'time_series', 'never'))).toEqual([]);
  });

  it('unknown data source uids, wrong types, duplicate ids and missing units are caught', () => {
    const provisioned: Provisioned = new Map([['prometheus', 'prometheus']]);
    expect(
      datasourceProblems(
        [
          { where: 'a', ref: { type: 'prometheus', uid: 'prom' } },
          { where: 'b', ref: { type: 'tempo', uid: 'prometheus' } },
          { where: 'c', ref: { type: 'grafana', uid: '-- Grafana --' } },
        ],
        provisioned,
        [],
      ),
    ).toEqual([
      expect.stringContaining('prom is not provisioned'),
      expect.stringContaining('is a prometheus, named here as a tempo'),
    ]);
    const rows: Json = {
      uid: 'probe',
      panels: [
        {
          id: 1,
          type: 'row',
          title: 'r',
          gridPos: { x: 0, y: 0, w: 24, h: 1 },
          panels: [{ id: 2, type: 'stat', title: 's' }],
        },
        {
          id: 2,
          type: 'timeseries',
          title: 't',
          description: 'd',
          datasource: DATASOURCES.prometheus,
          gridPos: { x: 0, y: 1, w: 12, h: 8 },
          targets: [{ refId: 'A', expr: 'up' }],
          fieldConfig: { defaults: {} },
        },
      ],
    };
    expect(panelIdProblems(rows)).toEqual([expect.stringContaining('id 2 is also probe › s')]);
    expect(panelProblems(rows)).toEqual(
      expect.arrayContaining([
        expect.stringContaining('probe › s: no description'),
        expect.stringContaining('probe › t: no unit'),
      ]),
    );
  });

  it('variable references are read the way Grafana reads them', () => {
    expect(
      variableRefs('$a ${b} ${__data.fields.otel_trace_id} ${__from:date:iso} [[c:raw]] ${d:queryparam}'),
    ).toEqual([
      { raw: '$a', name: 'a', path: undefined, format: undefined },
      { raw: '${b}', name: 'b', path: undefined, format: undefined },
      {
        raw: '${__data.fields.otel_trace_id}',
        name: '__data',
        path: 'fields.otel_trace_id',
        format: undefined,
      },
      { raw: '${__from:date:iso}', name: '__from', path: undefined, format: 'date:iso' },
      { raw: '[[c:raw]]', name: 'c', path: undefined, format: 'raw' },
      { raw: '${d:queryparam}', name: 'd', path: undefined, format: 'queryparam' },
    ]);
  });
});
