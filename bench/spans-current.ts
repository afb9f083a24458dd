/**
 * `npm run bench:spans`: do spans stay current under sustained load (issue 14)? A benchmark, not a test.
 *
 * 1. The maximum sustained HTTP ingest rate (unless BENCH_RATE gives it): interleaved traffic posted as
 *    fast as Chronicle takes it (1,000 events a request, 4 in flight) for BENCH_MAX_SECONDS (600, as
 *    long as the load that follows), on a fresh database, with span building and export on as in
 *    production; the rate is the events accepted per second over the second half (posted events,
 *    duplicates included, the unit phase 2 paces), printed with that half's build lag. (Over the first
 *    45 s of an empty store Chronicle takes far more than it keeps up for ten minutes: 80 % of such a
 *    figure was more than it could even take.)
 * 2. On another fresh database: interleaved traffic posted at BENCH_LOAD (0.8) × that rate for
 *    BENCH_SUSTAIN_SECONDS (600), paced every 100 ms, spans exported to a sink in this process that
 *    answers 200. Every second: the age of the oldest change not yet turned into spans (now −
 *    min(queued_at) of otel_pending, read from the store) and Chronicle's own gauge
 *    `chronicle_span_build_lag_seconds`, the rows pending, the spans not exported and the age of the
 *    oldest of them.
 * 3. After the load: how long until every change is built and every span exported (waiting at most
 *    BENCH_CATCH_UP_SECONDS, 120); the bytes on disk
 *    per stored event of swarm_events and otel_spans.
 *
 * The traffic is dated from the moment the phase starts, and its simulated clock runs at the wall
 * clock's pace (tasks per simulated second = rate / 4.6),
 * so each task's events arrive seconds to minutes apart as a live swarm sends them, and a trace settles
 * (SPAN_SETTLE_MS) between them. It is generated in slices of BENCH_SLICE_EVENTS (200,000), each from
 * where the previous one's tasks started, so memory stays flat however long the run.
 *
 * Needs Postgres and NATS (DATABASE_URL, NATS_URL as in the tests) and `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import {
  EVENTS_ON_DISK_SQL,
  PORT,
  cpuSeconds,
  createDatabase,
  dropDatabase,
  peakRssMiB,
  postEvents,
  sleep,
  startChronicle,
  waitReady,
} from './support.js';
import { generateInterleavedTraffic } from './traffic.js';

const SUSTAIN_SECONDS = Number(process.env.BENCH_SUSTAIN_SECONDS ?? 600);
const MAX_SECONDS = Number(process.env.BENCH_MAX_SECONDS ?? 600);
const LOAD = Number(process.env.BENCH_LOAD ?? 0.8);
const SLICE = Number(process.env.BENCH_SLICE_EVENTS ?? 200_000);
/** How long the run waits after the load for every change to be built and exported. */
const CATCH_UP_SECONDS = Number(process.env.BENCH_CATCH_UP_SECONDS ?? 120);
const TARGET_LAG_SECONDS = 10;
/** Task events per task plus heartbeats and duplicates, about (bench/traffic.ts). */
const EVENTS_PER_TASK = 4.6;

/** Request bodies of 1,000 events, generated a slice at a time; simulated time runs at `rate`'s pace. */
function bodies(rate: number): () => string {
  let slice = 0;
  let queue: string[] = [];
  let at = 0;
  const tasksPerSecond = rate / EVENTS_PER_TASK;
  // Dated from now, as a live swarm's events are: a fixed date past the 30 days of
  // SWARM_EVENTS_RETENTION_DAYS had retention drop the events while the run stored them.
  let start = Date.now();
  return () => {
    if (at >= queue.length) {
      const t = generateInterleavedTraffic(SLICE, 1000 + slice++, {
        tasksPerSecond,
        start: new Date(start).toISOString(),
      });
      // The next slice's tasks start where this slice's tasks stopped starting.
      start += Math.round((SLICE / (1.05 * 4.4) / tasksPerSecond) * 1000);
      queue = [];
      for (let i = 0; i < t.messages.length; i += 1000) {
        queue.push(
          `[${t.messages
            .slice(i, i + 1000)
            .map((m) => m.payload)
            .join(',')}]`,
        );
      }
      at = 0;
    }
    return queue[at++]!;
  };
}

