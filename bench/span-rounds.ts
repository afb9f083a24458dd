/**
 * Where a span build round's time goes on interleaved traffic: writes the traffic through the event
 * writer in batches (BENCH_BATCH, 4,000) and, after each batch, builds every pending trace (settle and
 * maximum delay 0: each batch's touched traces are built before the next, as a builder that keeps up
 * with a live swarm does, whose tasks' events arrive seconds apart). Sums the wall time of each of the
 * builder's statements, and the builder's time outside them (Node: mapping, JSON).
 *
 *   npx tsx bench/span-rounds.ts   (BENCH_EVENTS, 200,000; BENCH_ROUND_TRACES, 100)
 */
import type pg from 'pg';
import { createEventWriter } from '../src/sinks/postgres/event-writer.js';
import { migrate } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import type { WriteRecord } from '../src/pipeline/records.js';
import { createSpanBuilder } from '../src/spans/span-builder.js';
import { silentLogger } from '../src/telemetry/logger.js';
import { createMetrics } from '../src/telemetry/metrics.js';
import { EVENTS_ON_DISK_SQL, createDatabase, dropDatabase } from './support.js';
import { generateInterleavedTraffic } from './traffic.js';

const events = Number(process.env.BENCH_EVENTS ?? 200_000);
const batchSize = Number(process.env.BENCH_BATCH ?? 4_000);
const roundTraces = Number(process.env.BENCH_ROUND_TRACES ?? 100);

const url = await createDatabase();
const pool = createPool({ connectionString: url, maxConnections: 1 });
const spanPool = createPool({ connectionString: url, maxConnections: 1 });
try {
  await migrate(pool, silentLogger());
  const millis = new Map<string, number>();
  const wrapped = new WeakSet<pg.PoolClient>();
  spanPool.on('acquire', (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (sql: string, params?: unknown[]) => Promise<unknown>;
    (client as { query: unknown }).query = async (sql: string, params?: unknown[]) => {
      const started = performance.now();
      try {
        return await query(sql, params);
      } finally {
        const key = sql.trim().replace(/\s+/g, ' ').slice(0, 60);
        millis.set(key, (millis.get(key) ?? 0) + performance.now() - started);
      }
    };
  });
  const metrics = createMetrics({ defaultMetrics: false });
  const builder = createSpanBuilder(
    {
      resource: {},
      serviceName: 'chronicle',
      batchTraces: roundTraces,
      concurrency: 1,
      parkMillis: 60_000,
      settleMillis: 0,
      maxDelayMillis: 0,
      idleMillis: 250,
    },
    { pool: spanPool, logger: silentLogger(), metrics },
  );
  const { messages } = generateInterleavedTraffic(events);
  const records: WriteRecord[] = messages.map((m) => ({
    kind: 'event',
    input: { origin: 'http', subject: null, key: null },
    event: JSON.parse(m.payload) as Extract<WriteRecord, { kind: 'event' }>['event'],
  }));
  const writer = createEventWriter({ pool, logger: silentLogger() });
  let writeMillis = 0;
  let buildMillis = 0;
  let rounds = 0;
  let traces = 0;
  for (let from = 0; from < records.length; from += batchSize) {
    let t = performance.now();
    await writer.write(records.slice(from, from + batchSize));
    writeMillis += performance.now() - t;
    t = performance.now();
    for (;;) {
      const n = await builder.buildOnce();
      rounds += 1;
      traces += n;
      if (n === 0) break;
    }
    buildMillis += performance.now() - t;
  }
  const spans = (await metrics.spansBuilt.get()).values[0]!.value;
  const statementMillis = [...millis.values()].reduce((a, b) => a + b, 0);
  const { rows: sizes } = await pool.query<{ events: string; spans: string; stored: string }>(
    `SELECT ${EVENTS_ON_DISK_SQL} AS events, pg_total_relation_size('otel_spans') AS spans,
       (SELECT count(*) FROM swarm_event_ids) AS stored`,
  );
  const stored = Number(sizes[0]!.stored);
  const per = (ms: number) => ((ms * 1000) / stored).toFixed(1);
  console.log(
    `${records.length} records (${stored} events) in batches of ${batchSize}: writes ${(writeMillis / 1000).toFixed(1)} s ` +
      `(${per(writeMillis)} µs/event); builds ${(buildMillis / 1000).toFixed(1)} s (${per(buildMillis)} µs/event): ` +
      `${rounds} rounds, ${traces} trace builds (${(traces / stored).toFixed(2)} per event), ${spans} spans`,
  );
  console.log('| builder statement | total ms | µs per event |\n|---|---|---|');
  for (const [sql, ms] of [...millis].sort((a, b) => b[1] - a[1])) {
    console.log(`| \`${sql}…\` | ${ms.toFixed(0)} | ${per(ms)} |`);
  }
  console.log(
    `| (outside statements: Node) | ${(buildMillis - statementMillis).toFixed(0)} | ${per(buildMillis - statementMillis)} |`,
  );
  console.log(
    `bytes on disk per event: swarm_events ${(Number(sizes[0]!.events) / stored).toFixed(0)}, otel_spans ${(Number(sizes[0]!.spans) / stored).toFixed(0)}`,
  );
  // What the stored spans are made of: bytes of span JSON by role, and of the roots' span events.
  const { rows: parts } = await pool.query<{ role: string; n: string; bytes: string; event_bytes: string }>(
    `SELECT role, count(*) AS n, sum(octet_length(span::text)) AS bytes,
       sum(octet_length((span->'events')::text)) AS event_bytes
     FROM otel_spans GROUP BY role ORDER BY 3 DESC`,
  );
  console.log('| role | spans | span JSON bytes per event | of which span events |\n|---|---|---|---|');
  for (const r of parts) {
    console.log(
      `| ${r.role} | ${r.n} | ${(Number(r.bytes) / stored).toFixed(0)} | ${(Number(r.event_bytes) / stored).toFixed(0)} |`,
    );
  }
} finally {
  await pool.end();
  await spanPool.end();
  await dropDatabase(url);
}
