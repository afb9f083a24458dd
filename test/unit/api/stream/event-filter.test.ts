import { describe, expect, it } from 'vitest';
import { compileEventFilter } from '../../../../src/api/stream/event-filter.js';
import { committed } from './fake-store.js';

describe('stream event filter', () => {
  const e = committed(
    5,
    1,
    {
      trace_id: 'task-42',
      event_type: 'task.failed',
      source: 'agent-a',
      timestamp: new Date('2026-03-01T10:00:00.500Z'),
    },
    'agent-a',
    true,
  );

  it('no filter lets everything through', () => {
    expect(compileEventFilter({})(e)).toBe(true);
  });

  it('each filter is an exact match, prefix literal, since inclusive, until exclusive', () => {
    const cases: [Parameters<typeof compileEventFilter>[0], boolean][] = [
      [{ trace_id: 'task-42' }, true],
      [{ trace_id: 'task-4' }, false],
      [{ trace_prefix: 'task-4' }, true],
      [{ trace_prefix: 'task-42' }, true],
      [{ trace_prefix: 'task-420' }, false],
      [{ trace_prefix: 'task.' }, false],
      [{ event_type: 'task.failed' }, true],
      [{ event_type: 'task' }, false],
      [{ source: 'agent-a' }, true],
      [{ source: 'Agent-a' }, false],
      [{ since: '2026-03-01T10:00:00.500Z' }, true],
      [{ since: '2026-03-01T10:00:00.501Z' }, false],
      [{ until: '2026-03-01T10:00:00.501Z' }, true],
      [{ until: '2026-03-01T10:00:00.500Z' }, false],
      [{ agent: 'agent-a' }, true],
      [{ agent: 'agent-b' }, false],
      [{ errors: true }, true],
      [{ errors: false }, false],
      [{ agent: 'agent-a', errors: true, event_type: 'task.failed' }, true],
      [{ agent: 'agent-a', errors: true, event_type: 'task.completed' }, false],
    ];
    for (const [filter, expected] of cases)
      expect(compileEventFilter(filter)(e), JSON.stringify(filter)).toBe(expected);
  });

  it('agent and errors test what Postgres computed for the row, never the metadata again', () => {
    const noAgent = committed(5, 2, { metadata: { agent: 'agent-a', error: 'x' } }, null, false);
    expect(compileEventFilter({ agent: 'agent-a' })(noAgent)).toBe(false);
    expect(compileEventFilter({ errors: true })(noAgent)).toBe(false);
    expect(compileEventFilter({ errors: false })(noAgent)).toBe(true);
  });
});
