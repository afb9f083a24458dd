import { describe, expect, it } from 'vitest';
import { describeFailure } from '../../../src/cli/failure.js';

describe('cli - describeFailure', () => {
  it('cli - an error and its causes on one line, a repeated message once', () => {
    const root = new Error('connect ECONNREFUSED 127.0.0.1:5432');
    const err = new Error('could not read the spans', { cause: new Error('pool failed', { cause: root }) });
    expect(describeFailure(err)).toBe(
      'could not read the spans: pool failed: connect ECONNREFUSED 127.0.0.1:5432',
    );
    expect(describeFailure(new Error('boom', { cause: new Error('boom') }))).toBe('boom');
  });

  it('cli - values that are not errors, even ones JSON cannot write, are described without throwing', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(describeFailure('plain')).toBe('plain');
    expect(describeFailure({ code: 7 })).toBe('{"code":7}');
    expect(describeFailure(circular)).toBe('object');
    expect(describeFailure(10n)).toBe('bigint');
    expect(describeFailure(undefined)).toBe('failed');
  });
});
