import { snakeCaseKeys } from '../api/snake-case.js';
import type { Config } from '../config.js';
import { migrationsApplied } from '../db/migrate.js';
import { createPool, endPool } from '../db/pool.js';
import {
  DEFAULT_MAINTENANCE_OPTIONS,
  type MaintenanceReport,
  TRIMMED_TABLES,
  runMaintenancePass,
} from '../sinks/postgres/partition-maintenance.js';
import { DEFAULT_RETENTION } from '../sinks/postgres/retention-policy.js';
import { createLogger } from '../telemetry/logger.js';
import { openDatabaseForCommand } from './database.js';

/** The report as lines a person reads. */
export function formatReport(report: MaintenanceReport): string {
  if (!report.ran) return 'chronicle maintain: another process is running maintenance; nothing done\n';
  const lines = [`chronicle maintain: pass done in ${report.durationMillis} ms`];
  const list = (names: string[]): string => (names.length > 0 ? `: ${names.join(', ')}` : '');
  lines.push(
    `  partitions created: ${report.partitionsCreated.length}${list(report.partitionsCreated)}` +
      (report.rowsMoved > 0 ? ` (${report.rowsMoved} rows moved from the default partition)` : ''),
  );
  lines.push(
    `  partitions dropped: ${report.partitionsDropped.length}${list(report.partitionsDropped)}` +
      (report.rowsDropped > 0 ? ` (${report.rowsDropped} events)` : ''),
  );
  if (report.flushesHeldMillis > 0) {
    lines.push(`  flushes held back at most ${report.flushesHeldMillis} ms (write gate, all replicas)`);
  }
  if (report.pinsRefreshed > 0) lines.push(`  pinned tasks copied again first: ${report.pinsRefreshed}`);
  lines.push(`  rows trimmed: ${TRIMMED_TABLES.map((t) => `${t} ${report.trimmed[t]}`).join(', ')}`);
  for (const error of report.errors) lines.push(`  not done (retried next pass): ${error}`);
  return `${lines.join('\n')}\n`;
}

/**
 * `chronicle maintain`: one maintenance pass now (README: Retention) against DATABASE_URL, or the
 * embedded server of a running `chronicle serve`; prints what it created, dropped and trimmed. Exit 0
 * when the pass ran and every step succeeded, 1 otherwise (another process holding the lock included).
 */
export async function maintainCommand(baseConfig: Config, options: { json: boolean }): Promise<number> {
  const logger = createLogger({ level: baseConfig.logLevel, secrets: baseConfig.secrets ?? [] });
  const database = await openDatabaseForCommand(baseConfig, logger, { share: true, create: false });
  const { config } = database;
  const pool = createPool({ connectionString: config.databaseUrl, maxConnections: 2 });
  try {
    if (!(await migrationsApplied(pool))) {
      process.stderr.write('chronicle maintain: the database is not migrated; run chronicle migrate first\n');
      return 1;
    }
    const report = await runMaintenancePass(pool, {
      ...DEFAULT_MAINTENANCE_OPTIONS,
      policy: config.retention?.policy ?? DEFAULT_RETENTION,
      spansExported: config.export !== undefined,
    });
    process.stdout.write(options.json ? `${JSON.stringify(snakeCaseKeys(report))}\n` : formatReport(report));
    return report.ran && report.errors.length === 0 ? 0 : 1;
  } finally {
    await endPool(pool);
    await database.stop();
  }
}
