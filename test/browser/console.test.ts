/**
 * The console in headless Chromium, against one Chronicle on a real Postgres fed with simulator
 * traffic over HTTP. Every check reads what a person sees (the DOM contract of the console: headings,
 * labelled tables and sections, data-* attributes) and compares it with the API's own answers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { runSimulation } from '../../src/simulate/simulate.js';
import {
  type ChronicleTestEnv,
  type TestChronicle,
  createChronicleTestEnv,
  waitFor,
} from '../support/chronicle.js';
import { type TestBrowser, VIEWPORT, describeWithBrowser, launchBrowser } from '../support/browser.js';

type Json = Record<string, unknown>;

interface TraceRow {
  trace_id: string;
  is_task: boolean;
  status: string | null;
  assigned_agent: string | null;
  attempts: number;
  error: string | null;
}

interface TraceCounts {
  counts: Record<string, number>;
  not_tasks: number;
  total: number;
}

interface SpanNode {
  spanId: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  status: { code: number; message?: string };
  children: SpanNode[];
}

interface TraceDetail {
  trace: TraceRow;
  events: { event_id: string }[];
  spans: SpanNode[];
}

interface AgentRow {
  agent_id: string;
  tasks_completed: number;
  tasks_failed: number;
  tasks_timed_out: number;
  [column: string]: unknown;
}

interface RejectRow {
  id: number | string;
  reason: string;
  payload: string;
}

interface EventRow {
  event_id: string;
  trace_id: string;
  event_type: string;
  txid: string;
  seq: string;
}

/** The numeric columns of the Agents table (contract: `td[data-col]` with `data-value`). */
const AGENT_COLUMNS = [
  'tasks_completed',
  'tasks_failed',
  'failure_rate',
  'p95_duration_ms',
  'time_to_pickup_avg_ms',
  'utilization_pct',
] as const;

const STATUSES = ['pending', 'assigned', 'in_progress', 'completed', 'failed', 'timed_out'] as const;

/** What a person would call "immediately" for the live tail. */
const TAIL_LATENCY_MILLIS = 1_000;
/** Screen pixels a waterfall bar may be off its computed place (rounding, borders). */
const PIXEL_TOLERANCE = 1.5;
/** The narrowest a bar may be drawn for a span too short to see at the waterfall's scale. */
const MIN_BAR_PIXELS = 4;

const SCREENSHOTS_DIR = process.env.CHRONICLE_SCREENSHOTS_DIR
  ? resolve(process.env.CHRONICLE_SCREENSHOTS_DIR)
  : undefined;

/** Traffic with every ending (completed, failed, timed out) across several agents, dated minutes ago. */
const TRAFFIC = {
  seed: 12,
  count: 1_200,
  agents: 4,
  errorRate: 0.15,
  timeoutRate: 0.08,
  retryRate: 0.4,
  duplicateRate: 0.02,
  outOfOrderRate: 0.02,
  unassignableRate: 0.02,
  wholeTasks: true,
};

/** The parts of a DOM element the checks below read inside the page (the tests' tsconfig has no DOM lib). */
interface DomElement {
  getAttribute(name: string): string | null;
}

function attributes(locator: Locator, name: string): Promise<string[]> {
  return locator.evaluateAll((els: DomElement[], n: string) => els.map((e) => e.getAttribute(n) ?? ''), name);
}

/** A stream id (`<txid>-<seq>`) as a number that sorts in stream order; -1 when it is not one. */
function positionOf(id: string): bigint {
  const m = /^(\d+)-(\d+)$/.exec(id);
  return m ? (BigInt(m[1]!) << 64n) + BigInt(m[2]!) : -1n;
}

/** Depth-first pre-order of the span tree, siblings by start time (then span id, as the API stores them). */
function preOrder(nodes: readonly SpanNode[]): SpanNode[] {
  const byStart = [...nodes].sort((a, b) => {
    const d = BigInt(a.startTimeUnixNano) - BigInt(b.startTimeUnixNano);
    return d !== 0n ? (d < 0n ? -1 : 1) : a.spanId.localeCompare(b.spanId);
  });
  return byStart.flatMap((n) => [n, ...preOrder(n.children)]);
}

/** A plain (not error) event of a test's own trace, stamped now. */
function noteEvent(traceId: string, text: string) {
  return {
    event_id: randomUUID(),
    trace_id: traceId,
    source: 'browser-test',
    event_type: 'custom.note',
    timestamp: new Date().toISOString(),
    metadata: { text },
  };
}

