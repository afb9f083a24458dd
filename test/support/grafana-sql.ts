/**
 * Expands a dashboard's SQL the way Grafana does before its Postgres data source runs it, in Grafana's
 * three stages, so tests can run every dashboard query on a real database:
 *
 * 1. The frontend (Scenes' sceneInterpolator with SqlDatasource.interpolateVariable as the format
 *    function): `$var`, `${var}`, `${var:format}` and `[[var]]` are replaced by the variables' current
 *    values. Without a format, a string is quoted when the variable is multi-value or has "All"
 *    (quoteLiteral: `'…'` with `'` doubled), else only its `'` are doubled; a list is quoted value by
 *    value and joined with commas. "All" is the custom allValue, inserted raw (then interpolated itself),
 *    or else the list of every option's value. `$__interval` / `$__interval_ms` come from the query's
 *    interval; `${__from}` / `${__to}` are the range's epoch milliseconds.
 * 2. The backend's global substitutions (pkg/tsdb/grafana-postgresql-datasource/sqleng/sql_engine.go
 *    Interpolate): `$__interval_ms`, `$__interval`, `$__unixEpochFrom()`, `$__unixEpochTo()`.
 * 3. The Postgres macro engine (pkg/tsdb/grafana-postgresql-datasource/macros.go): every
 *    `$name(args)` (args split on `,`, spaces trimmed, no `)` inside) is a macro; an unknown one is an
 *    error, as in Grafana.
 *
 * The fill argument of `$__timeGroup(column, interval, fill)` (and its Alias and unixEpoch forms) leaves
 * the SQL as it is: Grafana records it (sqleng.SetupFillmode: `NULL`, `previous`, or a number) and,
 * for a time_series query, resamples the result after the query (sqleng applyFill with the plugin
 * SDK's sqlutil.ResampleWideFrame). expandGrafanaQuery returns that fill with the SQL, and fillRows
 * resamples a result the same way, so a test sees the rows the panel draws.
 *
 * Stricter than Grafana where Grafana would send broken SQL on: a variable the dashboard does not
 * define, a format this module does not know and a `$__…` left unexpanded all throw, so a typo fails
 * the test.
 */

/** Scenes' ALL_VARIABLE_VALUE: the value a variable has when "All" is selected. */
export const ALL_VALUE = '$__all';

/** A dashboard variable as the expansion sees it. */
export interface SqlVariable {
  readonly name: string;
  /** The current value: a string, a list (multi-value), or ALL_VALUE. */
  readonly value: string | readonly string[];
  readonly multi?: boolean;
  readonly includeAll?: boolean;
  /** Custom "All" value, inserted raw; absent or empty: "All" is the list of the option values. */
  readonly allValue?: string | null;
  /** The values of the variable's options (without "All"), for "All" without allValue. */
  readonly options?: readonly string[];
}

export interface ExpandOptions {
  /** The dashboard's time range. */
  readonly from: Date;
  readonly to: Date;
  /** The query's interval ($__interval), milliseconds. */
  readonly intervalMillis: number;
  readonly variables?: readonly SqlVariable[];
}

/** Thrown when a query cannot be expanded (unknown macro, variable or format; bad macro arguments). */
export class GrafanaSqlError extends Error {
  override readonly name = 'GrafanaSqlError';
}

/**
 * How Grafana fills the intervals a time_series result has no row for (sqleng.SetupFillmode): with
 * null, with the previous row's value, or with a number; `intervalMillis` is the macro's interval.
 */
export interface FillMode {
  readonly mode: 'null' | 'previous' | 'value';
  readonly value?: number;
  readonly intervalMillis: number;
}

/** A query as Grafana's Postgres data source runs it: the SQL, and the fill a time group macro asked for. */
export interface ExpandedQuery {
  readonly sql: string;
  readonly fill?: FillMode;
}

/** The SQL Grafana's Postgres data source would run for `rawSql`. */
export function expandGrafanaSql(rawSql: string, options: ExpandOptions): string {
  return expandGrafanaQuery(rawSql, options).sql;
}

