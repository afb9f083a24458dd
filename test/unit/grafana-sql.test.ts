import { describe, expect, it } from 'vitest';
import {
  ALL_VALUE,
  type ExpandOptions,
  GrafanaSqlError,
  expandGrafanaSql,
  goFloat,
  goFormatInterval,
  intervalText,
  sqlDefaultFormat,
} from '../support/grafana-sql.js';

// The cases below are the ones Grafana documents in its own tests:
// pkg/tsdb/grafana-postgresql-datasource/macros_test.go (backend macros) and
// packages/grafana-sql/src/datasource/variable-interpolation.test.ts (frontend variable formatting).
const from = new Date(Date.UTC(2018, 3, 12, 18, 0, 0));
const to = new Date(from.getTime() + 5 * 60_000);
const range: ExpandOptions = { from, to, intervalMillis: 60_000 };
const expand = (sql: string, options: Partial<ExpandOptions> = {}) =>
  expandGrafanaSql(sql, { ...range, ...options });

describe('grafana sql - Postgres macros as macros_test.go documents them', () => {
  it('grafana sql - $__time and $__timeFilter', () => {
    expect(expand('select $__time(time_column)')).toBe('select time_column AS "time"');
    expect(expand('select min($__time(time_column))')).toBe('select min(time_column AS "time")');
    expect(expand('WHERE $__timeFilter(time_column)')).toBe(
      "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'",
    );
    expect(expand('select $__timeFrom()')).toBe("select '2018-04-12T18:00:00Z'");
    expect(expand('select $__timeTo()')).toBe("select '2018-04-12T18:05:00Z'");
  });

  it('grafana sql - $__timeGroup, its pre-5.3 alias after a comma, and $__timeGroupAlias', () => {
    expect(expand("SELECT $__timeGroup(time_column,'5m'), value")).toBe(
      'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value',
    );
    expect(expand("SELECT $__timeGroup(time_column,'5m') as time, value")).toBe(
      'SELECT floor(extract(epoch from time_column)/300)*300 as time, value',
    );
    expect(expand("$__timeGroup(time_column , '5m')")).toBe('floor(extract(epoch from time_column)/300)*300');
    expect(expand("SELECT $__timeGroupAlias(time_column,'5m')")).toBe(
      'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"',
    );
    // Go prints float64 seconds with %v: 12 days is 1.0368e+06, 20 ms is 0.02.
    expect(expand("$__timeGroup(t, '12d')")).toBe('floor(extract(epoch from t)/1.0368e+06)*1.0368e+06');
    expect(expand("$__timeGroup(t, '20ms')")).toBe('floor(extract(epoch from t)/0.02)*0.02');
  });

  it('grafana sql - unix epoch macros', () => {
    expect(expand('select $__unixEpochFilter(time)')).toBe(
      'select time >= 1523556000 AND time <= 1523556300',
    );
    expect(expand('select $__unixEpochNanoFilter(time)')).toBe(
      'select time >= 1523556000000000000 AND time <= 1523556300000000000',
    );
    expect(expand('select $__unixEpochNanoFrom()')).toBe('select 1523556000000000000');
    expect(expand('select $__unixEpochNanoTo()')).toBe('select 1523556300000000000');
    expect(expand("SELECT $__unixEpochGroup(time_column+time_adjustment,'5m')")).toBe(
      'SELECT floor((time_column+time_adjustment)/300)*300',
    );
    expect(expand("SELECT $__unixEpochGroupAlias(time_column+time_adjustment,'5m')")).toBe(
      'SELECT floor((time_column+time_adjustment)/300)*300 AS "time"',
    );
  });

  it('grafana sql - times before 1970 and fractions of a second, RFC 3339 as Go writes it', () => {
    const early = {
      from: new Date(Date.UTC(1960, 1, 1, 7, 0, 0, 500)),
      to: new Date(Date.UTC(1980, 1, 3, 8, 0, 0, 500)),
    };
    expect(expand('WHERE $__timeFilter(time_column)', early)).toBe(
      "WHERE time_column BETWEEN '1960-02-01T07:00:00.5Z' AND '1980-02-03T08:00:00.5Z'",
    );
    const whole = { from: new Date(Date.UTC(1960, 1, 1, 7)), to: new Date(Date.UTC(1965, 1, 3, 8)) };
    expect(expand('select $__unixEpochFilter(time)', whole)).toBe(
      `select time >= ${Date.UTC(1960, 1, 1, 7) / 1000} AND time <= ${Date.UTC(1965, 1, 3, 8) / 1000}`,
    );
  });

  it('grafana sql - the global substitutions: $__interval, $__interval_ms, $__unixEpochFrom(), $__unixEpochTo()', () => {
    expect(
      expand('$__interval $__interval_ms $__unixEpochFrom() $__unixEpochTo()', { intervalMillis: 300_000 }),
    ).toBe('5m 300000 1523556000 1523556300');
    expect(expand("$__timeGroupAlias(t, '$__interval')", { intervalMillis: 30_000 })).toBe(
      'floor(extract(epoch from t)/30)*30 AS "time"',
    );
    expect([
      intervalText(90_000),
      goFormatInterval(90_000),
      intervalText(86_400_000),
      goFormatInterval(500),
    ]).toEqual(['1m', '1m', '1d', '500ms']);
    expect([goFloat(300), goFloat(123456), goFloat(1e6), goFloat(0.5), goFloat(0.00001)]).toEqual([
      '300',
      '123456',
      '1e+06',
      '0.5',
      '1e-05',
    ]);
  });

  it('grafana sql - an unknown macro, a misspelt one or one without its column is an error', () => {
    expect(() => expand('WHERE $__timeFiltr(t)')).toThrow(GrafanaSqlError);
    expect(() => expand('WHERE $__timeFilter()')).toThrow(/missing time column/);
    expect(() => expand('SELECT $__timeGroup(t)')).toThrow(/needs time column and interval/);
    expect(() => expand("SELECT $__timeGroup(t, 'soon')")).toThrow(/error parsing interval/);
    expect(() => expand("SELECT $__timeGroup(t, '1m', NULL)")).toThrow(/fill modes/);
    expect(() => expand('SELECT $__timeFilter')).toThrow(/unexpanded "\$__timeFilter"/);
  });
});

