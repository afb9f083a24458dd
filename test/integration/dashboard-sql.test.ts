/**
 * Every Postgres query of every committed dashboard (grafana/dashboards/*.json: panels, variables,
 * annotations), expanded the way Grafana expands its macros and variables, run on a database Chronicle
 * itself filled through its ingest: two simulator runs over NATS (yesterday and today, dead letters
 * included, verified), a few stuck tasks, a task whose id has quotes, rejects and a write-failure alert.
 * Each query must return the columns and types its panel needs and at least one row; and, with
 * sequential scans disabled, Postgres must find a plan that reads every table through an index.
 */
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DATASOURCES } from '../../grafana/generate/model.js';
import { traceLinks } from '../../src/api/trace-detail.js';
import { WRITE_FAILURE_SUBJECT } from '../../src/chronicle.js';
import { type SimulationResult, runSimulation } from '../../src/simulate/simulate.js';
import { otelTraceId } from '../../src/spans/ids.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { ALL_VALUE, type SqlVariable, expandGrafanaSql } from '../support/grafana-sql.js';
import { NATS_URL, describeWithServices } from '../support/services.js';
import {
  modelTypeOfUid,
  panelsOf,
  queriesOf,
  readDashboardFiles,
  variablesOf as templateVariables,
} from '../unit/grafana/dashboard-walk.js';

const POSTGRES_UID = DATASOURCES.postgres.uid;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** The interval Grafana would give a panel over the test's ~1-day range (its SQL minimum is 1m). */
const INTERVAL_MILLIS = 5 * MINUTE;

const TRAFFIC = {
  agents: 4,
  errorRate: 0.1,
  timeoutRate: 0.08,
  retryRate: 0.5,
  duplicateRate: 0.02,
  outOfOrderRate: 0.02,
  unassignableRate: 0.03,
  count: 6_000,
};

/** A task id with both kinds of quote: found only if the dashboards quote it right. */
const QUOTED_TRACE = `dash-it's a "quoted" task`;

type Json = Record<string, unknown>;

/** One Postgres query of a dashboard, with what its panel needs from the result. */
interface DashboardQuery {
  file: string;
  where: string;
  kind: 'panel' | 'variable' | 'annotation';
  sql: string;
  format: 'table' | 'time_series';
  panel?: Json;
  refId?: string;
}

function isPostgres(ds: unknown): boolean {
  return typeof ds === 'object' && ds !== null && (ds as Json).uid === POSTGRES_UID;
}

/** Panels, nested row panels included. */
const allPanels = (dashboard: Json): Json[] => panelsOf(dashboard).map((p) => p.json);

const templating = (dashboard: Json): Json[] => templateVariables(dashboard).map((v) => v.json);

/** Every Postgres query of a dashboard: panel targets, query variables and annotations. */
function postgresQueries(file: string, dashboard: Json): DashboardQuery[] {
  return queriesOf(dashboard, modelTypeOfUid)
    .filter((q) => q.language === 'sql')
    .map((q) => ({
      file,
      where: q.where,
      kind: q.panel ? 'panel' : q.variable ? 'variable' : 'annotation',
      sql: q.text,
      format: q.panel && q.json.format === 'time_series' ? 'time_series' : 'table',
      panel: q.panel,
      refId: q.panel ? String(q.json.refId) : undefined,
    }));
}

function variableSql(v: Json): string {
  const q = v.query;
  return typeof q === 'string' ? q : String((q as Json).rawSql ?? (q as Json).query);
}

const dashboards = readDashboardFiles().map(({ file, json }) => ({ file, dashboard: json }));

/** Postgres type oids by what a panel can do with them. */
const NUMERIC = new Set([20, 21, 23, 700, 701, 1700]);
const TIME = new Set([1082, 1114, 1184]);
const TEXT = new Set([25, 1043, 19, 18]);

interface Result {
  sql: string;
  columns: { name: string; type: number }[];
  rows: Json[];
}

