// An agent's daily trend: one bar per UTC day, finished tasks stacked on failed and timed-out ones.
import { html } from './html.js';
import { formatNumber } from './format.js';

/** The UTC days from `from` to `to` (YYYY-MM-DD), inclusive. */
export function daysBetween(from, to) {
  const days = [];
  const d = new Date(`${from}T00:00:00Z`);
  const end = new Date(`${to}T00:00:00Z`);
  while (d <= end && days.length < 400) {
    days.push(d.toISOString().slice(0, 10));
    d.setUTCDate(d.getUTCDate() + 1);
  }
  return days;
}

/** The day `count - 1` days before `to`, and `to`. */
export function lastDays(to, count) {
  const d = new Date(`${to}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - (count - 1));
  return { from: d.toISOString().slice(0, 10), to };
}

const failures = (row) => (row ? row.tasks_failed + row.tasks_timed_out : 0);

/**
 * Bars of finished tasks per day over `days` for one agent's rows (missing days: none). Failures (failed
 * and timed out) are the red lower part of each bar. The small trend (a table cell) has a fixed width;
 * the `large` one spans the width of its container (x in percent) and adds day and count labels.
 */
export function Trend({ agent, rows, days, large = false }) {
  const byDay = new Map(rows.map((r) => [r.metric_date, r]));
  const values = days.map((day) => {
    const row = byDay.get(day);
    return { day, ok: row ? row.tasks_completed : 0, bad: failures(row) };
  });
  const max = Math.max(1, ...values.map((v) => v.ok + v.bad));
  const plotH = large ? 110 : 22;
  const top = large ? 16 : 1;
  const bottom = large ? 20 : 1;
  const height = top + plotH + bottom;
  // Horizontal geometry: pixels for the small trend, percent of the width for the large one.
  const slot = large ? 100 / days.length : 8;
  const barW = large ? slot * 0.6 : 6;
  const unit = large ? '%' : '';
  const width = large ? '100%' : days.length * slot;
  const total = values.reduce((s, v) => s + v.ok, 0);
  const totalBad = values.reduce((s, v) => s + v.bad, 0);
  const summary = `${days.length} days to ${days.at(-1)}: ${formatNumber(total)} completed, ${formatNumber(totalBad)} failed or timed out`;

  return html`<svg
    class=${large ? 'trend large' : 'trend'}
    role="img"
    aria-label=${`${days.length}-day trend of ${agent}`}
    width=${width}
    height=${height}
  >
    <title>${summary}</title>
    <line class="baseline" x1="0" x2=${width} y1=${top + plotH + 0.5} y2=${top + plotH + 0.5} />
    ${values.map((v, i) => {
      const x = i * slot + (slot - barW) / 2;
      const mid = `${x + barW / 2}${unit}`;
      const hBad = (v.bad / max) * plotH;
      const hOk = (v.ok / max) * plotH;
      const base = top + plotH;
      return html`<g key=${v.day}>
        <title>${`${v.day}: ${v.ok} completed, ${v.bad} failed or timed out`}</title>
        <rect
          class="trend-ok"
          x=${`${x}${unit}`}
          y=${base - hBad - hOk}
          width=${`${barW}${unit}`}
          height=${hOk}
        />
        <rect
          class="trend-bad"
          x=${`${x}${unit}`}
          y=${base - hBad}
          width=${`${barW}${unit}`}
          height=${hBad}
        />
        ${
          large
            ? html`<text class="trend-label" x=${mid} y=${height - 5} text-anchor="middle"
                  >${v.day.slice(5)}</text
                >
                ${
                  v.ok + v.bad > 0
                    ? html`<text class="trend-value" x=${mid} y=${base - hBad - hOk - 4} text-anchor="middle">
                        ${v.ok + v.bad}
                      </text>`
                    : null
                }`
            : null
        }
      </g>`;
    })}
  </svg>`;
}
