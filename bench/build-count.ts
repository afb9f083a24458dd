/**
 * How many span builds live traffic needs: counts, on the interleaved profile (events arriving at their
 * timestamps, as from a live swarm), the builds each rule makes, per event and per task. No database:
 * a build is counted when a trace's pending change becomes due.
 *
 * - the rule as it is: due once the trace has been quiet for SPAN_SETTLE_MS, or its oldest pending
 *   change has waited SPAN_MAX_DELAY_MS;
 * - the fewest builds any rule can make while every change is built within the lag target (10 s): each
 *   build as late as the target lets it (the oldest change's arrival + 10 s), which takes every event
 *   that arrived by then (an interval cover; building later breaks the target, earlier takes no more);
 * - the same, if a change that can make no span (a task's `task.created` alone) were not built at all.
 *
 *   npx tsx bench/build-count.ts   (BENCH_EVENTS, 400,000; SPAN_SETTLE_MS, 2,000; SPAN_MAX_DELAY_MS, 5,000)
 */
import { generateInterleavedTraffic } from './traffic.js';

const events = Number(process.env.BENCH_EVENTS ?? 400_000);
const settle = Number(process.env.SPAN_SETTLE_MS ?? 2_000);
const maxDelay = Number(process.env.SPAN_MAX_DELAY_MS ?? Math.max(5_000, settle));
const TARGET_MILLIS = 10_000;

interface Arrival {
  millis: number;
  spanMaking: boolean;
}

const { messages } = generateInterleavedTraffic(events);
const seen = new Set<string>();
const byTrace = new Map<string, Arrival[]>();
for (const m of messages) {
  const e = JSON.parse(m.payload) as {
    event_id: string;
    trace_id: string;
    event_type: string;
    timestamp: string;
  };
  if (seen.has(e.event_id)) continue;
  seen.add(e.event_id);
  const list = byTrace.get(e.trace_id) ?? [];
  list.push({ millis: Date.parse(e.timestamp), spanMaking: e.event_type !== 'task.created' });
  byTrace.set(e.trace_id, list);
}

/** Builds of one trace's arrivals, sorted by time, under `dueAt` (the pending change's first and latest arrival). */
function builds(arrivals: readonly Arrival[], dueAt: (first: number, latest: number) => number): number {
  let n = 0;
  for (let i = 0; i < arrivals.length;) {
    const first = arrivals[i]!.millis;
    let j = i;
    while (j + 1 < arrivals.length && arrivals[j + 1]!.millis <= dueAt(first, arrivals[j]!.millis)) j++;
    n++;
    i = j + 1;
  }
  return n;
}

const rules: [string, (arrivals: Arrival[]) => number][] = [
  [
    `as it is (settle ${settle} ms, maximum delay ${maxDelay} ms)`,
    (a) => builds(a, (first, latest) => Math.min(latest + settle, first + maxDelay)),
  ],
  [
    'as it is, task.created alone not built',
    (a) =>
      builds(
        a.filter((x) => x.spanMaking),
        (first, latest) => Math.min(latest + settle, first + maxDelay),
      ),
  ],
  [`fewest within ${TARGET_MILLIS / 1000} s`, (a) => builds(a, (first) => first + TARGET_MILLIS)],
  [
    `fewest within ${TARGET_MILLIS / 1000} s, task.created alone not built`,
    (a) =>
      builds(
        a.filter((x) => x.spanMaking),
        (first) => first + TARGET_MILLIS,
      ),
  ],
];

const tasks = [...byTrace.keys()].filter((id) => id.startsWith('task-')).length;
console.log(`${seen.size} distinct events, ${tasks} tasks, ${byTrace.size - tasks} other traces`);
console.log('| rule | builds | per event | per task (tasks only) |');
console.log('|---|---|---|---|');
for (const [name, count] of rules) {
  let all = 0;
  let ofTasks = 0;
  for (const [id, arrivals] of byTrace) {
    arrivals.sort((a, b) => a.millis - b.millis);
    const n = count(arrivals);
    all += n;
    if (id.startsWith('task-')) ofTasks += n;
  }
  console.log(`| ${name} | ${all} | ${(all / seen.size).toFixed(3)} | ${(ofTasks / tasks).toFixed(2)} |`);
}
