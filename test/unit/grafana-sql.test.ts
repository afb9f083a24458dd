import { describe, expect, it } from 'vitest';
import {
  ALL_VALUE,
  type ExpandOptions,
  type FillMode,
  GrafanaSqlError,
  expandGrafanaQuery,
  expandGrafanaSql,
  fillRows,
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
    expect(() => expand("SELECT $__timeGroup(t, '1m', null)")).toThrow(/error parsing fill value null/);
    expect(() => expand("SELECT $__timeGroup(t, '1m', zero)")).toThrow(/error parsing fill value zero/);
    expect(() => expand('SELECT $__timeFilter')).toThrow(/unexpanded "\$__timeFilter"/);
  });
});

describe('grafana sql - fill modes as sqleng.SetupFillmode reads them and ResampleWideFrame applies them', () => {
  it('grafana sql - a fill argument leaves the SQL as it is and is returned with it: NULL, previous or a number', () => {
    // testdata/time_series/fill_value.sql: $__timeGroup("time",5m,27)
    expect(
      expandGrafanaQuery(
        'SELECT $__timeGroup("time",5m,27),c,avg(v) AS "v" FROM tbl GROUP BY 1,2 ORDER BY 1,2',
        range,
      ),
    ).toEqual({
      sql: 'SELECT floor(extract(epoch from "time")/300)*300 AS "time",c,avg(v) AS "v" FROM tbl GROUP BY 1,2 ORDER BY 1,2',
      fill: { mode: 'value', value: 27, intervalMillis: 300_000 },
    });
    const fillOf = (arg: string) =>
      expandGrafanaQuery(`SELECT $__timeGroupAlias(t, $__interval, ${arg})`, {
        ...range,
        intervalMillis: 120_000,
      });
    expect(fillOf('NULL')).toEqual({
      sql: 'SELECT floor(extract(epoch from t)/120)*120 AS "time"',
      fill: { mode: 'null', intervalMillis: 120_000 },
    });
    expect(fillOf('previous').fill).toEqual({ mode: 'previous', intervalMillis: 120_000 });
    expect(fillOf('0').fill).toEqual({ mode: 'value', value: 0, intervalMillis: 120_000 });
    expect(fillOf('-1.5e1').fill).toEqual({ mode: 'value', value: -15, intervalMillis: 120_000 });
    expect(expandGrafanaQuery("SELECT $__unixEpochGroupAlias(t, '1h', NULL)", range).fill).toEqual({
      mode: 'null',
      intervalMillis: 3_600_000,
    });
    expect(expandGrafanaQuery("SELECT $__timeGroupAlias(t, '1m')", range)).toEqual({
      sql: 'SELECT floor(extract(epoch from t)/60)*60 AS "time"',
    });
  });

  // The cases of the plugin SDK's data/sqlutil/resample_test.go (TestResampleWideFrame).
  const at = (second: number) => new Date(Date.UTC(2020, 0, 2, 3, 4, second));
  const input = [
    { time: at(19), ints: 10, floats: 10.5 },
    { time: at(20), ints: 12, floats: 12.5 },
    { time: at(24), ints: 15, floats: 15.0 },
  ];
  const window = { from: at(18), to: at(26) };
  const column = (rows: Record<string, unknown>[], name: string) => rows.map((r) => r[name]);
  const seconds = (rows: Record<string, unknown>[]) => rows.map((r) => (r.time as Date).getUTCSeconds());
  const fill = (mode: FillMode['mode'], intervalMillis = 1000, value?: number): FillMode =>
    value === undefined ? { mode, intervalMillis } : { mode, value, intervalMillis };

  it('grafana sql - fill null, a value, previous: one row per interval over the range', () => {
    const nulls = fillRows(input, fill('null'), window);
    expect(seconds(nulls)).toEqual([18, 19, 20, 21, 22, 23, 24, 25, 26]);
    expect(column(nulls, 'ints')).toEqual([null, 10, 12, null, null, null, 15, null, null]);
    expect(column(nulls, 'floats')).toEqual([null, 10.5, 12.5, null, null, null, 15, null, null]);
    expect(column(fillRows(input, fill('value', 1000, -1), window), 'ints')).toEqual([
      -1, 10, 12, -1, -1, -1, 15, -1, -1,
    ]);
    expect(column(fillRows(input, fill('previous'), window), 'floats')).toEqual([
      null,
      10.5,
      12.5,
      12.5,
      12.5,
      12.5,
      15,
      15,
      15,
    ]);
  });

  it('grafana sql - fill with a coarser interval keeps the last row of each interval; rows outside the range are dropped', () => {
    const coarse = fillRows(
      [
        { time: at(18), ints: 10 },
        { time: at(19), ints: 12 },
        { time: at(24), ints: 15 },
      ],
      fill('null', 2000),
      window,
    );
    expect(seconds(coarse)).toEqual([18, 20, 22, 24, 26]);
    expect(column(coarse, 'ints')).toEqual([10, 12, null, 15, null]);
    const outside = fillRows(
      [...input.map((r) => ({ time: r.time, ints: r.ints })), { time: at(27), ints: 18 }],
      fill('null'),
      { from: at(20), to: at(24) },
    );
    expect(seconds(outside)).toEqual([20, 21, 22, 23, 24]);
    expect(column(outside, 'ints')).toEqual([12, null, null, null, 15]);
  });

  it('grafana sql - fill starts at the range start rounded down to a whole interval, reads epoch-second times, and leaves no rows alone', () => {
    const from = new Date(Date.UTC(2023, 11, 24, 14, 17, 3));
    const to = new Date(Date.UTC(2023, 11, 24, 14, 46, 0));
    const bucket = (minute: number) => Date.UTC(2023, 11, 24, 14, minute) / 1000;
    // testdata/time_series/fill_value: buckets of 5 min, times as epoch seconds (the macro's floor(...)*300).
    const filled = fillRows(
      [
        { time: String(bucket(20)), v: 15 },
        { time: String(bucket(35)), v: 50 },
      ],
      fill('value', 300_000, 27),
      { from, to },
    );
    expect(filled.map((r) => (r.time as Date).toISOString().slice(11, 16))).toEqual([
      '14:15',
      '14:20',
      '14:25',
      '14:30',
      '14:35',
      '14:40',
      '14:45',
    ]);
    expect(column(filled, 'v')).toEqual([27, 15, 27, 27, 50, 27, 27]);
    expect(fillRows([], fill('value', 300_000, 0), { from, to })).toEqual([]);
    expect(() => fillRows([{ time: at(20), metric: 'a', v: 1 }], fill('null'), window)).toThrow(/long frame/);
    expect(() => fillRows([input[1]!, input[0]!], fill('null'), window)).toThrow(/ordered by time/);
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