/** An OTLP/HTTP traces endpoint that accepts everything (the exporter's requests are only counted). */
async function startSink(): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    requests: () => requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function withChronicle<T>(
  sinkUrl: string,
  run: (pool: pg.Pool, pid: number) => Promise<T>,
): Promise<T> {
  const databaseUrl = await createDatabase();
  process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = sinkUrl;
  const child = startChronicle(databaseUrl, `BENCH${randomBytes(3).toString('hex').toUpperCase()}_`);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, application_name: 'bench' });
  try {
    await waitReady();
    return await run(pool, child.pid!);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await pool.end();
    await dropDatabase(databaseUrl);
  }
}

/** CPU seconds of Chronicle's own Postgres backends (those alive now). */
async function postgresCpu(pool: pg.Pool): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'chronicle%'`,
  );
  const out = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      out.set(pid, cpuSeconds(pid));
    } catch {
      // gone
    }
  }
  return out;
}

/** Events stored so far (the ledger counts each distinct event once). */
async function storedEvents(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM swarm_event_ids');
  return Number(rows[0]!.n);
}

interface Sample {
  second: number;
  lag: number;
  gauge: number | null;
  pending: number;
  unexported: number;
  exportLag: number;
  /** What Chronicle's Postgres sessions, autovacuum and the checkpointer were doing at the sample. */
  activity: string;
  /** Chronicle's event loop delay, max since the previous sample (prom-client's `chronicle_nodejs_eventloop_lag_max_seconds`), ms. */
  loopMaxMillis: number | null;
  /** Chronicle's GC pause time since the previous sample, ms. */
  gcMillis: number | null;
  /** Checkpoints the server has started so far. */
  checkpoints: number | null;
  /** The oldest pending change's trace, its rows, and the session holding its build lock (if any). */
  oldest: string;
}

// The sessions not idle: Chronicle's (by the statement's first words and what it waits on), autovacuum
// workers (their query reads "autovacuum: VACUUM table") and the checkpointer when it writes. One line per sample, counted by kind.
const ACTIVITY_SQL = `
SELECT coalesce(string_agg(what || (CASE WHEN n > 1 THEN ' ×' || n ELSE '' END), ', ' ORDER BY n DESC, what), '') AS activity
FROM (
  SELECT what, count(*) AS n FROM (
    SELECT CASE
      WHEN backend_type = 'autovacuum worker' THEN left(query, 60)
      WHEN backend_type = 'checkpointer' THEN 'checkpointer ' || coalesce(wait_event, 'running')
      ELSE left(regexp_replace(regexp_replace(query, '--[^\\n]*', '', 'g'), '\\s+', ' ', 'g'), 40)
        || coalesce(' [' || wait_event_type || ':' || wait_event || ']', '')
        || CASE WHEN now() - xact_start >= interval '1 second'
             THEN ' (in a transaction for ' || round(extract(epoch FROM now() - xact_start))::text || ' s)' ELSE '' END
    END AS what
    FROM pg_stat_activity
    WHERE pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'
      AND (datname = current_database() OR backend_type IN ('autovacuum worker', 'checkpointer'))
      AND NOT (backend_type = 'checkpointer' AND wait_event = 'CheckpointerMain')
  ) a GROUP BY what
) b`;

// The oldest pending change: its trace, how many rows that trace has pending, and which session holds
// its build lock (advisory class 3, key hashtext(trace_id): the lock's objid is that int4 as unsigned).
const OLDEST_SQL = `
SELECT coalesce((
  SELECT o.trace_id || ' (' || (SELECT count(*) FROM otel_pending q WHERE q.trace_id = o.trace_id) || ' rows'
    || coalesce((
      SELECT ', build lock held by ' || string_agg(a.pid || ' ' || a.state || ' for '
        || round(extract(epoch FROM now() - a.xact_start))::text || ' s: '
        || left(regexp_replace(a.query, '\\s+', ' ', 'g'), 40), '; ')
      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 3
        AND l.objid::text::bigint = (hashtext(o.trace_id)::bigint + 4294967296) % 4294967296
    ), '') || ')'
  FROM (SELECT trace_id FROM otel_pending ORDER BY queued_at LIMIT 1) o
), '') AS oldest`;

async function checkpoints(pool: pg.Pool): Promise<number | null> {
  for (const sql of [
    'SELECT (num_timed + num_requested)::int AS n FROM pg_stat_checkpointer',
    'SELECT (checkpoints_timed + checkpoints_req)::int AS n FROM pg_stat_bgwriter',
  ]) {
    try {
      return (await pool.query<{ n: number }>(sql)).rows[0]!.n;
    } catch {
      // the other server version's view
    }
  }
  return null;
}

const LAG_SQL = `
SELECT greatest(0, coalesce(extract(epoch FROM now() - min(queued_at)), 0))::float8 AS lag,
  (SELECT count(*) FROM otel_pending)::int AS pending,
  (SELECT count(*) FROM otel_spans WHERE exported_at IS NULL)::int AS unexported,
  (SELECT greatest(0, coalesce(extract(epoch FROM now() - min(created_at)), 0))
     FROM otel_spans WHERE exported_at IS NULL)::float8 AS export_lag
