import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { bool, int, list, url } from '../../../src/pipeline/env.js';

/** The messages of a failed parse, or [] when it succeeds. */
function problems(schema: z.ZodType, value: string): string[] {
  const result = schema.safeParse(value);
  return result.success ? [] : result.error.issues.map((i) => i.message);
}

describe('env - int', () => {
  it('env int - reads decimal digits, trimmed, within its bounds', () => {
    expect(int(0, 10).parse('0')).toBe(0);
    expect(int(0, 10).parse(' 10 ')).toBe(10);
    expect(int(5).parse('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('env int - hex, exponents, fractions, signs and words are not whole numbers', () => {
    for (const value of ['0x10', '1e3', '1.5', '-1', '+1', '12abc', 'ten']) {
      expect(problems(int(0), value)).toEqual(['must be a whole number']);
    }
  });

  it('env int - says which bound is crossed', () => {
    expect(problems(int(1, 16), '0')).toEqual(['must be at least 1']);
    expect(problems(int(1, 16), '17')).toEqual(['must be at most 16']);
  });
});

describe('env - bool', () => {
  it('env bool - true, false, 1 and 0 in any case, trimmed', () => {
    for (const value of ['true', 'TRUE', ' True ', '1']) expect(bool.parse(value)).toBe(true);
    for (const value of ['false', 'False', '0']) expect(bool.parse(value)).toBe(false);
  });

  it('env bool - anything else is refused', () => {
    for (const value of ['yes', 'no', 'on', '2']) {
      expect(problems(bool, value)).toEqual(['must be true or false']);
    }
  });
});

describe('env - url', () => {
  it('env url - accepts only the given protocols, and names them', () => {
    expect(url(['http:', 'https:']).parse('https://h/x')).toBe('https://h/x');
    expect(problems(url(['http:', 'https:']), 'ftp://h')).toEqual([
      'must be a URL starting with http:// or https://',
    ]);
    expect(problems(url(['nats:']), 'not a url')).toEqual(['must be a URL starting with nats://']);
  });
});

describe('env - list', () => {
  const letters = list('words', (s) => /^[a-z]+$/.test(s));

  it('env list - splits on commas, trims, skips empty items', () => {
    expect(letters.parse('a, b ,,c,')).toEqual(['a', 'b', 'c']);
  });

  it('env list - names the first bad item', () => {
    expect(problems(letters, 'a,B2,c d')).toEqual(['must be comma-separated words; "B2" is not one']);
  });

  it('env list - needs at least one item', () => {
    expect(problems(letters, ' , ')).toEqual(['must be comma-separated words']);
  });
});
