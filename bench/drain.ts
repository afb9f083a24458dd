/**
 * `npm run bench`: Chronicle's throughput, CPU and latency on this machine (a benchmark, not a test),
 * the report of issue 14, for each traffic profile (interleaved first, then grouped):
 *
 * 1. NATS drain: preload N events (default 500,000) into the streams, start Chronicle (a child process,
 *    `node dist/main.js`) on a fresh database, and time until every message is acked; check the stored
 *    rows (every event, no stale trace row, metrics equal to a full aggregation) and time until the span
 *    builder has caught up.
 * 2. HTTP ingest: min(N, 200,000) events of the same profile in requests of 1,000, 4 in flight, into
 *    another fresh Chronicle; the same checks and span catch-up.
 * 3. Raw write ceiling of each: the same distinct rows straight into an empty copy of swarm_events
 *    (with a unique event_id for dedup) by multi-row inserts on 2 connections: no NATS, no processing.
 * 4. Ingest-to-queryable latency at a steady 5,000 events/s through NATS and through HTTP (probe
 *    sent → visible through the API), on the HTTP run's Chronicle.
 * 5. CPU µs per event of Chronicle, of Postgres (Chronicle's backends, and the cluster's background
 *    writers: walwriter, checkpointer, background writer, autovacuum workers on the bench's database)
 *    and of nats-server, sampled from /proc (bench/support.ts, startCpuMeter); peak RSS of Chronicle.
 * 6. The issue's targets, measured on interleaved traffic, met or not.
 *
 * Needs Postgres and NATS (DATABASE_URL, NATS_URL as in the tests). BENCH_EVENTS sets N.
 * BENCH_TRAFFIC: `interleaved` (the default here: thousands of tasks in flight, each batch holding one
 * or two events of each, as a live swarm sends them), `grouped` (each task's events one after another)
 * or `both` (interleaved, then grouped: the default of `npm run bench`).
 * BENCH_DRAIN_ONLY=1 runs only the NATS drain of each profile (one line each).
 * BENCH_HTTP_EVENTS sets the HTTP run's size; BENCH_LATENCY_SECONDS each latency run's length (20);
 * BENCH_LATENCY_RATE their rate (5,000 events/s, the target's).
 * BENCH_STREAMS=k opens k live streams (GET /api/v1/stream from the start of the log) during the drain:
 * Chronicle's CPU then includes serving them, and each must receive every event exactly once.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { connect, type NatsConnection } from 'nats';
import pg from 'pg';
import { RAW_INSERT_SQL } from './raw-insert.js';
import {
  NATS_URL,
  PORT,
  type CpuBreakdown,
  cpuTotals,
  createDatabase,
  dropDatabase,
  peakRssMiB,
  pidOf,
  postEvents,
  sleep,
  startChronicle,
  startCpuMeter,
  waitReady,
  CHECK_SQL,
} from './support.js';
import { type BenchEvent, generateInterleavedTraffic, generateTraffic } from './traffic.js';

const N = Number(process.env.BENCH_EVENTS ?? 500_000);
const HTTP_EVENTS = Number(process.env.BENCH_HTTP_EVENTS ?? Math.min(N, 200_000));
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 20);
/** The latency runs' steady rate (the target's 5,000 events/s unless set). */
const LATENCY_RATE = Number(process.env.BENCH_LATENCY_RATE ?? 5000);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 0);
const DRAIN_ONLY = Boolean(process.env.BENCH_DRAIN_ONLY);

// No scheduled maintenance pass (unless set): the traffic is dated from 2026-11-01, so the first pass
// (60 s after start) would delete its rows past the 30 days of retention, or, kept forever, move them
// out of the default partition, in the middle of a run (under the span catch-up and the latency runs).
// Its cost is measured apart (bench/partition-upgrade.ts, bench/default-scan.ts).
process.env.CHRONICLE_MAINTENANCE_INTERVAL_MS ??= '0';

type Profile = 'interleaved' | 'grouped';
const TRAFFIC = process.env.BENCH_TRAFFIC ?? 'interleaved';
if (TRAFFIC !== 'interleaved' && TRAFFIC !== 'grouped' && TRAFFIC !== 'both')
  throw new Error('BENCH_TRAFFIC must be interleaved, grouped or both');
const PROFILES: Profile[] = TRAFFIC === 'both' ? ['interleaved', 'grouped'] : [TRAFFIC];

type Traffic = {
  messages: BenchEvent[];
  distinct: number;
  traces: number;
  inFlight?: number;
  simulatedSeconds?: number;
};
const generated = new Map<string, Traffic>();

/** The benchmark's traffic in a profile, generated once per profile, size and seed. */
function traffic(profile: Profile, count: number, seed: number): Traffic {
  const key = `${profile}/${count}/${seed}`;
  if (!generated.has(key)) {
    generated.set(
      key,
      profile === 'grouped' ? generateTraffic(count, seed) : generateInterleavedTraffic(count, seed),
    );
  }
  return generated.get(key)!;
}

