import { describe, expect, it } from 'vitest';
import {
  comparePositions,
  formatStreamPosition,
  laterPosition,
  parseStreamPosition,
} from '../../../../src/api/stream/position.js';

describe('stream position', () => {
  it('parse - <txid>-<seq> in decimal round-trips through format, up to the xid8 and bigint maxima', () => {
    for (const id of ['0-0', '1-2', '905-17', '18446744073709551615-9223372036854775807']) {
      const position = parseStreamPosition(id);
      expect(position, id).toBeDefined();
      expect(formatStreamPosition(position!)).toBe(id);
    }
    expect(parseStreamPosition('18446744073709551615-9223372036854775807')).toEqual({
      txid: 2n ** 64n - 1n,
      seq: 2n ** 63n - 1n,
    });
  });

  it('parse - anything else is not a position', () => {
    for (const id of [
      '',
      '1',
      '1-',
      '-1',
      '1-2-3',
      '01-2',
      '1-02',
      '+1-2',
      '1.0-2',
      ' 1-2',
      '1-2 ',
      '0x1-2',
      '18446744073709551616-0',
      '0-9223372036854775808',
      '123456789012345678901-1',
    ]) {
      expect(parseStreamPosition(id), JSON.stringify(id)).toBeUndefined();
    }
  });

  it('compare - by txid, then by seq, as numbers (not as text)', () => {
    const p = (id: string) => parseStreamPosition(id)!;
    expect(comparePositions(p('9-5'), p('10-1'))).toBeLessThan(0);
    expect(comparePositions(p('10-2'), p('10-10'))).toBeLessThan(0);
    expect(comparePositions(p('10-10'), p('10-10'))).toBe(0);
    expect(comparePositions(p('11-0'), p('10-99'))).toBeGreaterThan(0);
    expect(laterPosition(p('10-2'), p('10-10'))).toEqual(p('10-10'));
    expect(laterPosition(p('12-0'), p('10-10'))).toEqual(p('12-0'));
  });
});
