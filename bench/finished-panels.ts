/**
 * `npx tsx bench/finished-panels.ts`: the dashboards' queries that changed since a git revision
 * (BENCH_PANELS_BEFORE, default main), old SQL against new, on a store of bench:scale's shape filled
 * straight with SQL (no ingest): 20,000 tasks a day over 54 days ending today (1,080,000 task rows,
 * 90 % completed, 6 % failed, 3 % timed out, 1 % not finished; 40 agents), 4,040 traces that are not
 * tasks, and their events (created, assigned, started, terminal; a heartbeat per agent every 5 minutes:
 * about 4,900,000), all in the default partition of swarm_events as in bench:scale, and the task totals
 * of agent_metrics aggregated from the trace rows.
 *
 * 1. A scratch database (BENCH_PANELS_DB, default chronicle_dash_scratch) through Chronicle's
 *    migrations, filled, VACUUM ANALYZE.
 * 2. Without the indexes of the newest migration (dropped; the rest of it, a column and its backfill,
 *    stays; an index it drops and creates again gets its old definition back): the old SQL (and the
 *    new, with BENCH_PANELS_NEW_WITHOUT_INDEX=1).
 * 3. With them (its CREATE INDEX statements run again), VACUUM ANALYZE: the new SQL (and the old, with
 *    BENCH_PANELS_OLD_WITH_INDEX=1).
 * Each over a 24 h and a 7 d window, BENCH_PANELS_RUNS runs (default 20) after one to warm up, window ends varied per run as
 * bench:scale varies them (a random moment of a random day, up to 12 h past its end); p50 / p99 / max.
 * The database is dropped at the end unless BENCH_PANELS_KEEP=1 (a kept one is reused, not refilled);
 * BENCH_PANELS_FILL_ONLY=1 stops after the fill (and keeps it). BENCH_PANELS_QUERY (a regular expression)
 * adds the queries whose name it matches, changed or not (the same SQL before and after a new index).
 */
import pg from 'pg';
import { type DashboardQuery, dashboardQueries, expandMacros, readDashboards } from './dashboard-sql.js';
import { ADMIN_URL, migratedDatabase, newestMigrationIndexes, percentile } from './support.js';
import { rng } from './traffic.js';

const NAME = process.env.BENCH_PANELS_DB ?? 'chronicle_dash_scratch';
const BEFORE = process.env.BENCH_PANELS_BEFORE ?? 'main';
const RUNS = Number(process.env.BENCH_PANELS_RUNS ?? 20);
const FILL_ONLY = process.env.BENCH_PANELS_FILL_ONLY === '1';
const KEEP = process.env.BENCH_PANELS_KEEP === '1';
const NEW_WITHOUT_INDEX = process.env.BENCH_PANELS_NEW_WITHOUT_INDEX === '1';
const DAYS = 54;
const TASKS_PER_DAY = 20_000;
const AGENTS = 40;
const DAY_MS = 86_400_000;

