/**
 * `npm run bench`: Chronicle's throughput and latency on this machine (a benchmark, not a test).
 *
 * 1. Drain: preload N events (default 500,000) into the streams, start Chronicle (a child process,
 *    `node dist/main.js`) on a fresh database, and time until every event is in swarm_events and every
 *    trace row is current.
 * 2. Raw ceiling: the same rows written straight into an empty copy of swarm_events (with a unique
 *    event_id for dedup) by multi-row inserts on 2 connections: no NATS, no processing.
 * 3. HTTP ingest events/s with requests of 1,000 events.
 * 4. Ingest-to-queryable latency at a steady 5,000 events/s (publish → visible through the API).
 * 5. Peak RSS of the Chronicle process.
 *
 * Needs Postgres and NATS (DATABASE_URL, NATS_URL as in the tests). BENCH_EVENTS sets N.
 * BENCH_STREAMS=k opens k live streams (GET /api/v1/stream from the start of the log) during the drain:
 * Chronicle's CPU then includes serving them, and each must receive every event exactly once.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { connect, type NatsConnection } from 'nats';
import pg from 'pg';
import { RAW_INSERT_SQL } from './raw-insert.js';
import {
  NATS_URL,
  PORT,
  cpuSeconds,
  createDatabase,
  dropDatabase,
  peakRssMiB,
  pidOf,
  sleep,
  startChronicle,
  waitReady,
} from './support.js';
import { generateInterleavedTraffic, generateTraffic } from './traffic.js';

const N = Number(process.env.BENCH_EVENTS ?? 500_000);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 0);
/**
 * BENCH_TRAFFIC: `interleaved` (the default: thousands of tasks in flight, each batch holding one or two
 * events of each, as a live swarm sends them) or `grouped` (each task's events one after another).
 */
const TRAFFIC = process.env.BENCH_TRAFFIC ?? 'interleaved';
if (TRAFFIC !== 'interleaved' && TRAFFIC !== 'grouped')
  throw new Error('BENCH_TRAFFIC must be interleaved or grouped');

const generated = new Map<string, ReturnType<typeof generateInterleavedTraffic>>();

/** The benchmark's traffic in the chosen profile (interleaved traffic generated once per size and seed). */
function traffic(count: number, seed: number): ReturnType<typeof generateTraffic> {
  if (TRAFFIC === 'grouped') return generateTraffic(count, seed);
  const key = `${count}/${seed}`;
  if (!generated.has(key)) generated.set(key, generateInterleavedTraffic(count, seed));
  return generated.get(key)!;
}

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