describe('grafana sql - variables as SqlDatasource.interpolateVariable formats them', () => {
  it('grafana sql - a single value: quotes doubled; quoted when the variable is multi-value or has All', () => {
    expect(sqlDefaultFormat("O'Brien", { multi: false, includeAll: false })).toBe("O''Brien");
    expect(sqlDefaultFormat('', {})).toBe('');
    expect(sqlDefaultFormat("O'Brien", { multi: true })).toBe("'O''Brien'");
    expect(sqlDefaultFormat("O'Brien", { includeAll: true })).toBe("'O''Brien'");
    expect(sqlDefaultFormat(42, { multi: true })).toBe('42');
  });

  it('grafana sql - several values: each quoted, joined with commas; none gives nothing', () => {
    expect(sqlDefaultFormat(["O'Brien", 'Smith', "D'Angelo"], { multi: true })).toBe(
      "'O''Brien','Smith','D''Angelo'",
    );
    expect(sqlDefaultFormat(['value1'], { multi: true, includeAll: true })).toBe("'value1'");
    expect(sqlDefaultFormat([], { multi: true })).toBe('');
  });

  it('grafana sql - in a query: $var, ${var}, [[var]], formats, All with and without allValue', () => {
    const agent = { name: 'agent', multi: true, includeAll: true, options: ['a', "b'c"] };
    const variables = [
      { name: 'trace_id', value: `it's "x"` },
      { ...agent, value: ['a', "b'c"] },
    ];
    expect(expand("WHERE trace_id = '$trace_id' AND agent IN ($agent)", { variables })).toBe(
      `WHERE trace_id = 'it''s "x"' AND agent IN ('a','b''c')`,
    );
    expect(expand("'${trace_id}' [[trace_id]] ${trace_id:raw}", { variables })).toBe(
      `'it''s "x"' it''s "x" it's "x"`,
    );
    // Scenes' sqlstring format escapes " as \" (a backslash Postgres keeps).
    expect(expand('${trace_id:sqlstring} ${agent:sqlstring}', { variables })).toBe(
      `'it''s \\"x\\"' 'a','b''c'`,
    );
    expect(expand('IN ($agent)', { variables: [{ ...agent, value: ALL_VALUE }] })).toBe("IN ('a','b''c')");
    expect(
      expand('IN ($agent)', {
        variables: [
          {
            ...agent,
            value: ALL_VALUE,
            allValue: "SELECT id FROM t WHERE $__timeFilter(day) AND x = '$trace_id'",
          },
          variables[0]!,
        ],
      }),
    ).toBe(
      `IN (SELECT id FROM t WHERE day BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z' AND x = 'it''s "x"')`,
    );
    expect(expand('${__from} ${__to:date:iso} ${__from:date:seconds}')).toBe(
      `${from.getTime()} 2018-04-12T18:05:00.000Z ${from.getTime() / 1000}`,
    );
  });

  it('grafana sql - an unknown variable or format is an error', () => {
    expect(() => expand('WHERE a = $agnet')).toThrow(/no such variable/);
    expect(() => expand('${trace_id:sqlstrng}', { variables: [{ name: 'trace_id', value: 'x' }] })).toThrow(
      /unknown variable format/,
    );
  });
});