/** The fill: task rows as the recompute leaves them, then their events, then the other traces. */
const FILL_SQL = `
SELECT setseed(0.14);
CREATE TEMP TABLE gen AS
SELECT i, 'task-' || md5(i::text) AS trace_id,
  date_trunc('day', now()) - interval '${DAYS - 1} days'
    + (i - 1) * interval '${86_400 / TASKS_PER_DAY} seconds' + random() * interval '4 seconds' AS created_at,
  random() AS r, (1000 + random() * 30000)::int AS assign_ms, (100 + random() * 5000)::int AS pickup_ms,
  (1000 + random() * 600000)::int AS run_ms, 'agent-' || lpad((i % ${AGENTS})::text, 2, '0') AS agent,
  'service-' || (i % 7) AS creator
FROM generate_series(1, ${DAYS * TASKS_PER_DAY}) AS i;
CREATE TEMP TABLE task AS
SELECT g.*, s.status,
  CASE WHEN s.status <> 'pending' THEN g.created_at + g.assign_ms * interval '1 ms' END AS assigned_at,
  CASE WHEN s.status NOT IN ('pending', 'assigned')
    THEN g.created_at + (g.assign_ms + g.pickup_ms) * interval '1 ms' END AS started_at,
  CASE WHEN s.status IN ('completed', 'failed', 'timed_out')
    THEN g.created_at + (g.assign_ms + g.pickup_ms + g.run_ms) * interval '1 ms' END AS completed_at
FROM gen g
CROSS JOIN LATERAL (SELECT CASE WHEN g.r < 0.90 THEN 'completed' WHEN g.r < 0.96 THEN 'failed'
  WHEN g.r < 0.99 THEN 'timed_out' WHEN g.r < 0.995 THEN 'in_progress' WHEN g.r < 0.998 THEN 'assigned'
  ELSE 'pending' END AS status) s;

INSERT INTO swarm_traces (trace_id, is_task, task_title, owner, created_by, status, assigned_agent, created_at,
  assigned_at, started_at, completed_at, duration_ms, time_to_pickup_ms, attempts, span_count, error,
  first_event_at, last_event_at, first_terminal_at, updated_at)
SELECT trace_id, true, 'Task ' || i, 'owner-' || (i % 12), creator, status,
  CASE WHEN status <> 'pending' THEN agent END, created_at, assigned_at, started_at, completed_at,
  CASE WHEN completed_at IS NOT NULL THEN run_ms END, CASE WHEN started_at IS NOT NULL THEN pickup_ms END,
  (assigned_at IS NOT NULL)::int,
  1 + (assigned_at IS NOT NULL)::int + (started_at IS NOT NULL)::int + (completed_at IS NOT NULL)::int,
  CASE status WHEN 'failed' THEN 'error ' || (i % 9) WHEN 'timed_out' THEN 'timeout' END,
  created_at, coalesce(completed_at, started_at, assigned_at, created_at), completed_at,
  coalesce(completed_at, started_at, assigned_at, created_at)
FROM task ORDER BY created_at;

INSERT INTO swarm_events (event_id, trace_id, source, event_type, "timestamp", metadata)
SELECT md5(x.trace_id || x.event_type)::uuid, x.trace_id, x.source, x.event_type, x.ts,
  jsonb_build_object('agent', x.agent, 'title', x.title, 'note', repeat('n', 120))
FROM (
  SELECT trace_id, creator AS source, 'task.created' AS event_type, created_at AS ts, NULL AS agent,
    'Task ' || i AS title FROM task
  UNION ALL
  SELECT trace_id, agent, 'task.assigned', assigned_at, agent, NULL FROM task WHERE assigned_at IS NOT NULL
  UNION ALL
  SELECT trace_id, agent, 'task.started', started_at, agent, NULL FROM task WHERE started_at IS NOT NULL
  UNION ALL
  SELECT trace_id, agent,
    CASE status WHEN 'completed' THEN 'task.completed' WHEN 'failed' THEN 'task.failed' ELSE 'task.timeout' END,
    completed_at, agent, NULL FROM task WHERE completed_at IS NOT NULL
  UNION ALL
  SELECT 'agent-' || lpad(a::text, 2, '0'), 'agent-' || lpad(a::text, 2, '0'), 'agent.heartbeat', t,
    'agent-' || lpad(a::text, 2, '0'), NULL
  FROM generate_series(0, ${AGENTS - 1}) AS a,
    generate_series(date_trunc('day', now()) - interval '${DAYS - 1} days', now(), interval '5 minutes') AS t
  UNION ALL
  SELECT 'log-' || md5(k::text), 'logger', 'log.line',
    date_trunc('day', now()) - interval '${DAYS - 1} days' + k * interval '1155 seconds', NULL, NULL
  FROM generate_series(1, 4000) AS k
) x
ORDER BY x.ts;

INSERT INTO swarm_traces (trace_id, is_task, created_at, span_count, first_event_at, last_event_at)
SELECT trace_id, false, min("timestamp"), count(*), min("timestamp"), max("timestamp")
FROM swarm_events WHERE event_type IN ('agent.heartbeat', 'log.line') GROUP BY trace_id;

-- The task totals the writer keeps per agent and UTC day (the panels over agent_metrics, the ranking).
INSERT INTO agent_metrics (agent_id, metric_date, tasks_completed, tasks_failed, tasks_timed_out,
  duration_count, duration_sum, pickup_count, pickup_sum)
SELECT assigned_agent, (completed_at AT TIME ZONE 'UTC')::date,
  count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
  count(*) FILTER (WHERE status = 'timed_out'),
  count(duration_ms) FILTER (WHERE status = 'completed'),
  coalesce(sum(duration_ms) FILTER (WHERE status = 'completed'), 0),
  count(time_to_pickup_ms), coalesce(sum(time_to_pickup_ms), 0)
FROM swarm_traces
WHERE is_task AND status IN ('completed', 'failed', 'timed_out') AND assigned_agent IS NOT NULL
GROUP BY 1, 2;
`;

