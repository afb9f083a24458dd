/**
 * The write gate (docs/adr/0011-events-partitioned-by-day.md; ADR 0015, "Maintenance under
 * saturation"): a transaction-level advisory lock that lets a partition change of maintenance stop
 * Chronicle's own flushes, on every replica, for as long as it takes its table lock and does its work.
 *
 * Every flush transaction that writes swarm_events takes the gate SHARED first thing (flushes never
 * wait for each other). A partition change (attach, drop) takes it EXCLUSIVELY before its table lock:
 * while it waits, Postgres queues every new request for the gate behind it (a shared request that
 * conflicts with a waiting one waits too), so the flushes in flight finish, no new one starts, and the
 * table lock then waits only for outside sessions (a reader, a writer that is not Chronicle), with the
 * usual short lock_timeout. Without the gate, flushes of up to a second overlapping under saturating
 * ingest always hold swarm_events, and a 250 ms wait for the table lock never succeeds.
 *
 * A flush waits for the gate only while a partition change asks for it or holds it: at most that
 * change's gate timeout (the flushes in flight that it waits for) plus its table lock wait and its work.
 */

// Any constant works; it only has to be the same for every Chronicle process. Single-key advisory locks
// in use: "chro" (migrations, src/db/migrate.ts), "main" (one maintenance pass at a time,
// partition-maintenance.ts) and this one. The two-key locks of src/derive/key-locks.ts and the span
// builder (class, bucket) are another key space.
export const WRITE_GATE_LOCK_KEY = 0x67617465; // "gate"

/** A flush: first statement of its transaction, when it writes swarm_events. */
export const ENTER_WRITE_GATE_SQL = `SELECT pg_advisory_xact_lock_shared(${WRITE_GATE_LOCK_KEY})`;

/** A partition change: before its table lock, under a lock_timeout of its own. */
export const CLOSE_WRITE_GATE_SQL = `SELECT pg_advisory_xact_lock(${WRITE_GATE_LOCK_KEY})`;
