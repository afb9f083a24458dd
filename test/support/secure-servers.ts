/**
 * Servers configured the way a secured deployment runs them, started by the test on free ports in a
 * temporary directory (the machine's shared Postgres and NATS are never touched): a certificate
 * authority made with openssl, a PostgreSQL cluster that only takes TLS, nats-server with
 * authentication and TLS. And Chronicle's built CLI as a process, with everything it wrote kept.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConnectionOptions, type NatsConnection, connect, nkeys } from 'nats';
import pg from 'pg';
import { ROOT } from './build.js';
import { sleep, waitFor } from './chronicle.js';
import { type Exit, freePort } from './process.js';

/** A CA, a server certificate for 127.0.0.1/localhost, and a client certificate, as PEM files. */
export interface Certificates {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** CN = `clientName`. */
  clientCert: string;
  clientKey: string;
  /** A CA that signed none of these: verification against it fails. */
  otherCaCert: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** Makes a self-signed CA and the certificates it signs in a new temporary directory. */
export function makeCertificates(clientName: string): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'chronicle-tls-'));
  const ca = (name: string): void => {
    openssl(dir, [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
    ]);
  };
  const signed = (name: string, cn: string, extensions: string): void => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(dir, [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    ]);
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ]);
  };
  ca('ca');
  ca('other-ca');
  signed('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  signed('client', clientName, 'extendedKeyUsage=clientAuth\n');
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), f.endsWith('.key') ? 0o600 : 0o644);
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
    otherCaCert: join(dir, 'other-ca.crt'),
  };
}

const PG_BIN = '/usr/lib/postgresql/15/bin';

/** A PostgreSQL cluster of the test's own that refuses connections without TLS. */
export interface TlsPostgres {
  port: number;
  /** A user that logs in with `password`, over TLS only. */
  user: string;
  password: string;
  /** A superuser that logs in with its client certificate (certs.clientCert: CN = its name). */
  certUser: string;
  stop(): Promise<void>;
}

/**
 * Who runs the cluster: initdb and postgres refuse to run as root, so as root the `postgres` OS user
 * (`id -u postgres`); otherwise the current user.
 */
function postgresOsUser(): { uid: number; gid: number } {
  if (process.getuid?.() !== 0) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const id = (flag: string): number =>
    Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * Starts a cluster in a temporary directory on a free port: ssl=on with the test CA's server
 * certificate, `hostssl` password (scram) and client certificate logins, `hostnossl` rejected.
 */
export async function startTlsPostgres(certs: Certificates, password: string): Promise<TlsPostgres> {
  const { uid, gid } = postgresOsUser();
  const dir = mkdtempSync(join(tmpdir(), 'chronicle-tls-pg-'));
  const data = join(dir, 'data');
  const tls = join(dir, 'tls');
  mkdirSync(tls);
  for (const [from, to] of [
    [certs.serverCert, 'server.crt'],
    [certs.serverKey, 'server.key'],
    [certs.caCert, 'ca.crt'],
  ] as const) {
    execFileSync('cp', [from, join(tls, to)]);
  }
  chmodSync(join(tls, 'server.key'), 0o600);
  execFileSync('chown', ['-R', `${uid}:${gid}`, dir]);
  chownSync(dir, uid, gid);
  const asPostgres = { uid, gid, stdio: 'pipe' as const, env: { PATH: process.env.PATH ?? '' } };
  execFileSync(`${PG_BIN}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8'], asPostgres);
  writeFileSync(
    join(data, 'pg_hba.conf'),
    [
      'local all postgres trust',
      'hostssl all certuser 127.0.0.1/32 cert',
      'hostssl all all 127.0.0.1/32 scram-sha-256',
      'hostnossl all all 0.0.0.0/0 reject',
      '',
    ].join('\n'),
  );
  chownSync(join(data, 'pg_hba.conf'), uid, gid);
  const port = await freePort();
  const server = spawn(
    `${PG_BIN}/postgres`,
    [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'ssl=on',
      '-c',
      `ssl_cert_file=${join(tls, 'server.crt')}`,
      '-c',
      `ssl_key_file=${join(tls, 'server.key')}`,
      '-c',
      `ssl_ca_file=${join(tls, 'ca.crt')}`,
      '-c',
      'password_encryption=scram-sha-256',
      '-c',
      'fsync=off',
      '-c',
      'max_connections=40',
    ],
    { ...asPostgres, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  server.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  server.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const admin = async (): Promise<pg.Client> => {
    const client = new pg.Client({ host: dir, port, user: 'postgres', database: 'postgres' });
    await client.connect();
    return client;
  };
  const client = await waitFor(() => admin(), 20_000, `the TLS PostgreSQL to start:\n${log}`);
  try {
    await client.query(`CREATE ROLE chronicle LOGIN CREATEDB PASSWORD ${pg.escapeLiteral(password)}`);
    await client.query(`CREATE ROLE certuser LOGIN SUPERUSER`);
  } finally {
    await client.end();
  }
  return {
    port,
    user: 'chronicle',
    password,
    certUser: 'certuser',
    async stop() {
      if (server.exitCode === null) server.kill('SIGQUIT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A nats-server with JetStream, started with the given configuration lines (listen and store added). */
export interface TestNatsServer {
  port: number;
  stop(): Promise<void>;
}

export async function startNatsServer(config: string): Promise<TestNatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'chronicle-nats-'));
  const port = await freePort();
  const file = join(dir, 'nats.conf');
  writeFileSync(
    file,
    `listen: "127.0.0.1:${port}"\njetstream { store_dir: "${join(dir, 'js')}" }\n${config}\n`,
  );
  const server = spawn('/usr/sbin/nats-server', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  server.stdout.on('data', (c: Buffer) => (log += c.toString()));
  server.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  await waitFor(
    () => {
      if (server.exitCode !== null) throw new Error(`nats-server exited:\n${log}`);
      return log.includes('Server is ready');
    },
    15_000,
    `nats-server to start:\n${log}`,
  );
  return {
    port,
    async stop() {
      if (server.exitCode === null) server.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Connects a test client (publishing, checking) with the given options. */
export function connectNats(options: ConnectionOptions): Promise<NatsConnection> {
  return connect({ name: 'chronicle-test', ...options });
}

/** Chronicle's CLI as a process; everything it writes is kept. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly url: string;
  output(): string;
  readonly exited: Promise<Exit>;
  /** SIGTERM, then the exit. */
  stop(): Promise<Exit>;
}

/**
 * Starts `node dist/cli/chronicle.js <args>` (dist must be built) with only PATH, HOME and `env`, on a
 * free port unless env sets CHRONICLE_PORT.
 */
export async function startCli(args: string[], env: Record<string, string>): Promise<CliProcess> {
  const port = env.CHRONICLE_PORT ?? String(await freePort());
  const child = spawn(process.execPath, ['dist/cli/chronicle.js', ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/root',
      CHRONICLE_HOST: '127.0.0.1',
      CHRONICLE_PORT: port,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Waits until the process's GET /ready answers 200, failing at once with its output if it exits. */
export async function untilReady(proc: CliProcess, timeoutMillis = 20_000): Promise<void> {
  let exit: Exit | undefined;
  void proc.exited.then((e) => (exit = e));
  await waitFor(
    async () => {
      if (exit) throw new Error(`Chronicle exited (${JSON.stringify(exit)}):\n${proc.output()}`);
      return (await fetch(`${proc.url}/ready`)).status === 200;
    },
    timeoutMillis,
    `${proc.url}/ready to answer 200`,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${proc.output()}`);
  });
}

