/**
 * SQL literals for constants written into statement text (the lifecycle table in the task-state SQL);
 * values a request supplies are always bind parameters, never this.
 */

/**
 * `value` as a SQL string literal: single quotes doubled. Backslashes need nothing, as
 * standard_conforming_strings has been on by default since PostgreSQL 9.1; a NUL cannot be in a text
 * value at all, so it is refused.
 */
export function sqlText(value: string): string {
  if (value.includes('\0')) throw new Error('a SQL text literal cannot contain NUL');
  return `'${value.replaceAll("'", "''")}'`;
}

/** The values as a comma-separated list of SQL string literals, for `IN (…)`. */
export function sqlTextList(values: readonly string[]): string {
  if (values.length === 0) throw new Error('an IN list needs at least one value');
  return values.map(sqlText).join(', ');
}
