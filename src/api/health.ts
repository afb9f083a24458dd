import type { DependencyState } from '../pipeline/contracts.js';

export interface HealthReport {
  /** `ok` when ready, else `degraded`. */
  status: 'ok' | 'degraded';
  ready: boolean;
  /** Why the service is not ready; empty when ready. */
  reasons: string[];
  dependencies: Record<string, DependencyState>;
  buffer: { events: number; bytes: number; max_events: number; max_bytes: number };
  writer: { failing: boolean; consecutive_failures: number };
}

/** Computes the current health; the API calls it for /ready and /api/v1/health. */
export type HealthCheck = () => Promise<HealthReport>;