/**
 * A pool of 2 for the bench's own queries. Dropping the database WITH (FORCE) right after `pool.end()`
 * can terminate a backend before it has read the Terminate: that error must not crash the run.
 */
function benchPool(databaseUrl: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  pool.on('error', () => undefined);
  return pool;
}

const newNamespace = () => `BENCH${randomBytes(3).toString('hex').toUpperCase()}_`;

/**
 * Live streams read from the start of the log (`last_event_id=0-0`: every event stored since migration
 * 0007, i.e. all of the bench's), each counting the distinct event ids it receives and any repeat.
 */
function openStreams(count: number) {
  const abort = new AbortController();
  const streams = Array.from({ length: count }, () => ({ ids: new Set<string>(), repeats: 0 }));
  const done = streams.map(async (stream) => {
    const res = await fetch(`http://127.0.0.1:${PORT}/api/v1/stream?last_event_id=0-0`, {
      signal: abort.signal,
    });
    if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
    const decoder = new TextDecoder();
    let carry = '';
    try {
      for await (const chunk of res.body) {
        const lines = (carry + decoder.decode(chunk as Uint8Array, { stream: true })).split('\n');
        carry = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith('data: {"event_id":"')) continue;
          const id = line.slice(19, 55);
          if (stream.ids.has(id)) stream.repeats += 1;
          else stream.ids.add(id);
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
  });
  return {
    received: () => streams.map((s) => s.ids.size),
    repeats: () => streams.reduce((sum, s) => sum + s.repeats, 0),
    async close() {
      abort.abort();
      await Promise.all(done);
    },
  };
}

async function preload(nc: NatsConnection, namespace: string, messages: BenchEvent[]) {
  const jsm = await nc.jetstreamManager();
  const prefix = namespace.toLowerCase();
  const streams = [
    { name: `${namespace}TASK_EVENTS`, subjects: [`${prefix}swarm.task.>`] },
    {
      name: `${namespace}SYSTEM_EVENTS`,
      subjects: [`${prefix}swarm.agent.>`, `${prefix}swarm.system.>`, `${prefix}swarm.lifecycle.>`],
    },
    { name: `${namespace}DLQ`, subjects: [`${prefix}dlq.>`] },
  ];
  for (const s of streams) await jsm.streams.add({ name: s.name, subjects: s.subjects });
  const started = Date.now();
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    nc.publish(`${prefix}${m.subject}`, m.payload);
    if (i % 5000 === 4999) await nc.flush();
  }
  await nc.flush();
  for (;;) {
    let total = 0;
    for (const s of streams) total += (await jsm.streams.info(s.name)).state.messages;
    if (total >= messages.length) break;
    if (Date.now() - started > 300_000) throw new Error(`preload stalled at ${total}/${messages.length}`);
    await sleep(200);
  }
  return { streams: streams.map((s) => s.name), seconds: (Date.now() - started) / 1000 };
}

async function deleteStreams(nc: NatsConnection, namespace: string): Promise<void> {
  const jsm = await nc.jetstreamManager();
  for (const s of ['TASK_EVENTS', 'SYSTEM_EVENTS', 'DLQ', 'CHRONICLE_ADVISORIES']) {
    await jsm.streams.delete(`${namespace}${s}`).catch(() => undefined);
  }
}

async function stopChronicle(child: ReturnType<typeof startChronicle>): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

/**
 * The stored rows against the traffic: exactly its distinct events and traces; every trace row computed
 * from all of its events (span_count equals its events in the log); every metric row equal to a full
 * aggregation of the day's tasks (they are kept by deltas). Throws when any is wrong.
 */
async function checkStore(pool: pg.Pool, distinct: number, traces: number) {
  const { rows } = await pool.query<{ events: string; traces: string }>(
    `SELECT (SELECT count(*) FROM swarm_events) AS events, (SELECT count(*) FROM swarm_traces) AS traces`,
  );
  if (Number(rows[0]!.events) !== distinct || Number(rows[0]!.traces) !== traces) {
    throw new Error(`stored ${JSON.stringify(rows[0])}; expected ${distinct} events, ${traces} traces`);
  }
  const { rows: check } = await pool.query<{ stale: string; metrics: string; wrong_metrics: string }>(
    CHECK_SQL,
  );
  const result = {
    staleTraces: Number(check[0]!.stale),
    metricRows: Number(check[0]!.metrics),
    wrongMetrics: Number(check[0]!.wrong_metrics),
  };
  if (result.staleTraces > 0 || result.wrongMetrics > 0) {
    throw new Error(`derived rows are wrong: ${JSON.stringify(result)}`);
  }
  return result;
}

/**
 * Spans are built after the commit, with ingest given priority: waits until every queued trace is
 * built (each flush queues its traces before committing, so an empty otel_pending means all are) and
 * returns the seconds since `endedAt` and the spans stored.
 */
