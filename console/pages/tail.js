// Live tail: events as Chronicle commits them, from the Server-Sent Events of GET /api/v1/stream with
// the filters in the URL (?event_type=&agent=&trace_id=&errors=true). The list keeps the newest 500, in
// the order the stream delivers them (its transaction order), newest on top. An event's time is its publisher's
// clock, so times need not descend down the list; the # column numbers the events as they arrived.
//
// A filter change opens a new stream from where the old one was (?last_event_id=), so the events
// committed while the streams were switched, that pass the new filters, are not missed. Where it was:
// the id of the latest message taken, an event or a `position` message. The server sends a position as
// the stream goes live and, on keep-alive, whenever it has moved past events the filters skip, so a
// page whose filters pass little (errors only) has a recent place even when it has shown nothing.
//
// Pause keeps the stream open and holds what arrives (the newest 500 as well) until Resume, so nothing
// is missed in between while the page stays bounded. A stream the server ends for falling behind
// (`event: overflow`) is resumed by the reader itself from the last event id it saw, without gaps.
//
// The stream is read with fetch() (lib/event-stream.js), which behaves as EventSource does but can send
// the API token in a header: a token never goes in a URL.
import { Component } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from '../lib/html.js';
import { navigate, withQuery } from '../lib/router.js';
import { EventCellHeaders, EventCells, Page, TextFilterInputs, Time } from '../lib/components.js';
import { eventDetail, formatNumber } from '../lib/format.js';
import { authFailed, authHeaders } from '../lib/auth.js';
import { CONNECTING, FetchEventSource } from '../lib/event-stream.js';

export const MAX_ROWS = 500;
// New rows are added to the table at most this often (a busy stream sends thousands a second).
const FLUSH_MILLIS = 150;
// Wait before reconnecting a stream the browser gave up on: 1 s, doubling to 30 s, back to 1 s once a
// stream has delivered a message (the server's Retry-After wins). Also when the probe gets a 200: a
// proxy answering 200 with another content type must not make the page reconnect in a tight loop.
const RETRY_MIN_MILLIS = 1000;
const RETRY_MAX_MILLIS = 30_000;
const TYPING_PAUSE_MILLIS = 400;

const TEXT_FILTERS = [
  ['event_type', 'Event type'],
  ['agent', 'Agent'],
  ['trace_id', 'Trace id'],
];

function filtersOf(url) {
  const q = url.searchParams;
  return {
    event_type: q.get('event_type') ?? '',
    agent: q.get('agent') ?? '',
    trace_id: q.get('trace_id') ?? '',
    errors: q.get('errors') === 'true',
  };
}

const tailUrl = (f) => withQuery('/tail', { ...f, errors: f.errors ? 'true' : '' });
const streamUrl = (f, lastEventId) =>
  withQuery('/api/v1/stream', { ...f, errors: f.errors ? 'true' : '', last_event_id: lastEventId });

/** Newest first, at most MAX_ROWS, each event once. */
function prepend(rows, incoming) {
  const seen = new Set();
  const out = [];
  for (const row of [...[...incoming].reverse(), ...rows]) {
    if (seen.has(row.event_id)) continue;
    seen.add(row.event_id);
    out.push(row);
    if (out.length === MAX_ROWS) break;
  }
  return out;
}

/**
 * Why the browser closed the stream for good: EventSource gives no status, so ask once more with fetch
 * and read the API's error (503 too_many_streams, 400 for a bad filter). The probe holds no stream: it
 * is aborted as soon as the status and headers arrive (an error's small JSON body is read first).
 * Returns the message, whether to try again, and the server's Retry-After in milliseconds (or null).
 */
async function whyClosed(url) {
  const controller = new AbortController();
  try {
    const res = await fetch(url, {
      signal: controller.signal,
      headers: authHeaders({ accept: 'text/event-stream' }),
    });
    if (res.ok) {
      controller.abort();
      const type = res.headers.get('content-type') ?? '';
      // An event stream now: the failure passed, reconnect (why empty). Anything else is said.
      const why = type.startsWith('text/event-stream')
        ? ''
        : `the answer was not an event stream (${type || 'no content type'})`;
      return { why, retry: true, retryAfterMillis: null };
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      // not JSON
    }
    const retryAfter = Number(res.headers.get('retry-after'));
    const message = body?.message ?? `HTTP ${res.status}`;
    if (res.status === 401 || res.status === 403) authFailed(res.status, message);
    if (res.status >= 500) {
      return {
        why: body?.error === 'too_many_streams' ? `too many streams (${message})` : message,
        retry: true,
        retryAfterMillis: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : null,
      };
    }
    return { why: message, retry: false, retryAfterMillis: null };
  } catch {
    return { why: 'Chronicle is unreachable', retry: true, retryAfterMillis: null };
  } finally {
    controller.abort();
  }
}

