// An agent (/agents/:agent_id): its latest metrics row, its 14-day trend and its recent tasks.
import { html } from '../lib/html.js';
import { useApi } from '../lib/api.js';
import { withQuery } from '../lib/router.js';
import { Page, TaskTable, Time } from '../lib/components.js';
import { formatDuration } from '../lib/format.js';
import { Trend, daysBetween, lastDays } from '../lib/trend.js';
import { METRIC_COLUMNS, MetricCell, SECONDARY, TREND_DAYS } from './agents.js';

const RECENT_TASKS = 25;

export function AgentPage({ agentId }) {
  const id = encodeURIComponent(agentId);
  const latest = useApi(`/api/v1/metrics/${id}/latest`);
  const range = lastDays(new Date().toISOString().slice(0, 10), TREND_DAYS);
  const daily = useApi(withQuery('/api/v1/metrics/daily', { ...range, agent: agentId }));
  const tasks = useApi(withQuery('/api/v1/traces', { agent: agentId, limit: RECENT_TASKS }));

  // An agent with no metrics yet is not an error worth an alert: the page says so instead.
  const noMetrics = latest.error?.status === 404;
  const row = latest.data;
  const items = tasks.data?.items ?? [];

  return html`<${Page}
    title=${`Agent ${agentId}`}
    busy=${latest.loading || daily.loading || tasks.loading}
    errors=${[
      { what: 'Latest metrics', error: noMetrics ? null : latest.error },
      { what: '14-day trend', error: daily.error },
      { what: 'Recent tasks', error: tasks.error },
    ]}
  >
    <section aria-labelledby="latest-h" class="block">
      <h2 id="latest-h">
        Latest metrics${row ? html` <span class="muted">(${row.metric_date}, UTC)</span>` : null}
      </h2>
      ${noMetrics ? html`<p class="empty">No metrics for this agent yet.</p>` : null}
      ${
        row
          ? html`<div class="table-wrap">
                <table aria-label="Latest metrics" class="agents">
                  <thead>
                    <tr>
                      <th scope="col">Day (UTC)</th>
                      ${METRIC_COLUMNS.map(([key, label]) => html`<th key=${key} scope="col" class=${SECONDARY.has(key) ? 'num opt' : 'num'}>${label}</th>`)}
                      <th scope="col" class="opt">Updated</th>
                    </tr>
                  </thead>
                  <tbody>
                    <tr data-agent-id=${row.agent_id}>
                      <th scope="row">${row.metric_date}</th>
                      ${METRIC_COLUMNS.map((c) => html`<${MetricCell} key=${c[0]} column=${c} row=${row} />`)}
                      <td class="opt"><${Time} value=${row.updated_at} /></td>
                    </tr>
                  </tbody>
                </table>
              </div>
              <dl class="kv inline">
                <dt>Min / max duration</dt>
                <dd>${formatDuration(row.min_duration_ms)} / ${formatDuration(row.max_duration_ms)}</dd>
                <dt>Uptime</dt>
                <dd>${formatDuration(row.uptime_ms)}</dd>
                <dt>Busy</dt>
                <dd>${formatDuration(row.busy_ms)}</dd>
              </dl>`
          : null
      }
    </section>
    <section aria-labelledby="trend-h" class="block">
      <h2 id="trend-h">${TREND_DAYS}-day trend</h2>
      ${
        daily.data
          ? html`<${Trend}
                agent=${agentId}
                rows=${daily.data.agents.filter((r) => r.agent_id === agentId)}
                days=${daysBetween(range.from, range.to)}
                large
              />
              <ul class="legend trend-legend" aria-label="Legend">
                <li><span class="swatch trend-ok"></span>completed</li>
                <li><span class="swatch trend-bad"></span>failed or timed out</li>
              </ul>`
          : null
      }
    </section>
    <section aria-labelledby="recent-h" class="block">
      <h2 id="recent-h">Recent tasks</h2>
      <${TaskTable} label="Recent tasks" items=${items} busy=${tasks.loading} />
      ${tasks.data && items.length === 0 ? html`<p class="empty">No tasks assigned to this agent.</p>` : null}
      <p><a href=${withQuery('/tasks', { agent: agentId, window: 'all' })}>All tasks of ${agentId} →</a></p>
    </section>
  <//>`;
}