async function preload(
  nc: NatsConnection,
  namespace: string,
  messages: { subject: string; payload: string }[],
) {
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

async function drainBenchmark(nc: NatsConnection) {
  const { messages, distinct, traces } = traffic(N, 42);
  const namespace = `BENCH${randomBytes(3).toString('hex').toUpperCase()}_`;
  const databaseUrl = await createDatabase();
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  try {
    const pre = await preload(nc, namespace, messages);
    console.log(
      `preloaded ${messages.length} messages (${distinct} distinct events, ${traces} traces) in ${pre.seconds.toFixed(1)} s`,
    );
    const natsServer = pidOf(/nats-server/);
    const natsBefore = natsServer ? cpuSeconds(natsServer) : 0;
    const started = Date.now();
    const child = startChronicle(databaseUrl, namespace);
    let rss = 0;
    let chronicleCpu: number;
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
        rss = Math.max(rss, peakRssMiB(child.pid!));
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
      const drainRss = peakRssMiB(child.pid!);
      // Postgres CPU of Chronicle's own backends, read while they are alive (before any check below).
      const { rows: backends } = await pool.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'chronicle%'`,
      );
      const pgCpu = backends.reduce((sum, b) => {
        try {
          return sum + cpuSeconds(b.pid);
        } catch {
          return sum;
        }
      }, 0);
      chronicleCpu = cpuSeconds(child.pid!);
      const streamRepeats = streams?.repeats() ?? 0;
      await streams?.close();
      if (streamRepeats > 0) throw new Error(`streams received ${streamRepeats} events twice`);
      const natsCpu = natsServer ? cpuSeconds(natsServer) - natsBefore : 0;
      const { rows } = await pool.query<{ events: string; traces: string }>(
        `SELECT (SELECT count(*) FROM swarm_events) AS events, (SELECT count(*) FROM swarm_traces) AS traces`,
      );
      if (Number(rows[0]!.events) !== distinct || Number(rows[0]!.traces) !== traces) {
        throw new Error(
          `drained, but stored ${JSON.stringify(rows[0])}; expected ${distinct} events, ${traces} traces`,
        );
      }
      const seconds = (drainedAt - started) / 1000;
      // Every trace row must be computed from all of its events: compare span_count with the log.
      // Every metric row must equal a full aggregation of the day's tasks (it is kept by deltas).
      const { rows: check } = await pool.query<{ stale: string; metrics: string; wrong_metrics: string }>(`
        WITH aggregated AS (
          SELECT assigned_agent AS agent_id, (completed_at AT TIME ZONE 'UTC')::date AS metric_date,
            count(*) FILTER (WHERE status = 'completed')::int AS tasks_completed,
            count(*) FILTER (WHERE status = 'failed')::int AS tasks_failed,
            count(*) FILTER (WHERE status = 'timed_out')::int AS tasks_timed_out,
            round(avg(duration_ms) FILTER (WHERE status = 'completed'))::bigint AS avg_duration_ms,
            round((percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
              FILTER (WHERE status = 'completed'))::numeric)::bigint AS p95_duration_ms,
            min(duration_ms) FILTER (WHERE status = 'completed') AS min_duration_ms,
            max(duration_ms) FILTER (WHERE status = 'completed') AS max_duration_ms,
            round(avg(time_to_pickup_ms))::bigint AS time_to_pickup_avg_ms
          FROM swarm_traces
          WHERE is_task AND status IN ('completed', 'failed', 'timed_out') AND assigned_agent IS NOT NULL
          GROUP BY 1, 2
        ),
        stored AS (
          SELECT agent_id, metric_date, tasks_completed, tasks_failed, tasks_timed_out, avg_duration_ms,
            p95_duration_ms, min_duration_ms, max_duration_ms, time_to_pickup_avg_ms
          FROM agent_metrics WHERE tasks_completed + tasks_failed + tasks_timed_out > 0
        )
        SELECT (SELECT count(*) FROM swarm_traces t WHERE t.span_count <>
                 (SELECT count(*) FROM swarm_events e WHERE e.trace_id = t.trace_id)) AS stale,
               (SELECT count(*) FROM agent_metrics) AS metrics,
               (SELECT count(*) FROM ((TABLE aggregated EXCEPT TABLE stored)
                 UNION ALL (TABLE stored EXCEPT TABLE aggregated)) d) AS wrong_metrics`);
      if (Number(check[0]!.stale) > 0 || Number(check[0]!.wrong_metrics) > 0) {
        throw new Error(`drained, but derived rows are wrong: ${JSON.stringify(check[0])}`);
      }
      // Spans are built after the commit, with ingest given priority: time until they caught up.
      for (;;) {
        const { rows: pending } = await pool.query<{ n: string }>(
          // Every flush queued its traces before committing, so an empty queue means every trace is built.
          'SELECT count(*) AS n FROM otel_pending',
        );
        if (Number(pending[0]!.n) === 0) break;
        if (Date.now() - drainedAt > 600_000) throw new Error('spans did not catch up within 10 minutes');
        await new Promise((r) => setTimeout(r, 250));
      }
      const spansCaughtUpSeconds = (Date.now() - drainedAt) / 1000;
      const { rows: spanRows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM otel_spans');
      rss = Math.max(rss, peakRssMiB(child.pid!));
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      return {
        cpu: { chronicle: chronicleCpu, postgres: pgCpu, nats: natsCpu },
        messages: messages.length,
        distinct,
        traces,
        seconds,
        startupSeconds: (readyAt - started) / 1000,
        eventsPerSecond: distinct / seconds,
        messagesPerSecond: messages.length / seconds,
        staleTraces: Number(check[0]!.stale),
        wrongMetrics: Number(check[0]!.wrong_metrics),
        spans: Number(spanRows[0]!.n),
        spansCaughtUpSeconds,
        metricRows: Number(check[0]!.metrics),
        rssMiB: drainRss,
        catchUpRssMiB: rss,
        rows: messages,
        streamsCaughtUpSeconds,
      };
    } finally {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
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
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
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

/** HTTP ingest with requests of 1,000 events, 4 requests in flight; then latency at a steady 5,000 events/s. */
async function httpAndLatency(nc: NatsConnection) {
  const namespace = `BENCH${randomBytes(3).toString('hex').toUpperCase()}_`;
  const databaseUrl = await createDatabase();
  const child = startChronicle(databaseUrl, namespace);
  try {
    await waitReady();
    const { messages, distinct } = traffic(Math.min(N, 200_000), 7);
    const bodies: string[] = [];
    for (let i = 0; i < messages.length; i += 1000) {
      bodies.push(
        `[${messages
          .slice(i, i + 1000)
          .map((m) => m.payload)
          .join(',')}]`,
      );
    }
    let next = 0;
    let retries = 0;
    const started = Date.now();
    const worker = async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        for (;;) {
          const res = await fetch(`http://127.0.0.1:${PORT}/api/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          });
          await res.arrayBuffer();
          if (res.status === 200) break;
          retries++;
          await sleep(50);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    const httpSeconds = (Date.now() - started) / 1000;
    const http = {
      events: distinct,
      seconds: httpSeconds,
      eventsPerSecond: messages.length / httpSeconds,
      retries,
    };

    // Steady 5,000 events/s through NATS for 20 s; every 100 ms a probe event whose visibility we time.
    const prefix = namespace.toLowerCase();
    const rate = 5000;
    const durationMs = 20_000;
    const latencies: number[] = [];
    const load = traffic(rate * (durationMs / 1000), 99).messages;
    const t0 = Date.now();
    let sent = 0;
    const probes: Promise<void>[] = [];
    let probeNo = 0;
    while (Date.now() - t0 < durationMs) {
      const due = Math.floor(((Date.now() - t0) / 1000) * rate);
      while (sent < due && sent < load.length) {
        const m = load[sent++]!;
        nc.publish(`${prefix}${m.subject}`, m.payload);
      }
      if (Date.now() - t0 >= probeNo * 100) {
        const traceId = `probe-${probeNo++}-${randomBytes(4).toString('hex')}`;
        const publishedAt = performance.now();
        nc.publish(
          `${prefix}swarm.task.created`,
          JSON.stringify({ trace_id: traceId, metadata: { title: 'probe' } }),
        );
        probes.push(
          (async () => {
            for (;;) {
              const res = await fetch(`http://127.0.0.1:${PORT}/api/v1/traces/${traceId}`);
              await res.arrayBuffer();
              if (res.status === 200) {
                latencies.push(performance.now() - publishedAt);
                return;
              }
              await sleep(5);
            }
          })(),
        );
      }
      await sleep(2);
    }
    await Promise.all(probes);
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
    const latency = {
      probes: latencies.length,
      p50: pct(0.5),
      p99: pct(0.99),
      max: latencies.at(-1)!,
      sentPerSecond: sent / (durationMs / 1000),
    };
    return { http, latency, rssMiB: peakRssMiB(child.pid!) };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await deleteStreams(nc, namespace);
    await dropDatabase(databaseUrl);
  }
}

function cpuLine(drain: {
  distinct: number;
  cpu: { chronicle: number; postgres: number; nats: number };
}): string {
  const us = (s: number) => ((s / drain.distinct) * 1e6).toFixed(0);
  const { chronicle, postgres, nats } = drain.cpu;
  return `CPU µs/event: Chronicle ${us(chronicle)}, Postgres ${us(postgres)}, NATS ${us(nats)}, total ${us(chronicle + postgres + nats)}`;
}

async function main(): Promise<void> {
  console.log(
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
  );
  if (TRAFFIC === 'interleaved') {
    traffic(N, 42);
    const t = generated.get(`${N}/42`)!;
    console.log(
      `traffic: interleaved, ${t.traces} traces over ${(t.simulatedSeconds / 3600).toFixed(1)} h of simulated time, ~${t.inFlight} tasks in flight (BENCH_TRAFFIC=grouped: each task's events together)`,
    );
  } else console.log("traffic: grouped, each task's events one after another");
  const nc = await connect({ servers: NATS_URL });
  try {
    const drain = await drainBenchmark(nc);
    if (process.env.BENCH_DRAIN_ONLY) {
      console.log(
        `drain: ${drain.seconds.toFixed(1)} s, ${Math.round(drain.eventsPerSecond)} events/s, RSS ${drain.rssMiB.toFixed(0)} MiB, ${cpuLine(drain)}; ${drain.spans} spans built ${drain.spansCaughtUpSeconds.toFixed(1)} s after the drain (peak RSS then ${drain.catchUpRssMiB.toFixed(0)} MiB)`,
      );
      if (drain.streamsCaughtUpSeconds !== undefined) {
        console.log(
          `streams: ${STREAMS} received all ${drain.distinct} events each, once, ${drain.streamsCaughtUpSeconds.toFixed(1)} s after the drain (counted in Chronicle's CPU)`,
        );
      }
      return;
    }
    const raw = await rawCeiling(drain.rows);
    const other = await httpAndLatency(nc);
    const ratio = drain.eventsPerSecond / raw.eventsPerSecond;
    const f = (n: number) => Math.round(n).toLocaleString('en-US');
    console.log('');
    console.log(`| measure | result |`);
    console.log(`|---|---|`);
    console.log(
      `| drain: ${f(drain.messages)} messages (${f(drain.distinct)} distinct, ${f(drain.traces)} traces) | ${drain.seconds.toFixed(1)} s (ready after ${drain.startupSeconds.toFixed(2)} s) |`,
    );
    console.log(
      `| end-to-end events/s (distinct events, traces and metrics maintained) | ${f(drain.eventsPerSecond)} |`,
    );
    console.log(`| raw write ceiling events/s (2 connections, same rows) | ${f(raw.eventsPerSecond)} |`);
    console.log(`| ratio end-to-end / raw | ${ratio.toFixed(2)} |`);
    console.log(`| stale trace rows after drain (must be 0) | ${drain.staleTraces} |`);
    console.log(`| metric rows unlike a full aggregation (must be 0) | ${drain.wrongMetrics} |`);
    console.log(
      `| spans built (after the commit, ingest first): all caught up after the drain in | ${f(drain.spans)} spans, ${drain.spansCaughtUpSeconds.toFixed(1)} s |`,
    );
    console.log(
      `| HTTP ingest events/s (1,000 per request, 4 in flight) | ${f(other.http.eventsPerSecond)} (${other.http.retries} retries) |`,
    );
    console.log(
      `| ingest-to-queryable at ${f(other.latency.sentPerSecond)} events/s: p50 / p99 / max | ${other.latency.p50.toFixed(0)} / ${other.latency.p99.toFixed(0)} / ${other.latency.max.toFixed(0)} ms (${other.latency.probes} probes) |`,
    );
    console.log(`| CPU per event during the drain | ${cpuLine(drain)} |`);
    console.log(
      `| peak RSS (drain / with span catch-up / HTTP+latency run) | ${drain.rssMiB.toFixed(0)} / ${drain.catchUpRssMiB.toFixed(0)} / ${other.rssMiB.toFixed(0)} MiB |`,
    );
  } finally {
    await nc.close();
  }
}

await main();