/**
 * One event's row. Rendered once: the 500 rows are not rendered again on each flush, only the new
 * ones (an event never changes; its metadata is printed when its disclosure is opened).
 */
class TailRow extends Component {
  shouldComponentUpdate(next) {
    return next.event !== this.props.event;
  }

  render({ event: e }) {
    return html`<tr data-event-id=${e.event_id} class=${e.is_error ? 'bad' : undefined}>
      <td class="num muted">${e.arrived}</td>
      <td><${Time} value=${e.timestamp} millis withDate=${false} /></td>
      <td><code>${e.event_type}</code></td>
      <td><a class="mono" href=${`/tasks/${encodeURIComponent(e.trace_id)}`}>${e.trace_id}</a></td>
      <${EventCells} event=${e} detail=${e.detail} />
    </tr>`;
  }
}

function Filters({ filters }) {
  const [draft, setDraft] = useState(filters);
  useEffect(() => setDraft(filters), [filters.event_type, filters.agent, filters.trace_id, filters.errors]);
  const changed = TEXT_FILTERS.some(([key]) => draft[key] !== filters[key]);
  useEffect(() => {
    if (!changed) return undefined;
    const timer = setTimeout(
      () => navigate(tailUrl({ ...filters, ...draft }), { replace: true }),
      TYPING_PAUSE_MILLIS,
    );
    return () => clearTimeout(timer);
  }, [draft, changed]);

  return html`<form
    aria-label="Filters"
    class="filters"
    onSubmit=${(e) => {
      e.preventDefault();
      navigate(tailUrl({ ...filters, ...draft }), { replace: true });
    }}
  >
    <${TextFilterInputs} fields=${TEXT_FILTERS} draft=${draft} setDraft=${setDraft} />
    <label class="check">
      <input
        type="checkbox"
        name="errors"
        checked=${filters.errors}
        onChange=${(e) => navigate(tailUrl({ ...filters, ...draft, errors: e.currentTarget.checked }), { replace: true })}
      />
      Errors only
    </label>
    <div class="filter-actions">
      <button type="submit">Apply</button>
      <a href="/tail" class="button-link">Clear filters</a>
    </div>
  </form>`;
}

