// GET /api/v1/pipeline answers within its bound while the health check or the backlog read hangs.
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, expect, it, vi } from 'vitest';
import type { HealthReport } from '../../../src/api/health.js';
import {
  BACKLOG_TIMEOUT_MILLIS,
  HEALTH_TIMEOUT_MILLIS,
  type PipelineReport,
  createPipelineRoutes,
} from '../../../src/api/pipeline.js';
import { createMetrics } from '../../../src/telemetry/metrics.js';
import { silentLogger } from '../../../src/telemetry/logger.js';

const healthy: HealthReport = {
  status: 'ok',
  ready: true,
  reasons: [],
  dependencies: { postgres: { state: 'up' }, otlp_export: { state: 'up' }, nats: { state: 'disabled' } },
  buffer: { events: 3, bytes: 300, max_events: 10, max_bytes: 1000 },
  writer: { failing: false, consecutive_failures: 0 },
};

const never = <T>() => new Promise<T>(() => undefined);
const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function serve(deps: { health: () => Promise<HealthReport>; backlog: () => Promise<unknown> }) {
  const app = express();
  app.use(
    createPipelineRoutes({
      health: deps.health,
      metrics: createMetrics(),
      store: { exportBacklog: deps.backlog as never },
      logger: silentLogger(),
    }),
  );
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  closers.push(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/pipeline`;
  return async () => {
    const started = Date.now();
    const res = await fetch(url);
    expect(res.status).toBe(200);
    return { report: (await res.json()) as PipelineReport, millis: Date.now() - started };
  };
}

it('runs the health check and the backlog read side by side, each bounded', async () => {
  let hang = false;
  const health = vi.fn(() => (hang ? never<HealthReport>() : Promise.resolve(healthy)));
  const backlog = vi.fn(() => (hang ? never() : Promise.resolve({ spans: 2, oldest_seconds: 5 })));
  const get = await serve({ health, backlog });

  const first = await get();
  expect(first.report.export).toMatchObject({
    enabled: true,
    backlog_spans: 2,
    backlog_capped: false,
    backlog_error: null,
  });
  expect(first.report.health).toEqual(healthy);

  // The database stops answering: both hang; the answer comes once, not after the sum of, the bounds.
  hang = true;
  const during = await get();
  expect(during.millis).toBeLessThan(Math.max(HEALTH_TIMEOUT_MILLIS, BACKLOG_TIMEOUT_MILLIS) + 1_000);
  expect(during.report.export).toMatchObject({
    enabled: true,
    backlog_spans: null,
    backlog_capped: null,
    backlog_error: 'the database did not answer in time',
  });
  expect(during.report.health).toMatchObject({
    status: 'degraded',
    ready: false,
    reasons: ['the health check did not answer in 2 s'],
    dependencies: {
      postgres: { state: 'down', detail: 'unknown: the health check did not answer in 2 s' },
      otlp_export: { state: 'down' },
      nats: { state: 'disabled' },
    },
    buffer: healthy.buffer,
  });
  expect(backlog).toHaveBeenCalledTimes(2);
}, 10_000);

it('reports a rejected health check as not answered', async () => {
  const get = await serve({
    health: () => Promise.reject(new Error('boom')),
    backlog: () => Promise.resolve({ spans: 0, oldest_seconds: 0 }),
  });
  const { report } = await get();
  expect(report.health).toMatchObject({ ready: false, dependencies: {} });
  expect(report.export).toMatchObject({ enabled: false, backlog_spans: null });
});
