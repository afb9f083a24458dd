/**
 * Where a flush's Postgres time goes: replays the benchmark's traffic through the event writer in
 * batches, on one connection by default, and sums the wall time of each statement of the flush
 * transaction. No NATS, no HTTP: this isolates the database side of the drain.
 *
 *   npm run bench:statements   (BENCH_EVENTS, BENCH_BATCH, BENCH_CONNECTIONS change the defaults;
 *   BENCH_TRAFFIC=grouped replays the grouped profile instead of the interleaved one)
 */
import pg from 'pg';
import { createEventWriter } from '../src/sinks/postgres/event-writer.js';
import { migrate } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import type { WriteRecord } from '../src/pipeline/records.js';
import { silentLogger } from '../src/telemetry/logger.js';
import { generateInterleavedTraffic, generateTraffic } from './traffic.js';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const events = Number(process.env.BENCH_EVENTS ?? 500_000);
const batchSize = Number(process.env.BENCH_BATCH ?? 4_000);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 1);
const database = 'chronicle_bench_statements';

const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
await admin.query(`CREATE DATABASE ${database}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${database}`;
const pool = createPool({ connectionString: url.toString(), maxConnections: connections });

try {
  await migrate(pool, silentLogger());
  // Each pooled client's query() is wrapped once to time statements by their first words.
  const millis = new Map<string, number>();
  const wrapped = new WeakSet<pg.PoolClient>();
  pool.on('acquire', (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (sql: string, params?: unknown[]) => Promise<unknown>;
    (client as { query: unknown }).query = async (sql: string, params?: unknown[]) => {
      const started = performance.now();
      try {
        return await query(sql, params);
      } finally {
        const key = sql.trim().replace(/\s+/g, ' ').slice(0, 80);
        millis.set(key, (millis.get(key) ?? 0) + performance.now() - started);
      }
    };
  });

  const { messages } =
    process.env.BENCH_TRAFFIC === 'grouped' ? generateTraffic(events) : generateInterleavedTraffic(events);
  const records: WriteRecord[] = messages.map((m) => ({
    kind: 'event',
    input: { origin: 'nats', subject: m.subject, key: null },
    event: JSON.parse(m.payload) as Extract<WriteRecord, { kind: 'event' }>['event'],
  }));
  const writer = createEventWriter({ pool, logger: silentLogger() });
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < records.length) {
      const from = next;
      next += batchSize;
      await writer.write(records.slice(from, from + batchSize));
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const total = performance.now() - started;

  console.log(
    `${records.length} records in batches of ${batchSize} on ${connections} connection(s): ` +
      `${(total / 1000).toFixed(1)} s, ${Math.round((records.length / total) * 1000)} records/s`,
  );
  console.log('| statement | total ms | µs per record |\n|---|---|---|');
  for (const [sql, ms] of [...millis].sort((a, b) => b[1] - a[1])) {
    console.log(`| \`${sql}…\` | ${ms.toFixed(0)} | ${((ms * 1000) / records.length).toFixed(1)} |`);
  }
} finally {
  await pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.end();
}