export function TailPage({ url }) {
  const filters = filtersOf(url);
  const key = streamUrl(filters);
  const [rows, setRows] = useState([]);
  const [held, setHeld] = useState({ rows: [], dropped: 0 });
  const [paused, setPaused] = useState(false);
  // connecting | live | reconnecting | disconnected
  const [connection, setConnection] = useState({ state: 'connecting', why: '' });
  const [notice, setNotice] = useState(null);
  const [busy, setBusy] = useState(true);
  const pausedRef = useRef(false);
  // Across filter changes: where a new stream resumes — the id of the last event taken into the page
  // (shown, or held while paused) or of a later position message — and how many events were taken (the
  // # of each row). An event received but not yet taken when the filters change is read again by the
  // new stream, if it passes them (a position received after it waits for it to be taken).
  const lastEventIdRef = useRef('');
  const arrivedRef = useRef(0);

  useEffect(() => {
    setRows([]);
    setHeld({ rows: [], dropped: 0 });
    setNotice(null);
    setBusy(true);
    setConnection({ state: 'connecting', why: '' });
    let source = null;
    let retryTimer = 0;
    let flushTimer = 0;
    let incoming = [];
    // The id of the latest message received (event or position): the page is there once `incoming` is taken.
    let receivedThrough = '';
    let stopped = false;
    let retryMillis = RETRY_MIN_MILLIS;
    const nextRetry = () => {
      const wait = retryMillis;
      retryMillis = Math.min(retryMillis * 2, RETRY_MAX_MILLIS);
      return wait;
    };

    const flush = () => {
      flushTimer = 0;
      // Each event's row text is worked out once, as it arrives (rows are not rendered again).
      const batch = incoming.map((e) => ({
        ...e,
        arrived: ++arrivedRef.current,
        detail: eventDetail(e) ?? '',
      }));
      incoming = [];
      if (batch.length === 0) return;
      lastEventIdRef.current = receivedThrough || lastEventIdRef.current;
      if (pausedRef.current) {
        setHeld((h) => {
          const all = prepend(h.rows, batch);
          return { rows: all, dropped: h.dropped + h.rows.length + batch.length - all.length };
        });
      } else {
        setRows((r) => prepend(r, batch));
      }
    };

    const connect = () => {
      const url = streamUrl(filters, lastEventIdRef.current);
      source = new FetchEventSource(url);
      source.onopen = () => {
        setConnection({ state: 'live', why: '' });
        setBusy(false);
      };
      source.addEventListener('event', (message) => {
        if (stopped) return;
        retryMillis = RETRY_MIN_MILLIS;
        try {
          incoming.push(JSON.parse(message.data));
        } catch {
          return;
        }
        receivedThrough = message.lastEventId || receivedThrough;
        if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MILLIS);
      });
      // Where the stream is, past the events the filters skip (EventSource keeps the id for its own
      // reconnects, but does not show it to the page).
      source.addEventListener('position', (message) => {
        if (stopped) return;
        retryMillis = RETRY_MIN_MILLIS;
        let at = '';
        try {
          at = JSON.parse(message.data).last_event_id ?? '';
        } catch {
          // the id is enough
        }
        at = at || message.lastEventId;
        if (!at) return;
        receivedThrough = at;
        // Nothing waits to be taken: the page is there now.
        if (incoming.length === 0) lastEventIdRef.current = at;
      });
      source.addEventListener('overflow', (message) => {
        let detail = {};
        try {
          detail = JSON.parse(message.data);
        } catch {
          // the event itself is what matters
        }
        const at = new Date().toLocaleTimeString();
        setNotice(
          `At ${at} the stream fell behind (${detail.reason ?? 'overflow'}): it was resumed after the last event received, without gaps.`,
        );
      });
      source.onerror = () => {
        if (stopped) return;
        if (source.readyState === CONNECTING) {
          setConnection({ state: 'reconnecting', why: '' });
          return;
        }
        // Closed for good (an HTTP error, or not an event stream): find out why, maybe retry later.
        source.close();
        void whyClosed(url).then(({ why, retry, retryAfterMillis }) => {
          if (stopped) return;
          setBusy(false);
          const wait = retryAfterMillis ?? nextRetry();
          const seconds = Math.round(wait / 1000);
          if (why === '') setConnection({ state: 'reconnecting', why: '' });
          else
            setConnection({ state: 'disconnected', why: retry ? `${why}; retrying in ${seconds} s` : why });
          if (retry) retryTimer = setTimeout(connect, wait);
        });
      };
    };
    connect();

    return () => {
      stopped = true;
      source?.close();
      clearTimeout(retryTimer);
      clearTimeout(flushTimer);
    };
  }, [key]);

  const togglePause = () => {
    const next = !paused;
    pausedRef.current = next;
    setPaused(next);
    if (!next) {
      setRows((r) => prepend(r, [...held.rows].reverse()));
      setHeld({ rows: [], dropped: 0 });
    }
  };

  const statusText =
    connection.state === 'disconnected'
      ? `Disconnected: ${connection.why}`
      : connection.state === 'reconnecting'
        ? 'Reconnecting…'
        : connection.state === 'connecting'
          ? 'Connecting…'
          : paused
            ? 'Paused'
            : 'Live';

  const streamError = connection.state === 'disconnected' ? { message: connection.why } : null;
  return html`<${Page} title="Live tail" busy=${busy} errors=${[{ what: 'Live stream', error: streamError }]}>
    <${Filters} filters=${filters} />
    <div class="tail-bar">
      <p
        role="status"
        class=${`tail-status tail-${paused && connection.state === 'live' ? 'paused' : connection.state}`}
      >
        ${statusText}
      </p>
      <button type="button" onClick=${togglePause} aria-pressed=${paused ? 'true' : 'false'}>
        ${paused ? 'Resume' : 'Pause'}
      </button>
      <button type="button" class="secondary" onClick=${() => setRows([])}>Clear</button>
      ${
        paused
          ? html`<span class="held"
              >${formatNumber(held.rows.length)} new while
              paused${held.dropped ? ` (${formatNumber(held.dropped)} older dropped)` : ''}</span
            >`
          : null
      }
    </div>
    <p class="hint">
      In the stream's order (by transaction), newest on top (# counts the events as they arrived; times are
      the publishers' and need not descend). The latest ${MAX_ROWS} are kept; Pause holds new events until
      Resume. A filter change resumes from where the stream was (its last event, or a later point the server
      reported), so nothing committed meanwhile is missed.
    </p>
    ${notice ? html`<p class="notice">${notice}</p>` : null}
    <div class="table-wrap">
      <table aria-label="Live events" class="events">
        <thead>
          <tr>
            <th scope="col" class="num" title="Order of arrival: the stream's order, by transaction">#</th>
            <th scope="col">Time</th>
            <th scope="col">Type</th>
            <th scope="col">Trace id</th>
            <${EventCellHeaders} />
          </tr>
        </thead>
        <tbody>
          ${rows.map((e) => html`<${TailRow} key=${e.event_id} event=${e} />`)}
        </tbody>
      </table>
    </div>
    ${
      rows.length === 0 && connection.state === 'live' && !paused
        ? html`<p class="empty">
            Waiting for events${Object.values(filters).some(Boolean) ? ' that match the filters' : ''}…
          </p>`
        : null
    }
  <//>`;
}