/** Waits until `text` appears in what the process wrote. */
export async function untilOutput(
  proc: CliProcess,
  text: string | RegExp,
  timeoutMillis = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!(typeof text === 'string' ? proc.output().includes(text) : text.test(proc.output()))) {
    if (Date.now() > deadline) throw new Error(`no ${String(text)} in the output:\n${proc.output()}`);
    await sleep(50);
  }
}

interface NKeyPair {
  getPublicKey(): string;
  getSeed(): Uint8Array;
  sign(data: Uint8Array): Uint8Array;
}
const keys = nkeys as {
  createOperator(): NKeyPair;
  createAccount(): NKeyPair;
  createUser(): NKeyPair;
};

/** A NATS JWT (header.claims.signature, ed25519 by an NKey), as `nsc` writes them. */
function natsJwt(claims: Record<string, unknown>, signer: NKeyPair): string {
  const b64 = (data: string | Uint8Array): string => Buffer.from(data).toString('base64url');
  const header = b64(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
  const body: Record<string, unknown> = {
    ...claims,
    iat: Math.floor(Date.now() / 1000),
    iss: signer.getPublicKey(),
  };
  body.jti = createHash('sha256').update(JSON.stringify(body)).digest('base64').replace(/=+$/, '');
  const payload = b64(JSON.stringify(body));
  return `${header}.${payload}.${b64(signer.sign(new TextEncoder().encode(`${header}.${payload}`)))}`;
}

/**
 * Decentralized (JWT) authentication without `nsc`: an operator, a system account and an account with
 * JetStream, preloaded in a memory resolver (`serverConfig`, for startNatsServer), and the credentials
 * file of a user of that account (`creds`, its text).
 */
export function makeOperatorSetup(): { serverConfig: string; creds: string } {
  const operator = keys.createOperator();
  const system = keys.createAccount();
  const account = keys.createAccount();
  const user = keys.createUser();
  const unlimited = {
    subs: -1,
    data: -1,
    payload: -1,
    imports: -1,
    exports: -1,
    wildcards: true,
    conn: -1,
    leaf: -1,
  };
  const operatorJwt = natsJwt(
    {
      sub: operator.getPublicKey(),
      name: 'test-operator',
      nats: { type: 'operator', version: 2, system_account: system.getPublicKey() },
    },
    operator,
  );
  const accountJwt = (kp: NKeyPair, name: string, jetstream: boolean): string =>
    natsJwt(
      {
        sub: kp.getPublicKey(),
        name,
        nats: {
          type: 'account',
          version: 2,
          limits: {
            ...unlimited,
            ...(jetstream ? { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 } : {}),
          },
        },
      },
      operator,
    );
  const userJwt = natsJwt(
    {
      sub: user.getPublicKey(),
      name: 'chronicle',
      nats: { type: 'user', version: 2, pub: {}, sub: {}, subs: -1, data: -1, payload: -1 },
    },
    account,
  );
  const seed = new TextDecoder().decode(user.getSeed());
  return {
    serverConfig: [
      `operator: ${operatorJwt}`,
      'resolver: MEMORY',
      `system_account: ${system.getPublicKey()}`,
      `resolver_preload: { ${account.getPublicKey()}: ${accountJwt(account, 'app', true)}, ${system.getPublicKey()}: ${accountJwt(system, 'SYS', false)} }`,
    ].join('\n'),
    creds: [
      '-----BEGIN NATS USER JWT-----',
      userJwt,
      '------END NATS USER JWT------',
      '',
      '-----BEGIN USER NKEY SEED-----',
      seed,
      '------END USER NKEY SEED------',
      '',
    ].join('\n'),
  };
}
