// A small router on the history API: page paths map to page names, links inside the console navigate
// without reloading, and back/forward re-render. Every page path is also served by Chronicle, so a
// reload or a shared link opens the same view.
import { useEffect, useState } from 'preact/hooks';

const ROUTES = [
  [/^\/(?:tasks)?$/, 'tasks'],
  [/^\/tasks\/([^/]+)$/, 'task'],
  [/^\/agents$/, 'agents'],
  [/^\/agents\/([^/]+)$/, 'agent'],
  [/^\/pipeline$/, 'pipeline'],
  [/^\/tail$/, 'tail'],
];

/** The page of a path and its decoded parameter (trace id, agent id), or page null. */
export function match(pathname) {
  for (const [pattern, page] of ROUTES) {
    const m = pattern.exec(pathname);
    if (m) return { page, param: m[1] === undefined ? undefined : decodeURIComponent(m[1]) };
  }
  return { page: null, param: undefined };
}

const listeners = new Set();
const notify = () => listeners.forEach((listener) => listener());

/** Goes to a console URL; `replace` rewrites the current history entry (e.g. while typing a filter). */
export function navigate(href, { replace = false } = {}) {
  const url = new URL(href, location.href);
  if (url.href === location.href) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  notify();
}

/** The current URL; re-renders the caller on every navigation. */
export function useLocation() {
  const [href, setHref] = useState(location.href);
  useEffect(() => {
    const update = () => setHref(location.href);
    listeners.add(update);
    addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', update);
    };
  }, []);
  return new URL(href);
}

/** Routes plain left clicks on same-origin links to console pages through navigate(). */
export function interceptLinks() {
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target instanceof Element ? event.target.closest('a[href]') : null;
    if (!link || link.target || link.hasAttribute('download')) return;
    const url = new URL(link.href);
    if (url.origin !== location.origin || match(url.pathname).page === null) return;
    // A link to a place in this very page (the skip link): the browser scrolls and focuses.
    if (url.hash && url.pathname === location.pathname && url.search === location.search) return;
    event.preventDefault();
    navigate(url);
  });
}

/** `path` with the non-empty `params` as its query string. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