async function waitForSpans(pool: pg.Pool, endedAt: number) {
  for (;;) {
    const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM otel_pending');
    if (Number(rows[0]!.n) === 0) break;
    if (Date.now() - endedAt > 600_000) throw new Error('spans did not catch up within 10 minutes');
    await sleep(250);
  }
  const caughtUpSeconds = (Date.now() - endedAt) / 1000;
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM otel_spans');
  return { caughtUpSeconds, spans: Number(rows[0]!.n) };
}

/** One ingest path's run on one profile: what the report prints. */
interface IngestRun {
  path: 'NATS drain' | 'HTTP ingest';
  profile: Profile;
  messages: number;
  distinct: number;
  traces: number;
  /** From Chronicle's start (drain) or the first request (HTTP) to the last ack or answer. */
  seconds: number;
  eventsPerSecond: number;
  startupSeconds?: number;
  /** CPU over `seconds`, and over `seconds` plus the span builder's catch-up. */
  cpu: CpuBreakdown;
  cpuWithSpans: CpuBreakdown;
  rssMiB: number;
  catchUpRssMiB: number;
  spans: number;
  spansCaughtUpSeconds: number;
  staleTraces: number;
  wrongMetrics: number;
  metricRows: number;
  retries?: number;
  streamsCaughtUpSeconds?: number;
  raw?: Awaited<ReturnType<typeof rawCeiling>>;
  latency?: Latency;
  /** Peak RSS once the latency runs are over (HTTP run's Chronicle). */
  latencyRssMiB?: number;
}

async function drainBenchmark(nc: NatsConnection, profile: Profile): Promise<IngestRun> {
  const { messages, distinct, traces } = traffic(profile, N, 42);
  const namespace = newNamespace();
  const databaseUrl = await createDatabase();
  const pool = benchPool(databaseUrl);
  try {
    const pre = await preload(nc, namespace, messages);
    console.log(
      `${profile}: preloaded ${messages.length} messages (${distinct} distinct events, ${traces} traces) in ${pre.seconds.toFixed(1)} s`,
    );
    const meter = await startCpuMeter({ databaseUrl, processes: { 'nats-server': pidOf(/nats-server/) } });
    const started = Date.now();
    const child = startChronicle(databaseUrl, namespace);
    meter.addProcess('chronicle', child.pid!);
    let rss = 0;
    let streams: ReturnType<typeof openStreams> | undefined;
    let streamsCaughtUpSeconds: number | undefined;
    try {
      await waitReady();
      const readyAt = Date.now();
      if (STREAMS > 0) streams = openStreams(STREAMS);
      // Drained when every message is acked: Chronicle acks only after the commit that holds it.
      // Polling the consumers costs the database nothing; the row counts are checked once, after.
      const jsm = await nc.jetstreamManager();
      for (;;) {
        await sleep(50);
        let outstanding = 0;
        for (const stream of pre.streams) {
          try {
            const c = await jsm.consumers.info(stream, `chronicle-${stream}`);
            outstanding += c.num_pending + c.num_ack_pending;
          } catch {
            outstanding += 1; // consumer not created yet
          }
        }
        if (outstanding === 0) break;
        if (Date.now() - started > 900_000)
          throw new Error(`drain stalled: ${outstanding} messages outstanding`);
      }
      const drainedAt = Date.now();
      const cpu = await meter.read();
      const drainRss = peakRssMiB(child.pid!);
      if (streams) {
        // Every stream gets every event (they lag the commits by at most a poll, or their backlog).
        while (Math.min(...streams.received()) < distinct) {
          if (Date.now() - drainedAt > 300_000) {
            throw new Error(`streams stalled at ${streams.received().join(', ')} of ${distinct} events`);
          }
          await sleep(50);
        }
        streamsCaughtUpSeconds = (Date.now() - drainedAt) / 1000;
      }
      const streamRepeats = streams?.repeats() ?? 0;
      await streams?.close();
      if (streamRepeats > 0) throw new Error(`streams received ${streamRepeats} events twice`);
      const checks = await checkStore(pool, distinct, traces);
      const spans = await waitForSpans(pool, drainedAt);
      const cpuWithSpans = await meter.stop();
      rss = peakRssMiB(child.pid!);
      await stopChronicle(child);
      const seconds = (drainedAt - started) / 1000;
      return {
        path: 'NATS drain',
        profile,
        messages: messages.length,
        distinct,
        traces,
        seconds,
        eventsPerSecond: distinct / seconds,
        startupSeconds: (readyAt - started) / 1000,
        cpu,
        cpuWithSpans,
        rssMiB: drainRss,
        catchUpRssMiB: rss,
        spans: spans.spans,
        spansCaughtUpSeconds: spans.caughtUpSeconds,
        ...checks,
        streamsCaughtUpSeconds,
      };
    } finally {
      await meter.stop().catch(() => undefined);
      await stopChronicle(child);
      await deleteStreams(nc, namespace);
    }
  } finally {
    await pool.end();
    await dropDatabase(databaseUrl);
  }
}