FROM otel_pending`;

/** Chronicle's /metrics: the build lag gauge, the event loop's max delay, the GC pause total. */
async function chronicleGauges(): Promise<{ lag: number | null; loopMax: number | null; gc: number | null }> {
  try {
    const res = await fetch(`http://127.0.0.1:${PORT}/metrics`);
    const text = await res.text();
    const value = (re: RegExp) => {
      const m = re.exec(text);
      return m ? Number(m[1]) : null;
    };
    let gc: number | null = null;
    for (const m of text.matchAll(/^chronicle_nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm))
      gc = (gc ?? 0) + Number(m[1]);
    return {
      lag: value(/^chronicle_span_build_lag_seconds (\S+)$/m),
      loopMax: value(/^chronicle_nodejs_eventloop_lag_max_seconds (\S+)$/m),
      gc,
    };
  } catch {
    return { lag: null, loopMax: null, gc: null };
  }
}

const pct = (values: readonly number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
};

/**
 * Every second until `end`: the age of the oldest unbuilt change (from the store and Chronicle's gauge),
 * the rows pending, the spans not exported and the age of the oldest; a line a minute.
 */
async function sampleEachSecond(
  pool: pg.Pool,
  started: number,
  end: number,
  rate: () => number,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  let gcBefore: number | null = null;
  for (let second = 1; Date.now() < end; second++) {
    await sleep(started + second * 1000 - Date.now());
    let rows: { lag: number; pending: number; unexported: number; export_lag: number }[];
    let g: Awaited<ReturnType<typeof chronicleGauges>>;
    let activity: string;
    let checkpointCount: number | null;
    let oldest: string;
    try {
      let act: { activity: string }[];
      let old: { oldest: string }[];
      [{ rows }, g, { rows: act }, checkpointCount, { rows: old }] = await Promise.all([
        pool.query<(typeof rows)[0]>(LAG_SQL),
        chronicleGauges(),
        pool.query<{ activity: string }>(ACTIVITY_SQL),
        checkpoints(pool),
        pool.query<{ oldest: string }>(OLDEST_SQL),
      ]);
      activity = act[0]!.activity;
      oldest = old[0]!.oldest;
    } catch (err) {
      console.error(`sample ${second} failed: ${(err as Error).message}`);
      continue;
    }
    const r = rows[0]!;
    samples.push({
      second,
      lag: r.lag,
      gauge: g.lag,
      pending: r.pending,
      unexported: r.unexported,
      exportLag: r.export_lag,
      activity,
      loopMaxMillis: g.loopMax === null ? null : g.loopMax * 1000,
      gcMillis: g.gc === null || gcBefore === null ? null : (g.gc - gcBefore) * 1000,
      checkpoints: checkpointCount,
      oldest,
    });
    gcBefore = g.gc;
    if (second % 60 === 0) {
      const minute = samples.slice(-60);
      console.log(
        `  ${second / 60} min: lag max ${Math.max(...minute.map((s) => s.lag)).toFixed(1)} s, pending ${r.pending}, ` +
          `not exported ${r.unexported} (oldest ${r.export_lag.toFixed(1)} s), ${rate().toFixed(0)} events/s`,
      );
    }
  }
  return samples;
}

