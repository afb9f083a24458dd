import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // The console in headless Chromium against Chronicle on Postgres: one browser and one Chronicle
        // per file, fed with simulator traffic in beforeAll.
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // What a page shows settles after its API answers: a loaded CI machine may take seconds.
          expect: { poll: { timeout: 10_000 } },
        },
      },
      {
        // The fault suite (README, Reliability): Chronicle killed, its dependencies cut, overloaded, fuzzed.
        // Not part of `npm test`: `npm run test:reliability` (RELIABILITY_PROFILE=ci|full). Its files run
        // one at a time, since they measure (recovery times, RSS) on a shared machine.
        test: {
          name: 'reliability',
          include: ['test/reliability/**/*.test.ts'],
          globalSetup: ['test/reliability/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 30 * 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
