import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  LIFECYCLE,
  LIFECYCLE_RANK,
  LIFECYCLE_STATUS,
  TERMINAL_STATUSES,
  TERMINAL_STATUS_OF,
  isTerminalStatus,
} from '../../../src/events/lifecycle.js';

const MIGRATIONS = path.resolve(import.meta.dirname, '../../../migrations');

/** The WHEN arms of the last definition of chronicle_lifecycle_rank in the migrations, in order. */
function migratedRanks(): [string, number][] {
  let body: string | undefined;
  for (const file of readdirSync(MIGRATIONS)
    .filter((f) => f.endsWith('.sql'))
    .sort()) {
    const sql = readFileSync(path.join(MIGRATIONS, file), 'utf8');
    const defs = sql.match(/CREATE (?:OR REPLACE )?FUNCTION chronicle_lifecycle_rank\b[\s\S]*?\bEND;/g);
    if (defs) body = defs.at(-1);
  }
  if (body === undefined) throw new Error('no chronicle_lifecycle_rank in migrations/');
  return [...body.matchAll(/WHEN '((?:[^']|'')*)' THEN (\d+)/g)].map((m) => [
    m[1]!.replaceAll("''", "'"),
    Number(m[2]),
  ]);
}

describe('lifecycle table', () => {
  it('lifecycle - states the rules of issue 3', () => {
    expect(LIFECYCLE.map((s) => [s.eventType, s.rank, s.status, s.terminal])).toEqual([
      ['task.created', 0, 'pending', false],
      ['task.assigned', 1, 'assigned', false],
      ['task.started', 2, 'in_progress', false],
      ['task.completed', 3, 'completed', true],
      ['task.failed', 3, 'failed', true],
      ['task.timeout', 3, 'timed_out', true],
    ]);
  });

  it('lifecycle - event types and statuses are unique, ranks never decrease, terminal steps rank last', () => {
    expect(new Set(LIFECYCLE.map((s) => s.eventType)).size).toBe(LIFECYCLE.length);
    expect(new Set(LIFECYCLE.map((s) => s.status)).size).toBe(LIFECYCLE.length);
    const ranks = LIFECYCLE.map((s) => s.rank);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    const maxRank = Math.max(...ranks);
    for (const s of LIFECYCLE) expect(s.terminal, s.eventType).toBe(s.rank === maxRank);
  });

  it('lifecycle - the lookups agree with the table', () => {
    for (const s of LIFECYCLE) {
      expect(LIFECYCLE_RANK[s.eventType]).toBe(s.rank);
      expect(LIFECYCLE_STATUS[s.eventType]).toBe(s.status);
      expect(TERMINAL_STATUS_OF[s.eventType]).toBe(s.terminal ? s.status : undefined);
      expect(isTerminalStatus(s.status)).toBe(s.terminal);
    }
    expect(TERMINAL_STATUSES).toEqual(['completed', 'failed', 'timed_out']);
    expect(Object.keys(LIFECYCLE_RANK)).toEqual(LIFECYCLE.map((s) => s.eventType));
  });

  it('lifecycle - other event types, prototype names included, are not lifecycle events', () => {
    for (const type of [
      'agent.heartbeat',
      'dlq.entry',
      'task.created ',
      'constructor',
      'toString',
      '__proto__',
    ]) {
      expect(LIFECYCLE_RANK[type], type).toBeUndefined();
      expect(LIFECYCLE_STATUS[type], type).toBeUndefined();
      expect(TERMINAL_STATUS_OF[type], type).toBeUndefined();
    }
    expect(isTerminalStatus(null)).toBe(false);
    expect(isTerminalStatus('in_progress')).toBe(false);
  });

  it('lifecycle - the lookups cannot be changed', () => {
    expect(Object.isFrozen(LIFECYCLE_RANK)).toBe(true);
    expect(Object.isFrozen(LIFECYCLE_STATUS)).toBe(true);
    expect(Object.isFrozen(TERMINAL_STATUS_OF)).toBe(true);
    expect(Object.isFrozen(TERMINAL_STATUSES)).toBe(true);
  });

  it('lifecycle - the SQL function chronicle_lifecycle_rank of the migrations gives the same ranks', () => {
    expect(migratedRanks()).toEqual(LIFECYCLE.map((s) => [s.eventType, s.rank]));
  });
});
