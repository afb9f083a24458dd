// Tasks (the landing page): counts by status for the window, the filtered task list newest first, keyset
// paging. Every filter is in the URL (?show=&status=&agent=&owner=&trace_prefix=&window=&pinned=&cursor=), so a
// view can be shared and reloaded (and ?limit= sets the page size). By default only tasks are listed and
// counted (the API's task=true), so the counts add up to the total; Show picks the traces that are not
// tasks (heartbeat-only, OTLP-only: task=false) or both. Pinned only lists the pinned tasks, from the archive,
// as of their latest copy (the API's pinned=true).
import { useEffect, useMemo, useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { useApi } from '../lib/api.js';
import { navigate, withQuery } from '../lib/router.js';
import { Page, TaskTable, TextFilterInputs, isBadStatus } from '../lib/components.js';
import { formatNumber } from '../lib/format.js';

export const STATUSES = ['pending', 'assigned', 'in_progress', 'completed', 'failed', 'timed_out'];

/** Time windows of the Window filter, in milliseconds (all: no lower bound). */
const WINDOWS = [
  ['1h', 'Last hour', 3_600_000],
  ['24h', 'Last 24 hours', 86_400_000],
  ['7d', 'Last 7 days', 7 * 86_400_000],
  ['30d', 'Last 30 days', 30 * 86_400_000],
  ['all', 'All time', null],
];
const DEFAULT_WINDOW = '24h';

/** What the Show filter lists: its value, its label, the API's `task` parameter. */
const SHOWS = [
  ['tasks', 'Tasks', 'true'],
  ['other', 'Other traces', 'false'],
  ['all', 'All traces', ''],
];
const DEFAULT_SHOW = 'tasks';
const PAGE_SIZE = 50;
const TEXT_FILTERS = [
  ['agent', 'Agent'],
  ['owner', 'Owner'],
  ['trace_prefix', 'Trace id prefix'],
];
// Typing in a text filter applies it after this pause (Enter applies it at once).
const TYPING_PAUSE_MILLIS = 400;

/** The view the URL asks for. */
function viewOf(url) {
  const q = url.searchParams;
  const windowKey = WINDOWS.some(([key]) => key === q.get('window')) ? q.get('window') : DEFAULT_WINDOW;
  const show = SHOWS.some(([key]) => key === q.get('show')) ? q.get('show') : DEFAULT_SHOW;
  return {
    show,
    // Traces that are not tasks have no status: no status filter for them.
    status: show !== 'other' && STATUSES.includes(q.get('status')) ? q.get('status') : '',
    agent: q.get('agent') ?? '',
    owner: q.get('owner') ?? '',
    trace_prefix: q.get('trace_prefix') ?? '',
    pinned: q.get('pinned') === 'true',
    window: windowKey,
    // Kept as written, so that a window the user chose explicitly stays in the URL.
    windowParam: q.get('window') ?? '',
    cursor: q.get('cursor') ?? '',
    // Not in the form: a page size other than the default, kept while paging (?limit=, 1 to 1000).
    limit:
      /^\d+$/.test(q.get('limit') ?? '') && Number(q.get('limit')) >= 1 && Number(q.get('limit')) <= 1000
        ? q.get('limit')
        : '',
  };
}

/** The /tasks URL of a view. */
function tasksUrl(view) {
  return withQuery('/tasks', {
    show: view.show === DEFAULT_SHOW ? '' : view.show,
    status: view.show === 'other' ? '' : view.status,
    agent: view.agent,
    owner: view.owner,
    trace_prefix: view.trace_prefix,
    pinned: view.pinned ? 'true' : '',
    window: view.windowParam,
    limit: view.limit,
    cursor: view.cursor,
  });
}

/**
 * The counts of the API (trace-counts with the same filters and `task`): every status, and with Show
 * "all" the traces that are not tasks, so that the cards add up to the first one.
 */
function StatusCounts({ view, counts, notTasks, total }) {
  const link = (patch) => tasksUrl({ ...view, ...patch, cursor: '' });
  const allLabel =
    view.show === 'tasks' ? 'all tasks' : view.show === 'other' ? 'other traces' : 'all traces';
  return html`<section aria-label="Status counts" class="counts">
    <a
      href=${link({ status: '' })}
      class="count all"
      data-total=${total}
      aria-current=${view.status === '' ? 'true' : undefined}
    >
      <span class="count-n">${formatNumber(total)}</span>
      <span class="count-label">${allLabel}</span>
    </a>
    ${
      view.show === 'other'
        ? null
        : STATUSES.map(
            (status) =>
              html`<a
                key=${status}
                href=${link({ status })}
                data-status=${status}
                data-count=${counts[status] ?? 0}
                class=${`count status-${status}${isBadStatus(status) && counts[status] > 0 ? ' bad' : ''}`}
                aria-current=${view.status === status ? 'true' : undefined}
              >
                <span class="count-n">${formatNumber(counts[status] ?? 0)}</span>
                <span class="count-label">${status.replace('_', ' ')}</span>
              </a>`,
          )
    }
    ${
      view.show === 'all'
        ? html`<a
            href=${link({ show: 'other', status: '' })}
            class="count not-task"
            data-not-tasks=${notTasks}
            title="Traces with no task lifecycle event (heartbeats, spans of other services)"
          >
            <span class="count-n">${formatNumber(notTasks)}</span>
            <span class="count-label">not tasks</span>
          </a>`
        : null
    }
  </section>`;
}

function Filters({ view }) {
  const [draft, setDraft] = useState({
    agent: view.agent,
    owner: view.owner,
    trace_prefix: view.trace_prefix,
  });

  // The URL changed from elsewhere (back, a status link): show its values.
  useEffect(() => {
    setDraft({ agent: view.agent, owner: view.owner, trace_prefix: view.trace_prefix });
  }, [view.agent, view.owner, view.trace_prefix]);

  const changed =
    draft.agent !== view.agent || draft.owner !== view.owner || draft.trace_prefix !== view.trace_prefix;
  useEffect(() => {
    if (!changed) return undefined;
    const timer = setTimeout(
      () => navigate(tasksUrl({ ...view, ...draft, cursor: '' }), { replace: true }),
      TYPING_PAUSE_MILLIS,
    );
    return () => clearTimeout(timer);
  }, [draft, changed]);

  // A filter tweak rewrites the current history entry, as typing does: arrowing through a closed select
  // changes it once per option, and Back should leave the Tasks page rather than step through those.
  // (Links, a status count, Older and Newest, still add entries.)
  const apply = (patch) => navigate(tasksUrl({ ...view, ...draft, ...patch, cursor: '' }), { replace: true });

  return html`<form
    aria-label="Filters"
    class="filters"
    onSubmit=${(e) => {
      e.preventDefault();
      apply({});
    }}
  >
    <label
      >Show
      <select value=${view.show} onChange=${(e) => apply({ show: e.currentTarget.value })}>
        ${SHOWS.map(([key, label]) => html`<option key=${key} value=${key}>${label}</option>`)}
      </select>
    </label>
    <label
      >Status
      <select
        value=${view.status}
        disabled=${view.show === 'other'}
        title=${view.show === 'other' ? 'Traces that are not tasks have no status' : undefined}
        onChange=${(e) => apply({ status: e.currentTarget.value })}
      >
        <option value="">Any</option>
        ${STATUSES.map((s) => html`<option key=${s} value=${s}>${s.replace('_', ' ')}</option>`)}
      </select>
    </label>
    <${TextFilterInputs} fields=${TEXT_FILTERS} draft=${draft} setDraft=${setDraft} />
    <label
      >Window
      <select
        value=${view.window}
        onChange=${(e) => apply({ window: e.currentTarget.value, windowParam: e.currentTarget.value })}
      >
        ${WINDOWS.map(([key, label]) => html`<option key=${key} value=${key}>${label}</option>`)}
      </select>
    </label>
    <label class="check"
      ><input
        type="checkbox"
        name="pinned"
        checked=${view.pinned}
        onChange=${(e) => apply({ pinned: e.currentTarget.checked })}
      />
      Pinned only</label
    >
    <div class="filter-actions">
      <button type="submit">Apply</button>
      <a href="/tasks" class="button-link">Clear</a>
    </div>
  </form>`;
}

export function TasksPage({ url }) {
  const view = viewOf(url);
  const [nonce, setNonce] = useState(0);
  // The window's start, fixed per view (and per Refresh or Newest) so that paging stays on one set of
  // tasks; Newest starts it again from now, so a page left open sees the tasks created since.
  const since = useMemo(() => {
    const span = WINDOWS.find(([key]) => key === view.window)[2];
    return span === null ? '' : new Date(Date.now() - span).toISOString();
  }, [view.show, view.window, view.status, view.agent, view.owner, view.trace_prefix, view.pinned, nonce]);

  const common = {
    task: SHOWS.find(([key]) => key === view.show)[2],
    agent: view.agent,
    owner: view.owner,
    trace_prefix: view.trace_prefix,
    pinned: view.pinned ? 'true' : '',
    since,
  };
  const counts = useApi(withQuery('/api/v1/trace-counts', common));
  const list = useApi(
    withQuery('/api/v1/traces', {
      ...common,
      status: view.status,
      limit: view.limit || PAGE_SIZE,
      cursor: view.cursor,
    }),
  );

  const items = list.data?.items ?? [];
  const next = list.data?.next_cursor ?? null;
  const windowLabel = WINDOWS.find(([key]) => key === view.window)[1].toLowerCase();
  const listed =
    (view.show === 'tasks'
      ? 'Tasks'
      : view.show === 'other'
        ? 'Traces that are not tasks (heartbeats, spans of other services)'
        : 'Tasks and other traces') + (view.pinned ? ' that are pinned (rows as of their latest copy),' : '');
  const countsOf = counts.data?.counts ?? {};
  const statusTotal = STATUSES.reduce((sum, s) => sum + (countsOf[s] ?? 0), 0);

  return html`<${Page}
    title="Tasks"
    busy=${counts.loading || list.loading}
    errors=${[
      { what: 'Status counts', error: counts.error },
      { what: 'Tasks', error: list.error },
    ]}
    actions=${html`<button type="button" class="secondary" onClick=${() => setNonce(nonce + 1)}>Refresh</button>`}
  >
    ${
      counts.data
        ? html`<${StatusCounts}
            view=${view}
            counts=${countsOf}
            notTasks=${counts.data.not_tasks ?? (counts.data.total ?? 0) - statusTotal}
            total=${counts.data.total ?? 0}
          />`
        : null
    }
    <${Filters} view=${view} />
    <p class="hint">
      ${listed} created ${view.window === 'all' ? 'at any time' : `in the ${windowLabel}`}, newest
      first${view.cursor ? ' (older page)' : ''}.
    </p>
    <${TaskTable} label="Tasks" items=${items} busy=${list.loading} />
    ${
      !list.loading && !list.error && items.length === 0
        ? html`<p class="empty">No ${view.show === 'tasks' ? 'tasks' : 'traces'} match these filters.</p>`
        : null
    }
    <nav class="pager" aria-label="Pages">
      <a
        rel="first"
        href=${tasksUrl({ ...view, cursor: '' })}
        onClick=${(e) => {
          if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
          // The newest tasks now: the window starts again from now, as Refresh does.
          e.preventDefault();
          setNonce((n) => n + 1);
          navigate(tasksUrl({ ...view, cursor: '' }));
        }}
        >Newest</a
      >
      ${next ? html`<a rel="next" href=${tasksUrl({ ...view, cursor: next })}>Older</a>` : null}
    </nav>
  <//>`;
}