describeWithServices('dashboard sql - every dashboard query on traffic Chronicle ingested', () => {
  let env: ChronicleTestEnv;
  let chronicle: TestChronicle;
  let pool: pg.Pool;
  const now = Date.now();
  const range = { from: new Date(now - 27 * HOUR), to: new Date(now + 5 * MINUTE) };
  /** The last hour: a few of the seeded tasks, none of the simulator's. */
  const recent = { from: new Date(now - HOUR), to: new Date(now + 5 * MINUTE) };
  let runs: SimulationResult[] = [];

  beforeAll(async () => {
    env = await createChronicleTestEnv();
    chronicle = await env.start();
    pool = env.db.pool;
    // Yesterday's and today's traffic, over NATS so dead letters land in swarm_dlq; each run's last
    // tasks stay assigned or in progress (hours old: stuck).
    runs = await Promise.all(
      [
        { seed: 21, startTimeMillis: now - 26 * HOUR },
        { seed: 22, startTimeMillis: now - 3 * HOUR },
      ].map((run) =>
        runSimulation({
          ...TRAFFIC,
          ...run,
          target: { kind: 'nats', url: NATS_URL, subjectPrefix: env.subject('') },
          verify: { apiUrl: chronicle.url, timeoutMillis: 30_000, pollIntervalMillis: 200 },
        }),
      ),
    );
    await seedEdgeCases();
    await pool.query('ANALYZE');
  }, 60_000);

  afterAll(async () => {
    await env?.cleanup();
  });

  /** Tasks stuck and not, a task with quotes in its id (failed, dead-lettered), rejects, a write-failure alert. */
  async function seedEdgeCases(): Promise<void> {
    const at = (minutesAgo: number) => new Date(now - minutesAgo * MINUTE).toISOString();
    let n = 0;
    const event = (trace_id: string, event_type: string, timestamp: string, metadata: Json = {}) =>
      env.publish(`swarm.${event_type}`, {
        event_id: `dash-${++n}`,
        trace_id,
        source: 'dashboard-test',
        event_type,
        timestamp,
        metadata,
      });
    await event('dash-stuck-assigned', 'task.created', at(41), { title: 'Stuck before starting' });
    await event('dash-stuck-assigned', 'task.assigned', at(40), { agent: 'dash-agent' });
    await event('dash-stuck-started', 'task.created', at(52), { title: 'Stuck while working' });
    await event('dash-stuck-started', 'task.assigned', at(51), { agent: 'dash-agent' });
    await event('dash-stuck-started', 'task.started', at(50), { agent: 'dash-agent' });
    await event('dash-fresh-assigned', 'task.created', at(3), { title: 'Just assigned' });
    await event('dash-fresh-assigned', 'task.assigned', at(2), { agent: 'dash-agent' });
    const created = { trace_id: QUOTED_TRACE, event_type: 'task.created', timestamp: at(35), metadata: {} };
    await event(QUOTED_TRACE, 'task.created', at(35), { title: 'Quotes "everywhere"' });
    await event(QUOTED_TRACE, 'task.assigned', at(34), { agent: 'dash-agent' });
    await event(QUOTED_TRACE, 'task.started', at(33), { agent: 'dash-agent' });
    await event(QUOTED_TRACE, 'task.failed', at(30), { agent: 'dash-agent', error: 'can\'t parse "input"' });
    await env.publish('dlq.task', {
      dlq_id: 'dash-dlq-1',
      original_subject: 'swarm.task.created',
      original_payload: created,
      reason: 'poison_message',
      reason_detail: 'the worker crashed on it',
      failed_at: at(29),
      retry_count: 3,
      max_retries: 3,
      source: 'worker',
      recoverable: false,
    });
    await env.publish(WRITE_FAILURE_SUBJECT, {
      event_id: 'dash-write-failure',
      trace_id: 'chronicle',
      source: 'chronicle',
      event_type: 'system.chronicle.write_failure',
      timestamp: at(20),
      metadata: {
        consecutiveFailures: 3,
        batchSize: 120,
        error: 'connection terminated',
        buffer_events: 120,
      },
    });
    await env.publish('swarm.task.created', 'not json');
    await env.publish('swarm.task.created', { event_type: 'task.created', timestamp: at(10) });
    const response = await fetch(`${chronicle.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        { trace_id: 'dash-bad-time', event_type: 'task.created', timestamp: 'yesterday' },
      ]),
    });
    expect(response.status).toBe(200);
    await waitFor(
      async () => {
        const { rows } = await pool.query<{ ok: boolean }>(
          `SELECT (SELECT count(*) FROM swarm_events WHERE source = 'dashboard-test') = ${n}
             AND EXISTS (SELECT 1 FROM swarm_dlq WHERE dlq_id = 'dash-dlq-1')
             AND EXISTS (SELECT 1 FROM swarm_events WHERE event_type = 'system.chronicle.write_failure')
             AND (SELECT count(*) FROM chronicle_rejects) >= 3 AS ok`,
        );
        return rows[0]!.ok;
      },
      15_000,
      'the edge cases to be stored',
    );
  }

  /** The dashboard's variables at their defaults (query variables run), with `values` overriding some. */
  async function variablesOf(
    dashboard: Json,
    values: Record<string, SqlVariable['value']> = {},
  ): Promise<SqlVariable[]> {
    const variables: SqlVariable[] = [];
    for (const v of templating(dashboard)) {
      const name = String(v.name);
      const base = {
        name,
        multi: v.multi === true,
        includeAll: v.includeAll === true,
        allValue: typeof v.allValue === 'string' ? v.allValue : null,
      };
      if (v.type === 'query') {
        const result = await run(variableSql(v), variables);
        const options = result.rows.map((r) => String(Object.values(r)[0]));
        // Grafana's default: All where the variable has it, else the first value.
        variables.push({
          ...base,
          options,
          value: values[name] ?? (v.includeAll ? ALL_VALUE : (options[0] ?? '')),
        });
      } else {
        const current = (v.current as Json | undefined)?.value;
        variables.push({
          ...base,
          value:
            values[name] ??
            (typeof current === 'string' ? current : typeof v.query === 'string' ? v.query : ''),
        });
      }
    }
    return variables;
  }

  async function run(
    rawSql: string,
    variables: readonly SqlVariable[],
    window: { from: Date; to: Date } = range,
  ): Promise<Result> {
    const sql = expandGrafanaSql(rawSql, { ...window, intervalMillis: INTERVAL_MILLIS, variables });
    const result = await pool.query<Json>(sql);
    return {
      sql,
      columns: result.fields.map((f) => ({ name: f.name, type: f.dataTypeID })),
      rows: result.rows,
    };
  }

  /**
   * With sequential scans disabled, the plan's sequential scans, and with `narrow` its scans of
   * swarm_events or swarm_traces that read a whole index (no index condition).
   */
  async function unindexedScans(sql: string, narrow: boolean): Promise<string[]> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_seqscan = off');
      const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: Json }] }>(`EXPLAIN (FORMAT JSON) ${sql}`);
      const problems: string[] = [];
      const walk = (node: Json): void => {
        const type = String(node['Node Type']);
        const relation = node['Relation Name'] as string | undefined;
        if (type === 'Seq Scan') problems.push(`Seq Scan on ${relation}`);
        if (
          narrow &&
          (type === 'Index Scan' || type === 'Index Only Scan') &&
          (relation === 'swarm_events' || relation === 'swarm_traces') &&
          node['Index Cond'] === undefined
        ) {
          problems.push(
            `${type} on ${relation} using ${String(node['Index Name'])} without an index condition`,
          );
        }
        for (const child of (node.Plans as Json[] | undefined) ?? []) walk(child);
      };
      walk(rows[0]!['QUERY PLAN'][0].Plan);
      return problems;
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  /** What the query's panel (or variable, or annotation) needs from its result. */
  function checkShape(q: DashboardQuery, result: Result): void {
    const where = `${q.file} ${q.where}`;
    const names = result.columns.map((c) => c.name);
    const column = (name: string) => result.columns.find((c) => c.name === name);
    expect(result.rows.length, `${where}: no rows from\n${result.sql}`).toBeGreaterThan(0);
    const numeric = result.columns.filter((c) => NUMERIC.has(c.type));
    const someValue = (cols: { name: string }[]) =>
      result.rows.some((r) => cols.some((c) => r[c.name] !== null));

    if (q.kind === 'variable') return;
    if (q.kind === 'annotation') {
      expect(
        TIME.has(column('time')?.type ?? -1) || NUMERIC.has(column('time')?.type ?? -1),
        `${where}: time`,
      ).toBe(true);
      expect(TEXT.has(column('text')?.type ?? -1), `${where}: text column`).toBe(true);
      if (column('tags')) expect(TEXT.has(column('tags')!.type), `${where}: tags column`).toBe(true);
      return;
    }
    const panel = q.panel!;
    const type = String(panel.type);
    if (q.format === 'time_series') {
      const time = column('time');
      expect(
        time && (TIME.has(time.type) || NUMERIC.has(time.type)),
        `${where}: a time column, got ${names.join(', ')}`,
      ).toBe(true);
      const values = numeric.filter((c) => c.name !== 'time');
      expect(values.length, `${where}: numeric value columns`).toBeGreaterThan(0);
      for (const c of result.columns) {
        if (c.name !== 'time')
          expect(NUMERIC.has(c.type) || TEXT.has(c.type), `${where}: column ${c.name}`).toBe(true);
      }
      expect(someValue(values), `${where}: every value is null`).toBe(true);
    } else if (type === 'stat' || type === 'bargauge' || type === 'gauge') {
      expect(numeric.length, `${where}: numeric columns`).toBe(result.columns.length);
      expect(someValue(numeric), `${where}: every value is null`).toBe(true);
    } else if (type === 'barchart') {
      const x = String((panel.options as Json).xField);
      expect(
        TEXT.has(column(x)?.type ?? -1) || TIME.has(column(x)?.type ?? -1),
        `${where}: x field ${x}`,
      ).toBe(true);
      expect(numeric.length, `${where}: numeric columns`).toBeGreaterThan(0);
      expect(someValue(numeric), `${where}: every value is null`).toBe(true);
    } else if (type === 'nodeGraph') {
      checkGraphFrame(where, q.refId, panel, result);
    } else {
      expect(type, `${where}: a Postgres panel of an unchecked type`).toBe('table');
      if (column('time')) expect(TIME.has(column('time')!.type), `${where}: time column type`).toBe(true);
    }
    // Every column an override or a link names is there (a `metric` column names series by its values).
    if (!(q.format === 'time_series' && column('metric'))) {
      for (const name of referencedColumns(panel)) expect(names, `${where}: column ${name}`).toContain(name);
    }
  }

  it('dashboard sql - the traffic landed (both simulator runs verified, dead letters included), and the Postgres dashboards have queries', () => {
    const files = dashboards
      .filter((d) => postgresQueries(d.file, d.dashboard).length > 0)
      .map((d) => d.file);
    expect(files).toEqual(
      expect.arrayContaining(['agent-performance.json', 'swarm-overview.json', 'task-drilldown.json']),
    );
    for (const r of runs) expect(r.differences).toEqual([]);
    expect(runs.every((r) => r.report.expected.dlqEntries > 0)).toBe(true);
  });

  for (const { file, dashboard } of dashboards) {
    const queries = postgresQueries(file, dashboard);
    if (queries.length === 0) continue;

    it(`dashboard sql - ${file}: every query returns what its panel needs, through indexes`, async () => {
      const variables = await variablesOf(dashboard, { trace_id: QUOTED_TRACE });
      const graphs = new Map<Json, Result[]>();
      for (const q of queries) {
        const result = await run(q.sql, variables);
        checkShape(q, result);
        if (q.panel?.type === 'nodeGraph') graphs.set(q.panel, [...(graphs.get(q.panel) ?? []), result]);
        expect(await unindexedScans(result.sql, false), `${file} ${q.where}:\n${result.sql}`).toEqual([]);
        // On a range holding a small part of the history, as a dashboard's range usually does, the
        // big tables are read through index conditions only (the whole history here: a full scan is
        // the better plan, and enable_seqscan = off turns it into a full index scan).
        const narrow = expandGrafanaSql(q.sql, { ...recent, intervalMillis: MINUTE, variables });
        expect(await unindexedScans(narrow, true), `${file} ${q.where}:\n${narrow}`).toEqual([]);
      }
      for (const [panel, results] of graphs) checkGraphEdges(`${file} "${String(panel.title)}"`, results);
      // Every multi-value variable: a selection of two values works too, and selects only them.
      for (const v of variables.filter((x) => x.multi)) {
        const picked = v.options!.slice(0, 2);
        expect(picked.length, `${file} ${v.name}: options`).toBe(2);
        const selected = await variablesOf(dashboard, { trace_id: QUOTED_TRACE, [v.name]: picked });
        for (const q of queries.filter(
          (x) => new RegExp(`\\$\\{?${v.name}\\b`).test(x.sql) && x.kind !== 'variable',
        )) {
          const result = await run(q.sql, selected);
          checkShape(q, result);
          if (result.columns.some((c) => c.name === 'agent' || c.name === 'metric')) {
            const shown = new Set(result.rows.map((r) => String(r.agent ?? r.metric)));
            expect(
              [...shown].every((a) => picked.includes(a)),
              `${file} ${q.where}: ${[...shown].join(', ')}`,
            ).toBe(true);
          }
        }
      }
    });
  }

  const overview = () => dashboards.find((d) => d.file === 'swarm-overview.json')!.dashboard;
  const drilldown = () => dashboards.find((d) => d.file === 'task-drilldown.json')!.dashboard;
  const panelSql = (dashboard: Json, title: string) => {
    const panels = allPanels(dashboard).filter((p) => p.title === title && p.type !== 'row');
    expect(panels, title).toHaveLength(1);
    return String((panels[0]!.targets as Json[])[0]!.rawSql);
  };

  it('dashboard sql - stuck tasks: assigned or in progress longer than stuck_after at the end of the range, longest first', async () => {
    // The reference: every unfinished task, and when it entered its status.
    const { rows: open } = await pool.query<{ trace_id: string; status: string; since: Date }>(
      `SELECT trace_id, status, CASE status WHEN 'assigned' THEN assigned_at ELSE started_at END AS since
       FROM swarm_traces WHERE status IN ('assigned', 'in_progress')`,
    );
    const expected = (minutes: number) =>
      open
        .filter((r) => r.since.getTime() <= range.to.getTime() - minutes * MINUTE)
        .sort((a, b) => a.since.getTime() - b.since.getTime() || (a.trace_id < b.trace_id ? -1 : 1))
        .map((r) => r.trace_id);
    const shown = async (minutes: number) => {
      const variables = await variablesOf(overview(), { stuck_after: String(minutes) });
      const count = await run(panelSql(overview(), 'Stuck tasks (count)'), variables);
      const list = await run(panelSql(overview(), 'Stuck tasks'), variables);
      return { count: Number(count.rows[0]!.Stuck), list: list.rows.map((r) => String(r.trace_id)) };
    };
    for (const minutes of [15, 240]) {
      const { count, list } = await shown(minutes);
      expect(count).toBe(expected(minutes).length);
      expect(list).toEqual(expected(minutes).slice(0, 200));
    }
    expect(expected(15)).toEqual(expect.arrayContaining(['dash-stuck-assigned', 'dash-stuck-started']));
    expect(expected(15)).not.toContain('dash-fresh-assigned');
    expect(expected(240)).not.toContain('dash-stuck-assigned');
    // Each simulator run left tasks unfinished, hours ago.
    for (const r of runs) expect(expected(15).some((id) => id.startsWith(r.report.prefix))).toBe(true);
  });

  it('dashboard sql - the task drill-down finds a task whose id has quotes, and its otel trace id is the exported one', async () => {
    const variables = await variablesOf(drilldown(), { trace_id: QUOTED_TRACE });
    expect(variables.find((v) => v.name === 'otel_trace_id')!.value).toBe(otelTraceId(QUOTED_TRACE));
    const empty = await variablesOf(drilldown(), { trace_id: '' });
    expect(empty.find((v) => v.name === 'otel_trace_id')!.options).toEqual([]);
    const task = await run(panelSql(drilldown(), 'Task'), variables);
    const fields = Object.fromEntries(task.rows.map((r) => [String(r.field), r.value]));
    expect(fields).toMatchObject({
      trace_id: QUOTED_TRACE,
      status: 'failed',
      error: `can't parse "input"`,
      otel_trace_id: otelTraceId(QUOTED_TRACE),
    });
    const events = await run(panelSql(drilldown(), 'Events'), variables);
    expect(events.rows.map((r) => r.event_type)).toEqual([
      'task.created',
      'task.assigned',
      'task.started',
      'task.failed',
      'dlq.entry',
    ]);
    const dlq = await run(panelSql(drilldown(), 'Dead-letter entries'), variables);
    expect(dlq.rows.map((r) => r.dlq_id)).toEqual(['dash-dlq-1']);
  });

  it("dashboard sql - a recent failure's links open the trace the API links to, in Tempo and Jaeger", async () => {
    const variables = await variablesOf(overview());
    const failures = await run(panelSql(overview(), 'Recent failures'), variables);
    const row = failures.rows.find((r) => r.trace_id === QUOTED_TRACE)!;
    expect(row).toBeDefined();
    const panel = allPanels(overview()).find((p) => p.title === 'Recent failures')!;
    const links = ((panel.fieldConfig as Json).overrides as Json[])
      .flatMap((o) =>
        (o.properties as Json[]).filter((p) => p.id === 'links').flatMap((p) => p.value as Json[]),
      )
      .map((l) => ({ title: String(l.title), url: String(l.url) }));
    // Grafana's data-link substitution of the row's fields (values are URL-encoded; ours need none).
    const fill = (url: string) =>
      url
        .replace(/\$\{__data\.fields\.(\w+)\}/g, (_, name: string) => encodeURI(String(row[name])))
        .replace('${jaeger_url:raw}', 'http://localhost:16686');
    const tempo = fill(links.find((l) => l.title.includes('Tempo'))!.url);
    const { rows } = await pool.query<{ first_event_at: Date; last_event_at: Date }>(
      'SELECT first_event_at, last_event_at FROM swarm_traces WHERE trace_id = $1',
      [QUOTED_TRACE],
    );
    const expected = traceLinks(
      otelTraceId(QUOTED_TRACE),
      { from: rows[0]!.first_event_at, to: rows[0]!.last_event_at },
      {
        jaegerUiUrl: 'http://localhost:16686',
        grafanaUrl: 'http://grafana',
        tempoDatasourceUid: DATASOURCES.tempo.uid,
      },
    );
    expect(`http://grafana${tempo}`).toBe(expected.grafana);
    expect(fill(links.find((l) => l.title.includes('Jaeger'))!.url)).toBe(expected.jaeger);
    expect(links.find((l) => l.title.includes('drill-down'))!.url).toMatch(
      /^\/d\/chronicle-task\?var-trace_id=/,
    );
  });

  it('dashboard sql - task graph: an edge from the service that created each task to its agent, each task counted once', async () => {
    // A task an agent delegates: dash-agent creates it, dash-helper does it (dash-agent has edges in and
    // out). And a task created 90 minutes ago whose second task.created (another event id, another
    // source) lies in the last hour: created before that window, so not in its graph.
    const at = (minutesAgo: number) => new Date(now - minutesAgo * MINUTE).toISOString();
    const events: [string, string, string, number, Json][] = [
      ['graph-delegated', 'task.created', 'dash-agent', 25, { title: 'Delegated' }],
      ['graph-delegated', 'task.assigned', 'dispatcher', 24, { agent: 'dash-helper' }],
      ['graph-delegated', 'task.started', 'dash-helper', 23, { agent: 'dash-helper' }],
      ['graph-delegated', 'task.completed', 'dash-helper', 22, { agent: 'dash-helper' }],
      ['graph-recreated', 'task.created', 'dashboard-test', 90, { title: 'Created twice' }],
      ['graph-recreated', 'task.created', 'dash-late', 20, { title: 'Created twice' }],
    ];
    for (const [i, [traceId, type, source, minutesAgo, metadata]] of events.entries())
      await env.publish(`swarm.${type}`, {
        event_id: `graph-${i}`,
        trace_id: traceId,
        source,
        event_type: type,
        timestamp: at(minutesAgo),
        metadata,
      });
    await waitFor(
      async () => {
        const { rows } = await pool.query<{ ok: boolean }>(
          `SELECT (SELECT status FROM swarm_traces WHERE trace_id = 'graph-delegated') = 'completed'
             AND (SELECT count(*) FROM swarm_events WHERE trace_id = 'graph-recreated') = 2 AS ok`,
        );
        return rows[0]!.ok === true;
      },
      15_000,
      'the graph tasks to be stored',
    );

    const traces = dashboards.find((d) => d.file === 'traces.json')!.dashboard;
    const graph = allPanels(traces).filter((p) => p.type === 'nodeGraph' && isPostgres(p.datasource));
    expect(graph).toHaveLength(1);
    const sqlOf = (refId: string) =>
      String((graph[0]!.targets as Json[]).find((t) => t.refId === refId)!.rawSql);
    const variables = await variablesOf(traces);
    const sorted = <T>(xs: T[], key: (x: T) => string) =>
      [...xs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    /** A node's or edge's tasks by outcome, and the share of the finished ones that failed or timed out. */
    const outcomes = (statuses: readonly string[]) => {
      const n = (status: string) => statuses.filter((s) => s === status).length;
      const [completed, failed, timedOut] = [n('completed'), n('failed'), n('timed_out')];
      const finished = completed + failed + timedOut;
      return {
        tasks: statuses.length,
        completed,
        failed,
        timed_out: timedOut,
        in_flight: statuses.length - finished,
        failed_pct: finished ? (100 * (failed + timedOut)) / finished : null,
      };
    };
    const stat = (v: unknown) => (v === null ? null : Number(v));
    for (const window of [range, recent]) {
      // The reference: each task created in the window, the source of its first task.created, its agent.
      const { rows: tasks } = await pool.query<{ creator: string | null; agent: string; status: string }>(
        `SELECT coalesce(t.assigned_agent, '(no agent)') AS agent, t.status,
           (SELECT e.source FROM swarm_events e WHERE e.trace_id = t.trace_id AND e.event_type = 'task.created'
            ORDER BY e."timestamp", e.event_id LIMIT 1) AS creator
         FROM swarm_traces t WHERE t.is_task AND t.created_at BETWEEN $1 AND $2`,
        [window.from, window.to],
      );
      const statusesBy = (key: (t: (typeof tasks)[number]) => string) => {
        const by = new Map<string, string[]>();
        for (const t of tasks.filter((x) => x.creator !== null))
          by.set(key(t), [...(by.get(key(t)) ?? []), t.status]);
        return by;
      };
      const byEdge = statusesBy((t) => JSON.stringify([t.creator, t.agent]));
      const byAgent = statusesBy((t) => t.agent);
      const byCreator = statusesBy((t) => t.creator!);
      const expectedEdges = [...byEdge].map(([key, statuses]) => {
        const [source, target] = JSON.parse(key) as [string, string];
        return { source, target, ...outcomes(statuses) };
      });
      const expectedNodes = [...new Set([...byAgent.keys(), ...byCreator.keys()])].map((id) => {
        const handled = byAgent.get(id) ?? [];
        const made = byCreator.get(id) ?? [];
        const agentRole = id === '(no agent)' ? 'no agent yet' : 'agent';
        return {
          id,
          subtitle:
            handled.length && made.length ? 'agent, creates tasks' : handled.length ? agentRole : 'service',
          created: made.length,
          handled: handled.length,
          ...outcomes(handled.length ? handled : made),
        };
      });

      const edges = await run(sqlOf('edges'), variables, window);
      const shownEdges = edges.rows.map((r) => ({
        source: String(r.source),
        target: String(r.target),
        tasks: Number(r.mainstat),
        completed: Number(r.detail__completed),
        failed: Number(r.detail__failed),
        timed_out: Number(r.detail__timed_out),
        in_flight: Number(r.detail__in_flight),
        failed_pct: stat(r.secondarystat),
      }));
      const edgeKey = (e: { source: string; target: string }) => JSON.stringify([e.source, e.target]);
      expect(sorted(shownEdges, edgeKey)).toEqual(sorted(expectedEdges, edgeKey));
      const nodes = await run(sqlOf('nodes'), variables, window);
      const shownNodes = nodes.rows.map((r) => {
        const n = Number(r.mainstat);
        const share = (arc: string) => Math.round(Number(r[`arc__${arc}`]) * n);
        return {
          id: String(r.id),
          subtitle: String(r.subtitle),
          created: Number(r.detail__created),
          handled: Number(r.detail__handled),
          tasks: n,
          completed: share('completed'),
          failed: share('failed'),
          timed_out: share('timed_out'),
          in_flight: share('in_flight'),
          failed_pct: stat(r.secondarystat),
        };
      });
      expect(sorted(shownNodes, (x) => x.id)).toEqual(sorted(expectedNodes, (x) => x.id));
      expect(shownEdges.length, 'edges').toBeGreaterThan(1);
    }

    // The last hour holds only the tasks seeded here: a delegation chain of two edges.
    const edges = await run(sqlOf('edges'), variables, recent);
    expect(edges.rows.map((r) => [r.source, r.target, Number(r.mainstat), r.secondarystat]).sort()).toEqual([
      ['dash-agent', 'dash-helper', 1, 0],
      ['dashboard-test', 'dash-agent', 4, 100],
    ]);
    const nodes = await run(sqlOf('nodes'), variables, recent);
    expect(nodes.rows.find((r) => r.id === 'dash-agent')).toMatchObject({
      subtitle: 'agent, creates tasks',
      title: 'dash-agent',
      arc__failed: 0.25,
      arc__in_flight: 0.75,
      secondarystat: 100,
    });
  });
});

