const CANONICAL = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/;

// Postgres timestamptz and ISO output both handle this range; outside it we reject rather than mangle.
const MIN_MILLIS = utc(1, 1, 1, 0, 0, 0, 0);
const MAX_MILLIS = utc(9999, 12, 31, 23, 59, 59, 999);

/** Date.UTC without its two-digit-year quirk (years 0-99 would become 1900-1999). */
function utc(year: number, month: number, day: number, h: number, mi: number, s: number, ms: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(h, mi, s, ms);
  return d.getTime();
}

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** True for the exact form Date#toISOString produces (not checked for a valid date: see parseTimestamp). */
export function isCanonicalTimestamp(value: unknown): value is string {
  return typeof value === 'string' && value.length === 24 && CANONICAL.test(value);
}

/**
 * Parses an RFC 3339 timestamp (any offset) or epoch milliseconds into epoch milliseconds (UTC).
 * Digits beyond milliseconds are truncated. Returns undefined when the value is not one of these.
 */
export function parseTimestamp(value: unknown): number | undefined {
  // Fast path: the exact form Date#toISOString produces, which is what most producers send.
  if (isCanonicalTimestamp(value)) {
    const millis = Date.parse(value);
    // Date.parse rolls Feb 30 over to March; the round trip catches that.
    if (!Number.isNaN(millis) && new Date(millis).toISOString() === value) return millis;
    return undefined;
  }
  let millis: number | undefined;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    millis = Math.floor(value);
  } else if (typeof value === 'string') {
    const m = RFC3339.exec(value);
    if (!m) return undefined;
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
    if (hour > 23 || minute > 59 || second > 60) return undefined;
    const fraction = m[7] ? Number(m[7].slice(1, 4).padEnd(3, '0')) : 0;
    let offsetMinutes = 0;
    if (m[9]) {
      const oh = Number(m[10]);
      const om = Number(m[11]);
      if (oh > 23 || om > 59) return undefined;
      offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
    }
    // A leap second (:60) is kept as the last millisecond of its minute.
    const wall = utc(year, month, day, hour, minute, Math.min(second, 59), second === 60 ? 999 : fraction);
    millis = wall - offsetMinutes * 60_000;
  } else {
    return undefined;
  }
  if (millis < MIN_MILLIS || millis > MAX_MILLIS) return undefined;
  return millis;
}
