import { describe, expect, it } from 'vitest';
import { parseTimestamp } from '../../../src/events/timestamp.js';

const utc = (iso: string) => Date.parse(iso);

describe('parseTimestamp - RFC 3339', () => {
  it('reads a UTC timestamp', () => {
    expect(parseTimestamp('2026-02-12T14:30:00Z')).toBe(utc('2026-02-12T14:30:00.000Z'));
  });

  it('converts any offset to UTC', () => {
    expect(parseTimestamp('2026-02-12T16:30:00+02:00')).toBe(utc('2026-02-12T14:30:00.000Z'));
    expect(parseTimestamp('2026-02-12T09:00:00-05:30')).toBe(utc('2026-02-12T14:30:00.000Z'));
    expect(parseTimestamp('2026-02-12T14:30:00-00:00')).toBe(utc('2026-02-12T14:30:00.000Z'));
    expect(parseTimestamp('2026-01-01T01:00:00+02:00')).toBe(utc('2025-12-31T23:00:00.000Z'));
  });

  it('accepts lower-case t and z, and a space between date and time', () => {
    expect(parseTimestamp('2026-02-12t14:30:00z')).toBe(utc('2026-02-12T14:30:00.000Z'));
    expect(parseTimestamp('2026-02-12 14:30:00Z')).toBe(utc('2026-02-12T14:30:00.000Z'));
  });

  it('reads one to three fractional digits and truncates the rest', () => {
    expect(parseTimestamp('2026-02-12T14:30:00.5Z')).toBe(utc('2026-02-12T14:30:00.500Z'));
    expect(parseTimestamp('2026-02-12T14:30:00.05Z')).toBe(utc('2026-02-12T14:30:00.050Z'));
    expect(parseTimestamp('2026-02-12T14:30:00.123Z')).toBe(utc('2026-02-12T14:30:00.123Z'));
    expect(parseTimestamp('2026-02-12T14:30:00.123999999Z')).toBe(utc('2026-02-12T14:30:00.123Z'));
    expect(parseTimestamp('2026-02-12T14:30:00.9999+01:00')).toBe(utc('2026-02-12T13:30:00.999Z'));
  });

  it('accepts 29 February in a leap year only', () => {
    expect(parseTimestamp('2024-02-29T00:00:00Z')).toBe(utc('2024-02-29T00:00:00.000Z'));
    expect(parseTimestamp('2000-02-29T00:00:00Z')).toBe(utc('2000-02-29T00:00:00.000Z'));
    expect(parseTimestamp('2026-02-29T00:00:00Z')).toBeUndefined();
    expect(parseTimestamp('1900-02-29T00:00:00Z')).toBeUndefined();
  });

  it('keeps a leap second as the last millisecond of its minute', () => {
    expect(parseTimestamp('2016-12-31T23:59:60Z')).toBe(utc('2016-12-31T23:59:59.999Z'));
  });

  it('reads years below 100 as such, not as 19xx', () => {
    expect(new Date(parseTimestamp('0099-06-01T00:00:00Z')!).getUTCFullYear()).toBe(99);
  });

  it('rejects dates that do not exist', () => {
    for (const value of [
      '2026-02-30T10:00:00Z',
      '2026-04-31T10:00:00Z',
      '2026-13-01T10:00:00Z',
      '2026-00-10T10:00:00Z',
      '2026-01-00T10:00:00Z',
    ]) {
      expect(parseTimestamp(value), value).toBeUndefined();
    }
  });

  it('rejects hour 24, minute 60, second 61 and offsets beyond 23:59', () => {
    for (const value of [
      '2026-02-12T24:00:00Z',
      '2026-02-12T10:60:00Z',
      '2026-02-12T10:00:61Z',
      '2026-02-12T10:00:00+24:00',
      '2026-02-12T10:00:00+01:60',
    ]) {
      expect(parseTimestamp(value), value).toBeUndefined();
    }
  });

  it('rejects text that is not an RFC 3339 date-time', () => {
    for (const value of [
      '',
      'yesterday',
      '2026-02-12',
      '2026-02-12T14:30:00',
      '2026-02-12T14:30Z',
      '2026-02-12T14:30:00.Z',
      '2026-02-12T14:30:00+0200',
      ' 2026-02-12T14:30:00Z',
      '2026-02-12T14:30:00Z ',
      '12/02/2026 14:30',
      'Thu, 12 Feb 2026 14:30:00 GMT',
      '1770906600000',
    ]) {
      expect(parseTimestamp(value), JSON.stringify(value)).toBeUndefined();
    }
  });

  it('rejects year 0000, outside what Postgres and ISO output both handle', () => {
    expect(parseTimestamp('0000-01-01T00:00:00Z')).toBeUndefined();
  });
});

describe('parseTimestamp - epoch milliseconds', () => {
  it('reads epoch milliseconds as they are', () => {
    expect(parseTimestamp(1_770_906_600_000)).toBe(utc('2026-02-12T14:30:00.000Z'));
    expect(parseTimestamp(0)).toBe(0);
    expect(parseTimestamp(-1)).toBe(-1);
  });

  it('drops fractions of a millisecond', () => {
    expect(parseTimestamp(1_770_906_600_000.9)).toBe(1_770_906_600_000);
  });

  it('rejects non-finite numbers and numbers past year 9999', () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e20, -1e20]) {
      expect(parseTimestamp(value), String(value)).toBeUndefined();
    }
  });
});

describe('parseTimestamp - other types', () => {
  it('rejects booleans, objects, arrays, null and undefined', () => {
    for (const value of [true, false, {}, [1_770_906_600_000], null, undefined]) {
      expect(parseTimestamp(value), JSON.stringify(value)).toBeUndefined();
    }
  });
});

describe('parseTimestamp - the canonical toISOString form', () => {
  it('takes the fast path for the exact form and still refuses impossible dates', () => {
    expect(parseTimestamp('2026-02-12T14:30:00.123Z')).toBe(Date.UTC(2026, 1, 12, 14, 30, 0, 123));
    expect(parseTimestamp('2026-02-30T00:00:00.000Z')).toBeUndefined();
    expect(parseTimestamp('2026-01-01T24:00:00.000Z')).toBeUndefined();
  });
});