/** The same rows, straight into an empty copy of swarm_events: the ceiling Chronicle is measured against. */
async function rawCeiling(messages: { payload: string }[]) {
  const databaseUrl = await createDatabase();
  const pool = benchPool(databaseUrl);
  try {
    const migrate = await import('../src/db/migrate.js');
    const { silentLogger } = await import('../src/telemetry/logger.js');
    await migrate.migrate(pool, silentLogger());
    await pool.query(`CREATE TABLE raw_events (LIKE swarm_events INCLUDING ALL)`);
    await pool.query(`ALTER TABLE raw_events ADD PRIMARY KEY (event_id)`);
    // The distinct rows: a duplicate published hundreds of messages later (interleaved traffic) would
    // land in another worker's batch, and two inserts of the same keys in opposite orders deadlock.
    const rows = [...new Set(messages.map((m) => m.payload))];
    const batches: string[] = [];
    for (let i = 0; i < rows.length; i += 1000) batches.push(`[${rows.slice(i, i + 1000).join(',')}]`);
    const started = Date.now();
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const batch = batches[next++]!;
        await pool.query(RAW_INSERT_SQL, [batch]);
      }
    };
    await Promise.all([worker(), worker()]);
    const seconds = (Date.now() - started) / 1000;
    const { rows: stored } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM raw_events');
    return { seconds, rows: Number(stored[0]!.n), eventsPerSecond: Number(stored[0]!.n) / seconds };
  } finally {
    await pool.end();
    await dropDatabase(databaseUrl);
  }
}

/** POSTs a JSON array of events until Chronicle answers 200 (after its commit); returns the retries. */
async function post(body: string): Promise<number> {
  for (let retries = 0; ; retries++) {
    // A failed request (a kept-alive connection the server closed as it went out) is sent again like
    // a 429: the events carry their event_id, so nothing is stored twice.
    if ((await postEvents(body)) === 200) return retries;
    await sleep(50);
  }
}

const jsonArray = (messages: BenchEvent[]) => `[${messages.map((m) => m.payload).join(',')}]`;

/**
 * HTTP ingest with requests of 1,000 events, 4 requests in flight, into a fresh Chronicle: the same
 * checks and span catch-up as the drain; then, on the same Chronicle, latency at a steady 5,000
 * events/s through NATS and through HTTP.
 */
