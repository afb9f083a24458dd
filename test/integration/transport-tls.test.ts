/**
 * Chronicle over secured connections, as a process: PostgreSQL that only takes TLS (password and
 * client-certificate logins, verified against a CA the test made), and nats-server with TLS (client
 * certificates verified), users, NKeys and tokens. The servers are the test's own, on free ports.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ConnectionOptions,
  credsAuthenticator,
  nkeyAuthenticator,
  nkeys,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
} from 'nats';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { buildDist } from '../support/build.js';
import { waitFor } from '../support/chronicle.js';
import { type TestDatabase, createTestDatabase } from '../support/db.js';
import {
  type Certificates,
  type CliProcess,
  type TestNatsServer,
  type TlsPostgres,
  connectNats,
  makeCertificates,
  makeOperatorSetup,
  startCli,
  startNatsServer,
  startTlsPostgres,
  untilOutput,
  untilReady,
} from '../support/secure-servers.js';
import { describeWithPostgres } from '../support/services.js';

const PASSWORD = `pg-pw-${randomBytes(8).toString('hex')}`;
const NATS_PASSWORD = `nats-pw-${randomBytes(8).toString('hex')}`;
const NATS_TOKEN = `nats-tok-${randomBytes(8).toString('hex')}`;

interface KeyPair {
  getSeed(): Uint8Array;
  getPublicKey(): string;
}
const nkeyUser = (nkeys as { createUser(): KeyPair }).createUser();
const NKEY_SEED = new TextDecoder().decode(nkeyUser.getSeed());

let certs: Certificates;
let postgres: TlsPostgres;
const running: CliProcess[] = [];

function event(traceId: string): CanonicalEvent {
  return {
    event_id: randomUUID(),
    trace_id: traceId,
    source: 'transport-test',
    event_type: 'agent.heartbeat',
    timestamp: new Date().toISOString(),
    metadata: { agent_id: 'agent-tls' },
  };
}

async function start(args: string[], env: Record<string, string>): Promise<CliProcess> {
  const proc = await startCli(args, { LOG_LEVEL: 'debug', ...env });
  running.push(proc);
  return proc;
}

async function eventsOf(proc: CliProcess, traceId: string): Promise<number> {
  const res = await fetch(`${proc.url}/api/v1/events?trace_id=${traceId}`);
  return ((await res.json()) as { items: unknown[] }).items.length;
}

function tlsUrl(database: string, params: Record<string, string>, user = `chronicle:${PASSWORD}`): string {
  return `postgres://${user}@127.0.0.1:${postgres.port}/${database}?${new URLSearchParams(params).toString()}`;
}

beforeAll(async () => {
  buildDist();
  certs = makeCertificates('certuser');
  postgres = await startTlsPostgres(certs, PASSWORD);
}, 120_000);

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
});

afterAll(async () => {
  await postgres?.stop();
  if (certs) rmSync(certs.dir, { recursive: true, force: true });
});

describeWithPostgres('postgres over TLS', () => {
  it('postgres - migrates, ingests and is ready over verify-full TLS with a password', async () => {
    // The database does not exist yet: creating it goes through /postgres with the same TLS parameters.
    const proc = await start(['serve'], {
      DATABASE_URL: tlsUrl('chronicle_tls_pw', { sslmode: 'verify-full', sslrootcert: certs.caCert }),
      NATS_URL: 'none',
    });
    await untilReady(proc);
    const traceId = `tls-${randomUUID()}`;
    const res = await fetch(`${proc.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event(traceId)),
    });
    expect(res.status).toBeLessThan(300);
    expect(await eventsOf(proc, traceId)).toBe(1);
    const health = (await (await fetch(`${proc.url}/api/v1/health`)).json()) as {
      dependencies: Record<string, { state: string }>;
    };
    expect(health.dependencies.postgres?.state).toBe('up');
    expect(proc.output()).not.toContain(PASSWORD);
  });

  it('postgres - a client certificate logs in (sslcert, sslkey): migrate, then serve', async () => {
    const url = tlsUrl(
      'chronicle_tls_cert',
      {
        sslmode: 'verify-full',
        sslrootcert: certs.caCert,
        sslcert: certs.clientCert,
        sslkey: certs.clientKey,
      },
      'certuser',
    );
    const migrate = await start(['migrate'], { DATABASE_URL: url });
    expect(await migrate.exited, migrate.output()).toEqual({ code: 0, signal: null });
    const proc = await start(['serve'], { DATABASE_URL: url, NATS_URL: 'none' });
    await untilReady(proc);
  });

  it('postgres - a server certificate the given CA did not sign is refused with a clear error', async () => {
    const migrate = await start(['migrate'], {
      DATABASE_URL: tlsUrl('chronicle_tls_pw', { sslmode: 'verify-full', sslrootcert: certs.otherCaCert }),
    });
    const exit = await migrate.exited;
    expect(exit.code).toBe(1);
    expect(migrate.output()).toMatch(/self-signed certificate in certificate chain|unable to verify/);
    expect(migrate.output()).not.toContain(PASSWORD);
  });

  it('postgres - without TLS the server refuses, and says so', async () => {
    const migrate = await start(['migrate'], {
      DATABASE_URL: tlsUrl('chronicle_tls_pw', { sslmode: 'disable' }),
    });
    expect((await migrate.exited).code).toBe(1);
    expect(migrate.output()).toMatch(/no encryption/);
    expect(migrate.output()).not.toContain(PASSWORD);
  });

  it('postgres - a missing sslrootcert file is named in the error', async () => {
    const missing = join(certs.dir, 'missing-ca.crt');
    const migrate = await start(['migrate'], {
      DATABASE_URL: tlsUrl('chronicle_tls_pw', { sslmode: 'verify-full', sslrootcert: missing }),
    });
    expect((await migrate.exited).code).toBe(1);
    expect(migrate.output()).toContain(missing);
  });
});

describeWithPostgres('nats with authentication and TLS', () => {
  let database: TestDatabase;
  let secured: TestNatsServer;
  let tokenServer: TestNatsServer;
  const clientTls = (): { tls: ConnectionOptions['tls'] } => ({
    tls: { caFile: certs.caCert, certFile: certs.clientCert, keyFile: certs.clientKey },
  });
  const tlsEnv = (): Record<string, string> => ({
    NATS_CA: certs.caCert,
    NATS_CERT: certs.clientCert,
    NATS_KEY: certs.clientKey,
  });

  beforeAll(async () => {
    database = await createTestDatabase({ migrate: true });
    secured = await startNatsServer(
      [
        `tls { cert_file: "${certs.serverCert}", key_file: "${certs.serverKey}", ca_file: "${certs.caCert}", verify: true }`,
        `authorization { users = [ { user: alice, password: "${NATS_PASSWORD}" }, { nkey: ${nkeyUser.getPublicKey()} } ] }`,
      ].join('\n'),
    );
    tokenServer = await startNatsServer(`authorization { token: "${NATS_TOKEN}" }`);
  }, 60_000);

  afterAll(async () => {
    await secured?.stop();
    await tokenServer?.stop();
    await database?.drop();
  });

  /** Starts Chronicle on NATS with `env`, publishes one event with `client`, and waits until it is stored. */
  async function consumesOver(env: Record<string, string>, client: ConnectionOptions): Promise<CliProcess> {
    const proc = await start(['serve'], { DATABASE_URL: database.url, ...env });
    await untilReady(proc);
    const nc = await connectNats(client);
    try {
      const traceId = `nats-${randomUUID()}`;
      await nc.jetstream().publish('swarm.agent.heartbeat', JSON.stringify(event(traceId)));
      await waitFor(async () => (await eventsOf(proc, traceId)) === 1, 15_000, 'the event to be stored');
    } finally {
      await nc.close();
    }
    for (const secret of [NATS_PASSWORD, NATS_TOKEN, NKEY_SEED]) expect(proc.output()).not.toContain(secret);
    return proc;
  }

  it('nats - user and password (NATS_USER, NATS_PASSWORD) over TLS with a client certificate', async () => {
    const url = `nats://127.0.0.1:${secured.port}`;
    await consumesOver(
      { NATS_URL: url, NATS_USER: 'alice', NATS_PASSWORD, ...tlsEnv() },
      { servers: url, authenticator: usernamePasswordAuthenticator('alice', NATS_PASSWORD), ...clientTls() },
    );
  });

  it('nats - user and password in NATS_URL, logged and served without them', async () => {
    const bare = `tls://127.0.0.1:${secured.port}`;
    const proc = await consumesOver(
      { NATS_URL: `tls://alice:${encodeURIComponent(NATS_PASSWORD)}@127.0.0.1:${secured.port}`, ...tlsEnv() },
      { servers: bare, authenticator: usernamePasswordAuthenticator('alice', NATS_PASSWORD), ...clientTls() },
    );
    expect(proc.output()).toContain(`consuming from ${bare}`);
  });

  it('nats - NKey seed (NATS_NKEY_SEED) and NKey seed file (NATS_NKEY)', async () => {
    const url = `nats://127.0.0.1:${secured.port}`;
    const client = { servers: url, authenticator: nkeyAuthenticator(nkeyUser.getSeed()), ...clientTls() };
    await consumesOver({ NATS_URL: url, NATS_NKEY_SEED: NKEY_SEED, ...tlsEnv() }, client);
    const seedFile = join(certs.dir, 'user.nk');
    writeFileSync(seedFile, `${NKEY_SEED}\n`, { mode: 0o600 });
    await consumesOver({ NATS_URL: url, NATS_NKEY: seedFile, ...tlsEnv() }, client);
  });

  it('nats - token (NATS_TOKEN, and nats://token@host)', async () => {
    const url = `nats://127.0.0.1:${tokenServer.port}`;
    const client = { servers: url, authenticator: tokenAuthenticator(NATS_TOKEN) };
    await consumesOver({ NATS_URL: url, NATS_TOKEN }, client);
    await consumesOver({ NATS_URL: `nats://${NATS_TOKEN}@127.0.0.1:${tokenServer.port}` }, client);
  });

  it('nats - credentials file (NATS_CREDS: user JWT and seed) on a server in operator mode', async () => {
    const { serverConfig, creds } = makeOperatorSetup();
    const server = await startNatsServer(serverConfig);
    try {
      const credsFile = join(certs.dir, 'chronicle.creds');
      writeFileSync(credsFile, creds, { mode: 0o600 });
      const url = `nats://127.0.0.1:${server.port}`;
      const proc = await consumesOver(
        { NATS_URL: url, NATS_CREDS: credsFile },
        { servers: url, authenticator: credsAuthenticator(new TextEncoder().encode(creds)) },
      );
      const seed = /SU[A-Z0-9]+/.exec(creds)?.[0] ?? '';
      expect(seed).not.toBe('');
      expect(proc.output()).not.toContain(seed);
      await proc.stop();
    } finally {
      await server.stop();
    }
  });

  it('nats - chronicle simulate publishes with the same variables (NATS_TOKEN; user and password in --url)', async () => {
    const url = `nats://127.0.0.1:${tokenServer.port}`;
    const proc = await consumesOver(
      { NATS_URL: url, NATS_TOKEN },
      { servers: url, authenticator: tokenAuthenticator(NATS_TOKEN) },
    );
    const simulate = await start(
      [
        'simulate',
        '--target',
        'nats',
        '--count',
        '40',
        '--seed',
        '7',
        '--quiet',
        '--verify',
        '--api-url',
        proc.url,
      ],
      { NATS_URL: url, NATS_TOKEN },
    );
    expect(await simulate.exited, simulate.output()).toEqual({ code: 0, signal: null });
    expect(simulate.output()).not.toContain(NATS_TOKEN);
    const refused = await start(
      [
        'simulate',
        '--target',
        'nats',
        '--count',
        '5',
        '--quiet',
        '--url',
        `nats://alice:${NATS_PASSWORD}@127.0.0.1:${tokenServer.port}`,
      ],
      {},
    );
    expect((await refused.exited).code).toBe(1);
    expect(refused.output()).toMatch(
      /could not connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*[Aa]uthorization/,
    );
    expect(refused.output()).not.toContain(NATS_PASSWORD);
  });

  it('nats - a wrong password is reported as refused credentials, without the password', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const proc = await start(['serve'], {
      DATABASE_URL: database.url,
      NATS_URL: `nats://127.0.0.1:${secured.port}`,
      NATS_USER: 'alice',
      NATS_PASSWORD: wrong,
      ...tlsEnv(),
    });
    await untilOutput(proc, 'NATS refused the connection (check the NATS credentials)');
    const ready = await fetch(`${proc.url}/ready`);
    expect(ready.status).toBe(503);
    const health = (await (await fetch(`${proc.url}/api/v1/health`)).json()) as {
      dependencies: Record<string, { state: string; detail?: string }>;
    };
    expect(health.dependencies.nats).toEqual({
      state: 'down',
      detail: 'connecting (refused: check the NATS credentials)',
    });
    expect(proc.output()).not.toContain(wrong);
  });

  it('nats - without a client certificate the TLS server turns Chronicle away', async () => {
    const proc = await start(['serve'], {
      DATABASE_URL: database.url,
      NATS_URL: `nats://127.0.0.1:${secured.port}`,
      NATS_USER: 'alice',
      NATS_PASSWORD,
      NATS_CA: certs.caCert,
    });
    // Under TLS 1.3 the server checks the client certificate after the handshake and just hangs up: the
    // client sees its connect time out (20 s), not a refusal.
    await untilOutput(proc, /NATS (refused the connection|unreachable)/, 40_000);
    expect((await fetch(`${proc.url}/ready`)).status).toBe(503);
    expect(proc.output()).not.toContain(NATS_PASSWORD);
  }, 70_000);
});