/**
 * For each time the oldest unbuilt change passed the target: the 20 seconds before it and the seconds
 * it stayed over, each with what Postgres and Chronicle were doing (the cause of a stall, if it is one).
 */
function printExcursions(samples: readonly Sample[]): void {
  let shownUntil = 0;
  for (const [i, s] of samples.entries()) {
    if (s.lag < TARGET_LAG_SECONDS || s.second <= shownUntil) continue;
    let last = i;
    while (last + 1 < samples.length && samples[last + 1]!.lag >= TARGET_LAG_SECONDS) last++;
    console.log(
      `excursion at ${s.second} s (over ${TARGET_LAG_SECONDS} s until ${samples[last]!.second} s):`,
    );
    for (const x of samples.slice(Math.max(0, i - 20), last + 2)) {
      console.log(
        `  ${x.second} s: lag ${x.lag.toFixed(1)} s, pending ${x.pending}, loop max ${x.loopMaxMillis?.toFixed(0) ?? '—'} ms, ` +
          `gc ${x.gcMillis?.toFixed(0) ?? '—'} ms, checkpoints ${x.checkpoints ?? '—'} | ${x.activity || 'idle'}` +
          ` | oldest: ${x.oldest || 'none'}`,
      );
    }
    shownUntil = samples[last]!.second;
  }
}

/**
 * Phase 1: the rate Chronicle sustains, spans built and exported alongside, with 4 requests in flight
 * (429s are retried after 50 ms) for MAX_SECONDS: the events accepted per second over the second half of
 * the run, once the store has grown and the builder has met the load (the first seconds, on an empty
 * store with the builder not yet behind, run faster than anything the machine keeps up).
 */
async function maximumRate(sinkUrl: string): Promise<number> {
  return withChronicle(sinkUrl, async (pool, pid) => {
    const next = bodies(8000);
    let posted = 0;
    const started = Date.now();
    const end = started + MAX_SECONDS * 1000;
    const half = { at: 0, posted: 0, stored: 0, cpu: 0, pg: new Map<number, number>() };
    const sampler = sampleEachSecond(pool, started, end, () => posted / ((Date.now() - started) / 1000));
    const halfway = (async () => {
      await sleep((MAX_SECONDS * 1000) / 2);
      [half.stored, half.pg] = await Promise.all([storedEvents(pool), postgresCpu(pool)]);
      half.cpu = cpuSeconds(pid);
      half.posted = posted;
      half.at = Date.now();
    })();
    const worker = async () => {
      while (Date.now() < end) {
        const body = next();
        while ((await postEvents(body)) !== 200) await sleep(50);
        posted += 1000;
      }
    };
    await Promise.all([worker(), worker(), worker(), worker(), halfway]);
    const [stored, pgEnd] = await Promise.all([storedEvents(pool), postgresCpu(pool)]);
    const cpu = cpuSeconds(pid);
    const seconds = (Date.now() - half.at) / 1000;
    const samples = await sampler;
    const lags = samples.map((s) => s.lag);
    const secondHalf = samples.filter((s) => s.second > MAX_SECONDS / 2).map((s) => s.lag);
    let pgCpu = 0;
    for (const [p, s] of pgEnd) pgCpu += s - (half.pg.get(p) ?? 0);
    const rate = (posted - half.posted) / seconds;
    const first = half.posted / ((half.at - started) / 1000);
    console.log(
      `maximum: ${posted} events accepted (${stored} distinct stored) in ${((Date.now() - started) / 1000).toFixed(0)} s; ` +
        `${first.toFixed(0)} events/s over the first half, ${rate.toFixed(0)} over the second ` +
        `(oldest unbuilt change there: max ${Math.max(...secondHalf).toFixed(1)} s, p50 ${pct(secondHalf, 0.5).toFixed(1)} s; ` +
        `over the whole run max ${Math.max(...lags).toFixed(1)} s; CPU µs/event Chronicle / its Postgres backends ` +
        `${(((cpu - half.cpu) / (stored - half.stored)) * 1e6).toFixed(0)} / ${((pgCpu / (stored - half.stored)) * 1e6).toFixed(0)})`,
    );
    return rate;
  });
}

