/**
 * No secret leaks: Chronicle runs as a process at LOG_LEVEL=trace with every kind of secret configured
 * (a database password, NATS passwords, token and NKey seed, an OTLP Authorization header, a password in
 * the export URL, API tokens), is made to fail on purpose (wrong NATS credentials, Postgres cut away
 * under it, an export endpoint that is down, a configuration error), and everything it wrote (stdout,
 * stderr) and answered (health, pipeline, ready, metrics) is searched for each secret, as is and
 * percent-encoded.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { nkeys } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildDist } from '../support/build.js';
import { sleep, waitFor } from '../support/chronicle.js';
import { freePort } from '../support/process.js';
import {
  type Certificates,
  type CliProcess,
  type TestNatsServer,
  type TlsPostgres,
  makeCertificates,
  startCli,
  startNatsServer,
  startTlsPostgres,
  untilOutput,
  untilReady,
} from '../support/secure-servers.js';
import { describeWithPostgres } from '../support/services.js';
import { type TcpProxy, startTcpProxy } from '../support/tcp-proxy.js';

// Characters that URL-encoding changes, so that an encoded leak is told apart from a raw one.
const secret = (what: string): string => `${what}-${randomBytes(9).toString('base64url')}@:/+`;

const DB_PASSWORD = secret('db-pw');
const NATS_PASSWORD = secret('nats-pw');
const WRONG_NATS_PASSWORD = secret('nats-wrong-pw');
const NATS_TOKEN = secret('nats-token');
const OTLP_AUTHORIZATION = `Bearer ${secret('otlp-bearer')}`;
const EXPORT_URL_PASSWORD = secret('export-pw');
const API_TOKEN = `api-${randomBytes(12).toString('hex')}`;
const NKEY_SEED = new TextDecoder().decode(
  (nkeys as { createUser(): { getSeed(): Uint8Array } }).createUser().getSeed(),
);
const SECRETS = [
  DB_PASSWORD,
  NATS_PASSWORD,
  WRONG_NATS_PASSWORD,
  NATS_TOKEN,
  OTLP_AUTHORIZATION.slice('Bearer '.length),
  EXPORT_URL_PASSWORD,
  API_TOKEN,
  NKEY_SEED,
];

let certs: Certificates;
let postgres: TlsPostgres;
let proxy: TcpProxy;
let nats: TestNatsServer;
/** Everything Chronicle wrote or answered during the run. */
const written: { what: string; text: string }[] = [];
const processes: CliProcess[] = [];

beforeAll(async () => {
  buildDist();
  certs = makeCertificates('certuser');
  postgres = await startTlsPostgres(certs, DB_PASSWORD);
  proxy = await startTcpProxy({ host: '127.0.0.1', port: postgres.port });
  nats = await startNatsServer(
    `authorization { users = [ { user: alice, password: "${NATS_PASSWORD.replace(/"/g, '\\"')}" } ] }`,
  );
}, 120_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await proxy?.close();
  await nats?.stop();
  await postgres?.stop();
  if (certs) rmSync(certs.dir, { recursive: true, force: true });
});

function databaseUrl(database: string, port = proxy.port): string {
  const query = new URLSearchParams({ sslmode: 'verify-full', sslrootcert: certs.caCert });
  return `postgres://chronicle:${encodeURIComponent(DB_PASSWORD)}@127.0.0.1:${port}/${database}?${query.toString()}`;
}

/** The environment with every secret, at the most verbose level. */
function secretEnv(): Record<string, string> {
  return {
    LOG_LEVEL: 'trace',
    DATABASE_URL: databaseUrl('chronicle_secrets'),
    NATS_URL: `nats://127.0.0.1:${nats.port}`,
    NATS_USER: 'alice',
    NATS_PASSWORD,
    CHRONICLE_API_TOKENS: `grep-test:read+ingest+metrics:${API_TOKEN}`,
    OTEL_EXPORTER_OTLP_HEADERS: `authorization=${encodeURIComponent(OTLP_AUTHORIZATION)}`,
    SPAN_SETTLE_MS: '0',
    OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
  };
}

async function start(args: string[], env: Record<string, string>): Promise<CliProcess> {
  const proc = await startCli(args, env);
  processes.push(proc);
  return proc;
}

/** Fetches `path` with the API token (harmless where tokens are not checked) and keeps the body. */
async function keep(proc: CliProcess, path: string, init: RequestInit = {}): Promise<Response | undefined> {
  try {
    const res = await fetch(`${proc.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${API_TOKEN}`, ...(init.headers as Record<string, string>) },
      signal: AbortSignal.timeout(5_000),
    });
    written.push({ what: `${path} (${res.status})`, text: await res.clone().text() });
    return res;
  } catch (err) {
    written.push({ what: `${path} failed`, text: String(err) });
    return undefined;
  }
}

/** One OTLP/JSON span, as an instrumented service sends it. */
function otlpSpan(): unknown {
  const now = BigInt(Date.now()) * 1_000_000n;
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'secrets-test' } }] },
        scopeSpans: [
          {
            scope: { name: 'secrets-test' },
            spans: [
              {
                traceId: randomBytes(16).toString('hex'),
                spanId: randomBytes(8).toString('hex'),
                name: 'work',
                kind: 1,
                startTimeUnixNano: String(now - 1_000_000n),
                endTimeUnixNano: String(now),
              },
            ],
          },
        ],
      },
    ],
  };
}

