/**
 * The column names a SQL query returns, read from its outermost select list the way PostgreSQL names
 * result columns: `AS alias` (or a bare alias), else the column or function name; unquoted identifiers
 * fold to lower case. Good enough to tell a link that names `${__data.fields.otel_trace_id}` that the
 * query no longer returns that column; a `*` makes the list open (`wildcard`).
 */

export interface SelectColumns {
  readonly names: string[];
  /** The select list has `*` or `t.*`: any name may be returned. */
  readonly wildcard: boolean;
}

/** Grafana macros that expand to a named column. */
const MACRO_COLUMNS: Record<string, string> = {
  __timeGroupAlias: 'time',
  __unixEpochGroupAlias: 'time',
  __time: 'time',
  __timeEpoch: 'time',
};

/** Words after which a trailing identifier is not an implicit alias. */
const KEYWORDS = new Set([
  'end',
  'null',
  'true',
  'false',
  'asc',
  'desc',
  'distinct',
  'all',
  'and',
  'or',
  'not',
  'is',
  'else',
  'then',
  'when',
  'case',
  'as',
  'from',
  'filter',
  'over',
  'within',
  'group',
  'order',
  'by',
  'current_date',
  'current_timestamp',
  'now',
]);

/** Blanks out comments and string literals (keeping length), so commas and keywords inside them do not count. */
function maskLiterals(sql: string): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end < 0 ? sql.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      const stop = end < 0 ? sql.length : end + 2;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (c === "'") {
      let j = i + 1;
      while (j < sql.length && !(sql[j] === "'" && sql[j + 1] !== "'")) j += sql[j] === "'" ? 2 : 1;
      out += `'${'x'.repeat(Math.max(0, j - i - 1))}'`;
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Index of each character's parenthesis depth (0 = top level). */
function depths(sql: string): number[] {
  const out: number[] = [];
  let depth = 0;
  for (const c of sql) {
    if (c === ')') depth--;
    out.push(depth);
    if (c === '(') depth++;
  }
  return out;
}

/** Positions of a keyword at parenthesis depth 0. */
function topLevelKeyword(sql: string, depth: number[], word: string): number[] {
  const out: number[] = [];
  for (const m of sql.matchAll(new RegExp(`\\b${word}\\b`, 'gi')))
    if (depth[m.index] === 0) out.push(m.index);
  return out;
}

function splitTopLevel(text: string): string[] {
  const depth = depths(text);
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === ',' && depth[i] === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

const identifier = (raw: string): string =>
  raw.startsWith('"') ? raw.slice(1, -1).replaceAll('""', '"') : raw.toLowerCase();

/** The name PostgreSQL gives one select-list item (`?column?` when it gives none we can tell; `*` for a star). */
export function columnName(item: string): string {
  const text = item.trim();
  const macro = /^\$(\w+)\s*\(/.exec(text);
  if (macro && MACRO_COLUMNS[macro[1]!] !== undefined) return MACRO_COLUMNS[macro[1]!]!;
  if (text === '*' || /\.\*$/.test(text)) return '*';
  const as = /\s+AS\s+("(?:[^"]|"")+"|[A-Za-z_]\w*)\s*$/i.exec(text);
  if (as) return identifier(as[1]!);
  const bare = /(?:[)"\w\]])\s+("(?:[^"]|"")+"|[A-Za-z_]\w*)\s*$/.exec(text);
  if (bare && !KEYWORDS.has(bare[1]!.toLowerCase())) return identifier(bare[1]!);
  const cast = /^(.*?)::[\w\s[\]"]+$/s.exec(text);
  if (cast) return columnName(cast[1]!);
  const column = /(?:^|\.)("(?:[^"]|"")+"|[A-Za-z_]\w*)$/.exec(text);
  if (column) return identifier(column[1]!);
  const fn = /^([A-Za-z_]\w*)\s*\(/.exec(text);
  if (fn) return fn[1]!.toLowerCase();
  return '?column?';
}

/** The columns of the outermost SELECT (after any WITH) of a query. */
export function selectColumns(sql: string): SelectColumns {
  const masked = maskLiterals(sql);
  const depth = depths(masked);
  const select = topLevelKeyword(masked, depth, 'select')[0];
  if (select === undefined) return { names: [], wildcard: false };
  const from = topLevelKeyword(masked, depth, 'from').find((i) => i > select) ?? masked.length;
  let list = masked.slice(select + 'select'.length, from);
  list = list.replace(/^\s*DISTINCT\s+ON\s*\([^)]*\)/i, '').replace(/^\s*(DISTINCT|ALL)\b/i, '');
  const names: string[] = [];
  let wildcard = false;
  for (const item of splitTopLevel(list)) {
    const name = columnName(item);
    if (name === '*') wildcard = true;
    else names.push(name);
  }
  return { names, wildcard };
}
