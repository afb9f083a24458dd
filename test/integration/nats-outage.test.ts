import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Chronicle, createChronicle } from '../../src/chronicle.js';
import type { Config } from '../../src/config.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { SERVICES_REQUIRED, describeWithPostgres } from '../support/services.js';

// A private nats-server on a port of this test's own, so it can be stopped and started again
// without disturbing the shared one. The binary is the machine's (Debian's nats-server).
const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find(
  (p) => existsSync(p),
);
if (!NATS_SERVER && SERVICES_REQUIRED) throw new Error('nats-server binary not found');

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitFor(check: () => Promise<boolean>, timeoutMillis = 15_000): Promise<void> {
  const until = Date.now() + timeoutMillis;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}

(NATS_SERVER ? describeWithPostgres : describe.skip)(
  'NATS outage - Chronicle keeps running and reconnects',
  () => {
    let db: TestDatabase;
    let port: number;
    let storeDir: string;
    let server: ChildProcess | undefined;
    let chronicle: Chronicle;

    function startNats(): void {
      server = spawn(NATS_SERVER!, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], {
        stdio: 'ignore',
      });
    }
    async function stopNats(): Promise<void> {
      if (!server) return;
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGKILL');
      await exited;
      server = undefined;
    }
    const ready = async (): Promise<{ status: number; body: { reasons?: string[] } }> => {
      const res = await fetch(`${chronicle.url()}/ready`);
      return { status: res.status, body: (await res.json()) as { reasons?: string[] } };
    };
    const traceStatus = async (id: string): Promise<number> =>
      (await fetch(`${chronicle.url()}/api/v1/traces/${id}`)).status;
    async function publish(traceId: string): Promise<void> {
      const nc = await connect({ servers: `nats://127.0.0.1:${port}` });
      try {
        await nc.jetstream().publish('swarm.task.created', JSON.stringify({ trace_id: traceId }));
      } finally {
        await nc.close();
      }
    }

    beforeAll(async () => {
      db = await createTestDatabase();
      port = await freePort();
      storeDir = mkdtempSync(path.join(os.tmpdir(), 'chronicle-nats-'));
      const config: Config & { databaseUrl: string } = {
        port: 0,
        host: '127.0.0.1',
        databaseUrl: db.url,
        embedded: { dataDir: '.chronicle', port: 0 },
        natsUrl: `nats://127.0.0.1:${port}`,
        natsNamespace: '',
        batch: {
          flushIntervalMillis: 50,
          flushThresholdEvents: 1000,
          maxBufferEvents: 1000,
          maxBufferBytes: 16 * 1024 * 1024,
          lingerMillis: 10,
          maxConcurrentFlushes: 2,
        },
        ingestMaxBodyBytes: 1024 * 1024,
        jetstream: { maxDeliver: 3, ackWaitMillis: 30_000, fetchBatch: 100 },
        pgPoolMax: 4,
        shutdownTimeoutMillis: 5_000,
        heapGrowthPercent: 100,
        logLevel: 'silent',
        otlpReceiver: { dedicatedPort: undefined, maxBodyBytes: 1024 * 1024 },
        spans: { settleMillis: 0, maxDelayMillis: 0, concurrency: 2, batchTraces: 100 },
        export: undefined,
        resource: { serviceName: 'chronicle', attributes: {} },
        links: { jaegerUiUrl: undefined, grafanaUrl: undefined, tempoDatasourceUid: 'tempo' },
      };
      chronicle = createChronicle(config, {
        logger: silentLogger(),
        metrics: createMetrics({ defaultMetrics: false }),
      });
      await chronicle.start();
    });

    afterAll(async () => {
      await chronicle?.shutdown(AbortSignal.timeout(5_000));
      await stopNats();
      rmSync(storeDir, { recursive: true, force: true });
      await db?.drop();
    });

    it('NATS down at start: not ready and says why, HTTP ingest still works; NATS up: consumes', async () => {
      await waitFor(async () => (await chronicle.health()).dependencies.migrations?.state === 'up');
      const before = await ready();
      expect(before.status).toBe(503);
      expect(before.body.reasons?.join(' ')).toMatch(/nats/);

      const posted = await fetch(`${chronicle.url()}/api/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ trace_id: 'via-http', event_type: 'task.created' }),
      });
      expect(posted.status).toBe(200);

      startNats();
      await waitFor(async () => (await ready()).status === 200);
      await publish('after-start');
      await waitFor(async () => (await traceStatus('after-start')) === 200);
    });

    it('NATS lost later: not ready while it is gone, then reconnects and consumes again', async () => {
      await stopNats();
      await waitFor(async () => (await ready()).status === 503);
      startNats();
      await waitFor(async () => (await ready()).status === 200, 20_000);
      await publish('after-outage');
      await waitFor(async () => (await traceStatus('after-outage')) === 200);
    });
  },
);
