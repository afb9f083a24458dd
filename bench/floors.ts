/**
 * `npm run bench:floors`: what the unavoidable building blocks of ingest cost on this machine, per
 * event, measured in one run (issue 14: where a target cannot be reached, measure what bounds it).
 *
 * 1. NATS: N interleaved payloads preloaded into a fresh stream, then consumed by a child process (its
 *    CPU apart from the publisher's) with the nats client Chronicle uses, pulled the way Chronicle pulls
 *    (fetches of 1,000, the next after the last message of the previous one), doing nothing else:
 *    ack each message as it arrives; ack each, 4,000 at a time (as Chronicle acks after a flush);
 *    parse each payload and ack it; consume() (one standing pull) acking each; an AckPolicy.All
 *    consumer acked once per fetch; an AckPolicy.None consumer (delivery alone).
 *    CPU µs per message of the child and of nats-server, from /proc.
 * 2. JSON alone, in this process: decoding and parsing each payload, Chronicle's whole conversion of a
 *    message (streamMessageRecord: decode, parse, normalize), JSON.stringify of batches of 4,000 events
 *    (what the event writer sends as the json_to_recordset parameter).
 * 3. Postgres: batches of 4,000 distinct events on one connection into a fresh migrated database each,
 *    from the cheapest insert to the whole event writer; CPU µs per event of the backend serving the
 *    connection (found in pg_stat_activity by its application_name), of this process (node-postgres
 *    and, for the writer, its own JavaScript) and of the cluster's server processes (checkpointer, WAL
 *    writer..., shared with every database), WAL bytes per event (cluster-wide) and events/s.
 *
 * Needs Postgres and NATS (DATABASE_URL, NATS_URL as in the tests). BENCH_EVENTS sets N (default
 * 300,000 messages; the Postgres floors take the distinct events among them); BENCH_FLOORS picks parts
 * (`nats,json,postgres`, the default: all).
 */
import { INSERT_EVENTS_SQL } from '../src/sinks/postgres/event-writer.js';
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { AckPolicy, DeliverPolicy, type JsMsg, connect, nanos } from 'nats';
import type pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import { createPool, endPool } from '../src/db/pool.js';
import { decodeUtf8 } from '../src/events/normalize.js';
import type { WriteRecord } from '../src/pipeline/records.js';
import { createEventWriter } from '../src/sinks/postgres/event-writer.js';
import { streamMessageRecord } from '../src/sources/jetstream/message-record.js';
import { silentLogger } from '../src/telemetry/logger.js';
import { RAW_INSERT_SQL } from './raw-insert.js';
import {
  NATS_URL,
  cpuSeconds,
  createDatabase,
  dropDatabase,
  natsServerPid,
  postgresServerPids,
  sleep,
  totalCpuSeconds,
} from './support.js';
import { type BenchEvent, generateInterleavedTraffic } from './traffic.js';

const N = Number(process.env.BENCH_EVENTS ?? 300_000);
const PARTS = new Set((process.env.BENCH_FLOORS ?? 'nats,json,postgres').split(','));
/** Messages per pull, as Chronicle's JETSTREAM_FETCH_BATCH default. */
const FETCH_BATCH = 1_000;
/** Events per flush, as Chronicle's default batch. */
const BATCH = 4_000;
const APPLICATION_NAME = 'chronicle-floors';

type ConsumeVariant = 'ack' | 'ack-held' | 'parse-ack' | 'ack-all' | 'no-ack' | 'consume-ack';

/** What the parent tells a consuming child. */
interface ConsumeSpec {
  stream: string;
  durable: string;
  variant: ConsumeVariant;
  count: number;
}

type ChildMessage = { ready: true } | { done: number; redelivered: number };

// ---------------------------------------------------------------------------------------------------
// The consuming child: `floors.ts consume <spec>`. It connects and binds its consumer, says ready,
// consumes on `go`, says done, and closes on `close`: its CPU is read from /proc between ready and done.

