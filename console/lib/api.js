// Reads Chronicle's HTTP API: JSON in, the API's `{error, message}` out as an ApiError.
import { useEffect, useRef, useState } from 'preact/hooks';
import { authFailed, authHeaders } from './auth.js';

/** An answer other than 2xx (status and the API's error code), or Chronicle unreachable (status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** GETs an API URL (or sends `init`'s method and body) and parses its JSON; throws ApiError. */
export async function getJson(url, signal, init = {}) {
  let res;
  try {
    res = await fetch(url, {
      ...init,
      signal,
      headers: authHeaders({ accept: 'application/json', ...init.headers }),
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'unreachable', 'Chronicle did not answer (is it running?)');
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: said below
  }
  if (!res.ok || body === null) {
    const code = body?.error ?? `http_${res.status}`;
    const message = body?.message ?? `${res.status} ${res.statusText || 'error'}`;
    if (res.status === 401 || res.status === 403) authFailed(res.status, message);
    throw new ApiError(res.status, code, message);
  }
  return body;
}

/** Sends a change (POST, DELETE) with an optional JSON body; its JSON answer, or an ApiError. */
export function sendJson(method, url, body) {
  const init =
    body === undefined
      ? { method }
      : { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } };
  return getJson(url, undefined, init);
}

/**
 * Loads `url` (nothing when null) and, with `refreshMillis`, reloads it every so often.
 * `loading` is true until the first answer for the current URL (a refresh does not set it again);
 * the previous URL's data stays shown meanwhile. A failed refresh keeps the data and sets `error`.
 * A refresh due while a request is in flight is skipped; leaving the page aborts the request.
 */
export function useApi(url, { refreshMillis } = {}) {
  // answered: the URL that `data` and `error` belong to.
  const [state, setState] = useState({ answered: null, data: undefined, error: null });
  const latest = useRef(0);

  useEffect(() => {
    if (url === null) return undefined;
    // Aborted when the URL changes or the component unmounts: nothing answers into a page left.
    const controller = new AbortController();
    // A refresh is skipped while the previous request is still in flight (a slow server gets one
    // request at a time from each page, not a pile-up every refreshMillis).
    let inFlight = false;
    const load = async () => {
      if (inFlight) return;
      inFlight = true;
      const ticket = ++latest.current;
      try {
        const data = await getJson(url, controller.signal);
        if (ticket === latest.current) setState({ answered: url, data, error: null });
      } catch (err) {
        if (err.name === 'AbortError' || ticket !== latest.current) return;
        setState((s) => ({ answered: url, data: s.answered === url ? s.data : undefined, error: err }));
      } finally {
        inFlight = false;
      }
    };
    void load();
    const timer = refreshMillis ? setInterval(() => document.hidden || void load(), refreshMillis) : 0;
    return () => {
      clearInterval(timer);
      controller.abort();
    };
  }, [url, refreshMillis]);

  if (url === null) return { data: undefined, error: null, loading: false };
  const loading = state.answered !== url;
  return { data: state.data, error: loading ? null : state.error, loading };
}