/** The SQL Grafana's Postgres data source would run for `rawSql`, and the fill it applies to the result. */
export function expandGrafanaQuery(rawSql: string, options: ExpandOptions): ExpandedQuery {
  const afterFrontend = interpolateVariables(rawSql, options);
  const afterGlobal = interpolateGlobalMacros(afterFrontend, options);
  const { sql, fill } = interpolatePostgresMacros(afterGlobal, options);
  const left = /\$__\w+|\$\{|\[\[/.exec(sql);
  if (left) throw new GrafanaSqlError(`unexpanded "${left[0]}" in: ${sql}`);
  return fill ? { sql, fill } : { sql };
}

// ---- Stage 1: the frontend's variable interpolation -------------------------------------------------

/** Scenes' VARIABLE_REGEX: `$var`, `[[var]]` or `[[var:fmt]]`, `${var}`, `${var.path}`, `${var:fmt}`. */
const VARIABLE_REGEX = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}/g;

type FormatValue = string | number | readonly string[];

/** SqlDatasource.interpolateVariable: the SQL data sources' default formatting. */
export function sqlDefaultFormat(
  value: FormatValue,
  variable: { multi?: boolean; includeAll?: boolean },
): string {
  if (typeof value === 'string') {
    return variable.multi || variable.includeAll ? quoteLiteral(value) : value.replace(/'/g, "''");
  }
  if (typeof value === 'number') return String(value);
  return value.map(quoteLiteral).join(',');
}

/** PostgresQueryModel.quoteLiteral. */
function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The named formats of Scenes' formatRegistry that SQL dashboards use. */
function namedFormat(name: string, args: readonly string[], value: FormatValue): string {
  const list = typeof value === 'object' ? value : undefined;
  const one = String(value);
  switch (name) {
    case 'raw':
      return list ? list.join(',') : one;
    case 'csv':
      return list ? list.join(',') : one;
    case 'glob':
      return list && list.length > 1 ? `{${list.join(',')}}` : list ? list.join(',') : one;
    case 'sqlstring': {
      // Scenes escapes `'` as `''` and also `"` as `\"` (which Postgres keeps as two characters).
      const quote = (v: string): string => `'${v.replace(/'|"/g, (c) => (c === "'" ? "''" : '\\"'))}'`;
      return list ? list.map(quote).join(',') : quote(one);
    }
    case 'singlequote': {
      const quote = (v: string): string => `'${v.replace(/'/g, "\\'")}'`;
      return list ? list.map(quote).join(',') : quote(one);
    }
    case 'doublequote': {
      const quote = (v: string): string => `"${v.replace(/"/g, '\\"')}"`;
      return list ? list.map(quote).join(',') : quote(one);
    }
    case 'date': {
      const millis = typeof value === 'number' ? value : Number.parseInt(one, 10);
      if (Number.isNaN(millis)) return 'NaN';
      const arg = args[0] ?? 'iso';
      if (arg === 'ms') return one;
      if (arg === 'seconds') return String(Math.round(millis / 1000));
      if (arg === 'iso') return new Date(millis).toISOString();
      throw new GrafanaSqlError(`date format "${args.join(':')}" is not supported here`);
    }
    default:
      throw new GrafanaSqlError(`unknown variable format "${name}"`);
  }
}

/** Grafana's secondsToHms (@grafana/data rangeutil): the text of `$__interval`. */
export function intervalText(millis: number): string {
  const seconds = millis / 1000;
  const years = Math.floor(seconds / 31536000);
  if (years) return `${years}y`;
  const days = Math.floor((seconds % 31536000) / 86400);
  if (days) return `${days}d`;
  const hours = Math.floor(((seconds % 31536000) % 86400) / 3600);
  if (hours) return `${hours}h`;
  const minutes = Math.floor((((seconds % 31536000) % 86400) % 3600) / 60);
  if (minutes) return `${minutes}m`;
  const secs = Math.floor((((seconds % 31536000) % 86400) % 3600) % 60);
  if (secs) return `${secs}s`;
  const ms = Math.floor(seconds * 1000);
  if (ms) return `${ms}ms`;
  return 'less than a millisecond';
}

function interpolateVariables(sql: string, options: ExpandOptions): string {
  const variables = new Map((options.variables ?? []).map((v) => [v.name, v]));
  const builtIns = new Map<string, FormatValue>([
    ['__interval', intervalText(options.intervalMillis)],
    ['__interval_ms', options.intervalMillis],
    ['__from', options.from.getTime()],
    ['__to', options.to.getTime()],
  ]);
  const replace = (text: string, depth: number): string =>
    text.replace(
      VARIABLE_REGEX,
      (match, var1?: string, var2?: string, fmt2?: string, var3?: string, path?: string, fmt3?: string) => {
        const name = (var1 ?? var2 ?? var3)!;
        const format = fmt2 ?? fmt3;
        if (path !== undefined) throw new GrafanaSqlError(`${match}: field paths are not supported here`);
        const formatted = (
          value: FormatValue,
          variable: { multi?: boolean; includeAll?: boolean },
        ): string => {
          if (format === undefined) return sqlDefaultFormat(value, variable);
          const [formatName, ...args] = format.split(':');
          return namedFormat(formatName!, args, value);
        };
        const builtIn = builtIns.get(name);
        if (builtIn !== undefined) return formatted(builtIn, {});
        const variable = variables.get(name);
        if (variable === undefined) {
          // Backend macros ($__timeFilter(…), …) pass through to stages 2 and 3.
          if (name.startsWith('__')) return match;
          throw new GrafanaSqlError(`${match}: no such variable`);
        }
        if (
          variable.value === ALL_VALUE ||
          (Array.isArray(variable.value) && variable.value[0] === ALL_VALUE)
        ) {
          if (variable.allValue) {
            // CustomAllValue: raw for every format but text and percentencode, then interpolated itself.
            if (format === 'text') return 'All';
            if (depth > 5) throw new GrafanaSqlError(`${match}: allValue refers to itself`);
            return replace(variable.allValue, depth + 1);
          }
          return formatted(variable.options ?? [], variable);
        }
        return formatted(variable.value, variable);
      },
    );
  return replace(sql, 0);
}

// ---- Stage 2: sqleng.Interpolate ----------------------------------------------------------------------

/** gtime.FormatInterval: the backend's text of an interval. */
export function goFormatInterval(millis: number): string {
  const units: [number, string][] = [
    [365 * 86_400_000, 'y'],
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1_000, 's'],
    [1, 'ms'],
  ];
  for (const [size, unit] of units) if (millis >= size) return `${Math.floor(millis / size)}${unit}`;
  return '1ms';
}

function interpolateGlobalMacros(sql: string, options: ExpandOptions): string {
  return sql
    .replaceAll('$__interval_ms', String(Math.trunc(options.intervalMillis)))
    .replaceAll('$__interval', goFormatInterval(options.intervalMillis))
    .replaceAll('$__unixEpochFrom()', String(Math.floor(options.from.getTime() / 1000)))
    .replaceAll('$__unixEpochTo()', String(Math.floor(options.to.getTime() / 1000)));
}

// ---- Stage 3: the Postgres macro engine -----------------------------------------------------------------

/** Go's time.Format(time.RFC3339Nano) of a UTC time: fraction without trailing zeros. */
export function rfc3339Nano(time: Date): string {
  return time.toISOString().replace(/\.(\d*?)0*Z$/, (_, digits: string) => (digits ? `.${digits}Z` : 'Z'));
}

/** Go's fmt %v of a float64 (strconv 'g', shortest): exponent form below 1e-4 and from 1e6. */
export function goFloat(value: number): string {
  if (value === 0) return '0';
  const [mantissa, exponent] = value.toExponential().split('e') as [string, string];
  const exp = Number(exponent);
  if (exp < -4 || exp >= 6)
    return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return String(value);
}

/** gtime.ParseInterval: a Go duration (`1m30s`, `500ms`) or a whole number of d, w, M or y. */
export function parseGoInterval(text: string, now = new Date()): number {
  const calendar = /^(\d+)([dwMy])$/.exec(text);
  if (calendar) {
    const n = Number(calendar[1]);
    const then = new Date(now);
    if (calendar[2] === 'd') then.setUTCDate(then.getUTCDate() + n);
    if (calendar[2] === 'w') then.setUTCDate(then.getUTCDate() + 7 * n);
    if (calendar[2] === 'M') then.setUTCMonth(then.getUTCMonth() + n);
    if (calendar[2] === 'y') then.setUTCFullYear(then.getUTCFullYear() + n);
    return then.getTime() - now.getTime();
  }
  const unitMillis: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    μs: 1e-3,
    ms: 1,
    s: 1e3,
    m: 6e4,
    h: 3.6e6,
  };
  if (text === '0') return 0;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const m = part.exec(text);
    if (!m) throw new GrafanaSqlError(`error parsing interval ${text}`);
    total += Number(m[1]) * unitMillis[m[2]!]!;
    at = part.lastIndex;
  }
  if (text.length === 0) throw new GrafanaSqlError('error parsing interval ');
  return total;
}