async function httpBenchmark(nc: NatsConnection, profile: Profile) {
  const namespace = newNamespace();
  const databaseUrl = await createDatabase();
  const pool = benchPool(databaseUrl);
  const child = startChronicle(databaseUrl, namespace);
  try {
    await waitReady();
    const { messages, distinct, traces } = traffic(profile, HTTP_EVENTS, 7);
    const bodies: string[] = [];
    for (let i = 0; i < messages.length; i += 1000) bodies.push(jsonArray(messages.slice(i, i + 1000)));
    const meter = await startCpuMeter({
      databaseUrl,
      processes: { chronicle: child.pid, 'nats-server': pidOf(/nats-server/) },
    });
    let run: IngestRun;
    try {
      let next = 0;
      let retries = 0;
      const started = Date.now();
      const worker = async () => {
        while (next < bodies.length) retries += await post(bodies[next++]!);
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      const endedAt = Date.now();
      const cpu = await meter.read();
      const rssMiB = peakRssMiB(child.pid!);
      const checks = await checkStore(pool, distinct, traces);
      const spans = await waitForSpans(pool, endedAt);
      const cpuWithSpans = await meter.stop();
      const seconds = (endedAt - started) / 1000;
      run = {
        path: 'HTTP ingest',
        profile,
        messages: messages.length,
        distinct,
        traces,
        seconds,
        eventsPerSecond: distinct / seconds,
        cpu,
        cpuWithSpans,
        rssMiB,
        catchUpRssMiB: peakRssMiB(child.pid!),
        spans: spans.spans,
        spansCaughtUpSeconds: spans.caughtUpSeconds,
        ...checks,
        retries,
      };
    } finally {
      await meter.stop().catch(() => undefined);
    }
    const prefix = namespace.toLowerCase();
    const nats = await steadyLatency(profile, 99, {
      load: (batch) => {
        for (const m of batch) nc.publish(`${prefix}${m.subject}`, m.payload);
        return Promise.resolve(0);
      },
      probe: (traceId) => {
        nc.publish(
          `${prefix}swarm.task.created`,
          JSON.stringify({ trace_id: traceId, metadata: { title: 'probe' } }),
        );
        return Promise.resolve();
      },
    });
    const http = await steadyLatency(profile, 98, {
      // Requests of 250 events every 50 ms, as a client batching for a twentieth of a second would send.
      batch: 250,
      answered: true,
      load: (batch) => post(jsonArray(batch)),
      probe: async (traceId) => {
        await post(
          JSON.stringify([{ trace_id: traceId, event_type: 'task.created', metadata: { title: 'probe' } }]),
        );
      },
    });
    return { http: run, latency: { nats, http }, latencyRssMiB: peakRssMiB(child.pid!) };
  } finally {
    await stopChronicle(child);
    await pool.end();
    await deleteStreams(nc, namespace);
    await dropDatabase(databaseUrl);
  }
}

interface LatencyRun {
  probes: number;
  p50: number;
  p99: number;
  max: number;
  sentPerSecond: number;
  retries: number;
  /** API requests per second the probes' polling added to the load. */
  pollsPerSecond: number;
  /** HTTP only: how long a probe's POST took to be answered (after its commit), p50 / p99 ms. */
  answered?: { p50: number; p99: number };
  /** What Chronicle and the machine did over the run (where the time of a slow probe went). */
  during: During;
}

/** Over a latency run: Chronicle's flushes (count, mean, share over 250 ms), the span builder's lag at
 * the end, and how busy the machine's CPUs were (all processes). */
interface During {
  flushes: number;
  flushMeanMs: number;
  flushesOver250Ms: number;
  spanLagSeconds: number;
  machineBusy: number;
}

/** Chronicle's flush histogram and span build lag, from its /metrics. */
async function flushStats(): Promise<{ count: number; sum: number; le250: number; lag: number }> {
  const text = await (await fetch(`http://127.0.0.1:${PORT}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    count: value(/^chronicle_flush_duration_seconds_count (\S+)$/m),
    sum: value(/^chronicle_flush_duration_seconds_sum (\S+)$/m),
    le250: value(/^chronicle_flush_duration_seconds_bucket\{le="0.25"\} (\S+)$/m),
    lag: value(/^chronicle_span_build_lag_seconds (\S+)$/m),
  };
}

/** The machine's CPU time, busy and total, in ticks (/proc/stat's first line). */
function machineTicks(): { busy: number; total: number } {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = fields.map(Number);
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - n[3]! - n[4]!, total };
}
interface Latency {
  nats: LatencyRun;
  http: LatencyRun;
}

/**
 * Steady 5,000 events/s of the profile's traffic for BENCH_LATENCY_SECONDS; every 100 ms a probe event
 * (a new trace) whose time from sending until `GET /api/v1/traces/:id` answers 200 is measured.
 * `load` sends a slice of the traffic (all due messages, or `batch` at a time), `probe` a probe event.
 */
async function steadyLatency(
  profile: Profile,
  seed: number,
  via: {
    batch?: number;
    /** The probe's promise settles when its event is committed (HTTP's answer): time it. */
    answered?: boolean;
    load: (messages: BenchEvent[]) => Promise<number>;
    probe: (traceId: string) => Promise<void>;
  },
): Promise<LatencyRun> {
  const rate = LATENCY_RATE;
  const durationMs = LATENCY_SECONDS * 1000;
  const latencies: number[] = [];
  const load = traffic(profile, rate * LATENCY_SECONDS, seed).messages;
  const t0 = Date.now();
  let sent = 0;
  let retries = 0;
  const inFlight: Promise<void>[] = [];
  let probeNo = 0;
  // One poller for every probe not yet seen: a list request every 10 ms for the newest traces of this
  // run's probe prefix. (A poll per probe every 5 ms, as before, added hundreds of requests a second to
  // the load it measured; docs/benchmarks.md.) BENCH_PROBE_POLL=each polls each probe's trace alone.
  const prefix = `probe${seed}-`;
  const waiting = new Map<string, number>();
  const answered: number[] = [];
  const [flush0, ticks0] = [await flushStats(), machineTicks()];
  const pollEach = process.env.BENCH_PROBE_POLL === 'each';
  let sending = true;
  let stoppedAt = 0;
  let polls = 0;
  const poller = (async () => {
    while (sending || waiting.size > 0) {
      if (!sending && performance.now() - stoppedAt > 60_000)
        throw new Error(`${waiting.size} probes not queryable 60 s after the load ended`);
      if (!pollEach && waiting.size > 0) {
        const res = await fetch(`http://127.0.0.1:${PORT}/api/v1/traces?trace_prefix=${prefix}&limit=200`);
        polls += 1;
        const body = (await res.json()) as { items: { trace_id: string }[] };
        const now = performance.now();
        for (const t of body.items) {
          const sentAt = waiting.get(t.trace_id);
          if (sentAt === undefined) continue;
          latencies.push(now - sentAt);
          waiting.delete(t.trace_id);
        }
      }
      await sleep(10);
    }
  })();
  while (Date.now() - t0 < durationMs) {
    const due = Math.min(load.length, Math.floor(((Date.now() - t0) / 1000) * rate));
    while (due - sent >= (via.batch ?? 1)) {
      const batch = load.slice(sent, via.batch ? sent + via.batch : due);
      sent += batch.length;
      inFlight.push(via.load(batch).then((r) => void (retries += r)));
    }
    if (Date.now() - t0 >= probeNo * 100) {
      const traceId = `${prefix}${probeNo++}-${randomBytes(4).toString('hex')}`;
      const sentAt = performance.now();
      inFlight.push(
        (async () => {
          if (!pollEach) waiting.set(traceId, sentAt);
          await via.probe(traceId);
          answered.push(performance.now() - sentAt);
          if (!pollEach) return;
          for (;;) {
            const res = await fetch(`http://127.0.0.1:${PORT}/api/v1/traces/${traceId}`);
            polls += 1;
            await res.arrayBuffer();
            if (res.status === 200) {
              latencies.push(performance.now() - sentAt);
              return;
            }
            await sleep(5);
          }
        })(),
      );
    }
    await sleep(2);
  }
  await Promise.all(inFlight);
  const [flush1, ticks1] = [await flushStats(), machineTicks()];
  sending = false;
  stoppedAt = performance.now();
  await poller;
  latencies.sort((a, b) => a - b);
  answered.sort((a, b) => a - b);
  const pct = (p: number, of = latencies) => of[Math.min(of.length - 1, Math.floor(p * of.length))]!;
  const flushes = flush1.count - flush0.count;
  return {
    ...(via.answered ? { answered: { p50: pct(0.5, answered), p99: pct(0.99, answered) } } : {}),
    during: {
      flushes,
      flushMeanMs: ((flush1.sum - flush0.sum) / flushes) * 1000,
      flushesOver250Ms: flushes - (flush1.le250 - flush0.le250),
      spanLagSeconds: flush1.lag,
      machineBusy: (ticks1.busy - ticks0.busy) / (ticks1.total - ticks0.total),
    },
    probes: latencies.length,
    p50: pct(0.5),
    p99: pct(0.99),
    max: latencies.at(-1)!,
    sentPerSecond: sent / (durationMs / 1000),
    retries,
    pollsPerSecond: polls / (durationMs / 1000),
  };
}

