import { afterEach, describe, expect, it, vi } from 'vitest';
import { LIFECYCLE } from '../../../src/events/lifecycle.js';
import {
  RECOMPUTE_TRACES_SQL,
  STATUS_CASE_ARMS_SQL,
  TERMINAL_EVENT_TYPES_SQL,
  TERMINAL_STATUSES_SQL,
} from '../../../src/derive/task-state.js';

const count = (text: string, part: string): number => text.split(part).length - 1;

describe('task-state SQL from the lifecycle table', () => {
  afterEach(() => {
    vi.doUnmock('../../../src/events/lifecycle.js');
    vi.resetModules();
  });

  it('task state SQL - the generated fragments state the table', () => {
    expect(STATUS_CASE_ARMS_SQL.split('\n').map((l) => l.trim())).toEqual([
      "WHEN 'task.created' THEN 'pending'",
      "WHEN 'task.assigned' THEN 'assigned'",
      "WHEN 'task.started' THEN 'in_progress'",
      "WHEN 'task.completed' THEN 'completed'",
      "WHEN 'task.failed' THEN 'failed'",
      "WHEN 'task.timeout' THEN 'timed_out'",
    ]);
    expect(TERMINAL_EVENT_TYPES_SQL).toBe("'task.completed', 'task.failed', 'task.timeout'");
    expect(TERMINAL_STATUSES_SQL).toBe("'completed', 'failed', 'timed_out'");
  });

  it('task state SQL - the recompute statement uses the generated fragments', () => {
    expect(RECOMPUTE_TRACES_SQL).toContain(
      `CASE a.last_type\n      ${STATUS_CASE_ARMS_SQL}\n    END AS status`,
    );
    expect(RECOMPUTE_TRACES_SQL).toContain(`a.last_type IN (${TERMINAL_EVENT_TYPES_SQL}) THEN a.last_ts`);
    expect(count(RECOMPUTE_TRACES_SQL, `IN (${TERMINAL_STATUSES_SQL})`)).toBe(3);
    // No hand-written copy of the table is left: each terminal event type and each status appears only
    // where a generated fragment put it (plus the per-status metric columns of the result).
    for (const s of LIFECYCLE.filter((l) => l.terminal))
      expect(count(RECOMPUTE_TRACES_SQL, `'${s.eventType}'`), s.eventType).toBe(2);
    for (const s of LIFECYCLE.filter((l) => !l.terminal))
      expect(count(RECOMPUTE_TRACES_SQL, `'${s.status}'`), s.status).toBe(1);
  });

  it('task state SQL - follows a change of the table', async () => {
    vi.resetModules();
    vi.doMock('../../../src/events/lifecycle.js', () => ({
      LIFECYCLE: [
        { eventType: 'job.queued', rank: 0, status: 'pending', terminal: false },
        { eventType: "job.o'k", rank: 1, status: 'completed', terminal: true },
      ],
      TERMINAL_STATUSES: ['completed'],
    }));
    const changed = await import('../../../src/derive/task-state.js');
    expect(changed.STATUS_CASE_ARMS_SQL).toBe(
      "WHEN 'job.queued' THEN 'pending'\n      WHEN 'job.o''k' THEN 'completed'",
    );
    expect(changed.RECOMPUTE_TRACES_SQL).toContain("a.last_type IN ('job.o''k') THEN a.last_ts");
    expect(changed.RECOMPUTE_TRACES_SQL).not.toContain("'task.timeout'");
    expect(count(changed.RECOMPUTE_TRACES_SQL, "IN ('completed')")).toBe(3);
  });
});