/** macros.go's sExpr: `$` identifier `(` anything but `)` `)`. */
const MACRO_REGEX = /\$([_a-zA-Z0-9]+)\(([^)]*)\)/g;

/**
 * sqleng.SetupFillmode: `NULL` (exactly), `previous`, or a number as Go's strconv.ParseFloat reads it
 * (decimal, exponent, Inf, NaN; hexadecimal floats and digit separators are refused here).
 */
function fillMode(text: string, intervalMillis: number): FillMode {
  if (text === 'NULL') return { mode: 'null', intervalMillis };
  if (text === 'previous') return { mode: 'previous', intervalMillis };
  const number = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)$/i.exec(text);
  if (!number) throw new GrafanaSqlError(`error parsing fill value ${text}`);
  const lower = text.toLowerCase().replace(/^\+/, '');
  const value = lower.endsWith('nan')
    ? Number.NaN
    : lower.endsWith('inf') || lower.endsWith('infinity')
      ? (lower.startsWith('-') ? -1 : 1) * Number.POSITIVE_INFINITY
      : Number(text);
  return { mode: 'value', value, intervalMillis };
}

function interpolatePostgresMacros(sql: string, options: ExpandOptions): { sql: string; fill?: FillMode } {
  let fill: FillMode | undefined;
  const from = rfc3339Nano(options.from);
  const to = rfc3339Nano(options.to);
  const fromSeconds = Math.floor(options.from.getTime() / 1000);
  const toSeconds = Math.floor(options.to.getTime() / 1000);
  const fromNanos = BigInt(options.from.getTime()) * 1_000_000n;
  const toNanos = BigInt(options.to.getTime()) * 1_000_000n;

  const group = (
    name: string,
    args: readonly string[],
    expression: (column: string, seconds: string) => string,
  ) => {
    if (args.length < 2) {
      throw new GrafanaSqlError(`macro ${name} needs time column and interval and optional fill value`);
    }
    const intervalMillis = parseGoInterval(args[1]!.replace(/^'+|'+$/g, ''));
    const seconds = goFloat(intervalMillis / 1000);
    // A fourth argument and beyond are ignored, as Grafana does (it reads args[2] only when there are 3).
    if (args.length === 3) fill = fillMode(args[2]!, intervalMillis);
    return expression(args[0]!, seconds);
  };
  const column = (name: string, args: readonly string[]): string => {
    // Grafana checks len(args) == 0, which never holds (Go splits "" into [""]); an empty column is refused here.
    if (!args[0]) throw new GrafanaSqlError(`missing time column argument for macro ${name}`);
    return args[0];
  };

  const evaluate = (name: string, args: readonly string[]): string => {
    switch (name) {
      case '__time':
        return `${column(name, args)} AS "time"`;
      case '__timeEpoch':
        return `extract(epoch from ${column(name, args)}) as "time"`;
      case '__timeFilter':
        return `${column(name, args)} BETWEEN '${from}' AND '${to}'`;
      case '__timeFrom':
        return `'${from}'`;
      case '__timeTo':
        return `'${to}'`;
      case '__timeGroup':
        return group(name, args, (c, s) => `floor(extract(epoch from ${c})/${s})*${s}`);
      case '__timeGroupAlias':
        return `${evaluate('__timeGroup', args)} AS "time"`;
      case '__unixEpochFilter': {
        const c = column(name, args);
        return `${c} >= ${fromSeconds} AND ${c} <= ${toSeconds}`;
      }
      case '__unixEpochNanoFilter': {
        const c = column(name, args);
        return `${c} >= ${fromNanos} AND ${c} <= ${toNanos}`;
      }
      case '__unixEpochNanoFrom':
        return String(fromNanos);
      case '__unixEpochNanoTo':
        return String(toNanos);
      case '__unixEpochGroup':
        return group(name, args, (c, s) => `floor((${c})/${s})*${s}`);
      case '__unixEpochGroupAlias':
        return `${evaluate('__unixEpochGroup', args)} AS "time"`;
      default:
        throw new GrafanaSqlError(`unknown macro "${name}"`);
    }
  };

  const expanded = sql.replace(MACRO_REGEX, (match: string, name: string, rawArgs: string) => {
    let macro = name;
    // Pre-5.3 compatibility: `$__timeGroup(…),` (a comma right after the first such call) adds the alias.
    if (macro === '__timeGroup') {
      const index = sql.indexOf(match);
      if (index >= 0 && sql[index + match.length] === ',') macro = '__timeGroupAlias';
    }
    const args = rawArgs.split(',').map((a) => a.replace(/^ +| +$/g, ''));
    return evaluate(macro, args);
  });
  return fill ? { sql: expanded, fill } : { sql: expanded };
}