const f = (n: number) => Math.round(n).toLocaleString('en-US');
/** CPU µs per event of a process or group over a run's events. */
const us = (seconds: number, events: number) => (seconds / events) * 1e6;
const fus = (seconds: number, events: number) => us(seconds, events).toFixed(0);

function cpuLine(run: IngestRun): string {
  const t = cpuTotals(run.cpu);
  const e = run.distinct;
  return `CPU µs/event: Chronicle ${fus(run.cpu.processes.chronicle ?? 0, e)}, Postgres ${fus(t.postgres, e)} (backends ${fus(t.backends, e)}, background ${fus(t.background, e)}), NATS ${fus(run.cpu.processes['nats-server'] ?? 0, e)}, total ${fus(t.total, e)}`;
}

/** The report's rows: one column per profile and path. */
function printReport(runs: IngestRun[]): void {
  const header = runs.map((r) => `${r.profile}: ${r.path}`);
  console.log('');
  console.log(`| measure | ${header.join(' | ')} |`);
  console.log(`|---|${runs.map(() => '---').join('|')}|`);
  const row = (label: string, cell: (r: IngestRun) => string) =>
    console.log(`| ${label} | ${runs.map(cell).join(' | ')} |`);
  row('messages (distinct events, traces)', (r) => `${f(r.messages)} (${f(r.distinct)}, ${f(r.traces)})`);
  row('wall time to the last ack / answer', (r) =>
    r.startupSeconds === undefined
      ? `${r.seconds.toFixed(1)} s`
      : `${r.seconds.toFixed(1)} s (ready after ${r.startupSeconds.toFixed(2)} s)`,
  );
  row('**end-to-end events/s** (distinct, traces and metrics maintained)', (r) => f(r.eventsPerSecond));
  row('raw write ceiling events/s (same rows, 2 connections)', (r) => f(r.raw!.eventsPerSecond));
  row('**ratio end-to-end / raw**', (r) => (r.eventsPerSecond / r.raw!.eventsPerSecond).toFixed(2));
  const cpuRow = (label: string, pick: (c: CpuBreakdown) => number, withSpans = false) =>
    row(label, (r) => fus(pick(withSpans ? r.cpuWithSpans : r.cpu), r.distinct));
  cpuRow('CPU µs/event: **Chronicle**', (c) => c.processes.chronicle ?? 0);
  cpuRow('CPU µs/event: Postgres, Chronicle’s backends', (c) => cpuTotals(c).backends);
  cpuRow(
    'CPU µs/event: Postgres, background (walwriter, checkpointer, bgwriter, autovacuum)',
    (c) => cpuTotals(c).background,
  );
  cpuRow('CPU µs/event: **Postgres** (backends + background)', (c) => cpuTotals(c).postgres);
  cpuRow('CPU µs/event: nats-server', (c) => c.processes['nats-server'] ?? 0);
  cpuRow('CPU µs/event: **total**', (c) => cpuTotals(c).total);
  row('CPU µs/event with the span catch-up: Chronicle / Postgres / total', (r) => {
    const t = cpuTotals(r.cpuWithSpans);
    return `${fus(r.cpuWithSpans.processes.chronicle ?? 0, r.distinct)} / ${fus(t.postgres, r.distinct)} / ${fus(t.total, r.distinct)}`;
  });
  row(
    'spans built; all caught up after ingest ended in',
    (r) => `${f(r.spans)}; ${r.spansCaughtUpSeconds.toFixed(1)} s`,
  );
  row(
    '**peak RSS** (ingest / with span catch-up)',
    (r) => `${r.rssMiB.toFixed(0)} / ${r.catchUpRssMiB.toFixed(0)} MiB`,
  );
  row(`**ingest-to-queryable** at ${LATENCY_RATE.toLocaleString('en-US')} events/s: p50 / p99 / max`, (r) => {
    const l = r.path === 'NATS drain' ? r.latency?.nats : r.latency?.http;
    return l
      ? `${l.p50.toFixed(0)} / ${l.p99.toFixed(0)} / ${l.max.toFixed(0)} ms (${l.probes} probes, ${Math.round(l.pollsPerSecond)} polls/s)`
      : '';
  });
  row('during the latency run: flushes, mean ms, over 250 ms; span lag at its end; machine busy', (r) => {
    const l = r.path === 'NATS drain' ? r.latency?.nats : r.latency?.http;
    if (!l) return '';
    const d = l.during;
    return (
      `${d.flushes}, ${d.flushMeanMs.toFixed(0)} ms, ${d.flushesOver250Ms}; ${d.spanLagSeconds.toFixed(1)} s; ${(d.machineBusy * 100).toFixed(0)} %` +
      (l.answered
        ? `; probe answered p50 / p99 ${l.answered.p50.toFixed(0)} / ${l.answered.p99.toFixed(0)} ms`
        : '')
    );
  });
  row(
    'stale trace rows / metric rows unlike a full aggregation (must be 0)',
    (r) => `${r.staleTraces} / ${r.wrongMetrics}`,
  );
  row('HTTP retries (429 or 503 answers, or a request failed)', (r) =>
    r.retries === undefined ? '' : String(r.retries),
  );
  // Where Postgres's background CPU went, per process type (µs per event).
  row('Postgres background by process, µs/event', (r) =>
    Object.entries(r.cpu.background)
      .map(([k, v]) => `${k} ${fus(v, r.distinct)}`)
      .join(', '),
  );
  row('Postgres backends by application_name, µs/event', (r) =>
    Object.entries(r.cpu.backends)
      .map(([k, v]) => `${k} ${fus(v, r.distinct)}`)
      .join(', '),
  );
}

