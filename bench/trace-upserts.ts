/**
 * `npx tsx bench/trace-upserts.ts`: what the newest migration's indexes on swarm_traces cost its writes.
 * On a scratch database through Chronicle's migrations (BENCH_UPSERTS_DB, default
 * chronicle_dash_writes; dropped at the end), swarm_traces holding BENCH_UPSERTS_ROWS finished tasks
 * (default 200,000), a loop of flush-like statements: each upserts 1,000 rows as the trace recompute
 * does (INSERT … SELECT FROM unnest(…) ON CONFLICT (trace_id) DO UPDATE SET every column), a quarter of
 * them new tasks, a quarter assigned, a quarter started and a quarter finished (90 % completed), so every
 * task goes through four row versions, interleaved. BENCH_UPSERTS_FLUSHES flushes (default 400: 100,000
 * tasks, 400,000 row versions) per run, with the migration's indexes dropped ("without"; an index it
 * drops and creates again: as it was before, "before"), with each one alone, and with all of them, in the order A B C … C B A (twice each); the table is emptied and
 * refilled before each run. Reports the median run's time per row version and the HOT share.
 */
import pg from 'pg';
import { dropDatabase, migratedDatabase, newestMigrationIndexes } from './support.js';

const NAME = process.env.BENCH_UPSERTS_DB ?? 'chronicle_dash_writes';
const ROWS = Number(process.env.BENCH_UPSERTS_ROWS ?? 200_000);
const FLUSHES = Number(process.env.BENCH_UPSERTS_FLUSHES ?? 400);
const BATCH = 1000;

/** One flush: rows (task number, stage 0-3) upserted as the recompute upserts them. */
const UPSERT_SQL = `
INSERT INTO swarm_traces AS t (trace_id, is_task, task_title, owner, created_by, status, assigned_agent,
  created_at, assigned_at, started_at, completed_at, duration_ms, time_to_pickup_ms, attempts, span_count,
  error, first_event_at, last_event_at, first_terminal_at, updated_at)
SELECT 'task-' || md5(b.n::text), true, 'Task ' || b.n, 'owner-' || (b.n % 12), 'service-' || (b.n % 7),
  s.status, CASE WHEN b.stage > 0 THEN 'agent-' || (b.n % 40) END, c.created_at,
  CASE WHEN b.stage > 0 THEN c.created_at + interval '5 s' END,
  CASE WHEN b.stage > 1 THEN c.created_at + interval '7 s' END,
  CASE WHEN b.stage > 2 THEN c.created_at + interval '67 s' END,
  CASE WHEN b.stage > 2 THEN 60000 END, CASE WHEN b.stage > 1 THEN 2000 END,
  (b.stage > 0)::int, b.stage + 1, CASE WHEN s.status = 'failed' THEN 'boom' END,
  c.created_at, c.created_at + b.stage * interval '20 s',
  CASE WHEN b.stage > 2 THEN now() END, now()
FROM unnest($1::int[], $2::int[]) AS b(n, stage)
CROSS JOIN LATERAL (SELECT timestamptz '2026-12-01' + b.n * interval '4 s' AS created_at) c
CROSS JOIN LATERAL (SELECT CASE b.stage WHEN 0 THEN 'pending' WHEN 1 THEN 'assigned' WHEN 2 THEN 'in_progress'
  ELSE CASE WHEN b.n % 10 = 0 THEN 'failed' ELSE 'completed' END END AS status) s
ON CONFLICT (trace_id) DO UPDATE SET
  is_task = excluded.is_task, task_title = excluded.task_title, owner = excluded.owner,
  created_by = excluded.created_by, status = excluded.status, assigned_agent = excluded.assigned_agent, created_at = excluded.created_at, assigned_at = excluded.assigned_at,
  started_at = excluded.started_at, completed_at = excluded.completed_at, duration_ms = excluded.duration_ms,
  time_to_pickup_ms = excluded.time_to_pickup_ms, attempts = excluded.attempts, span_count = excluded.span_count,
  error = excluded.error, first_event_at = excluded.first_event_at, last_event_at = excluded.last_event_at,
  updated_at = excluded.updated_at, first_terminal_at = coalesce(t.first_terminal_at, excluded.first_terminal_at)`;

