/**
 * Pinning from the console, in headless Chromium against one Chronicle on a real Postgres: Pin on a task's
 * page shows the Pinned badge and pins it in the store; once retention dropped its originals (deleted here
 * as retention will) the page says the archive serves it, with the same events; the tasks list filters
 * the pinned tasks; an API refusal is shown in words.
 */
import { randomUUID } from 'node:crypto';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { type ChronicleTestEnv, type TestChronicle, createChronicleTestEnv } from '../support/chronicle.js';
import { type TestBrowser, describeWithBrowser, launchBrowser } from '../support/browser.js';

type Json = Record<string, unknown>;

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

function task(traceId: string) {
  const ev = (event_type: string, timestamp: string, metadata: Record<string, unknown>) => ({
    event_id: randomUUID(),
    trace_id: traceId,
    source: 'dispatch',
    event_type,
    timestamp,
    metadata,
  });
  return [
    ev('task.created', minutesAgo(10), { title: `Pin me ${traceId}` }),
    ev('task.assigned', minutesAgo(9), { agent: 'agent-pin' }),
    ev('task.started', minutesAgo(8), { agent: 'agent-pin' }),
    ev('task.completed', minutesAgo(7), { agent: 'agent-pin' }),
  ];
}

const VIEWER_TOKEN = 'viewer-token-4d1f0c9a';

describeWithBrowser('console - pinning in a real browser', () => {
  let env: ChronicleTestEnv;
  let chronicle: TestChronicle;
  let browser: TestBrowser;
  let page: Page;
  let pageErrors: string[] = [];

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
    const res = await fetch(chronicle.url + path, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Json };
  }

  async function open(path: string): Promise<void> {
    await page.goto(chronicle.url + path);
    await page.locator('main[aria-busy="false"]').waitFor({ timeout: 10_000 });
  }

  beforeAll(async () => {
    env = await createChronicleTestEnv({ nats: false });
    chronicle = await env.start();
    browser = await launchBrowser();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await env?.cleanup();
  });

  afterEach(async () => {
    const errors = pageErrors;
    pageErrors = [];
    await page?.close();
    expect(errors, 'uncaught errors in the page').toEqual([]);
  });

  it('task - Pin shows the Pinned badge and pins it; after retention the page serves it from the archive; the tasks list filters pinned tasks; Unpin says it is gone', async () => {
    const traceId = `pin-ui-${randomUUID().slice(0, 8)}`;
    expect((await api('POST', '/api/v1/events', task(traceId))).status).toBe(200);
    ({ page, errors: pageErrors } = await browser.newPage());

    await open(`/tasks/${traceId}`);
    expect(await page.locator('[data-pinned]').count()).toBe(0);
    const pinButton = page.locator('button[data-action="pin"]');
    expect(await pinButton.textContent()).toMatch(/^\s*Pin\s*$/);
    await pinButton.click();
    await page.locator('[data-pin-note="pinned"] [data-pinned]').waitFor({ timeout: 5_000 });
    expect(await page.locator('[data-pin-note="pinned"]').textContent()).toMatch(
      /Pinned.*kept past retention/s,
    );
    expect(await page.locator('button[data-action="unpin"]').textContent()).toMatch(/Unpin/);
    const detail = await api('GET', `/api/v1/traces/${traceId}`);
    expect(detail.body).toMatchObject({ pinned: true, archived: false });

    // Retention drops the originals: the page says the archive serves it, with the same events.
    for (const table of ['swarm_events', 'swarm_traces', 'otel_spans', 'swarm_dlq']) {
      await env.db.pool.query(`DELETE FROM ${table} WHERE trace_id = $1`, [traceId]);
    }
    await open(`/tasks/${traceId}`);
    await page.locator('[data-pin-note="archived"]').waitFor({ timeout: 5_000 });
    expect(await page.locator('[data-pin-note="archived"]').textContent()).toMatch(/served from the archive/);
    const eventIds = await page
      .locator('table[aria-label="Events"] tbody tr')
      .evaluateAll((rows: { getAttribute(n: string): string | null }[]) =>
        rows.map((r) => r.getAttribute('data-event-id')),
      );
    expect(eventIds).toEqual((detail.body.events as { event_id: string }[]).map((e) => e.event_id));
    expect(await page.locator('[role="alert"]').count()).toBe(0);

    // The tasks list: Pinned only lists it (the stored list no longer has it), with its badge.
    await open(`/tasks?trace_prefix=${traceId}`);
    expect(await page.locator('table[aria-label="Tasks"] tbody tr[data-trace-id]').count()).toBe(0);
    await page.getByLabel('Pinned only').check();
    await page.waitForURL(/pinned=true/);
    const row = page.locator(`table[aria-label="Tasks"] tbody tr[data-trace-id="${traceId}"]`);
    await row.waitFor({ timeout: 5_000 });
    expect(await row.locator('[data-pinned]').textContent()).toBe('pinned');

    // Unpin: the page says the task is no longer kept, and the API no longer has it.
    await open(`/tasks/${traceId}`);
    await page.locator('button[data-action="unpin"]').click();
    await page.locator('[data-pin-note="gone"]').waitFor({ timeout: 5_000 });
    expect((await api('GET', `/api/v1/traces/${traceId}`)).status).toBe(404);
  });

  it('task - a refused Pin (a token without the admin scope) shows the API message and leaves the task unpinned', async () => {
    const traceId = `pin-ui-${randomUUID().slice(0, 8)}`;
    expect((await api('POST', '/api/v1/events', task(traceId))).status).toBe(200);
    // The same store behind a Chronicle that asks for tokens: the viewer may read, not pin.
    const secured = await env.start({ apiTokens: `viewer:read:${VIEWER_TOKEN}` });
    ({ page, errors: pageErrors } = await browser.newPage());
    await page.goto(`${secured.url}/tasks/${traceId}`);
    const form = page.getByRole('form', { name: 'API token' });
    await form.getByLabel('Token').fill(VIEWER_TOKEN);
    await form.getByRole('button').click();
    await page.locator('main[aria-busy="false"]').waitFor({ timeout: 10_000 });
    await page.locator('button[data-action="pin"]').click();
    const alert = page.locator('[role="alert"]', { hasText: 'Pin:' });
    await alert.waitFor({ timeout: 5_000 });
    expect(await alert.textContent()).toMatch(
      /Pin:\s*client viewer is not allowed this: it needs scope admin \(HTTP 403, forbidden\)/,
    );
    // The header says which scope the token lacks.
    expect(await page.locator('[role="alert"]', { hasText: 'Use a token with that scope' }).count()).toBe(1);
    expect(await page.locator('[data-pinned]').count()).toBe(0);
    expect((await api('GET', `/api/v1/traces/${traceId}`)).body.pinned).toBeUndefined();
  });
});
