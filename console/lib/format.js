// How the console writes numbers, durations and times. Times are shown in the viewer's zone; the UTC
// time is in the title (hover) and the datetime attribute.

const pad = (n, width = 2) => String(n).padStart(width, '0');

/** A duration in milliseconds as a person reads it: `850 ms`, `12.4 s`, `4 min 05 s`, `2 h 03 min`, `3 d 4 h`. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const sign = ms < 0 ? '−' : '';
  const abs = Math.abs(ms);
  if (abs < 1) return `${sign}${abs === 0 ? 0 : abs.toFixed(2)} ms`;
  if (abs < 1000) return `${sign}${Math.round(abs)} ms`;
  if (abs < 10_000) return `${sign}${(abs / 1000).toFixed(2)} s`;
  if (abs < 60_000) return `${sign}${(abs / 1000).toFixed(1)} s`;
  const s = Math.round(abs / 1000);
  if (s < 3600) return `${sign}${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  const m = Math.round(s / 60);
  if (m < 24 * 60) return `${sign}${Math.floor(m / 60)} h ${pad(m % 60)} min`;
  const h = Math.round(m / 60);
  return `${sign}${Math.floor(h / 24)} d ${h % 24} h`;
}

/** A count with thousands separators; — for none. */
export function formatNumber(n, digits = 0) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '—';
  return Number(n).toLocaleString(undefined, {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

/** A ratio 0..1 as a percentage. */
export function formatRatio(ratio, digits = 1) {
  return ratio === null || ratio === undefined ? '—' : `${formatNumber(ratio * 100, digits)} %`;
}

/** A percentage 0..100. */
export function formatPct(pct, digits = 1) {
  return pct === null || pct === undefined ? '—' : `${formatNumber(pct, digits)} %`;
}

/** Bytes in B, KiB, MiB, GiB. */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${formatNumber(value, unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`;
}

/** `YYYY-MM-DD HH:MM:SS` (with `.mmm` when asked) in the viewer's zone. */
export function localText(date, { millis = false, withDate = true } = {}) {
  const d = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const t = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  const ms = millis ? `.${pad(date.getMilliseconds(), 3)}` : '';
  return withDate ? `${d} ${t}${ms}` : `${t}${ms}`;
}

/** The same instant in UTC, for the title of a time. */
export function utcText(date) {
  return `${date.toISOString().replace('T', ' ').replace('Z', '')} UTC`;
}

/** A value the API gives as a time (ISO text or epoch ms) as a Date, or null. */
export function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** Milliseconds between two API times, or null when either is missing. */
export function between(from, to) {
  const a = toDate(from);
  const b = toDate(to);
  return a && b ? b.getTime() - a.getTime() : null;
}

/** `snake_case_name` as `Snake case name`. */
export function humanize(key) {
  const text = String(key).replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * The line of an event worth a glance in a table: the first of the metadata fields the swarm uses for
 * what happened or went wrong (`error`, `error_message`, `reason_detail`, `reason`, `message`, an OTLP
 * span's status message), or null. Presentation only: whether the event is an error is the API's
 * `is_error`, its agent the API's `agent`.
 */
export function eventDetail(event) {
  const m = event.metadata ?? {};
  for (const key of ['error', 'error_message', 'reason_detail', 'reason', 'message']) {
    if (typeof m[key] === 'string' && m[key] !== '') return m[key];
  }
  if (m.status?.code === 2 && typeof m.status.message === 'string') return m.status.message;
  return null;
}