describeWithBrowser('console - in a real browser', () => {
  let env: ChronicleTestEnv;
  let chronicle: TestChronicle;
  let browser: TestBrowser;
  let page: Page;
  let pageErrors: string[] = [];

  async function api<T = Json>(path: string): Promise<T> {
    const res = await fetch(chronicle.url + path);
    const text = await res.text();
    expect(res.status, `GET ${path} → ${text.slice(0, 300)}`).toBe(200);
    return JSON.parse(text) as T;
  }

  /** Every item of a keyset-paged list, following next_cursor. */
  async function walk<T>(path: string): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const page: { items: T[]; next_cursor: string | null } = await api(
        cursor === null ? path : `${path}${sep}cursor=${encodeURIComponent(cursor)}`,
      );
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor !== null);
    return items;
  }

  async function post(body: unknown): Promise<Json> {
    const res = await fetch(`${chronicle.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as Json;
    expect(res.status, JSON.stringify(answer)).toBe(200);
    return answer;
  }

  /** The main region has its data (contract: `<main aria-busy="false">`), with no error shown. */
  async function loaded(p: Page = page): Promise<void> {
    await p.locator('main[aria-busy="false"]').waitFor({ timeout: 10_000 });
    expect(await p.locator('[role="alert"]').allTextContents()).toEqual([]);
  }

  /** Opens a console page by its URL and waits for its data and its heading. */
  async function open(path: string, title: string | RegExp, p: Page = page): Promise<void> {
    await p.goto(chronicle.url + path);
    await loaded(p);
    await expect.poll(() => p.getByRole('heading', { level: 1 }).textContent()).toMatch(title);
  }

  const taskTable = (p: Page = page) => p.locator('table[aria-label="Tasks"]');
  const taskRows = (p: Page = page) => taskTable(p).locator('tbody tr[data-trace-id]');

  beforeAll(async () => {
    const [started, launched] = await Promise.allSettled([
      (async () => {
        const e = await createChronicleTestEnv({ nats: false });
        try {
          return { env: e, chronicle: await e.start() };
        } catch (err) {
          await e.cleanup();
          throw err;
        }
      })(),
      launchBrowser(),
    ]);
    if (started.status === 'fulfilled') ({ env, chronicle } = started.value);
    if (launched.status === 'fulfilled') browser = launched.value;
    if (started.status === 'rejected') throw started.reason;
    if (launched.status === 'rejected') throw launched.reason;

    const run = await runSimulation({
      ...TRAFFIC,
      // A few minutes ago (the run spans about half a minute of simulated time): inside every window
      // the console offers, and on today's agent metrics.
      startTimeMillis: Date.now() - 5 * 60_000,
      target: { kind: 'http', url: chronicle.url },
      verify: { apiUrl: chronicle.url, timeoutMillis: 20_000, pollIntervalMillis: 200 },
    });
    expect(run.differences).toEqual([]);
    expect(run.report.expected.statuses.completed).toBeGreaterThan(0);
    expect(run.report.expected.statuses.failed).toBeGreaterThan(0);
    expect(run.report.expected.statuses.timed_out).toBeGreaterThan(0);
    // Every touched trace's spans built (the span builder drains otel_pending).
    await waitFor(
      async () => {
        const { rows } = await env.db.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM otel_pending',
        );
        return rows[0]!.n === 0;
      },
      30_000,
      'the spans of every trace to be built',
    );
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await env?.cleanup();
  });

  // One tab per test (a fresh page state, the same browser); no test may leave an uncaught error in it.
  afterEach(async () => {
    const errors = pageErrors;
    pageErrors = [];
    await page?.close();
    expect(errors, 'uncaught errors in the page').toEqual([]);
  });

  async function newPage(): Promise<Page> {
    ({ page, errors: pageErrors } = await browser.newPage());
    return page;
  }

  it('tasks - filtering by status failed shows exactly the failed tasks, each standing out; the counts are the API counts; the URL keeps the filter', async () => {
    await newPage();
    await open('/tasks?window=all', 'Tasks');

    // Status counts: one link per status, its count the API's (tasks only, the page's default).
    const { counts } = await api<TraceCounts>('/api/v1/trace-counts?task=true');
    const countLinks = page.locator('section[aria-label="Status counts"] a[data-status]');
    expect((await attributes(countLinks, 'data-status')).sort()).toEqual([...STATUSES].sort());
    for (const status of STATUSES) {
      const link = countLinks.and(page.locator(`[data-status="${status}"]`));
      expect(await link.getAttribute('data-count'), status).toBe(String(counts[status]));
      expect(await link.textContent(), status).toContain(String(counts[status]));
    }

    // The console's page size: what it asks the API for (the API's default when it does not say).
    const listed = page.waitForRequest((r) => new URL(r.url()).pathname === '/api/v1/traces');
    await page.getByRole('form', { name: 'Filters' }).getByLabel('Status').selectOption('failed');
    const pageSize = Number(new URL((await listed).url()).searchParams.get('limit') ?? 50);
    await page.waitForURL((u) => u.searchParams.get('status') === 'failed');
    await loaded();

    const failed = await api<{ items: TraceRow[] }>(
      `/api/v1/traces?task=true&status=failed&limit=${pageSize}`,
    );
    const expected = failed.items.map((t) => t.trace_id);
    expect(expected.length).toBeGreaterThan(0);
    await expect.poll(() => attributes(taskRows(), 'data-trace-id')).toEqual(expected);
    expect(new Set(await attributes(taskRows(), 'data-status'))).toEqual(new Set(['failed']));
    const classes = await attributes(taskRows(), 'class');
    expect(classes.filter((c) => !c.split(/\s+/).includes('bad'))).toEqual([]);
    // The id cell links to the task's page.
    const links = await attributes(taskRows().locator('a[href*="/tasks/"]').first(), 'href');
    expect(links.map((h) => new URL(h, chronicle.url).pathname)).toEqual([`/tasks/${expected[0]}`]);

    // Reloading the URL restores the view.
    const url = page.url();
    await page.reload();
    await loaded();
    expect(page.url()).toBe(url);
    expect(await page.getByRole('form', { name: 'Filters' }).getByLabel('Status').inputValue()).toBe(
      'failed',
    );
    await expect.poll(() => attributes(taskRows(), 'data-trace-id')).toEqual(expected);
  });

  it('tasks - paging with Older reaches every task exactly once, in the API order', async () => {
    await newPage();
    const requested: URL[] = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/api/v1/traces') requested.push(u);
    });
    // A small page, if the console takes `limit` from its URL; its default otherwise.
    await open('/tasks?window=all&limit=40', 'Tasks');
    // The tasks (the page lists tasks unless Show says otherwise), as the page asks for them.
    expect(requested[0]?.searchParams.get('task')).toBe('true');
    const all = await walk<TraceRow>('/api/v1/traces?task=true&limit=1000');
    const pageSize = Number(requested[0]?.searchParams.get('limit') ?? 50);

    const seen: string[] = [];
    let pages = 0;
    for (;;) {
      const ids = await attributes(taskRows(), 'data-trace-id');
      expect(ids.length).toBeGreaterThan(0);
      expect(ids.length).toBeLessThanOrEqual(pageSize);
      seen.push(...ids);
      pages += 1;
      expect(pages).toBeLessThan(100);
      const older = page.locator('a[rel="next"]');
      if ((await older.count()) === 0) break;
      expect((await older.textContent())?.trim()).toBe('Older');
      const before = page.url();
      await older.click();
      await page.waitForURL((u) => u.href !== before && u.searchParams.has('cursor'));
      await loaded();
      // The new page's rows, not the old ones still on screen.
      await expect.poll(async () => (await attributes(taskRows(), 'data-trace-id'))[0]).not.toBe(ids[0]);
    }
    expect(pages, `pages of ${pageSize}`).toBeGreaterThanOrEqual(3);
    expect(seen.length).toBe(new Set(seen).size);
    expect(seen).toEqual(all.map((t) => t.trace_id));

    // "Newest" goes back to the first page.
    await page.locator('a[rel="first"]').click();
    await page.waitForURL((u) => !u.searchParams.has('cursor'));
    await loaded();
    await expect.poll(async () => (await attributes(taskRows(), 'data-trace-id'))[0]).toBe(seen[0]);
  });

  it('tasks - tasks only by default: the status counts add up to all and every row has a status; Show "other traces" lists what the API lists with task=false, "all traces" both', async () => {
    await newPage();
    const requested: URL[] = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/api/v1/traces' || u.pathname === '/api/v1/trace-counts') requested.push(u);
    });
    await open('/tasks?window=all', 'Tasks');
    const form = page.getByRole('form', { name: 'Filters' });
    const counts = page.locator('section[aria-label="Status counts"]');
    const statusCounts = async () =>
      (await attributes(counts.locator('a[data-status]'), 'data-count')).map(Number);
    const sum = (ns: number[]) => ns.reduce((a, b) => a + b, 0);

    // Tasks: the page asks for tasks only, in the list and in the counts.
    expect(await form.getByLabel('Show').inputValue()).toBe('tasks');
    expect(new URL(page.url()).searchParams.has('show')).toBe(false);
    expect(requested.map((u) => `${u.pathname} ${u.searchParams.get('task')}`).sort()).toEqual([
      '/api/v1/trace-counts true',
      '/api/v1/traces true',
    ]);
    const tasks = await api<TraceCounts>('/api/v1/trace-counts?task=true');
    const taskTotal = sum(STATUSES.map((st) => tasks.counts[st]!));
    expect(tasks.total).toBe(taskTotal);
    expect(Number(await counts.locator('a[data-total]').getAttribute('data-total'))).toBe(tasks.total);
    expect(await counts.locator('a[data-total]').textContent()).toContain(String(tasks.total));
    expect(sum(await statusCounts())).toBe(tasks.total);
    expect(await counts.locator('a[data-not-tasks]').count()).toBe(0);
    const pageSize = Number(
      requested.find((u) => u.pathname === '/api/v1/traces')!.searchParams.get('limit'),
    );
    const firstTasks = await api<{ items: TraceRow[] }>(`/api/v1/traces?task=true&limit=${pageSize}`);
    await expect
      .poll(() => attributes(taskRows(), 'data-trace-id'))
      .toEqual(firstTasks.items.map((t) => t.trace_id));
    const rowStatuses = await attributes(taskRows(), 'data-status');
    expect(rowStatuses.filter((st) => !(STATUSES as readonly string[]).includes(st))).toEqual([]);

    // Other traces: what the API lists with task=false (heartbeat-only and OTLP-only traces), none with a
    // status; the one count is the API's total of them.
    const other = await api<TraceCounts>('/api/v1/trace-counts?task=false');
    expect(other.total, 'the simulator sends traces that are not tasks').toBeGreaterThan(0);
    await form.getByLabel('Show').selectOption('other');
    await page.waitForURL((u) => u.searchParams.get('show') === 'other');
    await loaded();
    const otherTraces = await walk<TraceRow>('/api/v1/traces?task=false&limit=1000');
    expect(otherTraces.length).toBe(other.total);
    expect(otherTraces.filter((t) => t.is_task || t.status !== null)).toEqual([]);
    await expect
      .poll(() => attributes(taskRows(), 'data-trace-id'))
      .toEqual(otherTraces.slice(0, pageSize).map((t) => t.trace_id));
    expect(new Set(await attributes(taskRows(), 'data-status'))).toEqual(new Set(['']));
    expect(Number(await counts.locator('a[data-total]').getAttribute('data-total'))).toBe(other.total);
    expect(await counts.locator('a[data-status]').count()).toBe(0);

    // All traces: the statuses and the traces that are not tasks add up to the API's total.
    await form.getByLabel('Show').selectOption('all');
    await page.waitForURL((u) => u.searchParams.get('show') === 'all');
    await loaded();
    const all = await api<TraceCounts>('/api/v1/trace-counts');
    expect(all.total).toBe(tasks.total + other.total);
    await expect
      .poll(async () => Number(await counts.locator('a[data-total]').getAttribute('data-total')))
      .toBe(all.total);
    const notTasks = Number(await counts.locator('a[data-not-tasks]').getAttribute('data-not-tasks'));
    expect(notTasks).toBe(other.total);
    expect(sum(await statusCounts()) + notTasks).toBe(all.total);
    const firstAll = await api<{ items: TraceRow[] }>(`/api/v1/traces?limit=${pageSize}`);
    await expect
      .poll(() => attributes(taskRows(), 'data-trace-id'))
      .toEqual(firstAll.items.map((t) => t.trace_id));

    // Back to tasks: the default leaves the URL.
    await form.getByLabel('Show').selectOption('tasks');
    await page.waitForURL((u) => !u.searchParams.has('show'));
    await loaded();
    await expect
      .poll(() => attributes(taskRows(), 'data-trace-id'))
      .toEqual(firstTasks.items.map((t) => t.trace_id));
  });

  it('tasks - the table fits the window at 1280 and 800 pixels; a long error is cut, its whole text on hover', async () => {
    await newPage();
    const timedOut = await api<{ items: TraceRow[] }>('/api/v1/traces?task=true&status=timed_out&limit=1');
    const task = timedOut.items[0]!;
    expect(task.error).toBeTruthy();
    for (const width of [VIEWPORT.width, 800]) {
      await page.setViewportSize({ width, height: VIEWPORT.height });
      await open('/tasks?window=all&status=timed_out', 'Tasks');
      await taskRows().first().waitFor();
      const wrap = page.locator('.table-wrap').filter({ has: taskTable() });
      const [scrollWidth, clientWidth] = await wrap.evaluate(
        (e: { scrollWidth: number; clientWidth: number }) => [e.scrollWidth, e.clientWidth],
      );
      expect(scrollWidth, `the table's width at ${width} px`).toBeLessThanOrEqual(clientWidth);
      expect(
        await page.evaluate<number>('document.documentElement.scrollWidth'),
        `the page's width at ${width} px`,
      ).toBeLessThanOrEqual(width);
      const row = taskRows().and(page.locator(`[data-trace-id="${task.trace_id}"]`));
      const errorCell = row.locator('td', { hasText: task.error!.slice(0, 6) }).last();
      expect(await errorCell.getAttribute('title')).toBe(task.error);
      const box = (await errorCell.boundingBox())!;
      expect(box.x + box.width, `the error cell's right edge at ${width} px`).toBeLessThanOrEqual(width);
      expect(await errorCell.isVisible()).toBe(true);
    }
  });

  it('task - the waterfall draws one bar per span in tree order, placed and sized to scale, errors marked, with the failure reason', async () => {
    await newPage();
    const failed = await walk<TraceRow>('/api/v1/traces?status=failed&limit=1000');
    // The failed task with the most attempts: the richest waterfall.
    const chosen = [...failed].sort(
      (a, b) => b.attempts - a.attempts || a.trace_id.localeCompare(b.trace_id),
    )[0]!;
    const detail = await api<TraceDetail>(`/api/v1/traces/${encodeURIComponent(chosen.trace_id)}`);
    const spans = preOrder(detail.spans);
    expect(spans.length).toBeGreaterThan(1);
    expect(spans.some((s) => s.status.code === 2)).toBe(true);
    expect(detail.trace.error).toBeTruthy();

    await open(`/tasks/${encodeURIComponent(chosen.trace_id)}`, `Task ${chosen.trace_id}`);
    const waterfall = page.locator('svg[role="group"][aria-label="Waterfall"]');
    const bars = waterfall.locator('g[data-span-id]');
    await expect.poll(() => bars.count()).toBe(spans.length);
    expect(await attributes(bars, 'data-span-id')).toEqual(spans.map((s) => s.spanId));
    expect(await attributes(bars, 'data-span-name')).toEqual(spans.map((s) => s.name));
    expect(await attributes(bars, 'data-error')).toEqual(spans.map((s) => String(s.status.code === 2)));
    const barClasses = await bars.evaluateAll((gs: DomElement[]) =>
      gs.map((g) => {
        const own = g.getAttribute('class') ?? '';
        const rect = (g as unknown as { querySelector(s: string): DomElement | null }).querySelector('rect');
        return `${own} ${rect?.getAttribute('class') ?? ''}`.split(/\s+/).includes('error');
      }),
    );
    expect(barClasses).toEqual(spans.map((s) => s.status.code === 2));

    // Geometry: one time axis for every bar. The earliest start and the latest end fix it.
    const boxes = await Promise.all(
      spans.map(async (_, i) => {
        const box = await bars.nth(i).locator('rect').first().boundingBox();
        expect(box, `bar ${i} has a box`).not.toBeNull();
        return box!;
      }),
    );
    const ns = (s: string) => BigInt(s);
    const t0 = spans.reduce(
      (m, s) => (ns(s.startTimeUnixNano) < m ? ns(s.startTimeUnixNano) : m),
      ns(spans[0]!.startTimeUnixNano),
    );
    const t1 = spans.reduce(
      (m, s) => (ns(s.endTimeUnixNano) > m ? ns(s.endTimeUnixNano) : m),
      ns(spans[0]!.endTimeUnixNano),
    );
    const millis = (t: bigint) => Number(t - t0) / 1e6;
    const left = Math.min(...boxes.map((b) => b.x));
    const right = Math.max(...boxes.map((b) => b.x + b.width));
    const pxPerMs = (right - left) / millis(t1);
    expect(pxPerMs).toBeGreaterThan(0);
    const off = spans.flatMap((s, i) => {
      const box = boxes[i]!;
      const x = left + millis(ns(s.startTimeUnixNano)) * pxPerMs;
      const width = (millis(ns(s.endTimeUnixNano)) - millis(ns(s.startTimeUnixNano))) * pxPerMs;
      const widthOk =
        Math.abs(box.width - width) <= PIXEL_TOLERANCE ||
        (width < MIN_BAR_PIXELS && box.width <= MIN_BAR_PIXELS + PIXEL_TOLERANCE);
      const xOk = Math.abs(box.x - x) <= PIXEL_TOLERANCE;
      return xOk && widthOk
        ? []
        : [
            `${s.name} ${s.spanId}: x ${box.x.toFixed(1)} (expected ${x.toFixed(1)}), width ${box.width.toFixed(1)} (expected ${width.toFixed(1)})`,
          ];
    });
    expect(off).toEqual([]);

    // The legend names the kinds of span this trace has (the bars' role-* classes), and errors when it has one.
    const roles = (classes: string[]) =>
      new Set(classes.flatMap((c) => c.split(/\s+/).filter((k) => k.startsWith('role-'))));
    const barRoles = roles(await attributes(bars, 'class'));
    expect(barRoles.size).toBeGreaterThan(0);
    const legend = page.locator('ul[aria-label="Legend"]').first();
    expect(roles(await attributes(legend.locator('.swatch'), 'class'))).toEqual(barRoles);
    expect(await legend.locator('.swatch.error').count()).toBe(
      spans.some((s) => s.status.code === 2) ? 1 : 0,
    );

    // Why it failed, in the summary; its events in time order.
    const summary = page.locator('dl[aria-label="Summary"]');
    expect(await summary.textContent()).toContain(detail.trace.error);
    expect(await summary.getByText(detail.trace.error!, { exact: false }).first().isVisible()).toBe(true);
    const events = page.locator('table[aria-label="Events"] tbody tr[data-event-id]');
    expect(await attributes(events, 'data-event-id')).toEqual(detail.events.map((e) => e.event_id));
  });

  it('agents - each agent row shows the numbers of the metrics summary, and sorting by a column reorders the rows', async () => {
    await newPage();
    const requested: URL[] = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/api/v1/metrics/summary') requested.push(u);
    });
    await open('/agents', 'Agents');
    // The day the console shows (today unless it says another).
    const date = requested[0]?.searchParams.get('date');
    const summary = await api<{ agents: AgentRow[] }>(
      `/api/v1/metrics/summary${date ? `?date=${date}` : ''}`,
    );
    expect(summary.agents.length).toBe(TRAFFIC.agents);

    const table = page.locator('table[aria-label="Agents"]');
    const rows = table.locator('tbody tr[data-agent-id]');
    expect((await attributes(rows, 'data-agent-id')).sort()).toEqual(
      summary.agents.map((a) => a.agent_id).sort(),
    );
    for (const agent of summary.agents) {
      const row = rows.and(page.locator(`[data-agent-id="${agent.agent_id}"]`));
      for (const col of AGENT_COLUMNS) {
        const shown = await row.locator(`td[data-col="${col}"]`).getAttribute('data-value');
        const value = agent[col];
        expect(value, `${agent.agent_id} ${col} in the API's row`).not.toBeUndefined();
        if (value === null) expect(shown, `${agent.agent_id} ${col}`).toBe('');
        else expect(Number(shown), `${agent.agent_id} ${col}: ${shown}`).toBe(Number(value));
      }
      expect(await row.locator(`svg[aria-label="14-day trend of ${agent.agent_id}"]`).count()).toBe(1);
      const href = await row.locator('a').first().getAttribute('href');
      expect(new URL(href ?? '', chronicle.url).pathname).toBe(
        `/agents/${encodeURIComponent(agent.agent_id)}`,
      );
    }

    // The header cell above tasks_completed: same index among the cells of a row.
    const cellNames = await rows
      .first()
      .locator('th, td')
      .evaluateAll((cells: DomElement[]) => cells.map((c) => c.getAttribute('data-col') ?? ''));
    const column = cellNames.indexOf('tasks_completed');
    expect(column).toBeGreaterThanOrEqual(0);
    const header = table.locator('thead tr').last().locator('th, td').nth(column);
    const order = async () => ({
      sort: await header.getAttribute('aria-sort'),
      ids: await attributes(rows, 'data-agent-id'),
      values: (await attributes(rows.locator('td[data-col="tasks_completed"]'), 'data-value')).map(Number),
    });
    const sortedBy = (direction: string) =>
      summary.agents
        .map((a) => a.tasks_completed)
        .sort((a, b) => (direction === 'ascending' ? a - b : b - a));
    await header.getByRole('button').click();
    await expect.poll(async () => (await order()).sort).toMatch(/^(ascending|descending)$/);
    const first = await order();
    expect(first.values).toEqual(sortedBy(first.sort!));
    await header.getByRole('button').click();
    await expect
      .poll(async () => (await order()).sort)
      .toBe(first.sort === 'ascending' ? 'descending' : 'ascending');
    const second = await order();
    expect(second.values).toEqual(sortedBy(second.sort!));
    if (new Set(first.values).size > 1) expect(second.ids).not.toEqual(first.ids);
  });

  // Before the tests that post their own events: the pages show the simulator's run and nothing else.
  it('screenshots - every page renders from real data in light and dark at 1280×800', async () => {
    await newPage();
    if (SCREENSHOTS_DIR) await mkdir(SCREENSHOTS_DIR, { recursive: true });
    const failed = await walk<TraceRow>('/api/v1/traces?status=failed&limit=1000');
    const task = [...failed].sort(
      (a, b) => b.attempts - a.attempts || a.trace_id.localeCompare(b.trace_id),
    )[0]!;
    const { agents } = await api<{ agents: AgentRow[] }>('/api/v1/metrics/summary');
    const agent = [...agents].sort((a, b) => b.tasks_completed - a.tasks_completed)[0]!;
    // A malformed event, as a misconfigured publisher would send it: the Pipeline page lists it.
    await post([
      {
        event_id: randomUUID(),
        source: 'dispatcher',
        event_type: 'task.created',
        timestamp: new Date().toISOString(),
        metadata: { title: 'Summarise the parser', owner: 'alice' },
      },
    ]);
    await waitFor(
      async () => (await api<{ items: RejectRow[] }>('/api/v1/rejects?limit=1')).items.length > 0,
      10_000,
      'the reject to be listed',
    );
    const pages: { name: string; path: string; title: string; ready: (p: Page) => Promise<unknown> }[] = [
      { name: 'tasks', path: '/', title: 'Tasks', ready: (p) => taskRows(p).first().waitFor() },
      {
        name: 'task',
        path: `/tasks/${encodeURIComponent(task.trace_id)}`,
        title: `Task ${task.trace_id}`,
        ready: (p) => p.locator('svg[aria-label="Waterfall"] g[data-span-id]').first().waitFor(),
      },
      {
        name: 'agents',
        path: '/agents',
        title: 'Agents',
        ready: (p) => p.locator('tr[data-agent-id]').first().waitFor(),
      },
      {
        name: 'agent',
        path: `/agents/${encodeURIComponent(agent.agent_id)}`,
        title: `Agent ${agent.agent_id}`,
        ready: (p) => p.locator('table[aria-label="Recent tasks"] tbody tr[data-trace-id]').first().waitFor(),
      },
      {
        name: 'pipeline',
        path: '/pipeline',
        title: 'Pipeline',
        ready: (p) => p.locator('table[aria-label="Recent rejects"] tr[data-reject-id]').first().waitFor(),
      },
    ];
    const colours: Record<string, string> = {};
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const shot of pages) {
        await open(shot.path, shot.title);
        await shot.ready(page);
        await shoot(page, `${shot.name}-${scheme}`);
      }
      colours[scheme] = await page.evaluate<string>(
        `[document.documentElement, document.body].map((e) => { const s = getComputedStyle(e); return s.backgroundColor + ' ' + s.color; }).join(' / ')`,
      );
    }
    expect(colours.dark, 'the dark scheme changes the page colours').not.toBe(colours.light);

    // The live tail while a short simulator run, dated now, flows in; the same rows in both schemes.
    await page.emulateMedia({ colorScheme: 'light' });
    await open('/tail', 'Live tail');
    await expect.poll(() => page.locator('p[role="status"]').textContent()).toBe('Live');
    const live = await runSimulation({
      ...TRAFFIC,
      seed: 101,
      count: 80,
      ratePerSecond: 400,
      wholeTasks: undefined,
      startTimeMillis: Date.now(),
      target: { kind: 'http', url: chronicle.url, maxBatchEvents: 5 },
    });
    const tailRows = page.locator('table[aria-label="Live events"] tbody tr[data-event-id]');
    await expect.poll(() => tailRows.count()).toBe(live.report.expected.events);
    await shoot(page, 'tail-light');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shoot(page, 'tail-dark');
  });

  it('live tail - an event posted after the page opened shows within a second; errors only shows only errors; pause stops new rows and resume continues', async () => {
    await newPage();
    await open('/tail', 'Live tail');
    const status = page.locator('p[role="status"]');
    await expect.poll(() => status.textContent()).toBe('Live');
    const rows = page.locator('table[aria-label="Live events"] tbody tr[data-event-id]');

    // When each row first appeared, by the page's clock (the same machine's as the test's).
    await page.evaluate(`(() => {
      window.__rowSeenAt = {};
      const note = () => {
        for (const tr of document.querySelectorAll('table[aria-label="Live events"] tr[data-event-id]')) {
          const id = tr.getAttribute('data-event-id');
          if (!(id in window.__rowSeenAt)) window.__rowSeenAt[id] = Date.now();
        }
      };
      new MutationObserver(note).observe(document.body, { childList: true, subtree: true, attributes: true });
      note();
    })()`);
    const seenAt = async (eventId: string): Promise<number> => {
      // A function, not a string: the console's Content-Security-Policy forbids eval in the page.
      const handle = await page.waitForFunction(
        (id: string) => (globalThis as unknown as { __rowSeenAt: Record<string, number> }).__rowSeenAt[id],
        eventId,
        { timeout: 10_000 },
      );
      return (await handle.jsonValue()) as number;
    };
    // Events of no task and no agent: they change no task list or agent row the other tests read.
    const traceId = `tail-${randomBytes(4).toString('hex')}`;
    const event = (event_type: string, metadata: Json = {}) => ({
      event_id: randomUUID(),
      trace_id: traceId,
      source: 'browser-test',
      event_type,
      timestamp: new Date().toISOString(),
      metadata,
    });

    const note = (text: string) => event('custom.note', { text });
    const failure = (error: string) =>
      event('system.error', { component: 'browser-test', error, severity: 'error' });

    const first = note('posted after the page opened');
    await post(first);
    const answeredAt = Date.now();
    const latency = (await seenAt(first.event_id)) - answeredAt;
    expect(latency, `row shown ${latency} ms after the POST answered`).toBeLessThan(TAIL_LATENCY_MILLIS);
    expect(await rows.first().getAttribute('data-event-id')).toBe(first.event_id);
    expect(await rows.first().isVisible()).toBe(true);

    // Errors only: a new stream with the filter, resumed after the last event the page took. An error
    // event posted until one shows tells that the new stream is there (one the old stream delivered just
    // before the switch belongs to the old view); then a plain event and an error event are posted.
    await page.getByRole('form', { name: 'Filters' }).getByLabel('Errors only').check();
    await page.waitForURL((u) => u.searchParams.get('errors') === 'true');
    await waitFor(
      async () => {
        const probe = failure('probe of the filtered stream');
        await post(probe);
        return page
          .locator(`table[aria-label="Live events"] tr[data-event-id="${probe.event_id}"]`)
          .waitFor({ timeout: 1_000 })
          .then(() => true);
      },
      15_000,
      'the filtered stream to show an error event',
    );
    expect(await status.textContent()).toBe('Live');
    const plain = note('not an error');
    const error = failure('an error');
    await post(plain);
    await post(error);
    const errors = new Set(
      (await api<{ items: EventRow[] }>(`/api/v1/events?trace_id=${traceId}&errors=true`)).items.map(
        (e) => e.event_id,
      ),
    );
    expect(errors.has(error.event_id)).toBe(true);
    expect(errors.has(plain.event_id)).toBe(false);
    await seenAt(error.event_id);
    const shown = await attributes(rows, 'data-event-id');
    expect(
      shown.filter((id) => !errors.has(id)),
      'rows that are not error events',
    ).toEqual([]);

    // Pause: nothing new shows; resume: new events show again.
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => status.textContent()).toBe('Paused');
    expect(await page.getByRole('button', { name: 'Resume' }).count()).toBe(1);
    const whilePaused = failure('posted while paused');
    await post(whilePaused);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await attributes(rows, 'data-event-id')).not.toContain(whilePaused.event_id);
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => status.textContent()).toBe('Live');
    expect(await page.getByRole('button', { name: 'Pause' }).count()).toBe(1);
    const afterResume = failure('posted after resume');
    await post(afterResume);
    await seenAt(afterResume.event_id);
    expect(await rows.first().getAttribute('data-event-id')).toBe(afterResume.event_id);
  });

  it('live tail - a filter change says Connecting… until the new stream opens and resumes it from where the old one was: an event committed during the switch shows', async () => {
    await newPage();
    await open('/tail', 'Live tail');
    const status = page.locator('p[role="status"]');
    await expect.poll(() => status.textContent()).toBe('Live');
    const rows = page.locator('table[aria-label="Live events"] tbody tr[data-event-id]');
    const traceId = `switch-${randomBytes(4).toString('hex')}`;
    const note = (text: string) => noteEvent(traceId, text);

    // The last event the page received before the switch, and its place in the stream (the stream's
    // event id: <txid>-<seq> of the row).
    const before = note('before the switch');
    await post(before);
    await page.locator(`tr[data-event-id="${before.event_id}"]`).waitFor();
    expect(await rows.first().getAttribute('data-event-id')).toBe(before.event_id);
    const [stored] = (await api<{ items: EventRow[] }>(`/api/v1/events?trace_id=${traceId}`)).items;
    expect(stored?.event_id).toBe(before.event_id);

    // The new stream's request is held while an event is committed: it exists before the new stream
    // does, after the last one the page received.
    const during = note('committed during the switch');
    const held: { url: URL; status: string | null }[] = [];
    await page.route(
      (u) => u.pathname === '/api/v1/stream' && u.searchParams.get('trace_id') === traceId,
      async (route) => {
        if (held.length === 0) {
          held.push({ url: new URL(route.request().url()), status: null });
          await expect.poll(() => status.textContent()).toBe('Connecting…');
          held[0]!.status = await status.textContent();
          await post(during);
        }
        await route.continue();
      },
    );
    const form = page.getByRole('form', { name: 'Filters' });
    await form.getByLabel('Trace id').fill(traceId);
    await form.getByLabel('Trace id').press('Enter');
    await page.waitForURL((u) => u.searchParams.get('trace_id') === traceId);

    await page.locator(`tr[data-event-id="${during.event_id}"]`).waitFor({ timeout: 10_000 });
    expect(held).toHaveLength(1);
    expect(held[0]!.status).toBe('Connecting…');
    // From the last event received, or a later position the old stream reported (on a keep-alive),
    // before the event of the switch.
    const [duringStored] = (
      await api<{ items: EventRow[] }>(`/api/v1/events?trace_id=${traceId}&event_type=custom.note&limit=10`)
    ).items.filter((e) => e.event_id === during.event_id);
    const resumedFrom = positionOf(held[0]!.url.searchParams.get('last_event_id') ?? '');
    expect(resumedFrom).toBeGreaterThanOrEqual(positionOf(`${stored!.txid}-${stored!.seq}`));
    expect(resumedFrom).toBeLessThan(positionOf(`${duringStored!.txid}-${duringStored!.seq}`));
    await expect.poll(() => status.textContent()).toBe('Live');
    // Only what the new stream gave: the event of the switch, not the one before it (already shown
    // under the old filters), then a new one on top.
    expect(await attributes(rows, 'data-event-id')).toEqual([during.event_id]);
    const after = note('after the switch');
    await post(after);
    await expect.poll(() => attributes(rows, 'data-event-id')).toEqual([after.event_id, during.event_id]);
    await page.unrouteAll({ behavior: 'wait' });
  });

  it('live tail - a page whose filters showed nothing resumes a filter change from the position the server reported, past the events it skipped', async () => {
    // A replica of its own with a short keep-alive, so the position past the skipped event comes soon.
    const other = await env.start({ stream: { keepAliveMillis: 200 } });
    try {
      await newPage();
      const traceId = `position-${randomBytes(4).toString('hex')}`;
      await page.goto(`${other.url}/tail?trace_id=${traceId}&errors=true`);
      await loaded();
      const status = page.locator('p[role="status"]');
      await expect.poll(() => status.textContent()).toBe('Live');
      const rows = page.locator('table[aria-label="Live events"] tbody tr[data-event-id]');
      const note = (text: string) => noteEvent(traceId, text);

      // Not an error: the page skips it, and has no event id to resume from.
      const skipped = note('skipped under errors only');
      await post(skipped);
      const idOf = async (eventId: string) => {
        const [e] = (
          await api<{ items: EventRow[] }>(`/api/v1/events?trace_id=${traceId}&limit=10`)
        ).items.filter((x) => x.event_id === eventId);
        return positionOf(`${e!.txid}-${e!.seq}`);
      };
      const skippedAt = await idOf(skipped.event_id);
      // Several keep-alives: the stream reports a position past the skipped event.
      await new Promise((r) => setTimeout(r, 2_000));
      expect(await rows.count()).toBe(0);

      // Errors only off: the new stream's request is held while an event is committed.
      const during = note('committed during the switch');
      const held: URL[] = [];
      await page.route(
        (u) => u.pathname === '/api/v1/stream' && u.searchParams.get('errors') === null,
        async (route) => {
          if (held.length === 0) {
            held.push(new URL(route.request().url()));
            await post(during);
          }
          await route.continue();
        },
      );
      await page.getByRole('form', { name: 'Filters' }).getByLabel('Errors only').uncheck();
      await page.waitForURL((u) => u.searchParams.get('errors') === null);
      await page.locator(`tr[data-event-id="${during.event_id}"]`).waitFor({ timeout: 10_000 });
      expect(held).toHaveLength(1);
      const resumedFrom = positionOf(held[0]!.searchParams.get('last_event_id') ?? '');
      expect(resumedFrom).toBeGreaterThanOrEqual(skippedAt);
      expect(resumedFrom).toBeLessThan(await idOf(during.event_id));
      // The event of the switch, not the one skipped before it (the page had considered it already).
      await expect.poll(() => status.textContent()).toBe('Live');
      await new Promise((r) => setTimeout(r, 500));
      expect(await attributes(rows, 'data-event-id')).toEqual([during.event_id]);
      await page.unrouteAll({ behavior: 'wait' });
    } finally {
      // The page leaves the replica before it stops (no reconnecting stream left behind).
      await page.goto('about:blank').catch(() => undefined);
      await other.stop();
    }
  });

  it('pipeline - shows the health as ready with the dependencies the API reports, and a posted reject under Recent rejects with its reason', async () => {
    await newPage();
    const marker = `reject-${randomBytes(4).toString('hex')}`;
    const answer = await post([
      {
        event_id: randomUUID(),
        source: 'browser-test',
        event_type: 'task.progress',
        timestamp: new Date().toISOString(),
        metadata: { marker },
      },
    ]);
    const rejected = answer.rejected as { reason: string }[];
    expect(rejected).toHaveLength(1);
    const reject = await waitFor(
      async () =>
        (await api<{ items: RejectRow[] }>('/api/v1/rejects?limit=20')).items.find((r) =>
          r.payload.includes(marker),
        ),
      10_000,
      'the reject to be listed',
    );

    await open('/pipeline', 'Pipeline');
    const health = await api<{
      ready: boolean;
      status: string;
      dependencies: Record<string, { state: string }>;
    }>('/api/v1/health');
    expect(health.ready).toBe(true);
    const healthText = (await page.locator('section[aria-label="Health"]').textContent()) ?? '';
    expect(healthText).toMatch(/\bready\b/i);
    expect(healthText).not.toMatch(/not ready/i);
    const dependencies = (await page.locator('section[aria-label="Dependencies"]').textContent()) ?? '';
    expect(Object.keys(health.dependencies).length).toBeGreaterThan(0);
    for (const [name, dep] of Object.entries(health.dependencies)) {
      expect(dependencies, name).toContain(name);
      expect(dependencies, `${name} ${dep.state}`).toContain(dep.state);
    }
    for (const label of ['Buffer', 'Writer', 'Export']) {
      expect(await page.locator(`section[aria-label="${label}"]`).count(), label).toBe(1);
    }

    const row = page.locator(
      `section[aria-label="Recent rejects"] table[aria-label="Recent rejects"] tr[data-reject-id="${String(reject.id)}"]`,
    );
    await row.waitFor();
    expect(await row.isVisible()).toBe(true);
    expect(await row.textContent()).toContain(reject.reason);
    expect(reject.reason).toBe(rejected[0]!.reason.split(':')[0]);
    expect(await row.locator('details').textContent()).toContain(marker);
    expect(await page.locator('section[aria-label="Recent dead letters"]').count()).toBe(1);
  });

  it('keyboard - Tab from the start of the page reaches the main links and then the first task, and Enter opens it', async () => {
    await newPage();
    await open('/tasks?window=all', 'Tasks');
    const firstTask = (await attributes(taskRows(), 'data-trace-id'))[0];
    expect(firstTask).toBeDefined();
    interface Focused {
      text: string;
      nav: boolean;
      firstTask: boolean;
    }
    const focused = () =>
      page.evaluate<Focused | null>(`(() => {
        const e = document.activeElement;
        if (!e || e === document.body) return null;
        const first = document.querySelector('table[aria-label="Tasks"] tbody tr[data-trace-id] a[href*="/tasks/"]');
        return { text: (e.textContent || '').trim(), nav: !!e.closest('nav[aria-label="Main"]'), firstTask: e === first };
      })()`);
    const navLinks: string[] = [];
    let reached = false;
    for (let i = 0; i < 80 && !reached; i++) {
      await page.keyboard.press('Tab');
      const f = await focused();
      if (f?.nav) navLinks.push(f.text);
      reached = f?.firstTask === true;
    }
    expect(navLinks).toEqual(['Tasks', 'Agents', 'Pipeline', 'Live tail']);
    expect(reached, 'the first task link took the focus').toBe(true);
    await page.keyboard.press('Enter');
    await page.waitForURL((u) => u.pathname === `/tasks/${firstTask}`);
    await loaded();
    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe(`Task ${firstTask}`);
  });

  async function shoot(p: Page, name: string): Promise<void> {
    const viewport = p.viewportSize();
    expect(viewport).toEqual(VIEWPORT);
    const image = await p.screenshot(SCREENSHOTS_DIR ? { path: join(SCREENSHOTS_DIR, `${name}.png`) } : {});
    expect(image.length, name).toBeGreaterThan(1_000);
  }
});
