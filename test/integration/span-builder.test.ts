import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { createEventWriter, type EventWriter } from '../../src/sinks/postgres/event-writer.js';
import type { WriteRecord } from '../../src/pipeline/records.js';
import { otelTraceId } from '../../src/spans/ids.js';
import { createSpanBuilder, type SpanBuilder } from '../../src/spans/span-builder.js';
import type { SpanRecord } from '../../src/events/span-record.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { waitFor } from '../support/chronicle.js';
import { createRandom, generateTraffic } from '../support/generate.js';
import { describeWithPostgres } from '../support/services.js';

const records = (events: readonly CanonicalEvent[]): WriteRecord[] =>
  events.map((event) => ({ kind: 'event', input: { origin: 'http', subject: null, key: null }, event }));

interface Row {
  trace_id: string;
  role: string;
  span_id: string;
  span: SpanRecord;
}

describeWithPostgres('span builder', () => {
  let db: TestDatabase;
  let writer: EventWriter;
  let builder: SpanBuilder;

  async function buildAll(): Promise<void> {
    while ((await builder.buildOnce()) > 0);
  }

  async function spans(): Promise<Row[]> {
    const { rows } = await db.pool.query<Row>(
      'SELECT trace_id, role, span_id, span FROM otel_spans ORDER BY otel_trace_id, span_id',
    );
    return rows;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    writer = createEventWriter({ pool: db.pool, logger: silentLogger() });
    builder = createSpanBuilder(
      {
        resource: { 'deployment.environment.name': 'test' },
        serviceName: 'chronicle',
        batchTraces: 50,
        concurrency: 1,
        parkMillis: 60_000,
        settleMillis: 0,
        maxDelayMillis: 0,
        idleMillis: 50,
      },
      { pool: db.pool, logger: silentLogger(), metrics: createMetrics({ defaultMetrics: false }) },
    );
  });

  afterAll(async () => {
    await db?.drop();
  });

  beforeEach(async () => {
    await db.pool.query(
      'TRUNCATE swarm_event_ids, swarm_events, swarm_traces, agent_metrics, otel_spans, otel_pending',
    );
  });

  it('span builder - waits until a trace settles, or at most the maximum delay', async () => {
    const patient = createSpanBuilder(
      {
        resource: {},
        serviceName: 'chronicle',
        batchTraces: 50,
        concurrency: 1,
        parkMillis: 60_000,
        settleMillis: 600,
        maxDelayMillis: 1_500,
        idleMillis: 50,
      },
      { pool: db.pool, logger: silentLogger(), metrics: createMetrics({ defaultMetrics: false }) },
    );
    const ev = (traceId: string, n: number): CanonicalEvent => ({
      event_id: `00000000-0000-4000-9000-${String(n).padStart(12, '0')}`,
      trace_id: traceId,
      source: 'agent-1',
      event_type: 'agent.heartbeat',
      timestamp: new Date(Date.UTC(2026, 2, 1, 0, 0, n)).toISOString(),
      metadata: { agent: 'agent-1' },
    });
    await writer.write(records([ev('quiet', 1)]));
    expect(await patient.buildOnce()).toBe(0);
    // A trace touched every 200 ms never settles: it is built once its first change waited 1.5 s.
    let n = 100;
    const started = Date.now();
    let builtAfter: number | undefined;
    while (Date.now() - started < 3_000 && builtAfter === undefined) {
      await writer.write(records([ev('busy', n++)]));
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM otel_spans WHERE trace_id = 'busy'`,
      );
      if (rows[0]!.n > 0) builtAfter = Date.now() - started;
      await patient.buildOnce();
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(builtAfter).toBeGreaterThanOrEqual(1_400);
    // The quiet one was built as soon as it had settled.
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM otel_spans WHERE trace_id = 'quiet'`,
    );
    expect(rows[0]!.n).toBe(1);
  });

  it('span builder - builds the oldest changes first, whatever their trace ids', async () => {
    // One flush per trace, oldest first: the oldest trace's id sorts last. A round that lost the order
    // of the changes (DISTINCT over the oldest rows, then the first traces it returned) took the
    // lowest ids and left the oldest waiting round after round: in bench:spans its age grew by a second
    // a second, to 19 s, while the rounds built younger changes.
    const ids = ['z-oldest', ...Array.from({ length: 12 }, (_, i) => `a-${String(i).padStart(2, '0')}`)];
    for (const [n, id] of ids.entries()) {
      await writer.write(
        records([
          {
            event_id: `00000000-0000-4000-9000-${String(n + 1).padStart(12, '0')}`,
            trace_id: id,
            source: 'agent-1',
            event_type: 'agent.heartbeat',
            timestamp: new Date(Date.UTC(2026, 2, 1, 0, 0, n)).toISOString(),
            metadata: { agent: 'agent-1' },
          },
        ]),
      );
    }
    const built: string[] = [];
    for (let round = 0; round < 4; round++) {
      const before = new Set(built);
      expect(await builder.buildOnce(1)).toBe(1);
      const { rows } = await db.pool.query<{ trace_id: string }>('SELECT DISTINCT trace_id FROM otel_spans');
      built.push(...rows.map((r) => r.trace_id).filter((id) => !before.has(id)));
    }
    expect(built).toEqual(ids.slice(0, 4));
  });

  it('span builder - concurrent rounds build different traces instead of skipping each other', async () => {
    await writer.write(records(generateTraffic(5)));
    const [a, b] = await Promise.all([builder.buildOnce(20), builder.buildOnce(20)]);
    // Both rounds found work (before, the second skipped every row the first held and built nothing).
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    expect(a + b).toBeGreaterThan(20);
  });

  it('span builder - reports the age of the oldest change not yet turned into spans, 0 once built', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const lag = async () => (await metrics.spanBuildLagSeconds.get()).values[0]!.value;
    const running = createSpanBuilder(
      {
        resource: {},
        serviceName: 'chronicle',
        batchTraces: 50,
        concurrency: 1,
        parkMillis: 60_000,
        // Nothing is due for a minute: the change waits, and its age grows.
        settleMillis: 60_000,
        maxDelayMillis: 60_000,
        idleMillis: 20,
        lagSampleMillis: 50,
      },
      { pool: db.pool, logger: silentLogger(), metrics },
    );
    await running.start();
    try {
      await writer.write(records(generateTraffic(12, { tasks: 3 })));
      await waitFor(async () => (await lag()) >= 1);
      const { rows } = await db.pool.query<{ age: number }>(
        `SELECT extract(epoch FROM now() - min(queued_at))::float8 AS age FROM otel_pending`,
      );
      expect(await lag()).toBeLessThanOrEqual(rows[0]!.age);
      await buildAll();
      await waitFor(async () => (await lag()) === 0);
    } finally {
      await running.shutdown(AbortSignal.timeout(2_000));
    }
  });

  it('span builder - gives way to busy ingest with small rounds, unless the oldest change waits too long', async () => {
    await writer.write(records(generateTraffic(13, { tasks: 150 })));
    const { rows: total } = await db.pool.query<{ n: number }>(
      'SELECT count(DISTINCT trace_id)::int AS n FROM otel_pending',
    );
    expect(total[0]!.n).toBeGreaterThan(100);
    const left = async () =>
      (await db.pool.query<{ n: number }>('SELECT count(DISTINCT trace_id)::int AS n FROM otel_pending'))
        .rows[0]!.n;
    const busyBuilder = (catchUpLagMillis: number) =>
      createSpanBuilder(
        {
          resource: {},
          serviceName: 'chronicle',
          batchTraces: 50,
          concurrency: 1,
          parkMillis: 60_000,
          settleMillis: 0,
          maxDelayMillis: 0,
          // A pause after each small round longer than the test looks.
          idleMillis: 60_000,
          catchUpLagMillis,
          lagSampleMillis: 20,
        },
        {
          pool: db.pool,
          logger: silentLogger(),
          metrics: createMetrics({ defaultMetrics: false }),
          ingestBusy: () => true,
        },
      );

    // Not behind (the oldest change is younger than a minute): one round of 20 traces, then a pause.
    const yielding = busyBuilder(60_000);
    await yielding.start();
    await waitFor(async () => (await left()) < total[0]!.n);
    await new Promise((r) => setTimeout(r, 300));
    await yielding.shutdown(AbortSignal.timeout(100));
    expect(await left()).toBe(total[0]!.n - 20);

    // Behind (every change is older than 1 ms): full rounds, one after the other, whatever ingest does.
    const catchingUp = busyBuilder(1);
    await catchingUp.start();
    try {
      await waitFor(async () => (await left()) === 0, 5_000);
    } finally {
      await catchingUp.shutdown(AbortSignal.timeout(2_000));
    }
  });

  it('span builder - a trace whose build fails is parked; the others are still built', async () => {
    await writer.write(records(generateTraffic(8, { tasks: 12 })));
    const { rows: tasks } = await db.pool.query<{ trace_id: string }>(
      `SELECT trace_id FROM swarm_traces WHERE is_task ORDER BY trace_id LIMIT 1`,
    );
    const broken = tasks[0]!.trace_id;
    // A damaged stored span makes this trace's build throw.
    await db.pool.query(
      `INSERT INTO otel_spans (otel_trace_id, span_id, trace_id, role, span) VALUES ('x', 'y', $1, 'root', 'null')`,
      [broken],
    );
    const metrics = createMetrics({ defaultMetrics: false });
    const running = createSpanBuilder(
      {
        resource: {},
        serviceName: 'chronicle',
        batchTraces: 50,
        concurrency: 1,
        parkMillis: 60_000,
        settleMillis: 0,
        maxDelayMillis: 0,
        idleMillis: 20,
      },
      { pool: db.pool, logger: silentLogger(), metrics },
    );
    await running.start();
    try {
      await waitFor(async () => {
        const { rows } = await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM otel_pending WHERE queued_at <= now()`,
        );
        return rows[0]!.n === 0;
      });
    } finally {
      await running.shutdown(AbortSignal.timeout(2_000));
    }
    const { rows: pending } = await db.pool.query<{ trace_id: string }>(
      'SELECT DISTINCT trace_id FROM otel_pending',
    );
    expect(pending.map((p) => p.trace_id)).toEqual([broken]);
    const { rows: built } = await db.pool.query<{ n: number }>(
      `SELECT count(DISTINCT trace_id)::int AS n FROM otel_spans WHERE trace_id <> $1`,
      [broken],
    );
    const { rows: all } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM swarm_traces');
    expect(built[0]!.n).toBe(all[0]!.n - 1);
    expect((await metrics.spanBuildFailures.get()).values[0]!.value).toBe(1);
  });

  it('span builder - every finished task gets one root, its attempts hang under it, and nothing is built twice', async () => {
    const rnd = createRandom(11);
    const events = rnd.shuffle(generateTraffic(11));
    for (let i = 0; i < events.length;) {
      const size = rnd.int(1, 60);
      await writer.write(records(events.slice(i, i + size)));
      i += size;
      if (rnd.chance(0.3)) await buildAll();
    }
    await buildAll();
    const first = await spans();
    const { rows: traces } = await db.pool.query<{
      trace_id: string;
      is_task: boolean;
      status: string | null;
    }>('SELECT trace_id, is_task, status FROM swarm_traces');
    const terminal = traces.filter(
      (t) => t.is_task && ['completed', 'failed', 'timed_out'].includes(t.status!),
    );
    expect(terminal.length).toBeGreaterThan(5);
    for (const t of terminal) {
      const roots = first.filter((s) => s.trace_id === t.trace_id && s.role === 'root');
      expect(roots, t.trace_id).toHaveLength(1);
      expect(roots[0]!.span.traceId).toBe(otelTraceId(t.trace_id));
    }
    // Parents exist (children of a root whose task has not ended yet wait for it).
    const ids = new Set(first.map((s) => `${s.span.traceId}/${s.span.spanId}`));
    for (const s of first.filter((x) => x.span.parentSpanId !== null)) {
      const parentKnown = ids.has(`${s.span.traceId}/${s.span.parentSpanId}`);
      const task = traces.find((t) => t.trace_id === s.trace_id)!;
      if (['completed', 'failed', 'timed_out'].includes(task.status!))
        expect(parentKnown, s.span.name).toBe(true);
    }
    // Ended means ended: no span ends before it starts.
    for (const s of first)
      expect(BigInt(s.span.endTimeUnixNano) >= BigInt(s.span.startTimeUnixNano)).toBe(true);

    // Building again from the same events adds nothing.
    await db.pool.query(
      'INSERT INTO otel_pending (trace_id, first_at, last_at) SELECT trace_id, first_event_at, last_event_at FROM swarm_traces',
    );
    await buildAll();
    expect(await spans()).toEqual(first);
  });

  it('span builder - a change that can make no span is not queued, and the spans are those of building every change', async () => {
    // Tasks of every scenario, their events one flush each in a shuffled order (a task.created may
    // come after its task ended, a start before its assignment), plus errors that must be shown at once.
    const rnd = createRandom(29);
    const traffic = generateTraffic(29, { tasks: 40 });
    const taskIds = [
      ...new Set(traffic.filter((e) => e.event_type === 'task.created').map((e) => e.trace_id)),
    ];
    // Among them a task that is never assigned: only an error makes it due.
    const neverAssigned = taskIds.filter((id) =>
      traffic.every((e) => e.trace_id !== id || e.event_type === 'task.created'),
    );
    expect(neverAssigned.length).toBeGreaterThan(0);
    const errors = [neverAssigned[0]!, ...taskIds.filter((id) => id !== neverAssigned[0]).slice(0, 5)].map(
      (traceId, n) => ({
        event_id: `00000000-0000-4000-9000-${String(900 + n).padStart(12, '0')}`,
        trace_id: traceId,
        source: 'agent-1',
        event_type: n % 2 === 0 ? 'tool.error' : 'dlq.entry',
        timestamp: new Date(
          Date.parse(traffic.find((e) => e.trace_id === traceId)!.timestamp) + 1,
        ).toISOString(),
        metadata: { reason: 'tool crashed' },
      }),
    );
    // Two errors come before any event of their task: their trace is not a task when they are built.
    const events = [...errors.slice(0, 2), ...rnd.shuffle([...traffic, ...errors.slice(2)])];

    // Each flush, then a round; `queueAll` queues every touched trace as the flushes did before.
    const run = async (queueAll: boolean) => {
      await db.pool.query(
        'TRUNCATE swarm_event_ids, swarm_events, swarm_traces, agent_metrics, otel_spans, otel_pending',
      );
      const queued: string[] = [];
      for (const e of events) {
        await writer.write(records([e]));
        if (queueAll)
          await db.pool.query(
            `INSERT INTO otel_pending (trace_id, first_at, last_at) SELECT $1, $2, $2
             WHERE NOT EXISTS (SELECT 1 FROM otel_pending WHERE trace_id = $1)`,
            [e.trace_id, e.timestamp],
          );
        const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM otel_pending');
        if (rows[0]!.n > 0) queued.push(e.event_id);
        await buildAll();
      }
      return { spans: await spans(), queued: new Set(queued) };
    };
    const everyChange = await run(true);
    const asBuilt = await run(false);
    expect(asBuilt.spans).toEqual(everyChange.spans);
    expect(asBuilt.spans.filter((s) => s.role === 'update').length).toBeGreaterThan(0);

    // What was not queued: task.created, or another event of a task not yet assigned, started or ended;
    // never an assignment or a start, never an error.
    const skipped = events.filter((e) => !asBuilt.queued.has(e.event_id));
    expect(skipped.filter((e) => e.event_type === 'task.created').length).toBeGreaterThan(5);
    expect(
      skipped.map((e) => e.event_type).filter((t) => ['task.assigned', 'task.started'].includes(t)),
    ).toEqual([]);
    for (const e of errors) expect(asBuilt.queued.has(e.event_id)).toBe(true);
  });

  it('span builder - after retention trimmed a task, its next change is queued as a build would need it', async () => {
    const at = (s: number) => new Date(Date.UTC(2026, 2, 1, 0, 0, s)).toISOString();
    const ev = (n: number, traceId: string, type: string, s: number): CanonicalEvent => ({
      event_id: `00000000-0000-4000-9000-${String(n).padStart(12, '0')}`,
      trace_id: traceId,
      source: 'agent-1',
      event_type: type,
      timestamp: at(s),
      metadata: { agent: 'agent-1' },
    });
    const queued = async (traceId: string) =>
      (
        await db.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM otel_pending WHERE trace_id = $1',
          [traceId],
        )
      ).rows[0]!.n;

    // A task that never got assigned; its task.created goes with its day's partition (events are kept
    // a month, trace rows three). A progress event after that makes the trace one that is not a task:
    // its event becomes an event span, so the change is queued although it held only inert events.
    await writer.write(records([ev(1, 'stuck', 'task.created', 1)]));
    expect(await queued('stuck')).toBe(0);
    await db.pool.query(`DELETE FROM swarm_events WHERE trace_id = 'stuck'`);
    await writer.write(records([ev(2, 'stuck', 'task.progress', 50)]));
    expect(await queued('stuck')).toBe(1);
    await buildAll();
    expect((await spans()).filter((s) => s.trace_id === 'stuck').map((s) => s.role)).toEqual(['event']);

    // A finished task whose row and events retention took while its spans stayed: a new task.created
    // finds no row, but spans stored for the trace, so it is queued and the gone spans are reported.
    await writer.write(
      records([
        ev(3, 'done', 'task.created', 1),
        ev(4, 'done', 'task.assigned', 2),
        ev(5, 'done', 'task.started', 3),
        ev(6, 'done', 'task.completed', 4),
      ]),
    );
    await buildAll();
    await db.pool.query(`DELETE FROM swarm_events WHERE trace_id = 'done'`);
    await db.pool.query(`DELETE FROM swarm_traces WHERE trace_id = 'done'`);
    await writer.write(records([ev(7, 'done', 'task.created', 100)]));
    expect(await queued('done')).toBe(1);
    await buildAll();
    const update = (await spans()).find((s) => s.trace_id === 'done' && s.role === 'update');
    expect(update?.span.attributes['swarm.update.changed_spans']).toEqual(
      expect.arrayContaining(['swarm.task', 'swarm.task.queue_wait#1']),
    );
  });

  it('span builder - an event arriving after its task was exported goes out as one update span; sent spans never change', async () => {
    const at = (s: number) => new Date(Date.parse('2026-03-01T10:00:00.000Z') + s * 1000).toISOString();
    let n = 0;
    const ev = (type: string, s: number, metadata: Record<string, unknown> = {}): CanonicalEvent => ({
      event_id: `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
      trace_id: 'task-late',
      source: type === 'task.created' ? 'dispatcher' : 'agent-runtime',
      event_type: type,
      timestamp: at(s),
      metadata,
    });
    await writer.write(
      records([
        ev('task.created', 0, { title: 'Late one' }),
        ev('task.assigned', 2, { agent: 'agent-1' }),
        ev('task.started', 3, { agent: 'agent-1' }),
        ev('task.completed', 9, { agent: 'agent-1' }),
      ]),
    );
    await buildAll();
    const before = await spans();
    expect(before.map((s) => s.span.name).sort()).toEqual([
      'invoke_agent agent-1',
      'swarm.task',
      'swarm.task.pickup',
      'swarm.task.queue_wait',
    ]);

    // A tool call logged late, and a created event with an earlier time (changes the queue wait).
    await writer.write(records([ev('tool.called', 5, { tool: 'search' }), ev('task.created', -4)]));
    await buildAll();
    const after = await spans();
    for (const s of before) expect(after.find((a) => a.span_id === s.span_id)).toEqual(s);
    const updates = after.filter((s) => s.role === 'update');
    expect(updates).toHaveLength(1);
    expect(updates[0]!.span.name).toBe('swarm.task.update');
    expect(updates[0]!.span.events.map((e) => e.name).sort()).toEqual(['task.created', 'tool.called']);
    // Exactly the spans the earlier creation changed: the pickup and the execution are as they went out.
    expect([...(updates[0]!.span.attributes['swarm.update.changed_spans'] as string[])].sort()).toEqual([
      'swarm.task',
      'swarm.task.queue_wait#1',
    ]);

    // Nothing new: nothing more.
    await db.pool.query(
      `INSERT INTO otel_pending (trace_id, first_at, last_at) VALUES ('task-late', now(), now())`,
    );
    await buildAll();
    expect(await spans()).toEqual(after);
  });
});
