// The API token of this browser tab (README "Access control"). Chronicle asks for one (401) when it has
// tokens configured: the console then shows a token form instead of the page. The token is kept in
// sessionStorage only (gone with the tab), sent as `Authorization: Bearer` on every request, and never
// put in a URL.
import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';

const KEY = 'chronicle.api-token';
const listeners = new Set();
// needed: the API asked for a token (none, or one it refused); forbidden: the token lacks a scope.
let state = { needed: false, refused: false, forbidden: '' };

function storedToken() {
  try {
    return sessionStorage.getItem(KEY) ?? '';
  } catch {
    return ''; // storage disabled: no token kept
  }
}

function update(next) {
  state = { ...state, ...next };
  for (const listener of listeners) listener(state);
}

/** The headers every API request carries: the token, when there is one. */
export function authHeaders(headers = {}) {
  const token = storedToken();
  return token ? { ...headers, authorization: `Bearer ${token}` } : headers;
}

/** Called with every 401 or 403 answer of the API: asks for a token, or says which scope is missing. */
export function authFailed(status, message) {
  if (status === 401) update({ needed: true, refused: storedToken() !== '', forbidden: '' });
  else if (status === 403) update({ forbidden: message });
}

export function useAuth() {
  const [current, setCurrent] = useState(state);
  useEffect(() => {
    listeners.add(setCurrent);
    setCurrent(state);
    return () => listeners.delete(setCurrent);
  }, []);
  return { ...current, hasToken: storedToken() !== '' };
}

export function forgetToken() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing kept
  }
  update({ needed: true, refused: false, forbidden: '' });
}

/** The form shown instead of a page while the API asks for a token. */
export function TokenForm() {
  const { refused } = useAuth();
  const [value, setValue] = useState('');
  const submit = (e) => {
    e.preventDefault();
    const token = value.trim();
    if (!token) return;
    try {
      sessionStorage.setItem(KEY, token);
    } catch {
      // storage disabled: nothing to send
    }
    update({ needed: false, refused: false, forbidden: '' });
  };
  useEffect(() => {
    document.title = 'API token · Chronicle';
  }, []);
  return html`<main id="main" tabindex="-1">
    <div class="page-head"><h1>API token</h1></div>
    <form class="token-form" aria-label="API token" onSubmit=${submit}>
      <p>
        This Chronicle requires an API token with the <strong>read</strong> scope. It is kept for this browser
        tab only, and sent with each request, never in a link.
      </p>
      ${refused ? html`<p class="notice" role="alert">That token was not accepted. Try another.</p>` : null}
      <label for="api-token">Token</label>
      <input
        id="api-token"
        name="token"
        type="password"
        autocomplete="off"
        required
        value=${value}
        onInput=${(e) => setValue(e.currentTarget.value)}
      />
      <button type="submit">Use token</button>
    </form>
  </main>`;
}
