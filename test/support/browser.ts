/**
 * Headless Chromium for the browser tests: Debian's `chromium` driven by playwright-core, started the
 * way the issue asks (no sandbox, no GPU, no background traffic) on a fresh, empty profile that is
 * removed when the browser closes.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { describe } from 'vitest';
import { SERVICES_REQUIRED, describeWithPostgres } from './services.js';

/** Debian's chromium; CHRONICLE_CHROMIUM points elsewhere (another distribution's path). */
export const CHROMIUM_PATH = process.env.CHRONICLE_CHROMIUM ?? '/usr/bin/chromium';

/** Whether the browser is installed (.ci/run installs it when it is not). */
export const chromiumFound = existsSync(CHROMIUM_PATH);

/**
 * `describe` for tests that need Postgres and Chromium: skipped locally when either is missing,
 * failing when services are required (CHRONICLE_TEST_REQUIRE_SERVICES=1, as in .ci/run).
 */
export const describeWithBrowser = chromiumFound || SERVICES_REQUIRED ? describeWithPostgres : describe.skip;

/** The viewport of every page (and of the screenshots). */
export const VIEWPORT = { width: 1280, height: 800 } as const;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A running browser with its one context; close() also removes its profile. */
export interface TestBrowser {
  readonly context: BrowserContext;
  /** A new tab, its uncaught page errors collected in `errors`. */
  newPage(): Promise<{ page: Page; errors: string[] }>;
  close(): Promise<void>;
}

/**
 * Starts Chromium on an empty profile directory made for it. Playwright refuses `--user-data-dir` in
 * `args` (it sets the flag itself), so the directory is given to launchPersistentContext instead.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  if (!chromiumFound) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install Debian's chromium package (.ci/run does)`);
  }
  const profile = await mkdtemp(join(tmpdir(), 'chronicle-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: VIEWPORT,
      // Times on the pages are in the viewer's zone: a fixed one keeps screenshots comparable.
      timezoneId: 'UTC',
      locale: 'en-US',
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    async newPage() {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      return { page, errors };
    },
    async close() {
      try {
        await context.close();
      } finally {
        await rm(profile, { recursive: true, force: true });
      }
    },
  };
}
