/**
 * Serializes recomputes per key across transactions and replicas. Each flush locks the keys it will
 * recompute, in one global order (class, then hash), before the statement that recomputes them: a
 * transaction that waited for the lock starts its recompute with a snapshot that includes the other's
 * commit, so the row is computed from the events of both. The locks are transaction-scoped and a hash
 * collision only serializes two unrelated keys. Traces are locked before metric keys in every flush.
 */
export const LOCK_CLASS = { trace: 1, agentDay: 2 } as const;

export const LOCK_KEYS_SQL = `
SELECT count(pg_advisory_xact_lock(s.class, s.key))::int AS locked FROM (
  SELECT DISTINCT $1::int AS class, hashtext(k) AS key FROM unnest($2::text[]) AS k ORDER BY 1, 2
) s`;
