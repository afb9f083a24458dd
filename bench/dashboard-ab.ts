/**
 * `npx tsx bench/dashboard-ab.ts DATABASE [REV]`: the dashboard queries whose SQL differs between a git
 * revision (default HEAD) and the working tree, old against new, on a store `npm run bench:scale` filled
 * and kept (BENCH_SCALE_KEEP=1 prints its name). Unlike bench/finished-panels.ts (a store filled
 * straight with SQL, for a new index), this reads what ingest wrote, and for each run gives old and new
 * the same window, alternating which goes first (the first pays for reading the window's rows into the
 * cache), and checks that both return the same rows. Over a 24 h and a 7 d window ending at a random
 * moment of the store's task days; BENCH_AB_RUNS runs (default 60) per window; p50 / p90 / p99 in ms.
 */
import pg from 'pg';
import { dashboardQueries, expandMacros, readDashboards } from './dashboard-sql.js';
import { percentile } from './support.js';
import { rng } from './traffic.js';

const [database, rev = 'HEAD'] = process.argv.slice(2);
if (!database) throw new Error('usage: npx tsx bench/dashboard-ab.ts DATABASE [REV]');
const RUNS = Number(process.env.BENCH_AB_RUNS ?? 60);
const DAY_MS = 86_400_000;

const pool = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:5432/${database}`, max: 1 });
const before = new Map(dashboardQueries(readDashboards(rev)).map((q) => [q.name, q.sql]));
const changed = dashboardQueries().filter((q) => before.has(q.name) && before.get(q.name) !== q.sql);
const { rows: range } = await pool.query<{ lo: Date; hi: Date }>(
  'SELECT min(created_at) AS lo, max(created_at) AS hi FROM swarm_traces WHERE is_task',
);
const { rows: agentRows } = await pool.query<{ agent: string }>(
  'SELECT DISTINCT assigned_agent AS agent FROM swarm_traces WHERE is_task AND assigned_agent IS NOT NULL',
);
const lo = range[0]!.lo.getTime();
const hi = range[0]!.hi.getTime();
const vars = { agents: agentRows.map((r) => r.agent), traceId: 'task-0' };
const random = rng(7);
const summary = (ms: number[]) => {
  const s = [...ms].sort((a, b) => a - b);
  return [0.5, 0.9, 0.99].map((p) => percentile(s, p).toFixed(1)).join(' / ');
};

console.log(
  `${changed.length} queries changed since ${rev}; ${RUNS} runs per window, old and new alternated\n`,
);
console.log('| query | window | old p50 / p90 / p99 ms | new p50 / p90 / p99 ms | rows |');
console.log('|---|---|---|---|---|');
for (const q of changed) {
  for (const [label, spanMs] of [
    ['24 h', DAY_MS],
    ['7 d', 7 * DAY_MS],
  ] as const) {
    const times = { old: [] as number[], new: [] as number[] };
    let rows = 0;
    for (let i = 0; i < RUNS; i++) {
      const to = lo + spanMs + random() * (hi - lo - spanMs);
      const w = { from: to - spanMs, to, intervalSeconds: spanMs > DAY_MS ? 600 : 60 };
      const results: Record<string, string> = {};
      for (const which of i % 2 === 0 ? (['old', 'new'] as const) : (['new', 'old'] as const)) {
        const sql = expandMacros(which === 'old' ? before.get(q.name)! : q.sql, w, vars);
        const started = performance.now();
        const result = await pool.query(sql);
        times[which].push(performance.now() - started);
        results[which] = JSON.stringify(result.rows);
        rows = result.rowCount ?? 0;
      }
      if (results.old !== results.new) {
        throw new Error(`${q.name} [${label}]: old and new differ on ${JSON.stringify(w)}`);
      }
    }
    console.log(
      `| ${q.name} | ${label} | ${summary(times.old)} | ${summary(times.new)} | same (${rows} last run) |`,
    );
  }
}
await pool.end();