async function consumeChild(spec: ConsumeSpec): Promise<void> {
  const send = (m: ChildMessage): void => void process.send!(m);
  const next = (): Promise<unknown> => new Promise((resolve) => process.once('message', resolve));
  const nc = await connect({ servers: NATS_URL });
  const consumer = await nc.jetstream().consumers.get(spec.stream, spec.durable);
  send({ ready: true });
  await next();
  let n = 0;
  let redelivered = 0;
  if (spec.variant === 'consume-ack') {
    const messages = await consumer.consume({ max_messages: FETCH_BATCH });
    for await (const msg of messages) {
      if (msg.redelivered) redelivered++;
      msg.ack();
      if (++n >= spec.count) break;
    }
  } else {
    // ack-held: messages held until a flush's worth has arrived, then all acked at once (Chronicle acks
    // after the commit of the batch that holds them).
    const held: JsMsg[] = [];
    while (n < spec.count) {
      const messages = await consumer.fetch({ max_messages: FETCH_BATCH, expires: 1_000 });
      let last: JsMsg | undefined;
      for await (const msg of messages) {
        n++;
        if (msg.redelivered) redelivered++;
        switch (spec.variant) {
          case 'ack':
            msg.ack();
            break;
          case 'parse-ack':
            if (JSON.parse(decodeUtf8(msg.data)!) === null) throw new Error('null payload');
            msg.ack();
            break;
          case 'ack-held':
            held.push(msg);
            if (held.length === BATCH || n === spec.count) {
              for (const h of held) h.ack();
              held.length = 0;
            }
            break;
          case 'ack-all':
            last = msg;
            break;
          case 'no-ack':
            break;
        }
      }
      last?.ack();
    }
  }
  await nc.flush();
  send({ done: n, redelivered });
  await next();
  await nc.close();
}

// ---------------------------------------------------------------------------------------------------
// 1. NATS

interface NatsFloor {
  variant: ConsumeVariant;
  messages: number;
  seconds: number;
  clientCpu: number;
  serverCpu: number;
}

const NATS_VARIANTS: { variant: ConsumeVariant; ackPolicy: AckPolicy; what: string }[] = [
  { variant: 'ack', ackPolicy: AckPolicy.Explicit, what: 'fetch 1,000, ack each as it arrives' },
  {
    variant: 'ack-held',
    ackPolicy: AckPolicy.Explicit,
    what: 'fetch 1,000, ack each, 4,000 at a time (Chronicle’s way: after the flush)',
  },
  {
    variant: 'parse-ack',
    ackPolicy: AckPolicy.Explicit,
    what: 'fetch 1,000, decode + JSON.parse + ack each as it arrives',
  },
  {
    variant: 'consume-ack',
    ackPolicy: AckPolicy.Explicit,
    what: 'consume() (one standing pull), ack each as it arrives',
  },
  { variant: 'ack-all', ackPolicy: AckPolicy.All, what: 'AckPolicy.All: fetch 1,000, ack the last' },
  { variant: 'no-ack', ackPolicy: AckPolicy.None, what: 'AckPolicy.None: fetch 1,000, no ack' },
];

