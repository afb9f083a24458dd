import type pg from 'pg';
import { DEFAULT_PARTITION, listDayPartitions } from './partition-maintenance.js';
import { type RetentionPolicy, eventsHorizon } from './retention-policy.js';

/** One partition of swarm_events, as GET /api/v1/retention shows it. */
export interface PartitionStatus {
  name: string;
  /** [from, to) in RFC 3339; both null for the default partition (every day without a partition). */
  from: string | null;
  to: string | null;
  /** Postgres's estimate (pg_class.reltuples, refreshed by (auto)vacuum and analyze); 0 when unknown. */
  rowsEstimate: number;
  /** Table, indexes and TOAST. */
  bytes: number;
}

/** The body of GET /api/v1/retention (a `pinned` count can sit beside `partitions`). */
export interface RetentionStatus {
  /** Days each kind of row is kept; 0: forever. */
  policy: RetentionPolicy;
  /** Events before this time are dropped at the next pass; null when events are kept forever. */
  eventsHorizon: string | null;
  /** Day partitions oldest first, then the default partition. */
  partitions: PartitionStatus[];
}

/** Reads the partitions of swarm_events with their sizes (catalog reads: no table is scanned). */
export async function readRetentionStatus(
  pool: pg.Pool,
  policy: RetentionPolicy,
  now: Date = new Date(),
): Promise<RetentionStatus> {
  const client = await pool.connect();
  try {
    const days = await listDayPartitions(client);
    const names = [...days.map((d) => d.name), DEFAULT_PARTITION];
    const { rows } = await client.query<{ name: string; rows: number; bytes: string }>(
      `SELECT c.relname AS name, greatest(c.reltuples, 0)::float8 AS rows, pg_total_relation_size(c.oid)::text AS bytes
       FROM pg_class c WHERE c.relname = ANY($1) AND c.relnamespace = 'public'::regnamespace`,
      [names],
    );
    const sizes = new Map(rows.map((r) => [r.name, r]));
    const status = (name: string, from: Date | null, to: Date | null): PartitionStatus => ({
      name,
      from: from?.toISOString() ?? null,
      to: to?.toISOString() ?? null,
      rowsEstimate: Math.round(sizes.get(name)?.rows ?? 0),
      bytes: Number(sizes.get(name)?.bytes ?? 0),
    });
    const horizon = eventsHorizon(policy, now);
    return {
      policy,
      eventsHorizon: horizon?.toISOString() ?? null,
      partitions: [...days.map((d) => status(d.name, d.from, d.to)), status(DEFAULT_PARTITION, null, null)],
    };
  } finally {
    client.release();
  }
}