/**
 * A frame of a Postgres node graph as Grafana's nodeGraph panel reads it
 * (public/app/plugins/panel/nodeGraph/utils.ts: getNodeGraphDataFrames keeps frames whose refId is
 * `nodes` or `edges`; the one with a `source` field is the edges; fields by lower-cased name). Nodes: a
 * unique text id, a text title, a numeric mainstat, arc__* fractions in [0, 1] summing to 1, each
 * coloured by the panel's nodes.arcs option. Edges: a unique id, text source and target, a numeric mainstat.
 */
function checkGraphFrame(where: string, refId: string | undefined, panel: Json, result: Result): void {
  const column = (name: string) => result.columns.find((c) => c.name === name);
  const isText = (name: string) => TEXT.has(column(name)?.type ?? -1);
  const edges = column('source') !== undefined;
  expect(refId, `${where}: the refId says which frame it is`).toBe(edges ? 'edges' : 'nodes');
  expect(isText('id'), `${where}: a text id`).toBe(true);
  const ids = result.rows.map((r) => r.id);
  expect(
    ids.every((id) => typeof id === 'string' && id !== ''),
    `${where}: every row has an id`,
  ).toBe(true);
  expect(new Set(ids).size, `${where}: ids are unique`).toBe(ids.length);
  expect(NUMERIC.has(column('mainstat')?.type ?? -1), `${where}: a numeric mainstat`).toBe(true);
  if (column('secondarystat'))
    expect(NUMERIC.has(column('secondarystat')!.type), `${where}: a numeric secondarystat`).toBe(true);
  if (edges) {
    expect(isText('target'), `${where}: text source and target`).toBe(isText('source'));
    expect(isText('source'), `${where}: text source`).toBe(true);
    return;
  }
  expect(isText('title'), `${where}: a text title`).toBe(true);
  const arcs = result.columns.filter((c) => c.name.startsWith('arc__'));
  expect(arcs.length, `${where}: arc__ columns`).toBeGreaterThan(0);
  for (const c of arcs) expect(NUMERIC.has(c.type), `${where}: ${c.name} numeric`).toBe(true);
  const coloured = (((panel.options as Json).nodes as Json | undefined)?.arcs as Json[] | undefined) ?? [];
  expect(coloured.map((a) => a.field).sort(), `${where}: a colour per arc`).toEqual(
    arcs.map((c) => c.name).sort(),
  );
  for (const r of result.rows) {
    const values = arcs.map((c) => r[c.name]);
    expect(
      values.every((v) => v !== null && Number(v) >= 0 && Number(v) <= 1),
      `${where}: arcs of ${String(r.id)} in [0, 1]: ${values.join(', ')}`,
    ).toBe(true);
    const sum = values.reduce<number>((a, v) => a + Number(v), 0);
    expect(Math.abs(sum - 1), `${where}: arcs of ${String(r.id)} sum to ${sum}`).toBeLessThan(1e-9);
  }
}

