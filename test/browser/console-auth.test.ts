/**
 * The console in headless Chromium against a Chronicle with API tokens: it asks for a token instead of
 * showing a page, keeps it for the tab only (sessionStorage, never localStorage, never a URL), sends it
 * on every request the page makes (the live tail's stream included), says which scope a token lacks,
 * and forgets it on request.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Page, Request } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ChronicleTestEnv, type TestChronicle, createChronicleTestEnv } from '../support/chronicle.js';
import { type TestBrowser, describeWithBrowser, launchBrowser } from '../support/browser.js';

const READ = `read-${randomBytes(8).toString('hex')}`;
const INGEST = `ingest-${randomBytes(8).toString('hex')}`;
const METRICS = `metrics-${randomBytes(8).toString('hex')}`;

/** The page's storage, read inside it (the tests' tsconfig has no DOM lib). */
interface Storages {
  local: string;
  session: string;
}

describeWithBrowser('console - with API tokens', () => {
  let env: ChronicleTestEnv;
  let chronicle: TestChronicle;
  let browser: TestBrowser;
  const traceIds = [0, 1, 2].map(() => `auth-task-${randomBytes(4).toString('hex')}`);

  async function post(body: unknown): Promise<void> {
    const res = await fetch(`${chronicle.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${INGEST}` },
      body: JSON.stringify(body),
    });
    expect(res.status, await res.text()).toBe(200);
  }

  function event(traceId: string, event_type: string, metadata: Record<string, unknown> = {}) {
    return {
      event_id: randomUUID(),
      trace_id: traceId,
      source: 'browser-test',
      event_type,
      timestamp: new Date().toISOString(),
      metadata,
    };
  }

  /** A new tab whose every request is recorded (URL and Authorization header). */
  async function newTab(): Promise<{ page: Page; errors: string[]; requests: Request[] }> {
    const { page, errors } = await browser.newPage();
    const requests: Request[] = [];
    page.on('request', (r) => requests.push(r));
    return { page, errors, requests };
  }

  const storages = (page: Page): Promise<Storages> =>
    page.evaluate(() => {
      const g = globalThis as unknown as { localStorage: object; sessionStorage: object };
      return { local: JSON.stringify(g.localStorage), session: JSON.stringify(g.sessionStorage) };
    });

  const heading = (page: Page) => page.getByRole('heading', { level: 1 }).textContent();

  async function enterToken(page: Page, token: string): Promise<void> {
    const form = page.getByRole('form', { name: 'API token' });
    await form.getByLabel('Token').fill(token);
    await form.getByRole('button', { name: 'Use token' }).click();
  }

  beforeAll(async () => {
    env = await createChronicleTestEnv({ nats: false });
    chronicle = await env.start({
      apiTokens: `console:read:${READ},dispatcher:ingest:${INGEST},prom:metrics:${METRICS}`,
    });
    browser = await launchBrowser();
    await post(traceIds.map((id) => event(id, 'task.created', { title: `task ${id}` })));
  });

  afterAll(async () => {
    await browser?.close();
    await env?.cleanup();
  });

  it('asks for a token instead of the page; a wrong one is refused; a read token shows the tasks; kept for the tab only', async () => {
    const { page, errors, requests } = await newTab();
    await page.goto(`${chronicle.url}/tasks`);
    await expect.poll(() => heading(page)).toBe('API token');
    const input = page.getByRole('form', { name: 'API token' }).getByLabel('Token');
    expect(await input.getAttribute('type')).toBe('password');
    expect(await page.locator('table[aria-label="Tasks"]').count()).toBe(0);

    await enterToken(page, 'not-a-token');
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/not accepted/);
    expect(await heading(page)).toBe('API token');

    await enterToken(page, READ);
    await expect.poll(() => heading(page)).toBe('Tasks');
    const rows = page.locator('table[aria-label="Tasks"] tbody tr[data-trace-id]');
    await expect
      .poll(async () =>
        (
          await rows.evaluateAll((els: { getAttribute(name: string): string | null }[]) =>
            els.map((e) => e.getAttribute('data-trace-id') ?? ''),
          )
        ).sort(),
      )
      .toEqual([...traceIds].sort());

    // Only in this tab's sessionStorage; never in localStorage nor in any URL the page asked for.
    const kept = await storages(page);
    expect(kept.session).toContain(READ);
    expect(kept.local).not.toContain(READ);
    expect(page.url()).not.toContain(READ);
    expect(requests.filter((r) => r.url().includes(READ))).toEqual([]);
    // Every API request after the token was given carried it.
    const apiRequests = requests.filter((r) => new URL(r.url()).pathname.startsWith('/api/'));
    expect(apiRequests.at(-1)?.headers().authorization).toBe(`Bearer ${READ}`);

    // A reload keeps the tab's token; another tab asks again.
    await page.reload();
    await expect.poll(() => heading(page)).toBe('Tasks');
    const other = await newTab();
    await other.page.goto(`${chronicle.url}/tasks`);
    await expect.poll(() => heading(other.page)).toBe('API token');
    await other.page.close();
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a token without the read scope is told so by name; Forget token asks again', async () => {
    const { page, errors } = await newTab();
    await page.goto(`${chronicle.url}/agents`);
    await expect.poll(() => heading(page)).toBe('API token');
    await enterToken(page, METRICS);
    await expect
      .poll(async () => (await page.getByRole('alert').allTextContents()).join(' '))
      .toMatch(/client prom is not allowed this: it needs scope read/);
    await page.getByRole('button', { name: 'Forget token' }).click();
    await expect.poll(() => heading(page)).toBe('API token');
    expect((await storages(page)).session).not.toContain(METRICS);
    expect(await page.getByRole('button', { name: 'Forget token' }).count()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('live tail - the stream is read with the token in a header, and an event posted shows', async () => {
    const { page, errors, requests } = await newTab();
    await page.goto(`${chronicle.url}/tail`);
    await expect.poll(() => heading(page)).toBe('API token');
    await enterToken(page, READ);
    await expect.poll(() => heading(page)).toBe('Live tail');
    const status = page.locator('p[role="status"]');
    await expect.poll(() => status.textContent(), { timeout: 10_000 }).toBe('Live');

    const note = event(`tail-${randomBytes(4).toString('hex')}`, 'custom.note', { text: 'with a token' });
    await post(note);
    await page
      .locator(`table[aria-label="Live events"] tr[data-event-id="${note.event_id}"]`)
      // (Generous: another database's long transaction on a shared cluster holds the stream back.)
      .waitFor({ timeout: 30_000 });

    const streams = requests.filter((r) => new URL(r.url()).pathname === '/api/v1/stream');
    expect(streams.length).toBeGreaterThan(0);
    expect(streams.at(-1)?.headers().authorization).toBe(`Bearer ${READ}`);
    expect(requests.filter((r) => r.url().includes(READ))).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });
});