// ---- After the query: the fill of a time_series result ------------------------------------------------

/** sqleng's epochPrecisionToMS: a numeric time in seconds (1e9 range) or nanoseconds (1e18) as milliseconds. */
function epochMillis(value: number): number {
  const exponent = Number(value.toExponential().split('e')[1]);
  if (exponent === 9) return value * 1e3;
  if (exponent === 18) return value / 1e6;
  return value;
}

/** A row's time as Grafana reads the `time` column: a date, or a number (seconds or milliseconds since the epoch). */
export function rowTimeMillis(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  const n = typeof value === 'number' ? value : Number(value);
  if (value === null || value === undefined || Number.isNaN(n))
    throw new GrafanaSqlError(`time point is nil`);
  return epochMillis(n);
}

/**
 * A time_series result of a wide frame (a `time` column and value columns, no `metric` column) as
 * Grafana fills it (sqleng applyFill → sqlutil.ResampleWideFrame): one row every interval from the range's
 * start rounded down to a whole interval (in seconds since the epoch) to its end, each taking the last row
 * of (t − interval, t] or, when there is none, the fill (null, the value, or the previous row's value).
 * Every column but the time is a value column here (the dashboards' wide frames are numbers only). Rows
 * must be ordered by time, as the dashboards' ORDER BY 1 gives them. No rows stay no rows (sqleng returns
 * an empty frame before it fills). The `time` of each row becomes a Date.
 */