/** A node graph's two frames: one nodes, one edges, and every edge's source and target is a node id. */
function checkGraphEdges(where: string, results: readonly Result[]): void {
  const isEdges = (r: Result) => r.columns.some((c) => c.name === 'source');
  const nodes = results.filter((r) => !isEdges(r));
  const edges = results.filter(isEdges);
  expect([nodes.length, edges.length], `${where}: a nodes and an edges query`).toEqual([1, 1]);
  const ids = new Set(nodes[0]!.rows.map((r) => r.id));
  const loose = edges[0]!.rows.flatMap((r) => [r.source, r.target].filter((id) => !ids.has(id)));
  expect(loose, `${where}: edge ends that are no node`).toEqual([]);
}

/** Columns a panel's overrides (by name) and data links (`${__data.fields.x}`) refer to. */
function referencedColumns(panel: Json): string[] {
  const names = new Set<string>();
  const fieldConfig = (panel.fieldConfig as Json | undefined) ?? {};
  for (const o of (fieldConfig.overrides as Json[] | undefined) ?? []) {
    const matcher = o.matcher as Json;
    if (matcher.id === 'byName') names.add(String(matcher.options));
  }
  for (const m of JSON.stringify(fieldConfig).matchAll(/\$\{__data\.fields\.(\w+)/g)) names.add(m[1]!);
  const xField = (panel.options as Json | undefined)?.xField;
  if (typeof xField === 'string') names.add(xField);
  return [...names];
}
