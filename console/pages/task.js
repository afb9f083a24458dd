// A task (/tasks/:trace_id): its summary, why it failed, the waterfall of its spans, its events in time
// order and its dead letters; links to the same trace in Jaeger and Grafana when Chronicle knows them.
// Pin / Unpin keep the task past retention (README, "Pinning"); a pinned task shows a Pinned badge, and
// says so when the archive serves it.
import { useEffect, useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { sendJson, useApi } from '../lib/api.js';
import { withQuery } from '../lib/router.js';
import {
  AgentLink,
  Duration,
  EventCellHeaders,
  EventCells,
  JsonDetails,
  Page,
  StatusBadge,
  Time,
  isBadStatus,
} from '../lib/components.js';
import { between, eventDetail, formatDuration, formatNumber } from '../lib/format.js';
import { Waterfall, spanMessage, waterfallRows } from '../lib/waterfall.js';

const TERMINAL = new Set(['completed', 'failed', 'timed_out']);
// A task still running is reloaded this often, so its page follows it.
const RUNNING_REFRESH_MILLIS = 5000;

function Summary({ trace, spanCount }) {
  const muted = html`<span class="muted">—</span>`;
  return html`<dl aria-label="Summary" class="summary">
    <div>
      <dt>Status</dt>
      <dd><${StatusBadge} status=${trace.status} /></dd>
    </div>
    <div>
      <dt>Title</dt>
      <dd>${trace.task_title ?? muted}</dd>
    </div>
    <div>
      <dt>Agent</dt>
      <dd><${AgentLink} id=${trace.assigned_agent} /></dd>
    </div>
    <div>
      <dt>Owner</dt>
      <dd>${trace.owner ?? muted}</dd>
    </div>
    <div>
      <dt>Created by</dt>
      <dd>${trace.created_by ?? muted}</dd>
    </div>
    <div>
      <dt>Attempts</dt>
      <dd>${trace.attempts}</dd>
    </div>
    <div>
      <dt>Created</dt>
      <dd><${Time} value=${trace.created_at} millis /></dd>
    </div>
    <div>
      <dt>Assigned</dt>
      <dd><${Time} value=${trace.assigned_at} millis /></dd>
    </div>
    <div>
      <dt>Started</dt>
      <dd><${Time} value=${trace.started_at} millis /></dd>
    </div>
    <div>
      <dt>Completed</dt>
      <dd><${Time} value=${trace.completed_at} millis /></dd>
    </div>
    <div>
      <dt>Duration</dt>
      <dd><${Duration} ms=${trace.duration_ms} /></dd>
    </div>
    <div>
      <dt>Time to pickup</dt>
      <dd><${Duration} ms=${trace.time_to_pickup_ms} /></dd>
    </div>
    <div>
      <dt>Events</dt>
      <dd>
        ${`${formatDuration(between(trace.first_event_at, trace.last_event_at))} from first to last · ${spanCount} span${spanCount === 1 ? '' : 's'}`}
      </dd>
    </div>
    <div class="wide">
      <dt>Error</dt>
      <dd class=${trace.error ? 'error-text' : undefined}>${trace.error ?? muted}</dd>
    </div>
  </dl>`;
}

const attemptOf = (span) => {
  const attempt = span.attributes?.['swarm.attempt'];
  return attempt === undefined ? '' : ` (attempt ${attempt})`;
};

/** Why a failed task failed: the task's error and the messages of its failed spans. */
function WhyItFailed({ trace, rows }) {
  const failedSpans = rows.filter((r) => r.error);
  if (!isBadStatus(trace.status) && failedSpans.length === 0 && !trace.error) return null;
  return html`<div class="why" role="note" aria-label="Why it failed">
    <h3>
      <span aria-hidden="true">✕ </span
      >${isBadStatus(trace.status) ? `Why it ${trace.status === 'timed_out' ? 'timed out' : 'failed'}` : 'Errors'}
    </h3>
    ${trace.error ? html`<p class="why-main">${trace.error}</p>` : null}
    ${
      failedSpans.length
        ? html`<ul>
            ${failedSpans.map(
              ({ span, startMs, durationMs }) =>
                html`<li key=${span.spanId}>
                  <code>${span.name}</code>${attemptOf(span)}${': '}${spanMessage(span) ?? 'error'}
                  <span class="muted"> · at +${formatDuration(startMs + durationMs)}</span>
                </li>`,
            )}
          </ul>`
        : null
    }
  </div>`;
}

function Events({ events }) {
  const sorted = [...events].sort((a, b) =>
    a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : a.event_id < b.event_id ? -1 : 1,
  );
  const first = sorted[0]?.timestamp;
  return html`<div class="table-wrap">
    <table aria-label="Events" class="events">
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col" class="num">After first</th>
          <th scope="col">Type</th>
          <${EventCellHeaders} />
        </tr>
      </thead>
      <tbody>
        ${sorted.map(
          (e) =>
            html`<tr key=${e.event_id} data-event-id=${e.event_id} class=${e.is_error ? 'bad' : undefined}>
              <td><${Time} value=${e.timestamp} millis /></td>
              <td class="num">+${formatDuration(between(first, e.timestamp))}</td>
              <td><code>${e.event_type}</code></td>
              <${EventCells} event=${e} detail=${eventDetail(e) ?? ''} />
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

/** Dead letters of the task (GET /api/v1/dlq?trace_id=). */
export function DeadLetters({ items, label = 'Dead letters', showTrace = false }) {
  return html`<div class="table-wrap">
    <table aria-label=${label} class="dlq">
      <thead>
        <tr>
          <th scope="col">Received</th>
          ${showTrace ? html`<th scope="col">Trace id</th>` : null}
          <th scope="col">Reason</th>
          <th scope="col">Detail</th>
          <th scope="col" class="opt">Source</th>
          <th scope="col">Subject</th>
          <th scope="col" class="num">Retries</th>
          <th scope="col">Recovered</th>
          <th scope="col">Payload</th>
        </tr>
      </thead>
      <tbody>
        ${items.map(
          (d) =>
            html`<tr key=${d.dlq_id} data-dlq-id=${d.dlq_id} class=${d.recovered ? undefined : 'bad'}>
              <td><${Time} value=${d.received_at} /></td>
              ${
                showTrace
                  ? html`<td>
                      ${
                        d.trace_id
                          ? html`<a class="mono" href=${`/tasks/${encodeURIComponent(d.trace_id)}`}
                              >${d.trace_id}</a
                            >`
                          : html`<span class="muted">—</span>`
                      }
                    </td>`
                  : null
              }
              <td>${d.reason ?? '—'}</td>
              <td class="clip" title=${d.reason_detail ?? ''}>${d.reason_detail ?? ''}</td>
              <td class="opt">${d.source ?? '—'}</td>
              <td class="mono">${d.original_subject ?? d.subject ?? '—'}</td>
              <td class="num">
                ${d.retry_count ?? '—'}${d.max_retries !== null && d.max_retries !== undefined ? ` / ${d.max_retries}` : ''}
              </td>
              <td>
                ${d.recovered ? html`<${Time} value=${d.recovered_at} />` : d.recoverable === false ? 'no (not recoverable)' : 'no'}
              </td>
              <td><${JsonDetails} value=${d.original_payload} /></td>
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

/** The pin of the task as the detail says, or as the latest Pin / Unpin here answered. */
function usePin(traceId, data) {
  const [answered, setAnswered] = useState(undefined);
  const [busy, setBusy] = useState(false);
  // { what: 'Pin' | 'Unpin', error }: the change that failed.
  const [error, setError] = useState(null);
  // A new answer of the detail says what is true now.
  useEffect(() => setAnswered(undefined), [data]);
  const pin =
    answered ??
    (data?.pinned ? { pinned: true, pinned_at: data.pinned_at, archived: data.archived } : { pinned: false });
  const toggle = async () => {
    setBusy(true);
    setError(null);
    const url = `/api/v1/traces/${encodeURIComponent(traceId)}/pin`;
    try {
      if (pin.pinned) {
        await sendJson('DELETE', url);
        setAnswered({ pinned: false, archived: pin.archived, unpinned: true });
      } else {
        const answer = await sendJson('POST', url);
        setAnswered({ pinned: true, pinned_at: answer.pinned_at, archived: answer.archived });
      }
    } catch (err) {
      setError({ what: pin.pinned ? 'Unpin' : 'Pin', error: err });
    } finally {
      setBusy(false);
    }
  };
  return { pin, busy, error, toggle };
}

/** The Pinned badge, and what the archive means for this task. */
function PinNote({ pin }) {
  if (pin.unpinned && pin.archived) {
    return html`<p class="hint" role="note" data-pin-note="gone">
      Unpinned. Retention had already dropped this task's original records, so it is no longer kept: this page
      will not find it again.
    </p>`;
  }
  if (!pin.pinned) return null;
  return html`<p class="pin-note" role="note" data-pin-note=${pin.archived ? 'archived' : 'pinned'}>
    <span class="badge pinned" data-pinned="true"><span aria-hidden="true">◆</span> Pinned</span>
    <span class="muted">
      since <${Time} value=${pin.pinned_at} />${
        pin.archived
          ? ' · served from the archive: retention dropped some of its original records'
          : ' · kept past retention'
      }
    </span>
  </p>`;
}

export function TaskPage({ traceId }) {
  const [running, setRunning] = useState(false);
  const detail = useApi(`/api/v1/traces/${encodeURIComponent(traceId)}`, {
    refreshMillis: running ? RUNNING_REFRESH_MILLIS : undefined,
  });
  const data = detail.data;
  useEffect(() => setRunning(Boolean(data) && !TERMINAL.has(data.trace.status)), [data]);
  const dlq = useApi(withQuery('/api/v1/dlq', { trace_id: traceId, limit: 100 }));

  const pinning = usePin(traceId, data);

  const rows = data ? waterfallRows(data.spans).rows : [];
  const links = data?.links ?? {};
  // A pinned task's detail carries its dead letters, the archived ones too.
  const deadLetters = data?.dlq ?? dlq.data?.items;
  const actions = html`<div class="page-actions">
    ${
      data
        ? html`<button
            type="button"
            class="secondary"
            data-action=${pinning.pin.pinned ? 'unpin' : 'pin'}
            disabled=${pinning.busy}
            onClick=${() => void pinning.toggle()}
            title=${pinning.pin.pinned ? 'Stop keeping this task past retention' : 'Keep this task past retention'}
          >
            ${pinning.pin.pinned ? 'Unpin' : 'Pin'}
          </button>`
        : null
    }
    ${links.jaeger ? html`<a class="button-link" href=${links.jaeger} target="_blank" rel="noopener noreferrer">Open in Jaeger</a>` : null}
    ${links.grafana ? html`<a class="button-link" href=${links.grafana} target="_blank" rel="noopener noreferrer">Open in Grafana</a>` : null}
  </div>`;

  return html`<${Page}
    title=${`Task ${traceId}`}
    busy=${detail.loading || dlq.loading}
    errors=${[
      { what: 'Task', error: detail.error },
      { what: 'Dead letters', error: dlq.error },
      pinning.error ?? { what: 'Pin', error: null },
    ]}
    actions=${actions}
  >
    <${PinNote} pin=${pinning.pin} />
    ${
      data
        ? html`
            <${Summary} trace=${data.trace} spanCount=${rows.length} />
            <section aria-labelledby="waterfall-h" class="block">
              <h2 id="waterfall-h">Waterfall</h2>
              <${WhyItFailed} trace=${data.trace} rows=${rows} />
              ${
                rows.length
                  ? html`<${Waterfall} spans=${data.spans} />`
                  : html`<p class="empty">
                      No spans yet: Chronicle builds a task's spans once its events settle (a few seconds
                      after the latest), and its root span when the task ends.
                    </p>`
              }
              ${data.otel_trace_id ? html`<p class="hint">OpenTelemetry trace id <code>${data.otel_trace_id}</code></p>` : null}
            </section>
            <section aria-labelledby="events-h" class="block">
              <h2 id="events-h">Events <span class="muted">(${formatNumber(data.events.length)})</span></h2>
              <${Events} events=${data.events} />
            </section>
          `
        : null
    }
    ${
      data || deadLetters?.length
        ? html`<section aria-labelledby="dlq-h" class="block">
            <h2 id="dlq-h">Dead letters</h2>
            ${
              deadLetters
                ? deadLetters.length
                  ? html`<${DeadLetters} items=${deadLetters} />`
                  : html`<p class="empty">No dead letters</p>`
                : null
            }
          </section>`
        : null
    }
  <//>`;
}