export function fillRows<Row extends Record<string, unknown>>(
  rows: readonly Row[],
  fill: FillMode,
  range: { readonly from: Date; readonly to: Date },
  timeColumn = 'time',
): Record<string, unknown>[] {
  if (rows.some((r) => 'metric' in r))
    throw new GrafanaSqlError('filling a long frame (a metric column) is not supported here');
  if (rows.length === 0) return [];
  const stepSeconds = Math.trunc(fill.intervalMillis / 1000);
  if (fill.intervalMillis === 0) return rows.map((r) => ({ ...r }));
  const times = rows.map((r) => rowTimeMillis(r[timeColumn]));
  for (let i = 1; i < times.length; i++)
    if (times[i]! < times[i - 1]!) throw new GrafanaSqlError('fill needs rows ordered by time');
  const columns = rows.length ? Object.keys(rows[0]!).filter((c) => c !== timeColumn) : [];
  // Go: startUnixTime := From.Unix() / int64(Interval.Seconds()) * int64(Interval.Seconds())
  const fromSeconds = Math.floor(range.from.getTime() / 1000);
  const start =
    stepSeconds > 0 ? Math.trunc(fromSeconds / stepSeconds) * stepSeconds * 1000 : fromSeconds * 1000;
  const out: Record<string, unknown>[] = [];
  let lastSeen = -1;
  for (let current = start; current <= range.to.getTime(); current += fill.intervalMillis) {
    // As ResampleWideFrame scans: from the row after the last one seen (from row 0 while that is row 0).
    let index = lastSeen > 0 ? lastSeen + 1 : 0;
    const within: number[] = [];
    for (; index < rows.length; index++) {
      const t = times[index]!;
      if (t > current - fill.intervalMillis) {
        if (t <= current) within.push(index);
        else break;
      }
      lastSeen = index;
    }
    const row: Record<string, unknown> = { [timeColumn]: new Date(current) };
    for (const c of columns) {
      if (within.length) row[c] = rows[within[within.length - 1]!]![c];
      else if (fill.mode === 'value') row[c] = fill.value;
      else if (fill.mode === 'previous') row[c] = lastSeen >= 0 ? rows[lastSeen]![c] : null;
      else row[c] = null;
    }
    out.push(row);
  }
  return out;
}
