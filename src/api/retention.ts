import express from 'express';
import type { MaintenanceReport } from '../sinks/postgres/partition-maintenance.js';
import type { RetentionStatus } from '../sinks/postgres/retention-status.js';
import { parseParams, querySchemas } from './params.js';
import { snakeCaseKeys } from './snake-case.js';

export interface RetentionRoutesDeps {
  /** The policy and the partitions of swarm_events (src/sinks/postgres/retention-status.ts). */
  status(): Promise<RetentionStatus>;
  /** How many tasks are pinned (src/sinks/postgres/archive.ts). */
  pinned(): Promise<number>;
  /** Runs one maintenance pass now (after the one running, if any). */
  runNow(): Promise<MaintenanceReport>;
}

/**
 * GET /api/v1/retention: the retention policy, the partitions of swarm_events and the pinned count.
 * POST /api/v1/retention/run: one maintenance pass now; answers its report (200), or 409 when another
 * replica's pass holds the maintenance lock (nothing was done).
 */
export function createRetentionRoutes(deps: RetentionRoutesDeps): express.Router {
  const router = express.Router();
  router.get('/api/v1/retention', async (req, res) => {
    parseParams(querySchemas.none, req.query);
    const [status, pinned] = await Promise.all([deps.status(), deps.pinned()]);
    res.json(snakeCaseKeys({ ...status, pinned }));
  });
  router.post('/api/v1/retention/run', async (req, res) => {
    parseParams(querySchemas.none, req.query);
    const report = await deps.runNow();
    if (!report.ran) {
      res.status(409).json({
        error: 'busy',
        message: 'another replica is running maintenance; retry later',
      });
      return;
    }
    res.json(snakeCaseKeys(report));
  });
  return router;
}
