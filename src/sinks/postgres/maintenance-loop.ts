import type pg from 'pg';
import type { Component } from '../../pipeline/contracts.js';
import type { Logger } from '../../telemetry/logger.js';
import type { Metrics } from '../../telemetry/metrics.js';
import {
  type MaintenanceOptions,
  type MaintenanceReport,
  TRIMMED_TABLES,
  runMaintenancePass,
} from './partition-maintenance.js';

export interface MaintenanceLoopOptions extends MaintenanceOptions {
  /** Pause between two passes; 0: no scheduled pass (only `runNow`). */
  intervalMillis: number;
  /** Delay of the first pass after start. */
  firstDelayMillis: number;
}

export interface MaintenanceLoopDeps {
  pool: pg.Pool;
  logger: Logger;
  metrics: Metrics;
}

/** The scheduled maintenance (README: Retention): a Component, plus a pass on demand. */
export interface MaintenanceLoop extends Component {
  /** Runs one pass now (after the one running, if any); its report. */
  runNow(): Promise<MaintenanceReport>;
}

/** Counts and logs what a pass did. */
export function recordPass(report: MaintenanceReport, deps: { logger: Logger; metrics: Metrics }): void {
  const { logger, metrics } = deps;
  if (!report.ran) {
    metrics.maintenancePasses.inc({ result: 'skipped' });
    logger.debug('maintenance skipped: another replica holds its lock');
    return;
  }
  metrics.maintenancePasses.inc({ result: report.errors.length > 0 ? 'failed' : 'done' });
  metrics.maintenancePartitions.inc({ action: 'created' }, report.partitionsCreated.length);
  metrics.maintenancePartitions.inc({ action: 'dropped' }, report.partitionsDropped.length);
  for (const table of TRIMMED_TABLES) {
    const n = report.trimmed[table] + (table === 'swarm_events' ? report.rowsDropped : 0);
    metrics.maintenanceRowsTrimmed.inc({ table }, n);
  }
  metrics.maintenanceSeconds.observe(report.durationMillis / 1000);
  if (report.errors.length === 0) metrics.maintenanceLastSuccess.set(Date.now() / 1000);
  const summary = {
    partitionsCreated: report.partitionsCreated,
    rowsMoved: report.rowsMoved,
    partitionsDropped: report.partitionsDropped,
    rowsDropped: report.rowsDropped,
    trimmed: report.trimmed,
    flushesHeldMillis: report.flushesHeldMillis,
    durationMillis: report.durationMillis,
  };
  if (report.errors.length > 0)
    logger.warn({ ...summary, errors: report.errors }, 'maintenance pass incomplete');
  else logger.info(summary, 'maintenance pass done');
}

/**
 * Runs a maintenance pass shortly after start and then every intervalMillis. States: idle → scheduled
 * (a timer) → running (a pass) → scheduled …; shutdown clears the timer and waits for a running pass
 * until the deadline (a pass is a series of short transactions; what it did is committed).
 */
export function createMaintenanceLoop(
  options: MaintenanceLoopOptions,
  deps: MaintenanceLoopDeps,
): MaintenanceLoop {
  const { pool, logger, metrics } = deps;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // Passes run one after the other, scheduled or on demand.
  let running: Promise<unknown> = Promise.resolve();

  function runPass(): Promise<MaintenanceReport> {
    const pass = running.then(async () => {
      try {
        const report = await runMaintenancePass(pool, options);
        recordPass(report, { logger, metrics });
        return report;
      } catch (err) {
        metrics.maintenancePasses.inc({ result: 'failed' });
        logger.warn({ err }, 'maintenance pass failed; retried at the next one');
        throw err;
      }
    });
    running = pass.catch(() => undefined);
    return pass;
  }

  function schedule(delayMillis: number): void {
    if (stopped || options.intervalMillis === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      void runPass()
        .catch(() => undefined)
        .finally(() => schedule(options.intervalMillis));
    }, delayMillis);
    timer.unref();
  }

  return {
    name: 'maintenance',
    start() {
      if (!stopped && timer === undefined) schedule(options.firstDelayMillis);
      return Promise.resolve();
    },
    async shutdown(deadline) {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await new Promise<void>((resolve) => {
        if (deadline.aborted) return resolve();
        deadline.addEventListener('abort', () => resolve(), { once: true });
        void running.then(() => resolve());
      });
    },
    runNow: runPass,
  };
}