/** The issue's targets against the interleaved runs (NATS drain, HTTP ingest), met or not. */
function printTargets(runs: IngestRun[]): void {
  const drain = runs.find((r) => r.profile === 'interleaved' && r.path === 'NATS drain');
  const http = runs.find((r) => r.profile === 'interleaved' && r.path === 'HTTP ingest');
  if (!drain || !http) {
    console.log('\n(targets: measured on interleaved traffic; run with BENCH_TRAFFIC=interleaved or both)');
    return;
  }
  console.log('');
  console.log('Targets (interleaved traffic, issue 14), measured in this run:');
  console.log('');
  console.log('| target | NATS drain | HTTP ingest | met |');
  console.log('|---|---|---|---|');
  const target = (label: string, measure: (r: IngestRun) => [number, string], ok: (v: number) => boolean) => {
    const [d, ds] = measure(drain);
    const [h, hs] = measure(http);
    const met = ok(d) && ok(h) ? 'met' : ok(d) || ok(h) ? `not met (${ok(d) ? 'HTTP' : 'NATS'})` : 'not met';
    console.log(`| ${label} | ${ds} | ${hs} | ${met} |`);
  };
  // Per event, with the span builder's catch-up: spans are part of the work an event costs.
  target(
    'Chronicle CPU ≤ 12 µs/event (ingest + spans; ingest alone in brackets)',
    (r) => {
      const all = us(r.cpuWithSpans.processes.chronicle ?? 0, r.distinct);
      return [all, `${all.toFixed(0)} (${fus(r.cpu.processes.chronicle ?? 0, r.distinct)})`];
    },
    (v) => v <= 12,
  );
  target(
    'total CPU (Chronicle + Postgres + nats-server) ≤ 50 µs/event (ingest + spans; ingest alone)',
    (r) => {
      const all = us(cpuTotals(r.cpuWithSpans).total, r.distinct);
      return [all, `${all.toFixed(0)} (${fus(cpuTotals(r.cpu).total, r.distinct)})`];
    },
    (v) => v <= 50,
  );
  target(
    'end-to-end ≥ 0.45× the raw write ceiling (same run)',
    (r) => {
      const ratio = r.eventsPerSecond / r.raw!.eventsPerSecond;
      return [ratio, `${ratio.toFixed(2)}× (${f(r.eventsPerSecond)} / ${f(r.raw!.eventsPerSecond)})`];
    },
    (v) => v >= 0.45,
  );
  target(
    `p99 ingest-to-queryable < 500 ms at 5,000 events/s${LATENCY_RATE === 5000 ? '' : ` (measured at ${LATENCY_RATE.toLocaleString('en-US')}: not the target's rate)`}`,
    (r) => {
      const l = r.path === 'NATS drain' ? r.latency!.nats : r.latency!.http;
      return [l.p99, `${l.p99.toFixed(0)} ms`];
    },
    (v) => v < 500,
  );
  target(
    'peak RSS < 256 MiB, default settings (ingest, span catch-up, latency runs)',
    (r) => {
      const peak = Math.max(r.catchUpRssMiB, r.latencyRssMiB ?? 0);
      return [peak, `${peak.toFixed(0)} MiB`];
    },
    (v) => v < 256,
  );
  const elsewhere = (label: string, where: string) => console.log(`| ${label} | ${where} | | |`);
  console.log(
    `| (for reference, not a target) spans all built after ingest ended | ${drain.spansCaughtUpSeconds.toFixed(1)} s | ${http.spansCaughtUpSeconds.toFixed(1)} s | |`,
  );
  elsewhere(
    'spans current under sustained load: at 80% of the maximum rate for 10 min, oldest unbuilt change < 10 s; export keeps pace',
    'see `npm run bench:spans` (a 10-minute sustained-load run)',
  );
  elsewhere('flat cost: last 500k window of bench:scale ≥ 0.9× the first', 'see `npm run bench:scale`');
  elsewhere('API p99 < 50 ms for every main query at 5,000,000 events', 'see `npm run bench:scale`');
  elsewhere('on disk ≤ 2× the events’ JSON size per event', 'see `npm run bench:scale`');
}

async function main(): Promise<void> {
  console.log(
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const nc = await connect({ servers: NATS_URL });
  const runs: IngestRun[] = [];
  try {
    for (const profile of PROFILES) {
      generated.clear(); // the previous profile's traffic (hundreds of MB at the default size)
      const t = traffic(profile, N, 42);
      console.log(
        profile === 'interleaved'
          ? `traffic interleaved: ${t.traces} traces over ${(t.simulatedSeconds! / 3600).toFixed(1)} h of simulated time, ~${t.inFlight} tasks in flight`
          : `traffic grouped: ${t.traces} traces, each task's events one after another`,
      );
      const drain = await drainBenchmark(nc, profile);
      console.log(
        `${profile} drain: ${drain.seconds.toFixed(1)} s, ${f(drain.eventsPerSecond)} events/s, RSS ${drain.rssMiB.toFixed(0)} MiB, ${cpuLine(drain)}; ${drain.spans} spans built ${drain.spansCaughtUpSeconds.toFixed(1)} s after the drain (peak RSS then ${drain.catchUpRssMiB.toFixed(0)} MiB)`,
      );
      if (drain.streamsCaughtUpSeconds !== undefined) {
        console.log(
          `streams: ${STREAMS} received all ${drain.distinct} events each, once, ${drain.streamsCaughtUpSeconds.toFixed(1)} s after the drain (counted in Chronicle's CPU)`,
        );
      }
      if (DRAIN_ONLY) continue;
      drain.raw = await rawCeiling(traffic(profile, N, 42).messages);
      const { http, latency, latencyRssMiB } = await httpBenchmark(nc, profile);
      http.raw = await rawCeiling(traffic(profile, HTTP_EVENTS, 7).messages);
      drain.latency = http.latency = latency;
      http.latencyRssMiB = latencyRssMiB;
      console.log(
        `${profile} HTTP: ${http.seconds.toFixed(1)} s, ${f(http.eventsPerSecond)} events/s, ${cpuLine(http)}; latency p99 NATS ${latency.nats.p99.toFixed(0)} ms, HTTP ${latency.http.p99.toFixed(0)} ms`,
      );
      runs.push(drain, http);
    }
    if (DRAIN_ONLY) return;
    printReport(runs);
    if (PROFILES.length === 2) {
      const ratio = (path: IngestRun['path'], pick: (r: IngestRun) => number) => {
        const [i, g] = (['interleaved', 'grouped'] as const).map((p) =>
          pick(runs.find((r) => r.profile === p && r.path === path)!),
        );
        return (i! / g!).toFixed(2);
      };
      console.log('');
      for (const path of ['NATS drain', 'HTTP ingest'] as const) {
        console.log(
          `interleaved / grouped, ${path}: events/s ${ratio(path, (r) => r.eventsPerSecond)}×, total CPU per event ${ratio(path, (r) => cpuTotals(r.cpu).total / r.distinct)}×, Postgres ${ratio(path, (r) => cpuTotals(r.cpu).postgres / r.distinct)}×, Chronicle ${ratio(path, (r) => (r.cpu.processes.chronicle ?? 0) / r.distinct)}×`,
        );
      }
    }
    printTargets(runs);
  } finally {
    await nc.close();
  }
}

await main();