/** Phase 2 and 3. */
async function sustained(sinkUrl: string, rate: number, sinkRequests: () => number) {
  return withChronicle(sinkUrl, async (pool, pid) => {
    const next = bodies(rate);
    let posted = 0;
    let refused = 0;
    let inFlight = 0;
    const cpu0 = cpuSeconds(pid);
    const pg0 = await postgresCpu(pool);
    const sinkRequests0 = sinkRequests();
    const started = Date.now();
    const end = started + SUSTAIN_SECONDS * 1000;
    const sampler = sampleEachSecond(pool, started, end, () => posted / ((Date.now() - started) / 1000));
    // Paced: every 100 ms the requests due by then, at most 8 in flight (a refused one is sent again).
    const sends: Promise<void>[] = [];
    while (Date.now() < end) {
      const due = Math.floor((((Date.now() - started) / 1000) * rate) / 1000);
      while (posted / 1000 + inFlight < due && inFlight < 8) {
        const body = next();
        inFlight += 1;
        sends.push(
          (async () => {
            while ((await postEvents(body)) !== 200) {
              refused += 1;
              await sleep(50);
            }
            inFlight -= 1;
            posted += 1000;
          })(),
        );
      }
      await sleep(100);
    }
    await Promise.all(sends);
    const samples = await sampler;
    const loadSeconds = (Date.now() - started) / 1000;
    const cpu1 = cpuSeconds(pid);
    const pg1 = await postgresCpu(pool);
    let pgCpu = 0;
    for (const [p, s] of pg1) pgCpu += s - (pg0.get(p) ?? 0);
    const stored = await storedEvents(pool);
    // Catch-up: until every change is built and every span exported (at most CATCH_UP_SECONDS).
    const stoppedAt = Date.now();
    let builtAfter: number | null = null;
    let exportedAfter: number | null = null;
    while (Date.now() - stoppedAt < CATCH_UP_SECONDS * 1000 && exportedAfter === null) {
      const { rows } = await pool.query<{ pending: number; unexported: number }>(LAG_SQL);
      if (builtAfter === null && rows[0]!.pending === 0) builtAfter = (Date.now() - stoppedAt) / 1000;
      if (builtAfter !== null && rows[0]!.unexported === 0) exportedAfter = (Date.now() - stoppedAt) / 1000;
      await sleep(250);
    }
    const { rows: sizes } = await pool.query<{ events: string; spans: string; span_rows: string }>(
      `SELECT ${EVENTS_ON_DISK_SQL} AS events, pg_total_relation_size('otel_spans') AS spans,
         (SELECT count(*) FROM otel_spans) AS span_rows`,
    );
    // Changes queued for the span builder (one otel_pending row per flush and touched trace that can
    // make a span): about the builds live traffic asks for.
    const { rows: queued } = await pool.query<{ n: string }>(
      `SELECT n_tup_ins AS n FROM pg_stat_user_tables WHERE relname = 'otel_pending'`,
    );
    // What the stored spans are made of: span JSON bytes by role, and the part that is span events.
    const { rows: parts } = await pool.query<{ role: string; n: string; bytes: string; event_bytes: string }>(
      `SELECT role, count(*) AS n, sum(octet_length(span::text)) AS bytes,
         sum(octet_length((span->'events')::text)) AS event_bytes
       FROM otel_spans GROUP BY role ORDER BY 3 DESC`,
    );
    const composition = parts.map(
      (r) =>
        `${r.role}: ${r.n} spans, ${(Number(r.bytes) / stored).toFixed(0)} B/event of span JSON ` +
        `(span events ${(Number(r.event_bytes) / stored).toFixed(0)})`,
    );
    printExcursions(samples);
    const lags = samples.map((s) => s.lag);
    const gauges = samples.flatMap((s) => (s.gauge === null ? [] : [s.gauge]));
    const exportLags = samples.map((s) => s.exportLag);
    return {
      rate,
      postedPerSecond: posted / loadSeconds,
      refused,
      stored,
      lagMax: Math.max(...lags),
      lagP99: pct(lags, 0.99),
      lagP50: pct(lags, 0.5),
      gaugeMax: gauges.length > 0 ? Math.max(...gauges) : null,
      exportLagMax: Math.max(...exportLags),
      exportLagP99: pct(exportLags, 0.99),
      pendingMax: Math.max(...samples.map((s) => s.pending)),
      queuedPerEvent: Number(queued[0]?.n ?? 0) / stored,
      unexportedMax: Math.max(...samples.map((s) => s.unexported)),
      lastMinuteLagMax: Math.max(...lags.slice(-60)),
      builtAfter,
      exportedAfter,
      sinkRequests: sinkRequests() - sinkRequests0,
      cpu: { chronicle: ((cpu1 - cpu0) / stored) * 1e6, postgres: (pgCpu / stored) * 1e6 },
      rssMiB: peakRssMiB(pid),
      bytesPerEvent: {
        events: Number(sizes[0]!.events) / stored,
        spans: Number(sizes[0]!.spans) / stored,
      },
      spanRows: Number(sizes[0]!.span_rows),
      composition,
    };
  });
}

