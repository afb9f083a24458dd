/**
 * Serializes recomputes per key across transactions and replicas. Each flush locks the keys it will
 * recompute, in one global order (class, then bucket), before the statement that recomputes them: a
 * transaction that waited for the lock starts its recompute with a snapshot that includes the other's
 * commit, so the row is computed from the events of both. The locks are transaction-scoped. Traces are
 * locked before metric keys in every flush.
 *
 * Keys are hashed into LOCK_BUCKETS buckets per class: every advisory lock takes a slot in Postgres's
 * shared lock table (max_locks_per_transaction × max_connections, 6,400 by default), and a flush of
 * thousands of distinct traces must not exhaust it. A shared bucket only serializes two recomputes.
 */
export const LOCK_CLASS = { trace: 1, agentDay: 2 } as const;

export const LOCK_BUCKETS = 1024;

export const LOCK_KEYS_SQL = `
SELECT count(pg_advisory_xact_lock(s.class, s.bucket))::int AS locked FROM (
  SELECT DISTINCT $1::int AS class, hashtext(k) & ${LOCK_BUCKETS - 1} AS bucket FROM unnest($2::text[]) AS k ORDER BY 1, 2
) s`;
