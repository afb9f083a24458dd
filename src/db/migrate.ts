import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from '../telemetry/logger.js';
import { withTransaction } from './transaction.js';

/** The repository's migrations/ folder, found from both src/ (tsx, vitest) and dist/. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

// Any constant works; it only has to be the same for every Chronicle process.
const MIGRATION_LOCK_KEY = 0x6368726f; // "chro"

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(new URL(file, `file://${dir}`), 'utf8');
      return {
        version: Number(file.slice(0, 4)),
        name: file.replace(/\.sql$/, ''),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    }),
  );
}

/**
 * Applies pending migrations, each in its own transaction under an advisory lock, so concurrent
 * Chronicle replicas starting together apply each migration exactly once.
 * Fails when an applied migration's file has changed since.
 */
export async function migrate(pool: pg.Pool, logger: Logger, dir?: string): Promise<number[]> {
  const migrations = await loadMigrations(dir);
  // Each migration commits on its own, so the locks one takes (0008 locks swarm_events) are held for
  // that migration only, not while the next ones run; a failing one leaves those before it applied.
  // Other replicas may be writing meanwhile (a rolling upgrade): a migration that needs ACCESS EXCLUSIVE
  // on a table they write takes it with its first statement on that table, never after a weaker lock
  // on it (0015: a writer that had read the table deadlocked with the upgrade of a SHARE lock).
  const applied = await withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS chronicle_migrations (
      version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    return appliedChecksums(client, migrations);
  });
  const done: number[] = [];
  for (const m of migrations) {
    if (applied.has(m.version)) continue;
    const ran = await withTransaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      // Another replica may have applied it since.
      if ((await appliedChecksums(client, [m])).has(m.version)) return false;
      await client.query(m.sql);
      await client.query('INSERT INTO chronicle_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        m.checksum,
      ]);
      return true;
    });
    if (!ran) continue;
    done.push(m.version);
    logger.info({ migration: m.name }, 'migration applied');
  }
  return done;
}

/** The applied migrations among `migrations`; throws when one's file changed after it was applied. */
async function appliedChecksums(
  client: pg.ClientBase,
  migrations: readonly Migration[],
): Promise<Set<number>> {
  const { rows } = await client.query<{ version: number; checksum: string }>(
    'SELECT version, checksum FROM chronicle_migrations WHERE version = ANY($1)',
    [migrations.map((m) => m.version)],
  );
  const checksums = new Map(rows.map((r) => [r.version, r.checksum]));
  for (const m of migrations) {
    const checksum = checksums.get(m.version);
    if (checksum !== undefined && checksum !== m.checksum) {
      throw new Error(`migration ${m.name} changed after it was applied`);
    }
  }
  return new Set(checksums.keys());
}

/** True when every migration in the folder is recorded as applied. */
export async function migrationsApplied(pool: pg.Pool, dir?: string): Promise<boolean> {
  const migrations = await loadMigrations(dir);
  const { rows } = await pool.query<{ version: number }>(`SELECT version FROM chronicle_migrations`);
  const applied = new Set(rows.map((r) => r.version));
  return migrations.every((m) => applied.has(m.version));
}

/** Creates the configured database when the server says it does not exist, so a first run just works. */
export async function ensureDatabase(pool: pg.Pool, databaseUrl: string, logger: Logger): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err;
    const target = new URL(databaseUrl);
    const name = decodeURIComponent(target.pathname.slice(1));
    target.pathname = '/postgres';
    const admin = new pg.Client({ connectionString: target.toString() });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      logger.info({ database: name }, 'database created');
    } catch (createErr) {
      // 42P04: another replica created it first.
      if ((createErr as { code?: string }).code !== '42P04') throw createErr;
    } finally {
      await admin.end();
    }
  }
}
