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
import { LIFECYCLE } from '../../src/events/lifecycle.js';
import { type SimulationResult, runSimulation } from '../../src/simulate/simulate.js';
import { otelTraceId } from '../../src/spans/ids.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import {
  ALL_VALUE,
  type FillMode,
  type SqlVariable,
  expandGrafanaQuery,
  expandGrafanaSql,
  fillRows,
  rowTimeMillis,
} from '../support/grafana-sql.js';
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

/**
 * Agents and how each of their tasks ended (c completed, f failed, t timed out): tally-agent-01 fails 6
 * of 20 (30 %), tally-agent-02 1 of 3 (33 %, from far fewer tasks).
 */
const TALLY: [string, string][] = [
  ['tally-agent-01', 'cfccfcccfccfcccfcfcc'],
  ['tally-agent-02', 'cfc'],
  ['tally-agent-03', 'cccc'],
  ['tally-agent-04', 'ct'],
  ['tally-agent-05', 'c'],
  ['tally-agent-06', 'f'],
];

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

/** A row's time in milliseconds, as Grafana reads a `time` column (a date, or epoch seconds). */
const rowTime = (row: Json): number => rowTimeMillis(row.time);

interface Result {
  sql: string;
  columns: { name: string; type: number }[];
  /** The rows the panel gets: for a time_series query with a fill, after Grafana's fill. */
  rows: Json[];
  /** The rows the query returned, before any fill. */
  queried: Json[];
  fill?: FillMode;
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
          // Two runs at once over NATS; on the embedded server, amid the suite's other files, storing
          // them has taken over 30 s (one CI run of seven): the wait, not what is verified, is longer.
          verify: { apiUrl: chronicle.url, timeoutMillis: 60_000, pollIntervalMillis: 200 },
        }),
      ),
    );
    await seedEdgeCases();
    await pool.query('ANALYZE');
  }, 120_000);

  afterAll(async () => {
    await env?.cleanup();
  });

  /**
   * Tasks stuck and not, a task with quotes in its id (failed, dead-lettered), rejects, a write-failure
   * alert, and TALLY: six more agents whose tasks ended two hours ago, so the agents' graphs have more
   * agents than they draw, and the ranking has a rate from few tasks to weigh against one from many.
   */
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
    for (const [agent, outcomes] of TALLY) {
      for (const [i, outcome] of [...outcomes].entries()) {
        const id = `${agent}-task-${i}`;
        const t = 150 - i;
        await event(id, 'task.created', at(t), { title: 'Tallied' });
        await event(id, 'task.assigned', at(t - 0.1), { agent });
        await event(id, 'task.started', at(t - 0.2), { agent });
        const end = { c: 'task.completed', f: 'task.failed', t: 'task.timeout' }[outcome]!;
        await event(id, end, at(t - 0.2 - (i % 5) / 10), {
          agent,
          ...(outcome === 'f' ? { error: 'tally' } : {}),
        });
      }
    }
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

  /**
   * A query as its panel gets it: expanded, run, and for a time_series query whose time group macro
   * names a fill, filled as Grafana fills it.
   */
  async function run(
    rawSql: string,
    variables: readonly SqlVariable[],
    window: { from: Date; to: Date } = range,
    format: 'table' | 'time_series' = 'table',
  ): Promise<Result> {
    const { sql, fill } = expandGrafanaQuery(rawSql, {
      ...window,
      intervalMillis: INTERVAL_MILLIS,
      variables,
    });
    const result = await pool.query<Json>(sql);
    const filled = fill && format === 'time_series' ? fillRows(result.rows, fill, window) : result.rows;
    return {
      sql,
      columns: result.fields.map((f) => ({ name: f.name, type: f.dataTypeID })),
      rows: filled,
      queried: result.rows,
      ...(fill ? { fill } : {}),
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
        const result = await run(q.sql, variables, range, q.format);
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
          const result = await run(q.sql, selected, range, q.format);
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

  it('dashboard sql - stuck tasks: created in the range, assigned or in progress since more than stuck_after before its end (or now), longest first', async () => {
    // The reference: every task assigned or in progress, when it was created, and when it entered that
    // status: its latest assignment or start, whichever is later.
    const { rows: open } = await pool.query<{
      trace_id: string;
      created_at: Date;
      assigned_at: Date | null;
      started_at: Date | null;
    }>(
      `SELECT trace_id, created_at, assigned_at, started_at
       FROM swarm_traces WHERE status IN ('assigned', 'in_progress')`,
    );
    const since = (r: (typeof open)[number]) =>
      Math.max(r.assigned_at?.getTime() ?? -Infinity, r.started_at?.getTime() ?? -Infinity);
    /** An hour-long window that ended 45 minutes ago. */
    const earlier = { from: new Date(now - 105 * MINUTE), to: new Date(now - 45 * MINUTE) };
    const check = async (window: { from: Date; to: Date }, minutes: number): Promise<string[]> => {
      const { rows: clock } = await pool.query<{ now: Date }>('SELECT now()');
      const end = Math.min(window.to.getTime(), clock[0]!.now.getTime());
      const expected = open
        .filter(
          (r) =>
            r.created_at >= window.from && r.created_at <= window.to && since(r) < end - minutes * MINUTE,
        )
        .sort((a, b) => since(a) - since(b) || (a.trace_id < b.trace_id ? -1 : 1));
      const variables = await variablesOf(overview(), { stuck_after: String(minutes) });
      const count = await run(panelSql(overview(), 'Stuck tasks (count)'), variables, window);
      const list = await run(panelSql(overview(), 'Stuck tasks'), variables, window);
      const where = `${window.from.toISOString()} – ${window.to.toISOString()}, stuck after ${minutes} min`;
      expect(Number(count.rows[0]!.Stuck), where).toBe(expected.length);
      expect(
        list.rows.map((r) => String(r.trace_id)),
        where,
      ).toEqual(expected.slice(0, 200).map((r) => r.trace_id));
      // Stuck for: from its latest assignment or start to the end of the range (or now, a moment later).
      for (const [i, row] of list.rows.entries()) {
        const stuckFor = end - since(expected[i]!);
        expect((row.since as Date).getTime(), where).toBe(since(expected[i]!));
        expect(
          Number(row.stuck_for_ms) - stuckFor,
          `${where}: ${String(row.trace_id)} stuck for`,
        ).toBeGreaterThanOrEqual(window.to.getTime() < now ? 0 : -1);
        expect(
          Number(row.stuck_for_ms) - stuckFor,
          `${where}: ${String(row.trace_id)} stuck for`,
        ).toBeLessThanOrEqual(window.to.getTime() < now ? 0 : 5_000);
      }
      return expected.map((r) => r.trace_id);
    };

    const day15 = await check(range, 15);
    expect(day15).toEqual(expect.arrayContaining(['dash-stuck-assigned', 'dash-stuck-started']));
    expect(day15).not.toContain('dash-fresh-assigned');
    // Each simulator run left tasks unfinished, hours ago, created in the day's range.
    for (const r of runs) expect(day15.some((id) => id.startsWith(r.report.prefix))).toBe(true);
    expect(await check(range, 240)).not.toContain('dash-stuck-assigned');
    // The last hour: only the tasks created in it count, so none of the simulator's; longest stuck first.
    expect(await check(recent, 15)).toEqual(['dash-stuck-started', 'dash-stuck-assigned']);
    expect(await check(recent, 45)).toEqual(['dash-stuck-started']);
    // A range that ended 45 minutes ago: stuck as of its end. dash-stuck-started started 50 minutes ago
    // (5 minutes before that end), dash-stuck-assigned was created after it.
    const past4 = await check(earlier, 4);
    expect(past4).toContain('dash-stuck-started');
    expect(past4).not.toContain('dash-stuck-assigned');
    expect(await check(earlier, 5)).not.toContain('dash-stuck-started');
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

  const agentPerformance = () => dashboards.find((d) => d.file === 'agent-performance.json')!.dashboard;
  /** Code-point order, as the dashboards' COLLATE "C" ties. */
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  /** Largest first, nulls last, ties by name. */
  const ranking = <T extends { agent: string }>(rows: T[], key: (r: T) => number | null) =>
    [...rows].sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      if (x !== y) {
        if (x === null) return 1;
        if (y === null) return -1;
        return y - x;
      }
      return byName(a.agent, b.agent);
    });

  /** The selected agents' agent_metrics totals over the UTC days the range touches. */
  async function agentTotals(window: { from: Date; to: Date }) {
    const { rows } = await pool.query<Json>(
      `SELECT agent_id, tasks_completed, tasks_failed, tasks_timed_out, p95_duration_ms, pickup_sum, pickup_count,
         utilization_pct
       FROM agent_metrics
       WHERE metric_date BETWEEN ($1::timestamptz AT TIME ZONE 'UTC')::date AND ($2::timestamptz AT TIME ZONE 'UTC')::date`,
      [window.from, window.to],
    );
    const by = new Map<string, Json[]>();
    for (const r of rows) by.set(String(r.agent_id), [...(by.get(String(r.agent_id)) ?? []), r]);
    const sum = (days: Json[], column: string) => days.reduce((s, d) => s + Number(d[column]), 0);
    const values = (days: Json[], column: string) =>
      days.filter((d) => d[column] !== null).map((d) => Number(d[column]));
    return [...by].map(([agent, days]) => {
      const utilization = values(days, 'utilization_pct');
      const p95s = values(days, 'p95_duration_ms');
      return {
        agent,
        completed: sum(days, 'tasks_completed'),
        failures: sum(days, 'tasks_failed') + sum(days, 'tasks_timed_out'),
        finished: sum(days, 'tasks_completed') + sum(days, 'tasks_failed') + sum(days, 'tasks_timed_out'),
        maxP95: p95s.length ? Math.max(...p95s) : null,
        pickup: sum(days, 'pickup_count') ? sum(days, 'pickup_sum') / sum(days, 'pickup_count') : null,
        utilization: utilization.length ? utilization.reduce((s, u) => s + u, 0) / utilization.length : null,
      };
    });
  }

  it('dashboard sql - agent performance: each per-agent graph draws the 10 selected agents that rank first on what it answers', async () => {
    const totals = await agentTotals(range);
    expect(totals.length, 'agents in the range: more than a graph draws').toBeGreaterThan(10);
    const variables = await variablesOf(agentPerformance());
    const graphs: [string, (t: (typeof totals)[number]) => number | null][] = [
      ['Failure rate per day', (t) => t.failures],
      ['p95 task duration per day', (t) => t.maxP95],
      ['Pickup time per day', (t) => t.pickup],
      ['Utilization per day', (t) => t.utilization],
    ];
    for (const [prefix, rank] of graphs) {
      const panels = allPanels(agentPerformance()).filter((p) => String(p.title).startsWith(prefix));
      expect(panels, prefix).toHaveLength(1);
      expect(String(panels[0]!.title), prefix).toContain('10');
      const result = await run(
        String((panels[0]!.targets as Json[])[0]!.rawSql),
        variables,
        range,
        'time_series',
      );
      const drawn = [...new Set(result.rows.map((r) => String(r.metric)))].sort(byName);
      const expected = ranking(totals, rank)
        .slice(0, 10)
        .map((t) => t.agent)
        .sort(byName);
      expect(drawn, prefix).toEqual(expected);
    }
  });

  it("dashboard sql - agent ranking: every selected agent, worst first by the lower bound of its failure rate's Wilson interval, then p95", async () => {
    const totals = await agentTotals(range);
    const { rows: p95s } = await pool.query<{ agent: string; p95: number }>(
      `SELECT assigned_agent AS agent, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95
       FROM swarm_traces
       WHERE is_task AND status = 'completed' AND duration_ms IS NOT NULL
         AND (completed_at AT TIME ZONE 'UTC')::date
           BETWEEN ($1::timestamptz AT TIME ZONE 'UTC')::date AND ($2::timestamptz AT TIME ZONE 'UTC')::date
       GROUP BY 1`,
      [range.from, range.to],
    );
    const p95Of = new Map(p95s.map((r) => [r.agent, r.p95]));
    /** Wilson score interval, 95 % (z = 1.96): its lower bound. */
    const wilson = (failures: number, n: number) => {
      if (n === 0) return null;
      const z = 1.96;
      const p = failures / n;
      const low =
        (p + (z * z) / (2 * n) - z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) /
        (1 + (z * z) / n);
      return failures === 0 ? 0 : low;
    };
    const expected = [...totals]
      .map((t) => ({ ...t, low: wilson(t.failures, t.finished), p95: p95Of.get(t.agent) ?? null }))
      .sort((a, b) => {
        for (const [x, y] of [
          [a.low, b.low],
          [a.p95, b.p95],
        ] as const) {
          if (x === y) continue;
          if (x === null) return 1;
          if (y === null) return -1;
          return y - x;
        }
        return byName(a.agent, b.agent);
      });
    const table = await run(
      panelSql(agentPerformance(), 'Agents ranked by failure rate (95 % lower bound), then p95 duration'),
      await variablesOf(agentPerformance()),
    );
    expect(table.rows.map((r) => r.agent)).toEqual(expected.map((t) => t.agent));
    for (const [i, row] of table.rows.entries()) {
      const want = expected[i]!;
      expect(Number(row.finished), want.agent).toBe(want.finished);
      if (want.low === null) expect(row.failure_rate_low, want.agent).toBeNull();
      else expect(Number(row.failure_rate_low), want.agent).toBeCloseTo(want.low, 12);
    }
    expect(wilson(1, 5)).toBeCloseTo(0.0362, 4);
    expect(wilson(28, 240)).toBeCloseTo(0.082, 3);
    // 6 failures in 20 tasks rank above 1 in 3, whose rate is higher but rests on 3 tasks.
    const place = (agent: string) => table.rows.findIndex((r) => r.agent === agent);
    const rate = (agent: string) => Number(table.rows[place(agent)]!.failure_rate);
    expect(rate('tally-agent-02')).toBeGreaterThan(rate('tally-agent-01'));
    expect(place('tally-agent-01')).toBeLessThan(place('tally-agent-02'));
  });

  it('dashboard sql - per-interval graphs: an interval without rows is filled, with 0 for counts and nothing (a gap) for rates and percentiles', async () => {
    const variables = await variablesOf(overview());
    const fills: [string, number | null][] = [
      ['Tasks created, by current status', 0],
      ['Throughput: tasks finished per minute, by outcome', 0],
      ['Failure rate', null],
      ['Task duration p50 / p95', null],
      ['Pickup time p50 / p95', null],
    ];
    const step = INTERVAL_MILLIS;
    const start = Math.floor(range.from.getTime() / step) * step;
    const intervals = Math.floor((range.to.getTime() - start) / step) + 1;
    for (const [title, value] of fills) {
      const result = await run(panelSql(overview(), title), variables, range, 'time_series');
      expect(result.fill?.mode, title).toBe(value === null ? 'null' : 'value');
      expect(result.rows, title).toHaveLength(intervals);
      const queried = new Map(result.queried.map((r) => [rowTime(r), r]));
      const columns = result.columns.map((c) => c.name).filter((c) => c !== 'time');
      let filled = 0;
      for (const [i, row] of result.rows.entries()) {
        expect((row.time as Date).getTime(), title).toBe(start + i * step);
        const from = queried.get((row.time as Date).getTime());
        if (!from) filled++;
        for (const c of columns) expect(row[c], `${title} ${c}`).toEqual(from ? from[c] : value);
      }
      // The simulator ran yesterday and three hours ago: hours without a task lie between.
      expect(filled, `${title}: intervals filled`).toBeGreaterThan(100);
      expect(result.queried.length, `${title}: intervals with rows`).toBe(intervals - filled);
    }
  });

  it('dashboard sql - the task failures annotation: one marker per bucket of the range with failures, with their count and the most frequent error', async () => {
    const annotation = ((overview().annotations as Json).list as Json[]).find(
      (a) => a.name === 'Task failures',
    )!;
    expect(annotation.enable).toBe(true);
    const result = await run(String((annotation.target as Json).rawSql), await variablesOf(overview()));
    // The reference: the tasks that failed or timed out in the range, in buckets of an hour (the range
    // spans 27 hours: the smallest step cutting it into at most 40 buckets).
    const { rows: failed } = await pool.query<{ completed_at: Date; status: string; error: string | null }>(
      `SELECT completed_at, status, error FROM swarm_traces
       WHERE is_task AND status IN ('failed', 'timed_out') AND completed_at BETWEEN $1 AND $2`,
      [range.from, range.to],
    );
    const buckets = new Map<number, typeof failed>();
    for (const f of failed) {
      const start = Math.floor(f.completed_at.getTime() / HOUR) * HOUR;
      buckets.set(start, [...(buckets.get(start) ?? []), f]);
    }
    const expected = [...buckets]
      .sort(([a], [b]) => a - b)
      .map(([start, tasks]) => {
        const errors = new Map<string, number>();
        for (const t of tasks)
          errors.set(t.error ?? '(no error)', (errors.get(t.error ?? '(no error)') ?? 0) + 1);
        const [top, n] = [...errors].sort(([a, x], [b, y]) => y - x || byName(a, b))[0]!;
        const count = (status: string) => tasks.filter((t) => t.status === status).length;
        return {
          time: start,
          text: `${count('failed')} failed, ${count('timed_out')} timed out in the 1 h from here; most frequent error: ${top} (${n})`,
        };
      });
    expect(result.rows.map((r) => ({ time: (r.time as Date).getTime(), text: r.text }))).toEqual(expected);
    expect(failed.length, 'failures in the range').toBeGreaterThan(result.rows.length);
    expect(result.rows.length, 'markers').toBeLessThanOrEqual(40);
  });

  it('dashboard sql - task graph: an edge from the service that created each task to its agent, each task counted once, the agents beyond the 15 busiest as one node', async () => {
    // A task an agent delegates: dash-agent creates it, dash-helper does it (dash-agent has edges in and
    // out). And a task created 90 minutes ago whose second task.created (another event id, another
    // source) lies in the last hour: created before that window, so not in its graph. And 20 agents with
    // one task each, created 100 to 105 minutes ago: with the simulator's 8 agents, dash-agent,
    // dash-helper and the 6 TALLY agents, the day's graph has 36 agents; the 15 busiest keep their node:
    // the simulator's, dash-agent, tally-agent-01 to 04, then, of the agents tied at one task, the first
    // two by name (dash-helper, fold-agent-01). The other 21 are "(other agents)".
    const at = (minutesAgo: number) => new Date(now - minutesAgo * MINUTE).toISOString();
    const events: [string, string, string, number, Json][] = [
      ['graph-delegated', 'task.created', 'dash-agent', 25, { title: 'Delegated' }],
      ['graph-delegated', 'task.assigned', 'dispatcher', 24, { agent: 'dash-helper' }],
      ['graph-delegated', 'task.started', 'dash-helper', 23, { agent: 'dash-helper' }],
      ['graph-delegated', 'task.completed', 'dash-helper', 22, { agent: 'dash-helper' }],
      ['graph-recreated', 'task.created', 'dashboard-test', 90, { title: 'Created twice' }],
      ['graph-recreated', 'task.created', 'dash-late', 20, { title: 'Created twice' }],
    ];
    const FOLD_AGENTS = 20;
    for (let i = 1; i <= FOLD_AGENTS; i++) {
      const id = `graph-fold-${String(i).padStart(2, '0')}`;
      const agent = `fold-agent-${String(i).padStart(2, '0')}`;
      const t = 105 - i / 4;
      events.push([id, 'task.created', 'dashboard-test', t, { title: 'One of many' }]);
      events.push([id, 'task.assigned', 'dispatcher', t - 0.05, { agent }]);
      if (i % 4 !== 0) events.push([id, 'task.started', agent, t - 0.1, { agent }]);
      if (i % 4 === 1) events.push([id, 'task.completed', agent, t - 0.15, { agent }]);
      if (i % 4 === 2) events.push([id, 'task.failed', agent, t - 0.15, { agent, error: 'fold' }]);
    }
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
             AND (SELECT count(*) FROM swarm_events WHERE trace_id = 'graph-recreated') = 2
             AND (SELECT count(*) FROM swarm_events WHERE trace_id LIKE 'graph-fold-%') = ${events.filter(([id]) => id.startsWith('graph-fold-')).length} AS ok`,
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
      const { rows: tasks } = await pool.query<{
        trace_id: string;
        creator: string | null;
        agent: string;
        status: string;
      }>(
        `SELECT t.trace_id, coalesce(t.assigned_agent, '(no agent)') AS agent, t.status,
           (SELECT e.source FROM swarm_events e WHERE e.trace_id = t.trace_id AND e.event_type = 'task.created'
            ORDER BY e."timestamp", e.event_id LIMIT 1) AS creator
         FROM swarm_traces t WHERE t.is_task AND t.created_at BETWEEN $1 AND $2`,
        [window.from, window.to],
      );
      // The 15 agents that handled the most of these tasks keep their node (ties by name, in code-point
      // order); the others' tasks go to one node, "(other agents)".
      const created = tasks.filter((x) => x.creator !== null);
      const handledBy = new Map<string, number>();
      for (const t of created)
        if (t.agent !== '(no agent)') handledBy.set(t.agent, (handledBy.get(t.agent) ?? 0) + 1);
      const ranked = [...handledBy]
        .sort(([a, n], [b, m]) => m - n || (a < b ? -1 : a > b ? 1 : 0))
        .map(([agent]) => agent);
      const shownAgents = new Set(ranked.slice(0, 15));
      const foldedAgents = ranked.length - shownAgents.size;
      const graphTasks = created.map((t) => ({
        ...t,
        agent: t.agent === '(no agent)' || shownAgents.has(t.agent) ? t.agent : '(other agents)',
      }));
      if (window === range) {
        expect(foldedAgents, 'agents folded in the day').toBe(21);
        expect([...shownAgents].filter((a) => !a.startsWith('sim-')).sort()).toEqual([
          'dash-agent',
          'dash-helper',
          'fold-agent-01',
          'tally-agent-01',
          'tally-agent-02',
          'tally-agent-03',
          'tally-agent-04',
        ]);
      } else expect(foldedAgents, 'agents folded in the last hour').toBe(0);
      const statusesBy = (key: (t: (typeof graphTasks)[number]) => string) => {
        const by = new Map<string, string[]>();
        for (const t of graphTasks) by.set(key(t), [...(by.get(key(t)) ?? []), t.status]);
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
        const agentRole =
          id === '(no agent)'
            ? 'never assigned'
            : id === '(other agents)'
              ? `${foldedAgents} more agents`
              : 'agent';
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
      // The folded node's ring and p95 are those of its agents' tasks together.
      const other = nodes.rows.find((r) => r.id === '(other agents)');
      if (foldedAgents === 0) expect(other).toBeUndefined();
      else {
        const { rows: p95 } = await pool.query<{ p95: number | null }>(
          `SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95 FROM swarm_traces
           WHERE trace_id = ANY($1) AND status = 'completed'`,
          [graphTasks.filter((t) => t.agent === '(other agents)').map((t) => t.trace_id)],
        );
        expect(other!.detail__p95_duration_ms).toBe(p95[0]!.p95);
        const agentNodes = nodes.rows.filter((r) => String(r.subtitle) !== 'service');
        expect(agentNodes.length, 'agent nodes: 15, (other agents), (no agent)').toBeLessThanOrEqual(17);
      }
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

    // Rows stored before migration 0016 have no created_by (it does not rewrite them): the graph reads
    // their creator from their task.created event. Half the tasks' rows as such a row: the same graph.
    const drawn = async () =>
      Promise.all(
        [range, recent].flatMap((w) =>
          ['edges', 'nodes'].map(async (refId) =>
            sorted(
              (await run(sqlOf(refId), variables, w)).rows.map((r) => JSON.stringify(r)),
              (x) => x,
            ),
          ),
        ),
      );
    const before = await drawn();
    const { rows: creators } = await pool.query<{ trace_id: string; created_by: string }>(
      `SELECT trace_id, created_by FROM swarm_traces WHERE is_task AND created_by IS NOT NULL`,
    );
    const unset = creators.filter((_, i) => i % 2 === 0);
    expect(unset.length).toBeGreaterThan(20);
    await pool.query(`UPDATE swarm_traces SET created_by = NULL WHERE trace_id = ANY($1)`, [
      unset.map((c) => c.trace_id),
    ]);
    try {
      expect(await drawn()).toEqual(before);
    } finally {
      await pool.query(
        `UPDATE swarm_traces t SET created_by = c.created_by
         FROM unnest($1::text[], $2::text[]) AS c(trace_id, created_by) WHERE t.trace_id = c.trace_id`,
        [unset.map((c) => c.trace_id), unset.map((c) => c.created_by)],
      );
    }
  });

  it('dashboard sql - finished tasks: those whose last lifecycle event is a terminal one in the range, as the events say (a late event that does not change it kept, a task retried after it failed left out)', async () => {
    // Two tasks end 60 and 58 minutes ago. One then gets a late note (not a lifecycle event) and a
    // task.started older than its end, delivered late: still completed, at its end. The other failed and
    // is assigned again 5 minutes ago: no longer finished. The panels read swarm_traces by completed_at;
    // the reference reads the stored events only, as the panels' earlier form did.
    const at = (minutesAgo: number) => new Date(now - minutesAgo * MINUTE).toISOString();
    const events: [string, string, number, Json][] = [
      ['finished-late-note', 'task.created', 70, { title: 'Finished, then a late note' }],
      ['finished-late-note', 'task.assigned', 69, { agent: 'dash-agent' }],
      ['finished-late-note', 'task.started', 68, { agent: 'dash-agent' }],
      ['finished-late-note', 'task.completed', 60, { agent: 'dash-agent' }],
      ['finished-late-note', 'task.progress', 4, { agent: 'dash-agent', note: 'late' }],
      ['finished-late-note', 'task.started', 65, { agent: 'dash-agent', note: 'delivered late' }],
      ['finished-retried', 'task.created', 66, { title: 'Failed, then retried' }],
      ['finished-retried', 'task.assigned', 65, { agent: 'dash-agent' }],
      ['finished-retried', 'task.started', 64, { agent: 'dash-agent' }],
      ['finished-retried', 'task.failed', 58, { agent: 'dash-agent', error: 'flaky' }],
      ['finished-retried', 'task.assigned', 5, { agent: 'dash-agent' }],
    ];
    for (const [i, [traceId, type, minutesAgo, metadata]] of events.entries())
      await env.publish(`swarm.${type}`, {
        event_id: `finished-${i}`,
        trace_id: traceId,
        source: 'dashboard-test',
        event_type: type,
        timestamp: at(minutesAgo),
        metadata,
      });
    await waitFor(
      async () => {
        const { rows } = await pool.query<{ n: string }>(
          `SELECT count(*) AS n FROM swarm_events WHERE trace_id LIKE 'finished-%'`,
        );
        return Number(rows[0]!.n) === events.length;
      },
      15_000,
      'the finished tasks to be stored',
    );
    const { rows: stored } = await pool.query<{
      trace_id: string;
      status: string;
      completed_at: Date | null;
    }>(`SELECT trace_id, status, completed_at FROM swarm_traces WHERE trace_id LIKE 'finished-%' ORDER BY 1`);
    expect(stored.map((r) => [r.trace_id, r.status, r.completed_at?.toISOString() ?? null])).toEqual([
      ['finished-late-note', 'completed', at(60)],
      ['finished-retried', 'assigned', null],
    ]);

    // The reference: each task's last lifecycle event by (timestamp, rank, event_id), from swarm_events.
    const { rows: last } = await pool.query<{ event_type: string; timestamp: Date }>(
      `SELECT DISTINCT ON (trace_id) event_type, "timestamp"
       FROM swarm_events WHERE chronicle_lifecycle_rank(event_type) IS NOT NULL
       ORDER BY trace_id, "timestamp" DESC, chronicle_lifecycle_rank(event_type) DESC, event_id DESC`,
    );
    const statusOf = new Map<string, string>(
      LIFECYCLE.filter((s) => s.terminal).map((s) => [s.eventType, s.status]),
    );
    const OUTCOMES = ['completed', 'failed', 'timed_out'];
    const variables = await variablesOf(overview());
    const seeded = { from: new Date(now - 61 * MINUTE), to: new Date(now - 57 * MINUTE) };
    for (const window of [range, recent, seeded]) {
      const where = `${window.from.toISOString()} to ${window.to.toISOString()}`;
      const finished = last.filter(
        (r) =>
          statusOf.has(r.event_type) &&
          r.timestamp.getTime() >= window.from.getTime() &&
          r.timestamp.getTime() <= window.to.getTime(),
      );
      const n = (status: string) => finished.filter((r) => statusOf.get(r.event_type) === status).length;
      const throughput = await run(panelSql(overview(), 'Throughput'), variables, window);
      expect(Number(throughput.rows[0]!.Finished), where).toBe(finished.length);
      const outcomes = await run(panelSql(overview(), 'Outcome rates'), variables, window);
      const share = (k: number) => (finished.length ? k / finished.length : null);
      expect(outcomes.rows[0], where).toEqual({
        Success: share(n('completed')),
        Failure: share(n('failed')),
        Timeout: share(n('timed_out')),
      });
      // Per interval, by outcome: the throughput graph's rates times the interval's minutes.
      const graph = await run(
        panelSql(overview(), 'Throughput: tasks finished per minute, by outcome'),
        variables,
        window,
        'time_series',
      );
      const minutes = INTERVAL_MILLIS / MINUTE;
      const got = graph.queried.map((r) => [
        rowTime(r),
        ...OUTCOMES.map((c) => Math.round(Number(r[c]) * minutes)),
      ]);
      const want = new Map<number, number[]>();
      for (const r of finished) {
        const start = Math.floor(r.timestamp.getTime() / INTERVAL_MILLIS) * INTERVAL_MILLIS;
        const counts = want.get(start) ?? [0, 0, 0];
        counts[OUTCOMES.indexOf(statusOf.get(r.event_type)!)]! += 1;
        want.set(start, counts);
      }
      expect(got, where).toEqual([...want].sort(([a], [b]) => a - b).map(([t, c]) => [t, ...c]));
    }
    const failures = await run(panelSql(overview(), 'Recent failures'), variables, seeded);
    expect(failures.rows.map((r) => r.trace_id)).not.toContain('finished-retried');
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