async function run(
  client: pg.Client,
  stats: pg.Client,
  indexes: { name: string; sql: string }[],
  all: string[],
) {
  for (const name of all) await client.query(`DROP INDEX IF EXISTS ${name}`);
  await client.query('TRUNCATE swarm_traces');
  // ROWS finished tasks before the run (task numbers below 0), then the indexes of this variant.
  const pre = [...Array(ROWS).keys()].map((i) => -1 - i);
  for (let i = 0; i < pre.length; i += 10_000) {
    const ns = pre.slice(i, i + 10_000);
    await client.query(UPSERT_SQL, [ns, ns.map(() => 3)]);
  }
  for (const i of indexes) await client.query(i.sql);
  await client.query('VACUUM ANALYZE swarm_traces');
  await client.query('SELECT pg_stat_reset_single_table_counters($1::regclass)', ['swarm_traces']);
  const quarter = BATCH / 4;
  const started = performance.now();
  for (let f = 0; f < FLUSHES; f++) {
    const ns: number[] = [];
    const stages: number[] = [];
    // Flush f creates tasks f*250…, assigns those created a flush before, starts those of two before…
    for (let stage = 0; stage < 4; stage++) {
      const from = (f - stage) * quarter;
      if (from < 0) continue;
      for (let k = 0; k < quarter; k++) {
        ns.push(from + k);
        stages.push(stage);
      }
    }
    await client.query(UPSERT_SQL, [ns, stages]);
  }
  const ms = performance.now() - started;
  await client.query('SELECT pg_stat_force_next_flush()');
  await client.query('SELECT 1');
  await new Promise((r) => setTimeout(r, 200));
  const { rows } = await stats.query<{ upd: string; hot: string; ins: string }>(
    `SELECT n_tup_upd AS upd, n_tup_hot_upd AS hot, n_tup_ins AS ins FROM pg_stat_user_tables WHERE relname = 'swarm_traces'`,
  );
  const versions = FLUSHES * BATCH - (BATCH / 4) * 6; // the first three flushes have fewer stages
  if (Number(rows[0]!.upd) === 0) throw new Error('no update counted: the statistics were not reported');
  return { ms, versions, hot: Number(rows[0]!.hot) / Number(rows[0]!.upd) };
}

async function main(): Promise<void> {
  const url = await migratedDatabase(NAME, { fresh: true });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const stats = new pg.Client({ connectionString: url });
  await stats.connect();
  try {
    const { file, indexes, replaced } = newestMigrationIndexes();
    const all = indexes.map((i) => i.name);
    // An index the migration redefines is compared with its old definition, not with none.
    const variants: [string, typeof indexes][] = [
      replaced.length > 0
        ? [`before ${file} (${replaced.map((i) => i.name).join(', ')} as it was)`, replaced]
        : ['without', []],
      ...indexes.map((i) => [`with ${i.name} only`, [i]] as [string, typeof indexes]),
      ...(indexes.length > 1 ? [['with all', indexes] as [string, typeof indexes]] : []),
    ];
    const results = new Map<string, { ms: number; versions: number; hot: number }[]>();
    for (const [name, set] of [...variants, ...[...variants].reverse()]) {
      const r = await run(client, stats, set, all);
      results.set(name, [...(results.get(name) ?? []), r]);
      console.log(
        `${name}: ${r.ms.toFixed(0)} ms for ${r.versions} row versions, ${((r.ms * 1000) / r.versions).toFixed(2)} µs each, HOT ${(r.hot * 100).toFixed(1)} %`,
      );
    }
    console.log('');
    console.log('| swarm_traces indexes | runs | µs per row version (each run) | HOT updates |');
    console.log('|---|---|---|---|');
    for (const [name, rs] of results) {
      console.log(
        `| ${name} | ${rs.length} | ${rs.map((r) => ((r.ms * 1000) / r.versions).toFixed(2)).join(', ')} | ${(rs[0]!.hot * 100).toFixed(1)} % |`,
      );
    }
  } finally {
    await client.end();
    await stats.end();
    await dropDatabase(url);
  }
}

await main();
