// Pieces every page uses: the page frame, times, errors, status badges, the task table.
import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';
import { formatDuration, localText, toDate, utcText } from './format.js';

/**
 * The page frame: `<main>` (aria-busy while the page loads its data), its `<h1>`, the API errors in
 * `role="alert"`. Sets the document title.
 */
export function Page({ title, busy, errors = [], children, actions }) {
  useEffect(() => {
    document.title = `${title} · Chronicle`;
  }, [title]);
  const shown = errors.filter((e) => e && e.error);
  return html`<main id="main" tabindex="-1" aria-busy=${busy ? 'true' : 'false'}>
    <div class="page-head">
      <h1>${title}</h1>
      ${actions}
    </div>
    ${shown.map((e) => html`<${Alert} key=${e.what} what=${e.what} error=${e.error} />`)} ${children}
  </main>`;
}

/** An API error, said in words. */
export function Alert({ what, error }) {
  const status = error.status ? ` (HTTP ${error.status}${error.code ? `, ${error.code}` : ''})` : '';
  return html`<div role="alert" class="alert"><strong>${what}:</strong> ${error.message}${status}</div>`;
}

/** A time in the viewer's zone, UTC on hover; — when missing. */
export function Time({ value, millis = false, withDate = true }) {
  const date = toDate(value);
  if (!date) return html`<span class="muted">—</span>`;
  return html`<time datetime=${date.toISOString()} title=${utcText(date)}
    >${localText(date, { millis, withDate })}</time
  >`;
}

/** A duration in ms; the exact milliseconds on hover. */
export function Duration({ ms }) {
  if (ms === null || ms === undefined) return html`<span class="muted">—</span>`;
  return html`<span title=${`${ms} ms`}>${formatDuration(ms)}</span>`;
}

const BAD = new Set(['failed', 'timed_out']);
const STATUS_ICON = {
  pending: '○',
  assigned: '◔',
  in_progress: '◑',
  completed: '✓',
  failed: '✕',
  timed_out: '◷',
};

/** Whether a task status is a failure (failed or timed out). */
export const isBadStatus = (status) => BAD.has(status);

/** A task status as a badge: icon and word, not colour alone. */
export function StatusBadge({ status }) {
  if (!status) return html`<span class="badge">no lifecycle</span>`;
  return html`<span class=${`badge status-${status}`}>
    <span aria-hidden="true">${STATUS_ICON[status] ?? '•'}</span> ${status.replace('_', ' ')}
  </span>`;
}

/**
 * JSON in a disclosure: a summary line, the pretty-printed value when opened. The value is printed
 * only while the disclosure is open (a table of hundreds of rows prints none until one is opened).
 */
export function JsonDetails({ value, summary }) {
  const [open, setOpen] = useState(false);
  const keys = value && typeof value === 'object' ? Object.keys(value).length : 0;
  return html`<details class="json" open=${open} onToggle=${(e) => setOpen(e.currentTarget.open)}>
    <summary>${summary ?? (keys ? `${keys} field${keys === 1 ? '' : 's'}` : 'value')}</summary>
    ${open ? html`<pre>${JSON.stringify(value, null, 2) ?? 'null'}</pre>` : null}
  </details>`;
}

/**
 * The cells an event's row ends with, on the Task page and the Live tail: its source, agent, detail
 * (in the error colour for an error event) and metadata.
 */
export function EventCells({ event: e, detail }) {
  return html`<td class="opt">${e.source}</td>
    <td><${AgentLink} id=${e.agent} /></td>
    <td class=${e.is_error ? 'error-text clip' : 'clip'} title=${detail}>${detail}</td>
    <td><${JsonDetails} value=${e.metadata} /></td>`;
}

/** The header cells of EventCells. */
export function EventCellHeaders() {
  return html`<th scope="col" class="opt">Source</th>
    <th scope="col">Agent</th>
    <th scope="col">Detail</th>
    <th scope="col">Metadata</th>`;
}

/** Labelled search inputs of a filter form: `fields` are [name, label] pairs, `draft` their values. */
export function TextFilterInputs({ fields, draft, setDraft }) {
  return fields.map(
    ([key, label]) =>
      html`<label key=${key}
        >${label}
        <input
          type="search"
          name=${key}
          value=${draft[key]}
          autocomplete="off"
          spellcheck=${false}
          onInput=${(e) => setDraft({ ...draft, [key]: e.currentTarget.value })}
        />
      </label>`,
  );
}

/** The link to a task's page. */
export function TaskLink({ id, children }) {
  return html`<a class="mono" href=${`/tasks/${encodeURIComponent(id)}`}>${children ?? id}</a>`;
}

/** The link to an agent's page. */
export function AgentLink({ id }) {
  if (!id) return html`<span class="muted">—</span>`;
  return html`<a href=${`/agents/${encodeURIComponent(id)}`}>${id}</a>`;
}

/**
 * Tasks as the Tasks page and an agent's page show them: one row per task, newest first; failed and
 * timed-out rows carry class `bad`. The table fits its page: long titles and errors are cut with an
 * ellipsis (the whole text on hover, and on the task's page); on narrow windows the secondary columns
 * (class opt, opt-narrow) make way.
 */
export function TaskTable({ label, items, busy, hideAgent = false }) {
  return html`<div class="table-wrap">
    <table aria-label=${label} class=${busy ? 'tasks stale' : 'tasks'}>
      <thead>
        <tr>
          <th scope="col">Trace id</th>
          <th scope="col" class="col-title opt-narrow">Title</th>
          <th scope="col">Status</th>
          ${hideAgent ? null : html`<th scope="col">Agent</th>`}
          <th scope="col" class="opt">Owner</th>
          <th scope="col" class="num opt">Attempts</th>
          <th scope="col" class="col-time">Created</th>
          <th scope="col" class="num opt">Pickup</th>
          <th scope="col" class="num">Duration</th>
          <th scope="col" class="col-error">Error</th>
        </tr>
      </thead>
      <tbody>
        ${items.map(
          (t) =>
            html`<tr
              key=${t.trace_id}
              data-trace-id=${t.trace_id}
              data-status=${t.status ?? ''}
              class=${isBadStatus(t.status) ? 'bad' : undefined}
            >
              <td>
                <${TaskLink} id=${t.trace_id} />${
                  t.pinned_at ? html` <span class="badge pinned" data-pinned="true">pinned</span>` : null
                }
              </td>
              <td class="col-title clip opt-narrow" title=${t.task_title ?? ''}>
                ${t.task_title ?? html`<span class="muted">—</span>`}
              </td>
              <td><${StatusBadge} status=${t.status} /></td>
              ${hideAgent ? null : html`<td><${AgentLink} id=${t.assigned_agent} /></td>`}
              <td class="opt">${t.owner ?? html`<span class="muted">—</span>`}</td>
              <td class="num opt">${t.attempts}</td>
              <td class="col-time"><${Time} value=${t.created_at} /></td>
              <td class="num opt"><${Duration} ms=${t.time_to_pickup_ms} /></td>
              <td class="num"><${Duration} ms=${t.duration_ms} /></td>
              <td class="col-error clip error-text" title=${t.error ?? ''}>${t.error ?? ''}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}