async function finish(proc: CliProcess, what: string): Promise<void> {
  await proc.stop();
  written.push({ what, text: proc.output() });
}

describeWithPostgres('secrets', () => {
  it('secrets - never written or served, whatever fails, at LOG_LEVEL=trace', async () => {
    const exportPort = await freePort(); // nothing listens: every export fails
    const main = await start(['serve'], {
      ...secretEnv(),
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://exporter:${encodeURIComponent(EXPORT_URL_PASSWORD)}@127.0.0.1:${exportPort}/v1/traces`,
    });
    await untilReady(main, 30_000);
    const event = (traceId: string): string =>
      JSON.stringify({
        event_id: randomUUID(),
        trace_id: traceId,
        source: 'secrets-test',
        event_type: 'task.created',
        timestamp: new Date().toISOString(),
        metadata: { task_id: traceId, agent_id: 'agent-1' },
      });
    const traceId = `secrets-${randomUUID()}`;
    const ingested = await keep(main, '/api/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: event(traceId),
    });
    expect(ingested?.status).toBeLessThan(300);
    // The export fails (nothing listens) and is logged.
    // A span over OTLP/HTTP is kept and exported as it came: the export fails (nothing listens), logged.
    const otlp = await keep(main, '/v1/traces', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(otlpSpan()),
    });
    expect(otlp?.status).toBeLessThan(300);
    await untilOutput(main, 'span export failed', 20_000);
    for (const path of [
      '/api/v1/health',
      '/api/v1/pipeline',
      '/ready',
      '/metrics',
      `/api/v1/traces/${traceId}`,
    ]) {
      await keep(main, path);
    }

    // Postgres goes away under it: failed writes, failed health checks, reconnect attempts.
    proxy.cut();
    await keep(main, '/api/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: event(`secrets-${randomUUID()}`),
    });
    await waitFor(async () => (await keep(main, '/ready'))?.status === 503, 15_000, '/ready to answer 503');
    for (const path of ['/api/v1/health', '/api/v1/pipeline', '/metrics', '/api/v1/events?limit=5']) {
      await keep(main, path);
    }
    await sleep(1_000);
    proxy.restore();
    await untilReady(main, 30_000);
    await finish(main, 'serve with every secret');

    // Wrong NATS password, wrong token, an NKey the server does not know: refused, and logged.
    for (const [what, env] of [
      ['wrong NATS password', { NATS_PASSWORD: WRONG_NATS_PASSWORD }],
      ['wrong NATS token', { NATS_USER: '', NATS_PASSWORD: '', NATS_TOKEN }],
      ['unknown NKey', { NATS_USER: '', NATS_PASSWORD: '', NATS_NKEY_SEED: NKEY_SEED }],
      [
        'credentials in NATS_URL',
        {
          NATS_USER: '',
          NATS_PASSWORD: '',
          NATS_URL: `nats://alice:${encodeURIComponent(WRONG_NATS_PASSWORD)}@127.0.0.1:${nats.port}`,
        },
      ],
    ] as const) {
      const proc = await start(['serve'], { ...secretEnv(), ...env });
      await untilOutput(proc, 'NATS refused the connection', 20_000);
      for (const path of ['/api/v1/health', '/api/v1/pipeline', '/ready']) await keep(proc, path);
      await finish(proc, what);
    }

    // A configuration error (two ways to authenticate, a bad seed) exits 2 naming variables only.
    const bad = await start(['serve'], {
      ...secretEnv(),
      NATS_TOKEN,
      NATS_NKEY_SEED: `SU${NATS_TOKEN}`,
    });
    expect((await bad.exited).code).toBe(2);
    expect(bad.output()).toMatch(/NATS_TOKEN/);
    expect(bad.output()).toMatch(/NATS_NKEY_SEED: is not a user NKey seed/);
    written.push({ what: 'configuration error', text: bad.output() });

    // migrate with the wrong database password, and against a Postgres that is not there.
    const wrongDb = await start(['migrate'], {
      ...secretEnv(),
      DATABASE_URL: databaseUrl('chronicle_secrets').replace(
        encodeURIComponent(DB_PASSWORD),
        encodeURIComponent(WRONG_NATS_PASSWORD),
      ),
    });
    expect((await wrongDb.exited).code).toBe(1);
    expect(wrongDb.output()).toMatch(/password authentication failed/);
    written.push({ what: 'migrate, wrong password', text: wrongDb.output() });
    const noDb = await start(['migrate'], {
      ...secretEnv(),
      DATABASE_URL: databaseUrl('chronicle_secrets', exportPort),
    });
    expect((await noDb.exited).code).toBe(1);
    written.push({ what: 'migrate, no server', text: noDb.output() });

    const leaks = written.flatMap(({ what, text }) =>
      SECRETS.flatMap((s) =>
        [s, encodeURIComponent(s)].filter((form) => text.includes(form)).map(() => `${what} holds a secret`),
      ),
    );
    expect(leaks).toEqual([]);
    // The search covered a real run: the failures it provoked were written.
    const all = written.map((w) => w.text).join('\n');
    expect(all).toContain('NATS refused the connection');
    expect(all).toContain('span export failed');
    expect(all).toMatch(/postgres/i);
  }, 240_000);
});