async function main() {
  const sink = await startSink();
  try {
    const rate = process.env.BENCH_RATE
      ? Number(process.env.BENCH_RATE)
      : (await maximumRate(sink.url)) * LOAD;
    console.log(`sustained: ${rate.toFixed(0)} events/s for ${SUSTAIN_SECONDS} s`);
    const r = await sustained(sink.url, rate, sink.requests);
    const f = (n: number | null, d = 1) => (n === null ? '—' : n.toFixed(d));
    console.log(
      [
        '',
        `| spans under sustained load (${SUSTAIN_SECONDS} s) | |`,
        '|---|---|',
        `| target rate / posted | ${f(r.rate, 0)} / ${f(r.postedPerSecond, 0)} events/s (${r.refused} requests refused with 429 and sent again) |`,
        `| events stored | ${r.stored} |`,
        `| oldest unbuilt change (store, sampled each second): max / p99 / p50 | ${f(r.lagMax)} / ${f(r.lagP99)} / ${f(r.lagP50)} s |`,
        `| chronicle_span_build_lag_seconds max | ${f(r.gaugeMax)} s |`,
        `| oldest unbuilt change in the last minute, max | ${f(r.lastMinuteLagMax)} s |`,
        `| stayed < ${TARGET_LAG_SECONDS} s | ${r.lagMax < TARGET_LAG_SECONDS ? 'yes' : 'no'} |`,
        `| otel_pending rows, max | ${r.pendingMax} |`,
        `| changes queued for the builder, per event | ${f(r.queuedPerEvent, 3)} |`,
        `| oldest span not exported: max / p99 | ${f(r.exportLagMax)} / ${f(r.exportLagP99)} s (spans waiting, max ${r.unexportedMax}) |`,
        `| after the load: all built / all exported | ${f(r.builtAfter)} / ${f(r.exportedAfter)} s |`,
        `| CPU µs/event: Chronicle / its Postgres backends | ${f(r.cpu.chronicle, 0)} / ${f(r.cpu.postgres, 0)} |`,
        `| peak RSS | ${f(r.rssMiB, 0)} MiB |`,
        `| bytes on disk per event: swarm_events / otel_spans (${r.spanRows} spans) | ${f(r.bytesPerEvent.events, 0)} / ${f(r.bytesPerEvent.spans, 0)} |`,
        `| export requests | ${r.sinkRequests} |`,
      ].join('\n'),
    );
    console.log(`otel_spans by role: ${r.composition.join('; ')}`);
  } finally {
    await sink.close();
  }
}

await main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