async function natsFloors(messages: readonly BenchEvent[]): Promise<NatsFloor[]> {
  const natsPid = natsServerPid();
  if (natsPid === undefined) throw new Error('no local nats-server process: its CPU cannot be read');
  const nc = await connect({ servers: NATS_URL });
  const jsm = await nc.jetstreamManager();
  const stream = `FLOORS${randomBytes(3).toString('hex').toUpperCase()}`;
  const prefix = `${stream.toLowerCase()}.`;
  const results: NatsFloor[] = [];
  try {
    await jsm.streams.add({ name: stream, subjects: [`${prefix}>`] });
    const started = Date.now();
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      nc.publish(`${prefix}${m.subject}`, m.payload);
      if (i % 5000 === 4999) await nc.flush();
    }
    await nc.flush();
    while ((await jsm.streams.info(stream)).state.messages < messages.length) {
      if (Date.now() - started > 300_000) throw new Error('preload stalled');
      await sleep(100);
    }
    console.log(`preloaded ${messages.length} messages in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // What nats-server spends while nobody here uses it (other users of the shared server, timers).
    const idleBefore = cpuSeconds(natsPid);
    await sleep(2_000);
    console.log(`nats-server idle: ${(((cpuSeconds(natsPid) - idleBefore) / 2) * 1000).toFixed(0)} ms CPU/s`);

    for (const { variant, ackPolicy } of NATS_VARIANTS) {
      const durable = `floors-${variant}`;
      await jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: ackPolicy,
        deliver_policy: DeliverPolicy.All,
        max_deliver: 3,
        ack_wait: nanos(5_000),
        ...(ackPolicy === AckPolicy.None ? {} : { max_ack_pending: 12_000 }),
      });
      const spec: ConsumeSpec = { stream, durable, variant, count: messages.length };
      const child = fork(fileURLToPath(import.meta.url), ['consume', JSON.stringify(spec)], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const next = (): Promise<ChildMessage> =>
        new Promise((resolve, reject) => {
          child.once('message', (m) => resolve(m as ChildMessage));
          child.once('exit', (code) => reject(new Error(`consumer child exited (${code})`)));
        });
      try {
        await next();
        const child0 = cpuSeconds(child.pid!);
        const server0 = cpuSeconds(natsPid);
        const t0 = performance.now();
        child.send('go');
        const done = await next();
        if (!('done' in done) || done.done !== messages.length || done.redelivered > 0) {
          throw new Error(`${variant}: consumed ${JSON.stringify(done)} of ${messages.length}`);
        }
        // Every ack processed by the server: nothing pending, nothing waiting for an ack.
        for (;;) {
          const info = await jsm.consumers.info(stream, durable);
          if (info.num_pending === 0 && info.num_ack_pending === 0) break;
          await sleep(20);
        }
        const seconds = (performance.now() - t0) / 1000;
        results.push({
          variant,
          messages: messages.length,
          seconds,
          clientCpu: cpuSeconds(child.pid!) - child0,
          serverCpu: cpuSeconds(natsPid) - server0,
        });
        child.send('close');
        await exited;
      } finally {
        if (child.exitCode === null) child.kill();
        await jsm.consumers.delete(stream, durable).catch(() => undefined);
      }
    }
  } finally {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  }
  return results;
}

// ---------------------------------------------------------------------------------------------------
// 2. JSON

interface JsonFloor {
  what: string;
  events: number;
  cpu: number;
}

/** CPU seconds (user + system) of this process so far. */
function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** The median CPU of three passes of `work` (the first warms the JIT up like the others). */
function medianCpu(work: () => void): number {
  const passes = [0, 1, 2].map(() => {
    const before = ownCpuSeconds();
    work();
    return ownCpuSeconds() - before;
  });
  return passes.sort((a, b) => a - b)[1]!;
}

function jsonFloors(messages: readonly BenchEvent[]): JsonFloor[] {
  const bytes = messages.map((m) => Buffer.from(m.payload));
  const parsed = messages.map((m) => JSON.parse(m.payload) as unknown);
  let sink = 0;
  const decode = medianCpu(() => {
    for (const b of bytes) sink += decodeUtf8(b)!.length;
  });
  const decodeParse = medianCpu(() => {
    for (const b of bytes) if (JSON.parse(decodeUtf8(b)!) !== null) sink++;
  });
  const now = Date.now();
  const convert = medianCpu(() => {
    for (let i = 0; i < bytes.length; i++) {
      const record = streamMessageRecord(
        'events',
        { subject: messages[i]!.subject, stream: 'TASK_EVENTS', seq: i + 1, timeMillis: now },
        bytes[i]!,
      );
      if (record.kind !== 'event') throw new Error(`message ${i} became a ${record.kind}`);
    }
  });
  const stringify = medianCpu(() => {
    for (let i = 0; i < parsed.length; i += BATCH) sink += JSON.stringify(parsed.slice(i, i + BATCH)).length;
  });
  if (sink === 0) throw new Error('nothing measured');
  const events = messages.length;
  return [
    { what: 'UTF-8 decode of each payload (Chronicle’s strict decodeUtf8)', events, cpu: decode },
    { what: 'decode + JSON.parse of each payload', events, cpu: decodeParse },
    {
      what: 'Chronicle’s whole conversion (streamMessageRecord: decode, parse, normalize)',
      events,
      cpu: convert,
    },
    {
      what: `JSON.stringify of batches of ${BATCH.toLocaleString('en')} parsed events`,
      events,
      cpu: stringify,
    },
  ];
}

// ---------------------------------------------------------------------------------------------------
// 3. Postgres

/** The canonical event columns, as json_to_recordset reads them. */
const RECORDSET = `json_to_recordset($1::json)
    AS b(event_id uuid, trace_id text, source text, event_type text, "timestamp" timestamptz, metadata jsonb)`;
const COLUMNS = `event_id, trace_id, source, event_type, "timestamp", metadata`;

/**
 * The ledger and the events, as INSERT_EVENTS_SQL in src/sinks/postgres/event-writer.ts writes them,
 * without the summaries it returns: a copy of its first three CTEs.
 */
const LEDGER_AND_EVENTS_SQL = `
WITH batch AS (SELECT * FROM ${RECORDSET}),
fresh AS (
  INSERT INTO swarm_event_ids (event_id, "timestamp")
  SELECT event_id, "timestamp" FROM batch ORDER BY event_id
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id
)
INSERT INTO swarm_events (${COLUMNS})
SELECT b.event_id, b.trace_id, b.source, b.event_type, b."timestamp", b.metadata
FROM batch b JOIN fresh USING (event_id)`;

interface Event {
  event_id: string;
  trace_id: string;
  source: string;
  event_type: string;
  timestamp: string;
  metadata: Record<string, unknown>;
}

/** A batch as each variant sends it. */
interface Batch {
  events: Event[];
  /** The batch as the json_to_recordset parameter. */
  json: string;
  /** The batch as the writer receives it. */
  records: WriteRecord[];
}

interface PgVariant {
  name: string;
  what: string;
  /** Run after migration, before the clock starts. */
  setup?: (pool: pg.Pool) => Promise<unknown>;
  write: (pool: pg.Pool, batch: Batch) => Promise<unknown>;
  /** The table whose rows are counted after the run (every distinct event must be there once). */
  table: string;
}

function pgVariants(): PgVariant[] {
  const writerOf = new WeakMap<pg.Pool, ReturnType<typeof createEventWriter>>();
  return [
    {
      name: 'heap',
      what: 'plain copy of swarm_events, no index (heap only)',
      setup: (pool) => pool.query(`CREATE TABLE floor_heap (LIKE swarm_events INCLUDING DEFAULTS)`),
      write: (pool, b) =>
        pool.query(`INSERT INTO floor_heap (${COLUMNS}) SELECT ${COLUMNS} FROM ${RECORDSET}`, [b.json]),
      table: 'floor_heap',
    },
    {
      name: 'raw',
      what: 'the raw ceiling’s table and statement (bench/raw-insert.ts: heap, its indexes, event_id key)',
      setup: async (pool) => {
        await pool.query(`CREATE TABLE raw_events (LIKE swarm_events INCLUDING ALL)`);
        await pool.query(`ALTER TABLE raw_events ADD PRIMARY KEY (event_id)`);
      },
      write: (pool, b) => pool.query(RAW_INSERT_SQL, [b.json]),
      table: 'raw_events',
    },
    {
      name: 'events',
      what: 'swarm_events as migrated (partitioned, 7 indexes), no ledger',
      write: (pool, b) =>
        pool.query(`INSERT INTO swarm_events (${COLUMNS}) SELECT ${COLUMNS} FROM ${RECORDSET}`, [b.json]),
      table: 'swarm_events',
    },
    {
      name: 'events-unnest',
      what: 'the same, from unnest of typed arrays instead of json_to_recordset',
      write: (pool, b) =>
        pool.query(
          `INSERT INTO swarm_events (${COLUMNS})
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[])`,
          [
            b.events.map((e) => e.event_id),
            b.events.map((e) => e.trace_id),
            b.events.map((e) => e.source),
            b.events.map((e) => e.event_type),
            b.events.map((e) => e.timestamp),
            b.events.map((e) => JSON.stringify(e.metadata)),
          ],
        ),
      table: 'swarm_events',
    },
    {
      name: 'ledger',
      what: '+ the ledger (swarm_event_ids), one statement',
      write: (pool, b) => pool.query(LEDGER_AND_EVENTS_SQL, [b.json]),
      table: 'swarm_events',
    },
    {
      name: 'insert-events',
      what: '+ the summaries the writer reads back (INSERT_EVENTS_SQL)',
      write: (pool, b) => pool.query(INSERT_EVENTS_SQL, [b.json]),
      table: 'swarm_events',
    },
    {
      name: 'writer',
      what: 'the whole event writer (createEventWriter: + trace recompute, otel_pending, agent_metrics)',
      write: (pool, b) => {
        let writer = writerOf.get(pool);
        if (writer === undefined) {
          writer = createEventWriter({ pool, logger: silentLogger() });
          writerOf.set(pool, writer);
        }
        return writer.write(b.records);
      },
      table: 'swarm_events',
    },
  ];
}

interface PgFloor {
  name: string;
  what: string;
  events: number;
  seconds: number;
  backendCpu: number;
  clientCpu: number;
  serverCpu: number;
  walBytes: number;
}

/** Batches of BATCH distinct events, in the order of the messages (a duplicate keeps its first place). */
function distinctBatches(messages: readonly BenchEvent[]): Batch[] {
  const seen = new Set<string>();
  const batches: Batch[] = [];
  let events: Event[] = [];
  let records: WriteRecord[] = [];
  const close = (): void => {
    batches.push({ events, json: JSON.stringify(events), records });
    events = [];
    records = [];
  };
  for (const m of messages) {
    const event = JSON.parse(m.payload) as Event;
    if (seen.has(event.event_id)) continue;
    seen.add(event.event_id);
    events.push(event);
    // Built like bench/statements.ts builds them.
    records.push({
      kind: 'event',
      input: { origin: 'nats', subject: m.subject, key: null },
      event,
    });
    if (events.length === BATCH) close();
  }
  if (events.length > 0) close();
  return batches;
}

async function pgFloor(variant: PgVariant, batches: readonly Batch[]): Promise<PgFloor> {
  const url = await createDatabase();
  const pool = createPool({ connectionString: url, maxConnections: 1, applicationName: APPLICATION_NAME });
  try {
    await migrate(pool, silentLogger());
    await variant.setup?.(pool);
    const { rows } = await pool.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
      [APPLICATION_NAME],
    );
    if (rows.length !== 1) throw new Error(`expected one backend, found ${rows.length}`);
    const backend = rows[0]!.pid;
    const servers = postgresServerPids();
    const lsn = async (): Promise<string> =>
      (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
    const lsn0 = await lsn();
    const backend0 = cpuSeconds(backend);
    const server0 = totalCpuSeconds(servers);
    const client0 = ownCpuSeconds();
    const t0 = performance.now();
    for (const batch of batches) await variant.write(pool, batch);
    const seconds = (performance.now() - t0) / 1000;
    const clientCpu = ownCpuSeconds() - client0;
    const backendCpu = cpuSeconds(backend) - backend0;
    const serverCpu = totalCpuSeconds(servers) - server0;
    const { rows: wal } = await pool.query<{ bytes: string }>(
      'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS bytes',
      [lsn0],
    );
    const events = batches.reduce((sum, b) => sum + b.events.length, 0);
    const { rows: counted } = await pool.query<{ n: number }>(`SELECT count(*) AS n FROM ${variant.table}`);
    if (Number(counted[0]!.n) !== events) {
      throw new Error(`${variant.name}: ${counted[0]!.n} rows stored, expected ${events}`);
    }
    return {
      name: variant.name,
      what: variant.what,
      events,
      seconds,
      backendCpu,
      clientCpu,
      serverCpu,
      walBytes: Number(wal[0]!.bytes),
    };
  } finally {
    await endPool(pool);
    await dropDatabase(url);
  }
}

// ---------------------------------------------------------------------------------------------------

const us = (seconds: number, count: number): string => ((seconds * 1e6) / count).toFixed(1);
const rate = (count: number, seconds: number): string => Math.round(count / seconds).toLocaleString('en');

async function main(): Promise<void> {
  const runStarted = performance.now();
  const traffic = generateInterleavedTraffic(N, 42);
  const { messages } = traffic;
  console.log(
    `${messages.length} interleaved messages (${traffic.distinct} distinct events, ${traffic.traces} traces), ` +
      `${Math.round(messages.reduce((s, m) => s + Buffer.byteLength(m.payload), 0) / messages.length)} bytes of JSON each on average`,
  );

  if (PARTS.has('nats')) {
    const nats = await natsFloors(messages);
    console.log('\n| consumer (child process) | msgs/s | CPU µs/msg: client / nats-server / both |');
    console.log('|---|---|---|');
    for (const r of nats) {
      const what = NATS_VARIANTS.find((v) => v.variant === r.variant)!.what;
      console.log(
        `| ${what} | ${rate(r.messages, r.seconds)} | ${us(r.clientCpu, r.messages)} / ` +
          `${us(r.serverCpu, r.messages)} / ${us(r.clientCpu + r.serverCpu, r.messages)} |`,
      );
    }
  }

  if (PARTS.has('json')) {
    console.log('\n| JSON work, one process (median of 3 passes) | CPU µs/event |\n|---|---|');
    for (const r of jsonFloors(messages)) console.log(`| ${r.what} | ${us(r.cpu, r.events)} |`);
  }

  if (PARTS.has('postgres')) {
    const batches = distinctBatches(messages);
    const floors: PgFloor[] = [];
    for (const variant of pgVariants()) floors.push(await pgFloor(variant, batches));
    const events = floors[0]!.events;
    console.log(
      `\n${events} distinct events in ${batches.length} batches of ${BATCH.toLocaleString('en')}, one connection, ` +
        `a fresh database each (tables empty at the start)`,
    );
    console.log(
      '\n| insert | events/s | CPU µs/event: backend / this process / server processes | WAL bytes/event |',
    );
    console.log('|---|---|---|---|');
    for (const r of floors) {
      console.log(
        `| ${r.name}: ${r.what} | ${rate(r.events, r.seconds)} | ${us(r.backendCpu, r.events)} / ` +
          `${us(r.clientCpu, r.events)} / ${us(r.serverCpu, r.events)} | ${Math.round(r.walBytes / r.events)} |`,
      );
    }
    const backend = (name: string): number =>
      (floors.find((f) => f.name === name)!.backendCpu * 1e6) / events;
    console.log('\n| step | backend CPU µs/event |\n|---|---|');
    const steps: [string, string, string][] = [
      ['7 indexes + partition routing (events − heap)', 'events', 'heap'],
      ['json_to_recordset instead of unnest (events − events-unnest)', 'events', 'events-unnest'],
      ['the ledger (ledger − events)', 'ledger', 'events'],
      ['the summaries read back (insert-events − ledger)', 'insert-events', 'ledger'],
      [
        'recompute, otel_pending, agent_metrics, locks, transaction (writer − insert-events)',
        'writer',
        'insert-events',
      ],
    ];
    for (const [what, a, b] of steps) console.log(`| ${what} | ${(backend(a) - backend(b)).toFixed(1)} |`);
  }
  console.log(`\nwhole run: ${((performance.now() - runStarted) / 1000).toFixed(0)} s`);
}

if (process.argv[2] === 'consume') {
  await consumeChild(JSON.parse(process.argv[3]!) as ConsumeSpec);
} else {
  await main();
}
