// Agents: one row per agent for a UTC day (today by default) from GET /api/v1/metrics/summary,
// sortable, with each agent's 14-day trend from GET /api/v1/metrics/daily. Day and sort are in the URL.
import { html } from '../lib/html.js';
import { useApi } from '../lib/api.js';
import { navigate, withQuery } from '../lib/router.js';
import { AgentLink, Page, Time } from '../lib/components.js';
import { formatDuration, formatNumber, formatPct, formatRatio } from '../lib/format.js';
import { Trend, daysBetween, lastDays } from '../lib/trend.js';

export const TREND_DAYS = 14;

/** Columns that make way on narrow windows (class opt). */
export const SECONDARY = new Set(['tasks_timed_out', 'avg_duration_ms']);

/** The columns of an agent row: key (data-col), header, value of a row, how it reads. */
export const METRIC_COLUMNS = [
  ['tasks_completed', 'Completed', (r) => r.tasks_completed, (v) => formatNumber(v)],
  ['tasks_failed', 'Failed', (r) => r.tasks_failed, (v) => formatNumber(v)],
  ['tasks_timed_out', 'Timed out', (r) => r.tasks_timed_out, (v) => formatNumber(v)],
  // The API's failure_rate: failed and timed out over all finished, null with none finished.
  ['failure_rate', 'Failure rate', (r) => r.failure_rate, (v) => formatRatio(v)],
  ['avg_duration_ms', 'Avg duration', (r) => r.avg_duration_ms, formatDuration],
  ['p95_duration_ms', 'p95 duration', (r) => r.p95_duration_ms, formatDuration],
  ['time_to_pickup_avg_ms', 'Pickup (avg)', (r) => r.time_to_pickup_avg_ms, formatDuration],
  ['utilization_pct', 'Utilization', (r) => r.utilization_pct, (v) => formatPct(v)],
];

/** One metric cell: the raw number in data-value, the readable text shown. */
export function MetricCell({ column, row }) {
  const [key, , value, show] = column;
  const v = value(row);
  const bad =
    (key === 'tasks_failed' || key === 'tasks_timed_out') && v > 0
      ? 'num bad-text'
      : key === 'failure_rate' && v >= 0.1
        ? 'num bad-text'
        : 'num';
  return html`<td
    data-col=${key}
    data-value=${v === null || v === undefined ? '' : String(v)}
    class=${SECONDARY.has(key) ? `${bad} opt` : bad}
  >
    ${v === null || v === undefined ? html`<span class="muted">—</span>` : show(v)}
  </td>`;
}

const todayUtc = () => new Date().toISOString().slice(0, 10);

function compare(a, b) {
  // Missing values sort last either way.
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
  if (b === null || b === undefined) return -1;
  return typeof a === 'string' ? a.localeCompare(b) : a - b;
}

export function AgentsPage({ url }) {
  const q = url.searchParams;
  const date = /^\d{4}-\d{2}-\d{2}$/.test(q.get('date') ?? '') ? q.get('date') : '';
  const sort = q.get('sort') ?? 'agent';
  const dir = q.get('dir') === 'desc' ? 'desc' : 'asc';
  const day = date || todayUtc();
  const range = lastDays(day, TREND_DAYS);

  const summary = useApi(withQuery('/api/v1/metrics/summary', { date }));
  const daily = useApi(withQuery('/api/v1/metrics/daily', range));

  const rowsOfAgent = new Map();
  for (const row of daily.data?.agents ?? []) {
    if (!rowsOfAgent.has(row.agent_id)) rowsOfAgent.set(row.agent_id, []);
    rowsOfAgent.get(row.agent_id).push(row);
  }
  const days = daysBetween(range.from, range.to);

  const column = METRIC_COLUMNS.find(([key]) => key === sort);
  const valueOf = column ? column[2] : (r) => r.agent_id;
  const agents = [...(summary.data?.agents ?? [])].sort((a, b) => {
    const va = valueOf(a);
    const vb = valueOf(b);
    if (va === null || va === undefined || vb === null || vb === undefined) return compare(va, vb);
    return (dir === 'asc' ? 1 : -1) * compare(va, vb) || a.agent_id.localeCompare(b.agent_id);
  });

  const sortBy = (key) => {
    const nextDir =
      sort === key && dir === 'asc' ? 'desc' : sort === key ? 'asc' : key === 'agent' ? 'asc' : 'desc';
    navigate(withQuery('/agents', { date, sort: key, dir: nextDir }), { replace: true });
  };
  const header = (key, label, numeric) => {
    const state = sort === key ? (dir === 'asc' ? 'ascending' : 'descending') : 'none';
    const cls = [numeric ? 'num' : '', SECONDARY.has(key) ? 'opt' : ''].join(' ').trim();
    return html`<th scope="col" aria-sort=${state} class=${cls || undefined}>
      <button type="button" class="sort" onClick=${() => sortBy(key)}>
        ${label}<span class="sort-mark" aria-hidden="true"
          >${state === 'ascending' ? ' ▲' : state === 'descending' ? ' ▼' : ''}</span
        >
      </button>
    </th>`;
  };

  return html`<${Page}
    title="Agents"
    busy=${summary.loading || daily.loading}
    errors=${[
      { what: 'Agent metrics', error: summary.error },
      { what: '14-day trends', error: daily.error },
    ]}
  >
    <form class="filters inline" aria-label="Day" onSubmit=${(e) => e.preventDefault()}>
      <label
        >Day (UTC)
        <input
          type="date"
          value=${day}
          max=${todayUtc()}
          onChange=${(e) => navigate(withQuery('/agents', { date: e.currentTarget.value === todayUtc() ? '' : e.currentTarget.value, sort: q.get('sort'), dir: q.get('dir') }))}
        />
      </label>
    </form>
    <p class="hint">
      Each agent's row for ${date ? day : `today (${day}, UTC)`}; failure rate = failed and timed out over all
      finished. Trend: finished tasks per day over the ${TREND_DAYS} days to ${day}, failures (failed and
      timed out) the red lower part.
    </p>
    <div class="table-wrap">
      <table aria-label="Agents" class=${summary.loading ? 'agents stale' : 'agents'}>
        <thead>
          <tr>
            ${header('agent', 'Agent', false)}
            ${METRIC_COLUMNS.map(([key, label]) => header(key, label, true))}
            <th scope="col">${TREND_DAYS}-day trend</th>
            <th scope="col" class="opt">Updated</th>
          </tr>
        </thead>
        <tbody>
          ${agents.map(
            (row) =>
              html`<tr key=${row.agent_id} data-agent-id=${row.agent_id}>
                <th scope="row"><${AgentLink} id=${row.agent_id} /></th>
                ${METRIC_COLUMNS.map((c) => html`<${MetricCell} key=${c[0]} column=${c} row=${row} />`)}
                <td>
                  <${Trend} agent=${row.agent_id} rows=${rowsOfAgent.get(row.agent_id) ?? []} days=${days} />
                </td>
                <td class="opt"><${Time} value=${row.updated_at} /></td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
    ${
      summary.data && agents.length === 0
        ? html`<p class="empty">
            No agent metrics for ${day} (UTC). An agent gets a row on a day it finishes a task or sends a
            heartbeat.
          </p>`
        : null
    }
  <//>`;
}