/** The secondary indexes of a table (not constraints), by name with their definition. */
async function plainIndexes(client: pg.Client, table: string): Promise<{ name: string; def: string }[]> {
  const { rows } = await client.query<{ name: string; def: string }>(
    `SELECT i.relname AS name, pg_get_indexdef(i.oid) AS def
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
     WHERE x.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)`,
    [table],
  );
  return rows;
}

async function fill(client: pg.Client): Promise<void> {
  const started = performance.now();
  await client.query(`SET maintenance_work_mem = '512MB'`);
  // Built after the rows (sorted builds): minutes instead of tens of minutes.
  const dropped = [
    ...(await plainIndexes(client, 'swarm_events')),
    ...(await plainIndexes(client, 'swarm_traces')),
  ];
  for (const i of dropped) await client.query(`DROP INDEX ${i.name}`);
  await client.query(FILL_SQL);
  // Rebuilt on the partitions too: pg_get_indexdef gives a partitioned table's index as ON ONLY (the
  // parent's alone, left invalid), which had swarm_events' partitions without any index.
  for (const i of dropped) await client.query(i.def.replace(' ON ONLY ', ' ON '));
  console.log(`filled in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

interface Timing {
  name: string;
  p50: number;
  p99: number;
  max: number;
  runs: number;
  rows: string;
}

async function time(
  client: pg.Client,
  q: DashboardQuery,
  spanMs: number,
  seed: number,
  agents: string[],
  runs = RUNS,
): Promise<Timing> {
  const random = rng(seed);
  const today = new Date().setUTCHours(0, 0, 0, 0);
  const ms: number[] = [];
  const counts = new Set<number>();
  for (let i = 0; i < runs; i++) {
    const day = today - Math.floor(random() * (DAYS - 8)) * DAY_MS;
    const to = day + Math.floor(random() * DAY_MS * 1.5);
    const sql = expandMacros(
      q.sql,
      { from: to - spanMs, to, intervalSeconds: spanMs > DAY_MS ? 600 : 60 },
      { agents, traceId: 'task-0' },
    );
    const t = performance.now();
    const result = await client.query(sql);
    ms.push(performance.now() - t);
    counts.add(result.rowCount ?? 0);
  }
  const sorted = ms.sort((a, b) => a - b);
  return {
    name: q.name,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted.at(-1)!,
    runs: sorted.length,
    rows: `${Math.min(...counts)}–${Math.max(...counts)}`,
  };
}

async function main(): Promise<void> {
  const url = await migratedDatabase(NAME, { fresh: false });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const migration = newestMigrationIndexes();
  try {
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM swarm_traces');
    if (rows[0]!.n === '0') {
      await fill(client);
      await client.query('VACUUM ANALYZE');
    }
    const sizes = await client.query<{ traces: string; events: string }>(
      `SELECT (SELECT count(*) FROM swarm_traces) AS traces, (SELECT count(*) FROM swarm_events) AS events`,
    );
    console.log(`store: ${sizes.rows[0]!.traces} trace rows, ${sizes.rows[0]!.events} events`);
    if (FILL_ONLY) return;
    const agents = Array.from({ length: AGENTS }, (_, a) => `agent-${String(a).padStart(2, '0')}`);

    const before = new Map(dashboardQueries(readDashboards(BEFORE)).map((q) => [q.name, q]));
    const also = process.env.BENCH_PANELS_QUERY ? new RegExp(process.env.BENCH_PANELS_QUERY) : null;
    const changed = dashboardQueries().filter(
      (q) => before.has(q.name) && (before.get(q.name)!.sql !== q.sql || also?.test(q.name)),
    );
    console.log(
      `queries changed since ${BEFORE}${also ? ` or matching ${also.source}` : ''}: ${changed.length}`,
    );

    const results: { name: string; window: string; phase: string; t: Timing }[] = [];
    const windows = [
      ['24 h', DAY_MS],
      ['7 d', 7 * DAY_MS],
    ] as const;
    const round = async (phase: string, which: 'old' | 'new') => {
      for (const [k, q] of changed.entries()) {
        const query = which === 'old' ? before.get(q.name)! : q;
        for (const [wi, [label, spanMs]] of windows.entries()) {
          // Warm once, then time; the same window ends for old and new (same seed).
          await time(client, query, spanMs, 1000 + k * 10 + wi, agents, 1);
          const t = await time(client, query, spanMs, 1000 + k * 10 + wi, agents);
          results.push({ name: q.name, window: label, phase, t });
        }
      }
    };
    for (const { name } of migration.indexes) await client.query(`DROP INDEX IF EXISTS ${name}`);
    for (const { sql } of migration.replaced) await client.query(sql);
    await client.query('VACUUM ANALYZE swarm_traces');
    const without =
      migration.replaced.length > 0
        ? `before ${migration.file} (${migration.replaced.map((i) => i.name).join(', ')} as it was)`
        : migration.indexes.length > 0
          ? `without ${migration.file}'s indexes`
          : 'as migrated';
    await round(`old SQL, ${without}`, 'old');
    if (NEW_WITHOUT_INDEX) await round(`new SQL, ${without}`, 'new');
    for (const { name } of migration.replaced) await client.query(`DROP INDEX ${name}`);
    // Each build timed: what an upgrade's migration holds the table for (reads of it wait).
    const built = new Map<string, number>();
    for (const { name, sql } of migration.indexes) {
      const t = performance.now();
      await client.query(sql);
      built.set(name, performance.now() - t);
    }
    await client.query('VACUUM ANALYZE swarm_traces');
    const size = await client.query<{ name: string; size: string }>(
      `SELECT relname AS name, pg_size_pretty(pg_relation_size(oid)) AS size FROM pg_class WHERE relname = ANY($1)`,
      [migration.indexes.map((i) => i.name)],
    );
    for (const s of size.rows)
      console.log(`index ${s.name}: ${s.size}, built in ${((built.get(s.name) ?? 0) / 1000).toFixed(1)} s`);
    if (process.env.BENCH_PANELS_OLD_WITH_INDEX === '1')
      await round(`old SQL, with ${migration.file}`, 'old');
    await round(`new SQL, with ${migration.file}`, 'new');

    console.log('');
    console.log('| query | window | SQL and indexes | runs | rows | p50 ms | p99 ms | max ms |');
    console.log('|---|---|---|---|---|---|---|---|');
    const order = (r: (typeof results)[number]) => `${r.name}\u0000${r.window}`;
    for (const r of [...results].sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))) {
      console.log(
        `| ${r.name} | ${r.window} | ${r.phase} | ${r.t.runs} | ${r.t.rows} | ${r.t.p50.toFixed(1)} | ${r.t.p99.toFixed(1)} | ${r.t.max.toFixed(1)} |`,
      );
    }
  } finally {
    await client.end();
    if (!KEEP && !FILL_ONLY) {
      const a = new pg.Client({ connectionString: ADMIN_URL });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${NAME} WITH (FORCE)`);
      await a.end();
    }
  }
}

await main();
