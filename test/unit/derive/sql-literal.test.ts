import { describe, expect, it } from 'vitest';
import { sqlText, sqlTextList } from '../../../src/derive/sql-literal.js';

describe('sql literals', () => {
  it('sqlText - quotes a value, doubling single quotes and leaving backslashes', () => {
    expect(sqlText('task.created')).toBe("'task.created'");
    expect(sqlText("it's")).toBe("'it''s'");
    expect(sqlText("''")).toBe("''''''");
    expect(sqlText('a\\b')).toBe("'a\\b'");
    expect(sqlText('')).toBe("''");
  });

  it('sqlText - refuses a NUL, which no text value can hold', () => {
    expect(() => sqlText('a\0b')).toThrow(/NUL/);
  });

  it('sqlTextList - joins quoted values, and refuses an empty list', () => {
    expect(sqlTextList(['completed', "o'k"])).toBe("'completed', 'o''k'");
    expect(() => sqlTextList([])).toThrow();
  });
});
